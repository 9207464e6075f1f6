//! The SELECT behind a view collection, read just far enough to trace each result column
//! back to the table it comes from: the select list (aliases stripped) and the FROM/JOIN
//! sources with their aliases. It is no SQL parser: SQLite itself checks the query, and a
//! query this cannot follow only loses the field types it would have derived.

use std::sync::LazyLock;

use regex::Regex;

static IDENT_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"^(?:[`"\[]?(\w+)[`"\]]?\s*\.\s*)?[`"\[]?(\w+)[`"\]]?$"#).ok());
static CAST_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?is)^cast\s*\(.*\bas\s+(\w+)\s*\)$").ok());

/// The parts of a SELECT needed to trace columns back to tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    /// The expression of each result column, without its alias, in order.
    pub columns: Vec<String>,
    /// (alias or table name, table name) of each FROM/JOIN source, in order.
    pub tables: Vec<(String, String)>,
}

impl Select {
    /// Whether a result column is `*` or `table.*`.
    pub fn has_wildcard(&self) -> bool {
        self.columns.iter().any(|c| c == "*" || c.ends_with(".*"))
    }

    /// The table name behind `alias` (a table named without alias is its own alias).
    pub fn table(&self, alias: &str) -> Option<&str> {
        self.tables
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(alias))
            .map(|(_, t)| t.as_str())
    }
}

/// `column`, `table.column` (each name maybe quoted) as `(table, column)`; `None` for any
/// other expression.
pub fn column_ref(expr: &str) -> Option<(Option<&str>, &str)> {
    let caps = IDENT_RE.as_ref()?.captures(expr)?;
    let column = caps.get(2).map_or("", |m| m.as_str());
    Some((caps.get(1).map(|m| m.as_str()), column))
}

/// The type name of `CAST(... AS type)`, lowercased.
pub fn cast_target(expr: &str) -> Option<String> {
    let caps = CAST_RE.as_ref()?.captures(expr)?;
    Some(
        caps.get(1)
            .map_or(String::new(), |m| m.as_str().to_ascii_lowercase()),
    )
}

/// Splits `s` at top level (outside quotes and parentheses) wherever `at` says so; `at`
/// gets the remaining text and returns the length of the separator to cut.
fn split_top(s: &str, at: impl Fn(&str, &str) -> Option<usize>) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    let mut skip_until = 0;
    for (i, ch) in s.char_indices() {
        if i < skip_until {
            continue;
        }
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(ch),
            (None, '[') => quote = Some(']'),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, _) if depth == 0 => {
                if let Some(len) = at(&s[..i], &s[i..]) {
                    parts.push(s[start..i].to_owned());
                    start = i + len;
                    skip_until = start;
                }
            }
            _ => {}
        }
    }
    parts.push(s[start..].to_owned());
    parts
}

/// Matches keyword `kw` (case-insensitive, whole word) at the start of `rest`.
fn keyword_at(before: &str, rest: &str, kw: &str) -> Option<usize> {
    let boundary_before = before
        .chars()
        .next_back()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
    let head = rest.get(..kw.len())?;
    let boundary_after = rest[kw.len()..]
        .chars()
        .next()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    (boundary_before && boundary_after && head.eq_ignore_ascii_case(kw)).then_some(kw.len())
}

/// Reads the select list and FROM sources of `query`; `None` when it does not look like a
/// single SELECT with a FROM clause.
pub fn parse(query: &str) -> Option<Select> {
    let q = query.trim().trim_end_matches(';').trim();
    let rest = keyword_at("", q, "select").map(|n| q[n..].trim_start())?;
    let rest = keyword_at("", rest, "distinct")
        .map_or(rest, |n| rest[n..].trim_start())
        .to_owned();
    let mut halves = split_top(&rest, |b, r| keyword_at(b, r, "from"));
    if halves.len() < 2 {
        return None;
    }
    let from = halves.split_off(1).join(" from ");
    let columns = split_top(&halves[0], |_, r| r.starts_with(',').then_some(1))
        .into_iter()
        .map(|c| strip_alias(c.trim()))
        .collect();

    // The FROM clause up to the first clause that ends it.
    let mut from = from;
    for kw in [
        "where", "group", "order", "limit", "having", "window", "union",
    ] {
        from = split_top(&from, |b, r| keyword_at(b, r, kw))
            .into_iter()
            .next()
            .unwrap_or_default();
    }
    let mut tables = Vec::new();
    let sources = split_top(&from, |b, r| {
        keyword_at(b, r, "join").or_else(|| r.starts_with(',').then_some(1))
    });
    for source in sources {
        let source = split_top(&source, |b, r| {
            keyword_at(b, r, "on").or_else(|| keyword_at(b, r, "using"))
        })
        .into_iter()
        .next()
        .unwrap_or_default();
        let words: Vec<&str> = source
            .split_whitespace()
            .filter(|w| {
                ![
                    "left", "right", "inner", "outer", "cross", "natural", "full", "as",
                ]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
            })
            .collect();
        let Some(table) = words.first() else { continue };
        if table.starts_with('(') {
            continue;
        }
        let table = unquote(table);
        let alias = words.get(1).map_or_else(|| table.clone(), |a| unquote(a));
        tables.push((alias, table));
    }
    Some(Select { columns, tables })
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| matches!(c, '`' | '"' | '[' | ']'))
        .to_owned()
}

