//! `CREATE [UNIQUE] INDEX` statements: parsed into parts and rebuilt in PocketBase's normalised
//! layout (backquoted names, one column per line when there are several).

use std::sync::LazyLock;

use regex::Regex;

static INDEX_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?is)^\s*create\s+(unique\s+)?\s*index\s*(if\s+not\s+exists\s+)?(\S*)\s+on\s+(\S*)\s*\(([\s\S]*)\)(?:\s*where\s+([\s\S]*))?$",
    )
    .ok()
});

/// One indexed column or expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexColumn {
    /// Column name (unquoted) or a raw expression.
    pub name: String,
    /// `COLLATE` name, if any.
    pub collate: String,
    /// `ASC`/`DESC`, if any.
    pub sort: String,
}

/// A parsed index statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// `UNIQUE`.
    pub unique: bool,
    /// `IF NOT EXISTS`.
    pub optional: bool,
    /// Schema prefix (`main.`), rarely used.
    pub schema_name: String,
    /// Index name.
    pub name: String,
    /// Table name.
    pub table: String,
    /// Indexed columns.
    pub columns: Vec<IndexColumn>,
    /// Partial-index condition, without `WHERE`.
    pub where_clause: String,
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    let trimmed = s
        .trim_start_matches(['`', '"', '\'', '['])
        .trim_end_matches(['`', '"', '\'', ']']);
    trimmed.to_owned()
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for ch in s.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '\'' | '"' | '`') => {
                quote = Some(ch);
                current.push(ch);
            }
            (None, '(') => {
                depth += 1;
                current.push(ch);
            }
            (None, ')') => {
                depth -= 1;
                current.push(ch);
            }
            (None, ',') if depth == 0 => parts.push(std::mem::take(&mut current)),
            (None, c) => current.push(c),
        }
    }
    parts.push(current);
    parts
}

impl Index {
    /// Parses a raw statement; `None` when it isn't a recognisable CREATE INDEX.
    pub fn parse(raw: &str) -> Option<Self> {
        let caps = INDEX_RE.as_ref()?.captures(raw)?;
        let full_name = caps.get(3)?.as_str();
        let (schema_name, name) = match full_name.split_once('.') {
            Some((schema, name)) => (unquote(schema), unquote(name)),
            None => (String::new(), unquote(full_name)),
        };
        let mut columns = Vec::new();
        for part in split_top_level(caps.get(5)?.as_str()) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let mut col = part.to_owned();
            let mut sort = String::new();
            let upper = col.to_ascii_uppercase();
            for dir in ["ASC", "DESC"] {
                if upper.ends_with(&format!(" {dir}")) {
                    sort = dir.to_owned();
                    col.truncate(col.len() - dir.len() - 1);
                    break;
                }
            }
            let mut collate = String::new();
            if let Some(pos) = col.to_ascii_uppercase().rfind(" COLLATE ") {
                collate = col[pos + 9..].trim().to_owned();
                col.truncate(pos);
            }
            let col = col.trim();
            let name = if col.contains('(') || col.contains(' ') {
                col.to_owned()
            } else {
                unquote(col)
            };
            columns.push(IndexColumn {
                name,
                collate,
                sort,
            });
        }
        let index = Index {
            unique: caps.get(1).is_some(),
            optional: caps.get(2).is_some(),
            schema_name,
            name,
            table: unquote(caps.get(4)?.as_str()),
            columns,
            where_clause: caps
                .get(6)
                .map(|m| m.as_str().trim().to_owned())
                .unwrap_or_default(),
        };
        index.is_valid().then_some(index)
    }

    /// A usable index needs a name, a table and at least one column.
    pub fn is_valid(&self) -> bool {
        !self.name.is_empty() && !self.table.is_empty() && !self.columns.is_empty()
    }

    /// Rebuilds the statement in PocketBase's normalised layout, e.g.
    /// ``CREATE UNIQUE INDEX `idx_x` ON `t` (`a`) WHERE `a` != ''``.
    pub fn build(&self) -> String {
        let mut s = String::from("CREATE ");
        if self.unique {
            s.push_str("UNIQUE ");
        }
        s.push_str("INDEX ");
        if self.optional {
            s.push_str("IF NOT EXISTS ");
        }
        if !self.schema_name.is_empty() {
            s.push_str(&format!("`{}`.", self.schema_name));
        }
        s.push_str(&format!("`{}` ON `{}` (", self.name, self.table));
        let multi = self.columns.len() > 1;
        if multi {
            s.push_str("\n  ");
        }
        let rendered: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let mut r = if c.name.contains('(') || c.name.contains(' ') {
                    c.name.clone()
                } else {
                    format!("`{}`", c.name)
                };
                if !c.collate.is_empty() {
                    r.push_str(" COLLATE ");
                    r.push_str(&c.collate);
                }
                if !c.sort.is_empty() {
                    r.push(' ');
                    r.push_str(&c.sort.to_ascii_uppercase());
                }
                r
            })
            .collect();
        s.push_str(&rendered.join(",\n  "));
        if multi {
            s.push('\n');
        }
        s.push(')');
        if !self.where_clause.is_empty() {
            s.push_str(" WHERE ");
            s.push_str(&self.where_clause);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_like_pocketbase() {
        let i = Index::parse(
            "CREATE INDEX `idx_mfas_collectionRef_recordRef` ON `_mfas` (collectionRef,recordRef)",
        )
        .unwrap();
        assert_eq!(
            i.build(),
            "CREATE INDEX `idx_mfas_collectionRef_recordRef` ON `_mfas` (\n  `collectionRef`,\n  `recordRef`\n)"
        );
        let i = Index::parse(
            "create unique index idx_e on users (email COLLATE NOCASE desc) where email != ''",
        )
        .unwrap();
        assert!(i.unique);
        assert_eq!(i.columns[0].collate, "NOCASE");
        assert_eq!(
            i.build(),
            "CREATE UNIQUE INDEX `idx_e` ON `users` (`email` COLLATE NOCASE DESC) WHERE email != ''"
        );
        let i = Index::parse("CREATE INDEX idx_posts_title ON posts (title)").unwrap();
        assert_eq!(
            i.build(),
            "CREATE INDEX `idx_posts_title` ON `posts` (`title`)"
        );
        let i = Index::parse("CREATE INDEX x ON t (lower(a), b)").unwrap();
        assert_eq!(i.columns[0].name, "lower(a)");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Index::parse("DROP TABLE x").is_none());
        assert!(Index::parse("CREATE INDEX ON t ()").is_none());
    }
}
