//! Moving tenants in and out as PocketBase data directories (`pb_data`).
//!
//! A tenant's directory already has PocketBase's layout (`data.db`, `auxiliary.db`,
//! `storage/<collectionId>/<recordId>/<file>`), so both directions are copies: databases through
//! `VACUUM INTO` from a read-only connection (consistent even while a PocketBase or Warren
//! process writes to the source), files one by one. An import never runs Warren's system
//! initialisation: the source's collections, records, password hashes, token keys and secrets,
//! and settings come across unchanged, so tokens the old server issued keep verifying.

use std::path::{Path, PathBuf};

use warren_store::{Database, vacuum_into};

use crate::{DATABASE_FILE, Error, Result, database_options, tenant_dir};

/// Name of the uploaded-files directory in a data directory.
pub const STORAGE_DIR: &str = "storage";

/// What an import or export copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Collections in the copied database.
    pub collections: usize,
    /// Files copied from `storage/`.
    pub files: u64,
}

/// Creates tenant `id` from the PocketBase data directory `from`. Fails, leaving nothing
/// behind, if `from` is not a PocketBase data directory or the tenant exists.
pub async fn import(root: &Path, id: &str, from: &Path) -> Result<Summary> {
    check_id(id)?;
    let source = from.join(DATABASE_FILE);
    if !tokio::fs::try_exists(&source).await? {
        return Err(Error::Invalid(format!(
            "{} is not a PocketBase data directory: it has no {DATABASE_FILE}",
            from.display()
        )));
    }
    let dir = tenant_dir(root, id);
    if tokio::fs::try_exists(&dir).await? {
        return Err(Error::Invalid(format!("tenant {id} already exists")));
    }
    tokio::fs::create_dir_all(root).await?;
    // Everything is assembled next to its final place and renamed in at the end, so a failed
    // import never leaves a half tenant that the registry could open.
    let staging = root.join(format!(".import-{id}"));
    let _ = tokio::fs::remove_dir_all(&staging).await;
    tokio::fs::create_dir(&staging).await?;
    let built = async {
        vacuum_into(&source, &staging.join(DATABASE_FILE))
            .await
            .map_err(|e| {
                Error::Invalid(format!(
                    "{} cannot be read as a SQLite database: {e}",
                    source.display()
                ))
            })?;
        let collections = check_pocketbase(&staging.join(DATABASE_FILE), from).await?;
        upgrade_collections(&staging.join(DATABASE_FILE)).await?;
        copy_auxiliary(from, &staging).await?;
        let files = copy_storage(from.join(STORAGE_DIR), staging.join(STORAGE_DIR)).await?;
        Ok::<_, Error>(Summary { collections, files })
    }
    .await;
    match built {
        Ok(summary) => {
            tokio::fs::rename(&staging, &dir).await?;
            Ok(summary)
        }
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            Err(e)
        }
    }
}

/// Writes tenant `id` as a PocketBase data directory into `to`, which must be missing or
/// empty. Stock PocketBase opens the result with `serve --dir <to>`.
pub async fn export(root: &Path, id: &str, to: &Path) -> Result<Summary> {
    check_id(id)?;
    let dir = tenant_dir(root, id);
    let source = dir.join(DATABASE_FILE);
    if !tokio::fs::try_exists(&source).await? {
        return Err(Error::NotFound);
    }
    if tokio::fs::try_exists(to).await? {
        let mut entries = tokio::fs::read_dir(to).await?;
        if entries.next_entry().await?.is_some() {
            return Err(Error::Invalid(format!("{} is not empty", to.display())));
        }
    } else {
        tokio::fs::create_dir_all(to).await?;
    }
    vacuum_into(&source, &to.join(DATABASE_FILE)).await?;
    let collections = check_pocketbase(&to.join(DATABASE_FILE), &dir).await?;
    copy_auxiliary(&dir, to).await?;
    let files = copy_storage(dir.join(STORAGE_DIR), to.join(STORAGE_DIR)).await?;
    Ok(Summary { collections, files })
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(Error::Invalid(
            "tenant ids are lowercase letters and digits".into(),
        ));
    }
    Ok(())
}

