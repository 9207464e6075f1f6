//! The `sort` parameter: `-created,+title,@random,@rowid`.

use crate::error::{Error, Result};

/// Most items one `sort` may hold.
pub const MAX_SORT_ITEMS: usize = 8;

/// One ORDER BY item before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortItem {
    /// A field expression (`title`, `author.name`, `meta.a.b`) or `@random` / `@rowid`.
    pub name: String,
    pub descending: bool,
}

/// Splits a `sort` parameter. Items are resolved (and validated against the
/// schema) by [`crate::Query::order_by`].
pub fn parse_sort(text: &str) -> Result<Vec<SortItem>> {
    let mut out = Vec::new();
    for raw in text.split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let (name, descending) = match raw.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (raw.strip_prefix('+').unwrap_or(raw), false),
        };
        if name.is_empty() {
            return Err(Error::InvalidSort(raw.to_string()));
        }
        out.push(SortItem {
            name: name.to_string(),
            descending,
        });
        if out.len() > MAX_SORT_ITEMS {
            return Err(Error::Limit {
                what: "number of sort items",
                limit: MAX_SORT_ITEMS,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_items_carry_direction() {
        let items = parse_sort("-created, +title,views,@random").unwrap();
        assert_eq!(
            items,
            vec![
                SortItem {
                    name: "created".into(),
                    descending: true
                },
                SortItem {
                    name: "title".into(),
                    descending: false
                },
                SortItem {
                    name: "views".into(),
                    descending: false
                },
                SortItem {
                    name: "@random".into(),
                    descending: false
                },
            ]
        );
        assert!(parse_sort("a,b,c,d,e,f,g,h,i").is_err());
        assert!(parse_sort("-").is_err());
    }
}
