//! Embedded, ordered SQL migrations tracked with `PRAGMA user_version`.
//!
//! `user_version` (not a table) keeps the bookkeeping out of the tenant's schema, so PocketBase's
//! own `_migrations` table stays free for export compatibility.

use rusqlite::Connection;

/// One migration: its version (1, 2, ...) and the SQL it runs.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing, starting at 1.
    pub version: u32,
    /// The statements, run in one transaction together with the version bump.
    pub sql: &'static str,
}

/// Applies every migration newer than the database's `user_version`, each in its own
/// transaction. A failing migration rolls back and leaves the previous version in place.
/// With no migrations there is nothing to read: an open pays no statement for them.
pub(crate) fn apply(conn: &mut Connection, migrations: &[Migration]) -> rusqlite::Result<u32> {
    if migrations.is_empty() {
        return Ok(0);
    }
    let mut current: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for migration in migrations {
        if migration.version <= current {
            continue;
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(migration.sql)?;
        // PRAGMA takes no bound parameters; the version is an integer we own, not input.
        tx.execute_batch(&format!("PRAGMA user_version = {}", migration.version))?;
        tx.commit()?;
        current = migration.version;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: &[Migration] = &[
        Migration {
            version: 1,
            sql: "CREATE TABLE a (x INTEGER);",
        },
        Migration {
            version: 2,
            sql: "ALTER TABLE a ADD COLUMN y TEXT;",
        },
    ];

    #[test]
    fn applies_each_migration_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(apply(&mut conn, STEPS).unwrap(), 2);
        assert_eq!(apply(&mut conn, STEPS).unwrap(), 2);
        conn.execute("INSERT INTO a (x, y) VALUES (1, 'z')", [])
            .unwrap();
    }

    #[test]
    fn no_migrations_leave_the_version_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA user_version = 7").unwrap();
        assert_eq!(apply(&mut conn, &[]).unwrap(), 0);
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 7);
    }

    #[test]
    fn a_failing_migration_keeps_the_previous_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let broken = [
            STEPS[0],
            Migration {
                version: 2,
                sql: "CREATE TABLE b (x); SYNTAX ERROR;",
            },
        ];
        assert!(apply(&mut conn, &broken).is_err());
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
        let has_b: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(has_b, 0);
    }
}