/// Checks that the database at `path` holds PocketBase collections Warren can load; returns
/// how many. `origin` names the directory in messages.
async fn check_pocketbase(path: &Path, origin: &Path) -> Result<usize> {
    let db = Database::open(path, database_options()).await?;
    let origin = origin.display().to_string();
    let count = db
        .read(move |c| {
            let has_collections: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master
                 WHERE type = 'table' AND name = '_collections')",
                [],
                |r| r.get(0),
            )?;
            if written_before_023(c)? {
                return Err(Error::Invalid(format!(
                    "{origin} was written by PocketBase 0.22 or older, whose data layout Warren \
                     does not read; run PocketBase 0.23 once on it (`pocketbase serve --dir \
                     {origin}`) to upgrade it, then import it again"
                )));
            }
            if !has_collections {
                return Err(Error::Invalid(format!(
                    "{origin} is not a PocketBase data directory: its database has no _collections table"
                )));
            }
            let catalog = warren_records::Catalog::load(c).map_err(|e| {
                Error::Invalid(format!("the collections of {origin} cannot be read: {e}"))
            })?;
            Ok(catalog.entries().len())
        })
        .await?;
    drop(db);
    Ok(count)
}

/// Runs on an imported database the data migrations of PocketBase releases newer than the one
/// that wrote it (see [`warren_schema::upgrade`]) and records them in `_migrations`, as
/// PocketBase 0.40 does at start-up; the database then reads and exports as 0.40's.
async fn upgrade_collections(path: &Path) -> Result<()> {
    use warren_schema::upgrade::{AUTH_ALERT_MIGRATION, INDEXES_MIGRATION, TableIndex, upgrade};
    let db = Database::open(path, database_options()).await?;
    db.write(|c| {
        c.execute_batch(&format!(
            "{}",
            warren_schema::system::MIGRATIONS_DDL.replacen(
                "CREATE TABLE",
                "CREATE TABLE IF NOT EXISTS",
                1
            )
        ))?;
        let mut applied =
            c.prepare("SELECT EXISTS (SELECT 1 FROM `_migrations` WHERE file = ?1)")?;
        let mut pending = Vec::new();
        for migration in [AUTH_ALERT_MIGRATION, INDEXES_MIGRATION] {
            if !applied.query_row([migration], |r| r.get::<_, bool>(0))? {
                pending.push(migration);
            }
        }
        drop(applied);
        if pending.is_empty() {
            return Ok(());
        }
        let catalog = warren_records::Catalog::load(c)
            .map_err(|e| Error::Invalid(format!("the collections cannot be read: {e}")))?;
        let mut indexes = c.prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1
             AND sql IS NOT NULL AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY rowid",
        )?;
        let columns = warren_schema::CollectionRow::COLUMNS;
        let assignments = columns
            .iter()
            .enumerate()
            .map(|(i, col)| format!("`{col}` = ?{}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let update = format!(
            "UPDATE `_collections` SET {assignments} WHERE id = ?{}",
            columns.len() + 1
        );
        for entry in catalog.entries() {
            let mut collection = entry.collection.clone();
            let table_indexes = indexes
                .query_map([&collection.name], |r| {
                    Ok(TableIndex {
                        name: r.get(0)?,
                        sql: r.get(1)?,
                    })
                })?
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let done = upgrade(&mut collection, &pending, &table_indexes);
            for name in &done.drop_indexes {
                c.execute_batch(&format!(
                    "DROP INDEX IF EXISTS `{}`",
                    name.replace('`', "``")
                ))?;
            }
            if done.changed {
                let mut values: Vec<_> = collection
                    .to_row()
                    .values()
                    .iter()
                    .map(warren_records::sql::from_schema)
                    .collect();
                values.push(warren_store::rusqlite::types::Value::Text(
                    entry.collection.id.clone(),
                ));
                c.execute(&update, warren_store::rusqlite::params_from_iter(values))?;
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        for migration in pending {
            c.execute(
                "INSERT OR IGNORE INTO `_migrations` (file, applied) VALUES (?1, ?2)",
                warren_store::rusqlite::params![migration, now],
            )?;
        }
        Ok::<_, Error>(())
    })
    .await?;
    drop(db);
    Ok(())
}

/// True for a database PocketBase 0.22 or older wrote: collections keep their fields in a
/// `schema` column (0.23 renamed it `fields`) and admins live in `_admins` (0.23 made them the
/// `_superusers` collection).
fn written_before_023(c: &warren_store::rusqlite::Connection) -> Result<bool> {
    let old: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_admins')
             OR EXISTS (SELECT 1 FROM pragma_table_info('_collections') WHERE name = 'schema')",
        [],
        |r| r.get(0),
    )?;
    Ok(old)
}

/// Copies `from/auxiliary.db` (the request logs) into `to`, or creates an empty one.
async fn copy_auxiliary(from: &Path, to: &Path) -> Result<()> {
    let source = from.join(warren_logs::AUXILIARY_FILE);
    let dest = to.join(warren_logs::AUXILIARY_FILE);
    if tokio::fs::try_exists(&source).await? {
        let copied = vacuum_into(&source, &dest).await.is_ok()
            && warren_logs::create_auxiliary(&dest).await.is_ok();
        if copied {
            return Ok(());
        }
        // Logs are not worth failing for: a damaged or foreign file gives way to an empty one.
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = tokio::fs::remove_file(format!("{}{suffix}", dest.display())).await;
        }
    }
    warren_logs::create_auxiliary(&dest)
        .await
        .map_err(|e| Error::Invalid(format!("the logs database cannot be created: {e}")))
}

