//! Consistent copies of database files (`VACUUM INTO`) and compaction, safe while other
//! connections, or other processes such as a running PocketBase, use the source.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::database::run_blocking;
use crate::{Database, Error, Result};

/// How long a copy waits for a busy source before it fails.
const BUSY: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes a consistent snapshot of the SQLite database at `source` to `dest` (which must not
/// exist), reading `source` through a read-only connection of its own. The copy is compact
/// and has no `-wal` file of its own.
pub async fn vacuum_into(source: &Path, dest: &Path) -> Result<()> {
    copy(source, dest, true).await
}

/// Like [`vacuum_into`], for a scratch copy that is read once and deleted (a backup): the copy
/// is not fsynced, so making it does not compete with the tenant's own commits for the disk.
pub async fn scratch_copy(source: &Path, dest: &Path) -> Result<()> {
    copy(source, dest, false).await
}

async fn copy(source: &Path, dest: &Path, durable: bool) -> Result<()> {
    let (source, dest) = (source.to_path_buf(), dest.to_path_buf());
    run_blocking(move || {
        if dest.exists() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", dest.display()),
            )));
        }
        let conn = Connection::open_with_flags(
            &source,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
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
        vacuum_into(self.path(), dest).await
    }

    /// Rebuilds the file to give freed pages back, on a connection of its own (VACUUM cannot
    /// run inside the writer's transaction). Waits for the writer like any other connection.
    pub async fn vacuum(&self) -> Result<()> {
        let path = self.path().to_path_buf();
        run_blocking(move || {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(BUSY)?;
            conn.execute_batch("VACUUM")?;
            Ok(())
        })
        .await
    }
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
    async fn a_missing_source_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let res = vacuum_into(&dir.path().join("none.db"), &dir.path().join("b.db")).await;
        assert!(res.is_err());
        assert!(!dir.path().join("b.db").exists());
    }
}
