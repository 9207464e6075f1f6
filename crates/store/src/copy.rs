//! Consistent copies of database files (`VACUUM INTO`) and compaction, safe while other
//! connections, or other processes such as a running PocketBase, use the source.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::database::{connect, run_blocking};
use crate::{Database, Error, Result};

/// How long a copy waits for a busy source before it fails.
const BUSY: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes a consistent snapshot of the SQLite database at `source` to `dest` (which must not
/// exist), reading `source` through a connection of its own that writes nothing. The copy is
/// compact and has no `-wal` file of its own. `exclusive` says how this process opens
/// `source` (see [`crate::Options::exclusive`]); a file of another program is not.
pub async fn vacuum_into(source: &Path, dest: &Path, exclusive: bool) -> Result<()> {
    copy(source, dest, true, exclusive).await
}

/// Like [`vacuum_into`], for a scratch copy that is read once and deleted (a backup): the copy
/// is not fsynced, so making it does not compete with the tenant's own commits for the disk.
pub async fn scratch_copy(source: &Path, dest: &Path, exclusive: bool) -> Result<()> {
    copy(source, dest, false, exclusive).await
}

async fn copy(source: &Path, dest: &Path, durable: bool, exclusive: bool) -> Result<()> {
    let (source, dest) = (source.to_path_buf(), dest.to_path_buf());
    run_blocking(move || {
        if dest.exists() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", dest.display()),
            )));
        }
        let conn = if exclusive {
            // Read-write (see `connect`); `VACUUM INTO` writes only `dest` (`query_only` would
            // refuse it). Closing it must not checkpoint either: the WAL of a shipped database
            // is its shipper's.
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = connect(&source, flags, true)?;
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )?;
            conn
        } else {
            Connection::open_with_flags(
                &source,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?
        };
        conn.busy_timeout(BUSY)?;
        if !durable {
            // VACUUM INTO writes its output with the source connection's sync level.
            conn.execute_batch("PRAGMA synchronous = OFF")?;
        }
        let target = dest.to_str().ok_or_else(|| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the destination path is not UTF-8",
            ))
        })?;
        conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    })
    .await
}

impl Database {
    /// Writes a consistent snapshot of this database to `dest` (which must not exist).
    pub async fn vacuum_into(&self, dest: &Path) -> Result<()> {
        vacuum_into(self.path(), dest, self.options().exclusive).await
    }

    /// Rebuilds the file to give freed pages back, on a connection of its own (VACUUM cannot
    /// run inside the writer's transaction). Waits for the writer like any other connection.
    pub async fn vacuum(&self) -> Result<()> {
        let path = self.path().to_path_buf();
        let exclusive = self.options().exclusive;
        run_blocking(move || {
            let conn = connect(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                exclusive,
            )?;
            conn.busy_timeout(BUSY)?;
            conn.execute_batch("VACUUM")?;
            Ok(())
        })
        .await
    }
}

impl Database {
    /// Replaces the rows of every table of this database by those of the database file at
    /// `source`, in one transaction on the writer (readers see the old rows or the new ones,
    /// never a mix): tables only here are emptied, tables only in `source` are left out, and
    /// columns are matched by name. For a database whose handle stays shared while its content
    /// is taken from a copy made elsewhere (a cluster's control database, restored from the
    /// backup target on the node that takes the lead). Returns the rows copied.
    pub async fn replace_rows(&self, source: &Path) -> Result<u64> {
        let source = source
            .to_str()
            .ok_or_else(|| {
                Error::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the source path is not UTF-8",
                ))
            })?
            .to_string();
        self.with_writer_idle(move |conn| {
            // ATTACH would make a missing file an empty database: every row would go.
            if !Path::new(&source).is_file() {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{source} is not a database file"),
                )));
            }
            conn.execute("ATTACH DATABASE ?1 AS source", [&source])?;
            let copied = copy_rows(conn);
            if copied.is_err() && !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            let detached = conn.execute_batch("DETACH DATABASE source");
            let copied = copied?;
            detached?;
            Ok(copied)
        })
        .await?
    }
}

/// The tables of schema `schema` (`main` or `source`), with `sqlite_sequence` when present.
fn tables(conn: &Connection, schema: &str) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT name FROM {schema}.sqlite_master WHERE type = 'table' \
         AND (name NOT LIKE 'sqlite_%' OR name = 'sqlite_sequence') ORDER BY name"
    );
    let names = conn
        .prepare(&sql)?
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<Vec<String>, _>>()?;
    Ok(names)
}

