//! The `fields` projection and `expand` path parameters.

use crate::error::{Error, Result};

/// Deepest `expand` path.
pub const MAX_EXPAND_DEPTH: usize = 6;
/// Most comma-separated items either parameter may hold.
pub const MAX_ITEMS: usize = 200;

/// `:excerpt(max, withEllipsis)` on a projected string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Excerpt {
    pub max: usize,
    pub ellipsis: bool,
}

/// One `fields` item: a dotted path (`*` = every key at that level) and an
/// optional excerpt modifier on the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    pub path: Vec<String>,
    pub excerpt: Option<Excerpt>,
}

fn bad(param: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParam {
        param,
        reason: reason.into(),
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `fields=*,expand.author.name,body:excerpt(200,true)`.
pub fn parse_fields(text: &str) -> Result<Vec<FieldPath>> {
    let mut out = Vec::new();
    for item in split_top(text) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        if out.len() >= MAX_ITEMS {
            return Err(Error::Limit {
                what: "number of fields",
                limit: MAX_ITEMS,
            });
        }
        let (path, modifier) = match item.split_once(':') {
            Some((p, m)) => (p, Some(m)),
            None => (item, None),
        };
        let excerpt = match modifier {
            None => None,
            Some(m) => {
                let args = m
                    .strip_prefix("excerpt(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(|| bad("fields", format!("unknown modifier in {item:?}")))?;
                let args: Vec<&str> = args.split(',').map(str::trim).collect();
                if args.is_empty() || args.len() > 2 {
                    return Err(bad(
                        "fields",
                        format!("excerpt takes 1 or 2 arguments in {item:?}"),
                    ));
                }
                let max: i64 = args[0]
                    .parse()
                    .map_err(|_| bad("fields", format!("invalid excerpt length in {item:?}")))?;
                if max <= 0 {
                    return Err(bad(
                        "fields",
                        format!("excerpt length must be positive in {item:?}"),
                    ));
                }
                let ellipsis = match args.get(1) {
                    None => false,
                    Some(b) => parse_bool(b).ok_or_else(|| {
                        bad("fields", format!("invalid excerpt flag in {item:?}"))
                    })?,
                };
                Some(Excerpt {
                    max: max as usize,
                    ellipsis,
                })
            }
        };
        let path: Vec<String> = path.split('.').map(|s| s.trim().to_string()).collect();
        if path.iter().any(String::is_empty) {
            return Err(bad("fields", format!("empty path segment in {item:?}")));
        }
        out.push(FieldPath { path, excerpt });
    }
    Ok(out)
}

/// Parses `expand=author,tags.posts_via_tags`: spaces removed, trailing dots
/// trimmed, the legacy `coll(field)` form turned into `coll_via_field`,
/// duplicates and prefixes of longer paths dropped. Each path is a list of
/// relation names, at most [`MAX_EXPAND_DEPTH`] long.
pub fn parse_expand(text: &str) -> Result<Vec<Vec<String>>> {
    let mut paths: Vec<Vec<String>> = Vec::new();
    let items: Vec<&str> = text.split(',').collect();
    if items.len() > MAX_ITEMS {
        return Err(Error::Limit {
            what: "number of expand paths",
            limit: MAX_ITEMS,
        });
    }
    for item in items {
        let cleaned: String = item.chars().filter(|c| !c.is_whitespace()).collect();
        let cleaned = cleaned.trim_end_matches('.');
        if cleaned.is_empty() {
            continue;
        }
        let mut path = Vec::new();
        for seg in cleaned.split('.') {
            let seg = match seg.split_once('(') {
                Some((coll, rest)) => match rest.strip_suffix(')') {
                    Some(field) if !coll.is_empty() && !field.is_empty() => {
                        format!("{coll}_via_{field}")
                    }
                    _ => return Err(bad("expand", format!("invalid path {item:?}"))),
                },
                None => seg.to_string(),
            };
            if seg.is_empty() {
                return Err(bad("expand", format!("empty segment in {item:?}")));
            }
            path.push(seg);
        }
        if path.len() > MAX_EXPAND_DEPTH {
            return Err(Error::Limit {
                what: "expand depth",
                limit: MAX_EXPAND_DEPTH,
            });
        }
        paths.push(path);
    }
    // Keep a path only if no other path extends it (or repeats it earlier).
    let mut out: Vec<Vec<String>> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let covered = paths
            .iter()
            .enumerate()
            .any(|(j, q)| (q.len() > p.len() && q.starts_with(p)) || (q == p && j < i));
        if !covered {
            out.push(p.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_outside_parentheses() {
        let f = parse_fields("*,expand.author.name, body:excerpt(200,true)").unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].path, vec!["*"]);
        assert_eq!(f[1].path, vec!["expand", "author", "name"]);
        assert_eq!(
            f[2].excerpt,
            Some(Excerpt {
                max: 200,
                ellipsis: true
            })
        );
        assert_eq!(
            parse_fields("b:excerpt(5)").unwrap()[0].excerpt,
            Some(Excerpt {
                max: 5,
                ellipsis: false
            })
        );
        assert!(parse_fields("b:excerpt(0)").is_err());
        assert!(parse_fields("b:excerpt(1,2,3)").is_err());
        assert!(parse_fields("b:upper").is_err());
    }

    #[test]
    fn expand_paths_are_normalised() {
        let e = parse_expand(" author , tags.posts_via_tags,tags, author.,comments(post)").unwrap();
        assert_eq!(
            e,
            vec![
                vec!["author".to_string()],
                vec!["tags".to_string(), "posts_via_tags".to_string()],
                vec!["comments_via_post".to_string()],
            ]
        );
        assert!(parse_expand("a.b.c.d.e.f.g").is_err());
    }
}