/// Copies the regular files and directories under `from` into `to` (created as needed);
/// symbolic links and special files are skipped, so an import never reaches outside its
/// source. A missing `from` copies nothing. Returns how many files were copied.
async fn copy_storage(from: PathBuf, to: PathBuf) -> Result<u64> {
    tokio::task::spawn_blocking(move || {
        let mut copied = 0;
        let mut pending = vec![(from, to)];
        while let Some((src, dst)) = pending.pop() {
            let meta = match std::fs::symlink_metadata(&src) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::Io(e)),
            };
            if meta.is_dir() {
                std::fs::create_dir_all(&dst)?;
                for entry in std::fs::read_dir(&src)? {
                    let entry = entry?;
                    pending.push((entry.path(), dst.join(entry.file_name())));
                }
            } else if meta.is_file() {
                std::fs::copy(&src, &dst)?;
                copied += 1;
            }
        }
        Ok(copied)
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_without_collections_is_refused_and_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let db = Database::open(source.path().join(DATABASE_FILE), database_options())
            .await
            .unwrap();
        db.write(|c| Ok::<_, Error>(c.execute_batch("CREATE TABLE t (x)")?))
            .await
            .unwrap();
        drop(db);
        let err = import(root.path(), "abc", source.path()).await.unwrap_err();
        assert!(err.to_string().contains("_collections"), "{err}");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);

        let empty = tempfile::tempdir().unwrap();
        let err = import(root.path(), "abc", empty.path()).await.unwrap_err();
        assert!(err.to_string().contains("no data.db"), "{err}");
    }

    #[tokio::test]
    async fn a_tenant_exports_and_imports_back_with_its_files() {
        let root = tempfile::tempdir().unwrap();
        crate::provision(root.path(), "src").await.unwrap();
        let file = tenant_dir(root.path(), "src").join("storage/pbc_1/r1/a.txt");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"hello").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", file.with_file_name("link")).unwrap();

        let out = tempfile::tempdir().unwrap();
        let exported = export(root.path(), "src", out.path()).await.unwrap();
        assert_eq!(exported.files, 1);
        assert!(exported.collections >= 5);
        assert!(out.path().join("auxiliary.db").exists());
        assert!(!out.path().join("storage/pbc_1/r1/link").exists());
        // A second export into the now full directory is refused.
        assert!(export(root.path(), "src", out.path()).await.is_err());

        let imported = import(root.path(), "copy", out.path()).await.unwrap();
        assert_eq!(imported, exported);
        let copied = tenant_dir(root.path(), "copy").join("storage/pbc_1/r1/a.txt");
        assert_eq!(std::fs::read(copied).unwrap(), b"hello");
        assert!(matches!(
            import(root.path(), "copy", out.path()).await,
            Err(Error::Invalid(_))
        ));
    }
}
