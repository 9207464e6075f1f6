//! Identifiers: record ids, collection and field ids, secrets, and random strings generated from
//! a text field's `autogeneratePattern` regex.

use rand::Rng;
use regex_syntax::hir::{Class, Hir, HirKind};

/// Alphabet of record ids.
pub const ID_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
/// Alphabet of secrets and token keys.
pub const ALPHANUMERIC: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Length of a default record id.
pub const RECORD_ID_LEN: usize = 15;

/// CRC-32 (IEEE), as Go's `hash/crc32.ChecksumIEEE`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// The id PocketBase gives a new collection: `pbc_` + CRC32(type + name).
pub fn collection_id(kind: &str, name: &str) -> String {
    format!("pbc_{}", crc32(format!("{kind}{name}").as_bytes()))
}

/// The id PocketBase gives a new field: type + CRC32(name), e.g. `text3208210256` for `id`.
pub fn field_id(kind: &str, name: &str) -> String {
    format!("{kind}{}", crc32(name.as_bytes()))
}

/// A random string of `len` characters drawn from `alphabet` (crypto-grade thread RNG).
pub fn random_string(len: usize, alphabet: &str) -> String {
    let mut rng = rand::rng();
    let bytes = alphabet.as_bytes();
    if alphabet.is_ascii() && !bytes.is_empty() && bytes.len() <= 256 {
        // A random byte below the largest multiple of the alphabet's size picks a character
        // (one draw from the generator fills many); a byte above is skipped, so no character
        // is likelier than another.
        let limit = 256 - 256 % bytes.len();
        let mut out = String::with_capacity(len);
        let mut pool = [0u8; 32];
        while out.len() < len {
            rng.fill(&mut pool[..]);
            for &byte in pool.iter().filter(|&&b| usize::from(b) < limit) {
                if out.len() == len {
                    break;
                }
                out.push(char::from(bytes[usize::from(byte) % bytes.len()]));
            }
        }
        return out;
    }
    let chars: Vec<char> = alphabet.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    (0..len)
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect()
}

/// PocketBase's pattern for a new record's id: what [`new_record_id`] draws.
pub const DEFAULT_ID_PATTERN: &str = "[a-z0-9]{15}";

/// A fresh 15-character `[a-z0-9]` record id.
pub fn new_record_id() -> String {
    random_string(RECORD_ID_LEN, ID_ALPHABET)
}

/// A fresh 50-character alphanumeric secret (collection token secrets, record `tokenKey`).
pub fn new_secret() -> String {
    random_string(50, ALPHANUMERIC)
}

/// Largest number of repetitions generated for an unbounded `*`/`+`/`{n,}`.
const UNBOUNDED_EXTRA: u32 = 10;

/// Generates a random string matching `pattern` (e.g. `[a-z0-9]{15}`), the way a text field's
/// `autogeneratePattern` fills empty values. Returns `None` when the pattern does not parse.
/// Anchors and other zero-width assertions generate nothing.
pub fn generate_from_pattern(pattern: &str) -> Option<String> {
    if pattern == DEFAULT_ID_PATTERN {
        // Nearly every create: the same characters, equally likely, without walking a regex.
        return Some(new_record_id());
    }
    PARSED.with(|parsed| {
        let mut parsed = parsed.borrow_mut();
        if !parsed.contains_key(pattern) {
            let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
            if parsed.len() >= PARSED_KEPT {
                parsed.clear();
            }
            parsed.insert(pattern.into(), hir);
        }
        let hir = parsed.get(pattern)?;
        let mut out = String::new();
        let mut rng = rand::rng();
        generate(hir, &mut rng, &mut out);
        Some(out)
    })
}

/// Patterns parsed per thread (more are forgotten all at once). Every record create fills its
/// `id` from a pattern, and parsing one cost more than generating from it.
const PARSED_KEPT: usize = 64;

thread_local! {
    static PARSED: std::cell::RefCell<std::collections::HashMap<Box<str>, Hir>> =
        std::cell::RefCell::default();
}