/// `expr AS alias` → `expr` (the alias itself comes from SQLite's column names).
fn strip_alias(column: &str) -> String {
    let parts = split_top(column, |b, r| keyword_at(b, r, "as"));
    if parts.len() >= 2 {
        return parts[..parts.len() - 1].join(" as ").trim().to_owned();
    }
    // `expr alias` without AS: the last word is an alias when what precedes it is complete.
    if let Some((head, last)) = column.rsplit_once(char::is_whitespace) {
        let head = head.trim();
        let word = last.chars().all(|c| c.is_alphanumeric() || c == '_');
        let complete = head.ends_with(')')
            || IDENT_RE.as_ref().is_some_and(|re| re.is_match(head))
            || head.ends_with('\'');
        if word && complete && !head.is_empty() {
            return head.to_owned();
        }
    }
    column.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(s: &Select) -> Vec<(&str, &str)> {
        s.tables
            .iter()
            .map(|(a, t)| (a.as_str(), t.as_str()))
            .collect()
    }

    #[test]
    fn columns_lose_their_aliases() {
        let s = parse("SELECT p.id, p.title AS heading, count(c.id) total FROM posts p").unwrap();
        assert_eq!(s.columns, ["p.id", "p.title", "count(c.id)"]);
    }

    #[test]
    fn joins_name_every_source_with_its_alias() {
        let s = parse(
            "select distinct a.id, b.name from `authors` as a \
             left join books b on b.author = a.id, tags where a.id != '' order by a.id;",
        )
        .unwrap();
        assert_eq!(s.columns, ["a.id", "b.name"]);
        assert_eq!(
            tables(&s),
            [("a", "authors"), ("b", "books"), ("tags", "tags")]
        );
        assert_eq!(s.table("B"), Some("books"));
    }

    #[test]
    fn commas_and_keywords_inside_parentheses_or_quotes_do_not_split() {
        let s =
            parse("SELECT id, coalesce(a, 'x, from y') AS v, (SELECT max(n) FROM t) m FROM posts")
                .unwrap();
        assert_eq!(
            s.columns,
            ["id", "coalesce(a, 'x, from y')", "(SELECT max(n) FROM t)"]
        );
        assert_eq!(tables(&s), [("posts", "posts")]);
    }

    #[test]
    fn subqueries_in_from_are_skipped() {
        let s = parse("SELECT x.id FROM (SELECT id FROM posts) x JOIN users u USING (id)").unwrap();
        assert_eq!(tables(&s), [("u", "users")]);
    }

    #[test]
    fn wildcards_are_seen() {
        assert!(parse("SELECT * FROM posts").unwrap().has_wildcard());
        assert!(parse("SELECT p.* FROM posts p").unwrap().has_wildcard());
        assert!(!parse("SELECT id FROM posts").unwrap().has_wildcard());
    }

    #[test]
    fn queries_without_select_or_from_are_not_read() {
        assert_eq!(parse("VALUES (1)"), None);
        assert_eq!(parse("SELECT 1"), None);
        assert_eq!(parse("selected FROM x"), None);
    }

    #[test]
    fn column_refs_and_casts_are_recognised() {
        assert_eq!(column_ref("title"), Some((None, "title")));
        assert_eq!(column_ref("`p`.\"title\""), Some((Some("p"), "title")));
        assert_eq!(column_ref("p.title || 'x'"), None);
        assert_eq!(
            cast_target("CAST(n AS INTEGER)").as_deref(),
            Some("integer")
        );
        assert_eq!(cast_target("n + 1"), None);
    }
}
