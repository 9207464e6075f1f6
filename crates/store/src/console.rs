//! The superuser SQL console: one query text run on a tenant's own database, fenced in.
//!
//! Invariants, in the order they are enforced:
//! - SQLite's authorizer refuses, at prepare time, everything that could reach beyond the
//!   tenant's `data.db` or change how the connection behaves for later users: `ATTACH`,
//!   `DETACH`, `load_extension`, transaction control (`BEGIN`, `COMMIT`, savepoints: the caller
//!   owns the transaction), temporary objects (a temp trigger would outlive the request on a
//!   pooled connection) and every PRAGMA but a short list of read-only ones.
//! - `VACUUM` (and so `VACUUM INTO 'file'`) has no authorizer action: it is refused by its
//!   leading keyword, which SQLite's own parser fixes (comments are skipped first).
//! - A progress handler stops the query once it has run past its time limit; no string or blob
//!   may grow past [`MAX_VALUE_BYTES`] (`randomblob(1e9)` fails instead of allocating); the
//!   result is capped in rows and bytes. Neither CPU, memory nor the answer is unbounded.
//! - Both hooks are removed before returning, whatever happened (a guard drops them).
//! - On a read-only connection a statement that writes is not run: the caller gets
//!   [`ConsoleError::NeedsWriter`] and runs the whole text again on the writer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Batch, Connection};

/// How far one console query may go.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleLimits {
    /// Rows returned at most (the rest are not read).
    pub max_rows: usize,
    /// Bytes of values returned at most; a larger answer is an error.
    pub max_bytes: usize,
    /// Run time after which the query is interrupted.
    pub time: Duration,
}

/// One result column: its name and declared type (`""` for expressions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleColumn {
    /// The column's name as SQLite reports it.
    pub name: String,
    /// The declared type of the table column it comes from, `""` for expressions.
    pub decl_type: String,
}

/// What a console query answered: the last statement's columns and rows, and the rows
/// changed by all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleOutput {
    /// The last statement's result columns (empty for statements returning nothing).
    pub columns: Vec<ConsoleColumn>,
    /// Its rows, every value as text (`None` for NULL).
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows inserted, updated or deleted by the whole text.
    pub affected_rows: u64,
}

/// Why a console query did not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The console refuses this kind of statement.
    #[error("{0}")]
    Refused(String),
    /// The query ran past its time limit and was interrupted.
    #[error("the query was stopped after {0} seconds")]
    TimedOut(u64),
    /// The answer grew past the byte limit.
    #[error("the result is larger than {0} bytes; select fewer or shorter values")]
    TooLarge(usize),
    /// A statement writes and the connection is read-only: run the text on the writer.
    #[error("the query writes")]
    NeedsWriter,
    /// SQLite's own error (syntax, constraint, missing table, ...).
    #[error("{0}")]
    Sql(String),
}

/// Largest string or blob a fenced query may make or read (SQLite's own default is 1 GB).
pub const MAX_VALUE_BYTES: i32 = 16 << 20;

/// PRAGMAs that only report and may name a table or index.
const INFO_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
];

/// PRAGMAs that only report when given no value.
const STATUS_PRAGMAS: &[&str] = &[
    "page_count",
    "page_size",
    "freelist_count",
    "user_version",
    "schema_version",
    "application_id",
    "encoding",
    "foreign_keys",
    "journal_mode",
    "data_version",
    "auto_vacuum",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
];

/// Functions the console never calls (extension loading; the tokenizer registry's
/// pointer-taking form).
const REFUSED_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer"];

/// Whether the authorizer lets `action` through; `Err` names what was refused.
fn authorize(action: &AuthAction<'_>) -> Result<(), String> {
    let named = |list: &[&str], name: &str| list.iter().any(|n| n.eq_ignore_ascii_case(name));
    match action {
        AuthAction::Attach { .. } => Err("ATTACH is not allowed in the SQL console.".into()),
        AuthAction::Detach { .. } => Err("DETACH is not allowed in the SQL console.".into()),
        AuthAction::Function { function_name } if named(REFUSED_FUNCTIONS, function_name) => Err(
            format!("{function_name}() is not allowed in the SQL console."),
        ),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => Err(
            "Transaction statements are not allowed: each query runs in a transaction of its own."
                .into(),
        ),
        AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. } => {
            Err("Temporary tables, views and triggers are not allowed in the SQL console.".into())
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let allowed = named(INFO_PRAGMAS, pragma_name)
                || (pragma_value.is_none() && named(STATUS_PRAGMAS, pragma_name));
            if allowed {
                Ok(())
            } else {
                Err(format!(
                    "PRAGMA {pragma_name} is not allowed in the SQL console (only read-only ones are)."
                ))
            }
        }
        _ => Ok(()),
    }
}