fn generate(hir: &Hir, rng: &mut impl Rng, out: &mut String) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => out.push_str(&String::from_utf8_lossy(&lit.0)),
        HirKind::Class(Class::Unicode(class)) => {
            let ranges = class.ranges();
            let total: u64 = ranges
                .iter()
                .map(|r| u64::from(r.end()) - u64::from(r.start()) + 1)
                .sum();
            if total == 0 {
                return;
            }
            let mut pick = rng.random_range(0..total);
            for r in ranges {
                let size = u64::from(r.end()) - u64::from(r.start()) + 1;
                if pick < size {
                    let code = u64::from(r.start()) + pick;
                    let ch = u32::try_from(code)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or(r.start());
                    out.push(ch);
                    return;
                }
                pick -= size;
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            let ranges = class.ranges();
            let total: u32 = ranges
                .iter()
                .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
                .sum();
            if total == 0 {
                return;
            }
            let mut pick = rng.random_range(0..total);
            for r in ranges {
                let size = u32::from(r.end()) - u32::from(r.start()) + 1;
                if pick < size {
                    let byte = u32::from(r.start()) + pick;
                    out.push(char::from_u32(byte).filter(char::is_ascii).unwrap_or('a'));
                    return;
                }
                pick -= size;
            }
        }
        HirKind::Repetition(rep) => {
            let max = rep.max.unwrap_or(rep.min.saturating_add(UNBOUNDED_EXTRA));
            let count = if max > rep.min {
                rng.random_range(rep.min..=max)
            } else {
                rep.min
            };
            for _ in 0..count {
                generate(&rep.sub, rng, out);
            }
        }
        HirKind::Capture(cap) => generate(&cap.sub, rng, out),
        HirKind::Concat(parts) => {
            for part in parts {
                generate(part, rng, out);
            }
        }
        HirKind::Alternation(alts) => {
            if !alts.is_empty() {
                let i = rng.random_range(0..alts.len());
                generate(&alts[i], rng, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_and_field_ids_match_pocketbase() {
        assert_eq!(collection_id("auth", "_superusers"), "pbc_3142635823");
        assert_eq!(collection_id("base", "posts"), "pbc_1125843985");
        assert_eq!(collection_id("base", "_mfas"), "pbc_2279338944");
        assert_eq!(field_id("text", "id"), "text3208210256");
        assert_eq!(field_id("autodate", "created"), "autodate2990389176");
    }

    #[test]
    fn record_ids_are_fifteen_lowercase_alphanumerics() {
        let id = new_record_id();
        assert_eq!(id.len(), 15);
        assert!(id.chars().all(|c| ID_ALPHABET.contains(c)));
        assert_ne!(id, new_record_id());
    }

    #[test]
    fn random_strings_draw_every_character_about_equally() {
        for alphabet in [ID_ALPHABET, ALPHANUMERIC, "ab", "é€x"] {
            let size = alphabet.chars().count();
            let text = random_string(size * 20_000, alphabet);
            assert_eq!(text.chars().count(), size * 20_000);
            let mut seen = std::collections::HashMap::new();
            for c in text.chars() {
                *seen.entry(c).or_insert(0usize) += 1;
            }
            for c in alphabet.chars() {
                // 20,000 expected with a standard deviation of at most 142; a plain `byte %
                // size` would give the first characters 12% (36) or 25% (62) more.
                let seen = seen.get(&c).copied().unwrap_or_default();
                assert!(
                    (19_000..21_000).contains(&seen),
                    "{c:?} seen {seen} times in {alphabet}"
                );
            }
            assert_eq!(seen.len(), size);
        }
        assert_eq!(random_string(5, ""), "");
        assert_eq!(random_string(0, ID_ALPHABET), "");
    }

    #[test]
    fn patterns_generate_matching_strings() {
        for pattern in [
            "[a-z0-9]{15}",
            "[a-zA-Z0-9]{50}",
            "^pre-\\d{3}(x|y)$",
            "ab+c?",
        ] {
            let value = generate_from_pattern(pattern).unwrap();
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            assert!(re.is_match(&value), "{pattern} -> {value}");
        }
        assert!(generate_from_pattern("[").is_none());
    }

    #[test]
    fn remembered_patterns_still_generate_fresh_matching_strings() {
        let first = generate_from_pattern("[a-z0-9]{15}").unwrap();
        let second = generate_from_pattern("[a-z0-9]{15}").unwrap();
        assert_ne!(first, second);
        // More patterns than are remembered: each still generates what it says.
        for n in 1..=(PARSED_KEPT + 10) {
            let pattern = format!("x{{{n}}}");
            assert_eq!(generate_from_pattern(&pattern).unwrap(), "x".repeat(n));
        }
        assert!(generate_from_pattern("[").is_none());
        assert_eq!(generate_from_pattern("y{3}").unwrap(), "yyy");
    }
}
