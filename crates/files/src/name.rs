//! Stored file names: how an uploaded file is named on disk, and the checks every name passes
//! before it becomes part of a storage path.

use rand::Rng;

use crate::{Error, Result};

/// Longest stored base name, before the random suffix (PocketBase's limit).
const MAX_BASE: usize = 100;
/// Longest kept extension, dot excluded.
const MAX_EXT: usize = 20;
/// Longest name accepted anywhere in a storage path.
pub const MAX_NAME: usize = 255;

/// `n` random characters of `[a-z0-9]`.
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The last path segment of a client's file name (browsers and curl may send a path; only its
/// last segment is a name). Both separators count.
pub fn client_basename(raw: &str) -> &str {
    raw.rsplit(['/', '\\']).next().unwrap_or_default()
}

/// The name a new upload is stored under: the client's base name in snake_case (at most 100
/// characters; padded with 10 random characters when shorter than 3), `_`, 10 random
/// `[a-z0-9]`, and the client's extension with unsafe characters removed — or, when it has
/// none, `detected_ext` (from the content, e.g. `.png`).
pub fn stored_name(client_name: &str, detected_ext: &str) -> String {
    let base = client_basename(client_name);
    let (stem, ext) = split_extension(base);
    let mut clean_ext: String = ext
        .chars()
        .filter(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '-' | '+' | '=' | '#')
        })
        .collect();
    if clean_ext.trim_start_matches('.').is_empty() {
        clean_ext = detected_ext.to_string();
    }
    if clean_ext.len() > MAX_EXT + 1 {
        clean_ext = format!(".{}", &clean_ext[clean_ext.len() - MAX_EXT..]);
    }
    if !clean_ext.is_empty() && !clean_ext.starts_with('.') {
        clean_ext.insert(0, '.');
    }
    let mut clean = snake_case(stem);
    if clean.len() < 3 {
        clean.push_str(&random_suffix(10));
    } else if clean.len() > MAX_BASE {
        clean.truncate(MAX_BASE);
    }
    format!("{clean}_{}{clean_ext}", random_suffix(10))
}

/// Splits `name` into stem and extension (with its dot); a leading dot is part of the stem.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// Lower snake_case of ASCII words: anything that is not an ASCII letter or digit separates
/// words, and an upper-case letter after a lower-case one starts a new word.
pub fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('_');
        }
        let mut previous_upper = true;
        for (i, c) in word.chars().enumerate() {
            let upper = c.is_ascii_uppercase();
            if upper && i > 0 && !previous_upper {
                out.push('_');
            }
            previous_upper = upper;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Checks one segment of a storage key (a collection id, record id, file or thumb name): not
/// empty, not `.`/`..`, no separators, no control characters, bounded length.
pub fn check_segment(segment: &str) -> Result<()> {
    let bad = segment.is_empty()
        || segment.len() > MAX_NAME
        || segment == "."
        || segment == ".."
        || segment.starts_with('.')
        || segment
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '\0' || c.is_control() || c == ':');
    if bad {
        return Err(Error::InvalidName);
    }
    Ok(())
}

/// A storage key `<collectionId>/<recordId>/<filename>`, each part checked.
pub fn file_key(collection_id: &str, record_id: &str, filename: &str) -> Result<String> {
    check_segment(collection_id)?;
    check_segment(record_id)?;
    check_segment(filename)?;
    Ok(format!("{collection_id}/{record_id}/{filename}"))
}

/// The storage key of a thumb: `<collectionId>/<recordId>/thumbs_<filename>/<size>_<filename>`.
pub fn thumb_key(
    collection_id: &str,
    record_id: &str,
    filename: &str,
    size: &str,
) -> Result<String> {
    check_segment(size)?;
    let thumbs = format!("thumbs_{filename}");
    let name = format!("{size}_{filename}");
    check_segment(&thumbs)?;
    check_segment(&name)?;
    Ok(format!(
        "{}/{thumbs}/{name}",
        file_key(collection_id, record_id, filename)?
            .rsplit_once('/')
            .map(|(dir, _)| dir)
            .unwrap_or_default()
    ))
}

/// The prefix holding all files of one record.
pub fn record_prefix(collection_id: &str, record_id: &str) -> Result<String> {
    check_segment(collection_id)?;
    check_segment(record_id)?;
    Ok(format!("{collection_id}/{record_id}/"))
}

/// The prefix holding all files of one collection.
pub fn collection_prefix(collection_id: &str) -> Result<String> {
    check_segment(collection_id)?;
    Ok(format!("{collection_id}/"))
}

/// Checks a whole relative key: every segment, no absolute path.
pub fn check_key(key: &str) -> Result<()> {
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    if trimmed.is_empty() || trimmed.starts_with('/') {
        return Err(Error::InvalidName);
    }
    trimmed.split('/').try_for_each(check_segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(name: &str) -> (String, String, String) {
        let (stem, ext) = split_extension(name);
        let (base, random) = stem.rsplit_once('_').unwrap();
        (base.to_string(), random.to_string(), ext.to_string())
    }

    #[test]
    fn stored_names_are_snake_case_with_a_random_suffix() {
        let (base, random, ext) = shape(&stored_name("My Holiday Photo.PNG", ""));
        assert_eq!(base, "my_holiday_photo");
        assert_eq!(random.len(), 10);
        assert!(
            random
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(ext, ".PNG");
        assert_eq!(
            shape(&stored_name("camelCaseName.txt", "")).0,
            "camel_case_name"
        );
        assert_eq!(shape(&stored_name("HTTPServer.txt", "")).0, "httpserver");
    }

    #[test]
    fn short_names_get_extra_random_characters() {
        let (base, _, ext) = shape(&stored_name("a.png", ""));
        assert_eq!(base.len(), 11);
        assert!(base.starts_with('a'));
        assert_eq!(ext, ".png");
    }

    #[test]
    fn client_paths_and_control_characters_never_reach_the_name() {
        let name = stored_name("../../etc/pa ss\u{1}wd.txt", "");
        assert!(name.starts_with("pa_ss_wd_"), "{name}");
        assert!(check_segment(&name).is_ok());
        let name = stored_name("..\\..\\evil.exe", "");
        assert!(name.starts_with("evil_"), "{name}");
        assert!(check_segment(&stored_name("..", "")).is_ok());
        assert!(check_segment(&stored_name("", "")).is_ok());
    }

    #[test]
    fn missing_extensions_come_from_the_content() {
        assert!(stored_name("noext", ".txt").ends_with(".txt"));
        let long = format!("x.{}", "e".repeat(40));
        let name = stored_name(&long, "");
        assert_eq!(split_extension(&name).1.len(), MAX_EXT + 1);
    }

    #[test]
    fn long_names_are_cut_to_one_hundred_characters() {
        let (base, _, _) = shape(&stored_name(&format!("{}.txt", "a".repeat(300)), ""));
        assert_eq!(base.len(), MAX_BASE);
    }

    #[test]
    fn unsafe_segments_are_refused() {
        for bad in [
            "", ".", "..", "a/b", "a\\b", "a\0b", "a\nb", ".hidden", "c:x",
        ] {
            assert!(check_segment(bad).is_err(), "{bad:?}");
        }
        assert!(check_key("/abs/x").is_err());
        assert!(check_key("a/../b").is_err());
        assert!(check_key("a/b/c.png").is_ok());
        assert_eq!(
            thumb_key("c1", "r1", "f.png", "10x10").unwrap(),
            "c1/r1/thumbs_f.png/10x10_f.png"
        );
    }
}