/// The statement's first keyword, after whitespace and comments.
fn first_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
        } else {
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// The console's hooks installed on a connection: the authorizer and the time limit. Dropping
/// it removes both. Use it to run other ad-hoc SQL under the same fence (a view query's dry
/// run).
pub struct Fence<'c> {
    conn: &'c Connection,
    refusal: Arc<Mutex<Option<String>>>,
    timed_out: Arc<AtomicBool>,
    time: Duration,
    /// The connection's value length limit before the fence, put back when it drops.
    length: Option<i32>,
}

impl<'c> Fence<'c> {
    /// Installs the hooks on `conn`; queries stop once `time` has passed.
    pub fn new(conn: &'c Connection, time: Duration) -> Result<Self, ConsoleError> {
        let fence = Self {
            conn,
            refusal: Arc::default(),
            timed_out: Arc::new(AtomicBool::new(false)),
            time,
            length: conn
                .set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
                .ok(),
        };
        let seen = fence.refusal.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            match authorize(&ctx.action) {
                Ok(()) => Authorization::Allow,
                Err(reason) => {
                    if let Ok(mut slot) = seen.lock() {
                        slot.get_or_insert(reason);
                    }
                    Authorization::Deny
                }
            }
        }))
        .map_err(|e| ConsoleError::Sql(e.to_string()))?;
        let deadline = Instant::now() + time;
        let flag = fence.timed_out.clone();
        conn.progress_handler(
            1000,
            Some(move || {
                let over = Instant::now() >= deadline;
                if over {
                    flag.store(true, Ordering::Relaxed);
                }
                over
            }),
        )
        .map_err(|e| ConsoleError::Sql(e.to_string()))?;
        Ok(fence)
    }

    /// What a failure under the fence means: a refusal, the time limit, or SQLite's own
    /// error `raw`.
    pub fn explain(&self, raw: impl std::fmt::Display) -> ConsoleError {
        if let Some(reason) = self.refusal.lock().ok().and_then(|mut slot| slot.take()) {
            ConsoleError::Refused(reason)
        } else if self.timed_out.load(Ordering::Relaxed) {
            ConsoleError::TimedOut(self.time.as_secs())
        } else {
            ConsoleError::Sql(raw.to_string())
        }
    }
}

impl Drop for Fence<'_> {
    fn drop(&mut self) {
        // Clearing hooks cannot fail on an open connection; a failure here would leave a
        // closed connection, which no later user can reach anyway.
        let _ = self
            .conn
            .authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
        let _ = self.conn.progress_handler(0, None::<fn() -> bool>);
        if let Some(length) = self.length {
            let _ = self.conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, length);
        }
    }
}

/// Runs the console query `text` on `conn` within `limits`. `writer` says whether `conn` may
/// write (the caller runs it inside a transaction it commits or rolls back).
pub fn run_console(
    conn: &Connection,
    text: &str,
    limits: &ConsoleLimits,
    writer: bool,
) -> Result<ConsoleOutput, ConsoleError> {
    let fence = Fence::new(conn, limits.time)?;
    let before = conn.total_changes();
    let mut output = ConsoleOutput::default();
    let mut batch = Batch::new(conn, text);
    while let Some(stmt) = batch.next().map_err(|e| fence.explain(e))? {
        let sql = stmt.expanded_sql().unwrap_or_default();
        if first_keyword(&sql) == "VACUUM" {
            return Err(ConsoleError::Refused(
                "VACUUM is not allowed in the SQL console.".into(),
            ));
        }
        if !writer && !stmt.readonly() {
            return Err(ConsoleError::NeedsWriter);
        }
        output = run_statement(stmt, limits).map_err(|e| match e {
            StepError::Sql(e) => fence.explain(e),
            StepError::TooLarge => ConsoleError::TooLarge(limits.max_bytes),
        })?;
    }
    output.affected_rows = conn.total_changes().saturating_sub(before);
    Ok(output)
}

enum StepError {
    Sql(rusqlite::Error),
    TooLarge,
}

/// Steps one statement, keeping at most `max_rows` of its rows.
fn run_statement(
    mut stmt: rusqlite::Statement<'_>,
    limits: &ConsoleLimits,
) -> Result<ConsoleOutput, StepError> {
    let columns = stmt
        .columns()
        .iter()
        .map(|c| ConsoleColumn {
            name: c.name().to_string(),
            decl_type: c.decl_type().unwrap_or("").to_string(),
        })
        .collect::<Vec<_>>();
    let width = columns.len();
    let mut out = ConsoleOutput {
        columns,
        ..ConsoleOutput::default()
    };
    let mut bytes = 0usize;
    let mut rows = stmt.query([]).map_err(StepError::Sql)?;
    while let Some(row) = rows.next().map_err(StepError::Sql)? {
        if out.rows.len() >= limits.max_rows {
            break;
        }
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            let value = match row.get_ref(i).map_err(StepError::Sql)? {
                ValueRef::Null => None,
                ValueRef::Integer(n) => Some(n.to_string()),
                ValueRef::Real(f) => Some(real_text(f)),
                ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into()),
            };
            bytes += value.as_ref().map_or(4, String::len);
            if bytes > limits.max_bytes {
                return Err(StepError::TooLarge);
            }
            values.push(value);
        }
        out.rows.push(values);
    }
    Ok(out)
}