fn columns(conn: &Connection, schema: &str, table: &str) -> Result<Vec<String>> {
    let names = conn
        .prepare(&format!("PRAGMA {schema}.table_info({})", quote(table)))?
        .query_map([], |r| r.get(1))?
        .collect::<std::result::Result<Vec<String>, _>>()?;
    Ok(names)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Copies the rows of the attached `source` into `main` in one transaction.
fn copy_rows(conn: &Connection) -> Result<u64> {
    conn.execute_batch("BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;")?;
    let here = tables(conn, "main")?;
    let there: std::collections::HashSet<String> = tables(conn, "source")?.into_iter().collect();
    if there.is_empty() {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the source database holds no tables",
        )));
    }
    let mut copied = 0u64;
    for table in &here {
        conn.execute(&format!("DELETE FROM main.{}", quote(table)), [])?;
        if !there.contains(table) {
            continue;
        }
        let theirs: std::collections::HashSet<String> =
            columns(conn, "source", table)?.into_iter().collect();
        let shared: Vec<String> = columns(conn, "main", table)?
            .into_iter()
            .filter(|c| theirs.contains(c))
            .map(|c| quote(&c))
            .collect();
        if shared.is_empty() {
            continue;
        }
        let list = shared.join(", ");
        copied += conn.execute(
            &format!(
                "INSERT INTO main.{t} ({list}) SELECT {list} FROM source.{t}",
                t = quote(table)
            ),
            [],
        )? as u64;
    }
    conn.execute_batch("COMMIT")?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Migration, Options};

    #[tokio::test]
    async fn a_snapshot_holds_committed_rows_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(
            dir.path().join("a.db"),
            Options {
                migrations: &[Migration {
                    version: 1,
                    sql: "CREATE TABLE t (v TEXT);",
                }],
                ..Options::default()
            },
        )
        .await
        .unwrap();
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t VALUES ('x')", [])?))
            .await
            .unwrap();
        let copy = dir.path().join("b.db");
        db.vacuum_into(&copy).await.unwrap();
        assert!(db.vacuum_into(&copy).await.is_err());
        db.vacuum().await.unwrap();
        let copied = Database::open(&copy, Options::default()).await.unwrap();
        let n: i64 = copied
            .read(|c| Ok::<_, Error>(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn rows_are_replaced_by_a_copy_s_while_the_handle_stays() {
        let dir = tempfile::tempdir().unwrap();
        const SCHEMA: &[Migration] = &[Migration {
            version: 1,
            sql: "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
                  CREATE TABLE \"b c\" (k TEXT PRIMARY KEY, n INTEGER);",
        }];
        let options = Options {
            migrations: SCHEMA,
            ..Options::default()
        };
        let live = Database::open(dir.path().join("live.db"), options)
            .await
            .unwrap();
        let other = Database::open(dir.path().join("other.db"), options)
            .await
            .unwrap();
        live.write(|c| {
            c.execute_batch(
                "INSERT INTO a (v) VALUES ('old'); INSERT INTO \"b c\" VALUES ('x', 1);",
            )?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        other
            .write(|c| {
                c.execute_batch("INSERT INTO a (v) VALUES ('n1'), ('n2'), ('n3');")?;
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        other.close().await;
        let copied = live
            .replace_rows(&dir.path().join("other.db"))
            .await
            .unwrap();
        assert!(copied >= 3, "{copied}");
        let (rows, empty): (Vec<String>, i64) = live
            .read(|c| {
                let rows = c
                    .prepare("SELECT v FROM a ORDER BY id")?
                    .query_map([], |r| r.get(0))?
                    .collect::<std::result::Result<Vec<String>, _>>()?;
                let empty = c.query_row("SELECT count(*) FROM \"b c\"", [], |r| r.get(0))?;
                Ok::<_, Error>((rows, empty))
            })
            .await
            .unwrap();
        assert_eq!(rows, ["n1", "n2", "n3"]);
        assert_eq!(empty, 0);
        // The sequence came along: the next row continues the copy's numbering.
        let next: i64 = live
            .write(|c| {
                c.execute("INSERT INTO a (v) VALUES ('after')", [])?;
                Ok::<_, Error>(c.last_insert_rowid())
            })
            .await
            .unwrap();
        assert_eq!(next, 4);
        // A missing source changes nothing.
        assert!(
            live.replace_rows(&dir.path().join("none.db"))
                .await
                .is_err()
        );
        let n: i64 = live
            .read(|c| Ok::<_, Error>(c.query_row("SELECT count(*) FROM a", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 4);
    }

    #[tokio::test]
    async fn a_missing_source_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let res = vacuum_into(&dir.path().join("none.db"), &dir.path().join("b.db"), false).await;
        assert!(res.is_err());
        assert!(!dir.path().join("b.db").exists());
    }
}