/// A REAL as PocketBase's console shows it (Go's shortest `%g`): plain decimals for exponents
/// from -4 to 5, else `1.5e+06` with a signed, two-digit-at-least exponent.
fn real_text(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let scientific = format!("{f:e}");
    let Some((mantissa, exp)) = scientific.split_once('e') else {
        return f.to_string();
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return f.to_string();
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConsoleLimits = ConsoleLimits {
        max_rows: 1000,
        max_bytes: 1 << 20,
        time: Duration::from_millis(300),
    };

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, n INTEGER);")
            .unwrap();
        conn
    }

    fn refused(conn: &Connection, sql: &str) -> String {
        match run_console(conn, sql, &LIMITS, true) {
            Err(ConsoleError::Refused(reason)) => reason,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn a_select_answers_the_last_statements_rows_as_text() {
        let conn = db();
        let out = run_console(
            &conn,
            "select 1; select 2 as two, null, 1.5",
            &LIMITS,
            false,
        )
        .unwrap();
        assert_eq!(out.columns[0].name, "two");
        assert_eq!(out.columns[0].decl_type, "");
        assert_eq!(
            out.rows,
            vec![vec![Some("2".into()), None, Some("1.5".into())]]
        );
    }

    #[test]
    fn reals_read_as_go_prints_them() {
        for (f, text) in [
            (1.5, "1.5"),
            (5.0, "5"),
            (100000.0, "100000"),
            (1234567.0, "1.234567e+06"),
            (1e22, "1e+22"),
            (0.0001, "0.0001"),
            (-0.00001, "-1e-05"),
            (0.0, "0"),
        ] {
            assert_eq!(real_text(f), text, "{f}");
        }
    }

    #[test]
    fn writes_need_the_writer_and_count_changed_rows() {
        let conn = db();
        let text = "insert into t values ('a', 1); insert into t values ('b', 2)";
        assert!(matches!(
            run_console(&conn, text, &LIMITS, false),
            Err(ConsoleError::NeedsWriter)
        ));
        let out = run_console(&conn, text, &LIMITS, true).unwrap();
        assert_eq!(out.affected_rows, 2);
        let out = run_console(&conn, "select id, n from t", &LIMITS, false).unwrap();
        assert_eq!(out.columns[1].decl_type, "INTEGER");
        assert_eq!(out.rows.len(), 2);
    }

    #[test]
    fn files_extensions_and_transactions_are_refused() {
        let conn = db();
        for sql in [
            "ATTACH '/tmp/other.db' AS other",
            "DETACH main",
            "select load_extension('/tmp/evil.so')",
            "VACUUM INTO '/tmp/copy.db'",
            "/* hi */ vacuum",
            "PRAGMA journal_mode = DELETE",
            "PRAGMA writable_schema = 1",
            "BEGIN",
            "SAVEPOINT x",
            "CREATE TEMP TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END",
        ] {
            assert!(!refused(&conn, sql).is_empty(), "{sql}");
        }
        // The hooks are gone afterwards: the connection works as before.
        conn.execute_batch("ATTACH ':memory:' AS other; DETACH other")
            .unwrap();
    }

    #[test]
    fn read_only_pragmas_pass() {
        let conn = db();
        let out = run_console(&conn, "PRAGMA table_info(t)", &LIMITS, false).unwrap();
        assert_eq!(out.rows.len(), 2);
        run_console(&conn, "PRAGMA page_count", &LIMITS, false).unwrap();
    }

    #[test]
    fn a_runaway_query_is_interrupted() {
        let conn = db();
        let started = Instant::now();
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                   SELECT count(*) FROM c";
        let e = run_console(&conn, sql, &LIMITS, false).unwrap_err();
        assert!(matches!(e, ConsoleError::TimedOut(_)), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn rows_and_bytes_are_capped() {
        let conn = db();
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5000) \
                   SELECT x FROM c";
        let out = run_console(&conn, sql, &LIMITS, false).unwrap();
        assert_eq!(out.rows.len(), 1000);
        let small = ConsoleLimits {
            max_bytes: 100,
            ..LIMITS
        };
        let e = run_console(&conn, "select randomblob(200)", &small, false).unwrap_err();
        assert!(matches!(e, ConsoleError::TooLarge(100)), "{e:?}");
        let e = run_console(&conn, "select length(zeroblob(1e9))", &LIMITS, false).unwrap_err();
        assert!(e.to_string().contains("too big"), "{e}");
        // The connection's own limit is back afterwards.
        let big: i64 = conn
            .query_row("select length(zeroblob(100000000))", [], |r| r.get(0))
            .unwrap();
        assert_eq!(big, 100_000_000);
    }

    #[test]
    fn syntax_errors_carry_sqlites_message() {
        let conn = db();
        let e = run_console(&conn, "invalid", &LIMITS, false).unwrap_err();
        assert!(e.to_string().contains("syntax error"), "{e}");
    }
}
