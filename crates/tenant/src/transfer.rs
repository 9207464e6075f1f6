//! Moving tenants in and out as PocketBase data directories (`pb_data`).
//!
//! A tenant's directory already has PocketBase's layout (`data.db`, `auxiliary.db`,
//! `storage/<collectionId>/<recordId>/<file>`), so both directions are copies: databases through
//! `VACUUM INTO` from a read-only connection (consistent even while a PocketBase or Warren
//! process writes to the source), files one by one. An import never runs Warren's system
//! initialisation: the source's collections, records, password hashes, token keys and secrets,
//! and settings come across unchanged, so tokens the old server issued keep verifying.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Files of code (`pb_hooks`, `pb_migrations`, `pb_public`) copied from beside the data
    /// directory.
    pub code_files: u64,
}

/// One step of a long transfer: `done` of `total` units (bytes, or files for `files`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// `unpack`, `database`, `logs`, `files` or `pack`.
    pub step: &'static str,
    /// Units done so far.
    pub done: u64,
    /// Units in all.
    pub total: u64,
}

/// Where progress goes; called often, so it must be cheap.
pub type Report<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// A report that goes nowhere.
pub fn quiet(_: Progress) {}

/// How an import takes the source's uploaded files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// Copy them: the source stays as it was (a directory the user named).
    Copy,
    /// Move them by renaming (a scratch copy of the caller's own on the same file system).
    Move,
}

/// Creates tenant `id` from the PocketBase data directory `from`. Fails, leaving nothing
/// behind, if `from` is not a PocketBase data directory or the tenant exists.
pub async fn import(root: &Path, id: &str, from: &Path) -> Result<Summary> {
    import_with(root, id, from, Files::Copy, &quiet).await
}

/// [`import`], taking files as `files` says and reporting progress.
pub async fn import_with(
    root: &Path,
    id: &str,
    from: &Path,
    files: Files,
    report: Report<'_>,
) -> Result<Summary> {
    check_id(id)?;
    let dir = tenant_dir(root, id);
    if tokio::fs::try_exists(&dir).await? {
        return Err(Error::Invalid(format!("tenant {id} already exists")));
    }
    tokio::fs::create_dir_all(root).await?;
    // Everything is assembled next to its final place and renamed in at the end, so a failed
    // import never leaves a half tenant that the registry could open.
    let staging = root.join(format!(".import-{id}"));
    let _ = tokio::fs::remove_dir_all(&staging).await;
    let origin = from.display().to_string();
    let mut summary = build(from, &staging, files, &origin, report).await?;
    // A data directory the user named may have its code beside it, as PocketBase keeps it;
    // an unpacked zip (Files::Move) has the code that was beside its pb_data folder inside.
    let code = match files {
        Files::Copy => beside(from),
        Files::Move => from.join(crate::archive::CODE_DIR),
    };
    // A data directory or zip imported here is checked when the tenant loads its hooks (the
    // node's engine is not at hand); uploads through the control plane check them first.
    match import_code_from(&code, &staging, None).await {
        Ok(code_files) => summary.code_files = code_files,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(e);
        }
    }
    if let Err(e) = tokio::fs::rename(&staging, &dir).await {
        let _ = tokio::fs::remove_dir_all(&staging).await;
        return Err(e.into());
    }
    Ok(summary)
}

/// Builds a tenant directory at `staging` (which must not exist) from the PocketBase data
/// directory `from`: the database copied and checked, the logs, the files. On failure nothing
/// is left at `staging`. The caller renames it into place. Messages name the source as
/// `origin`.
pub async fn build(
    from: &Path,
    staging: &Path,
    files: Files,
    origin: &str,
    report: Report<'_>,
) -> Result<Summary> {
    let source = from.join(DATABASE_FILE);
    if !tokio::fs::try_exists(&source).await? {
        return Err(Error::Invalid(format!(
            "{origin} is not a PocketBase data directory: it has no {DATABASE_FILE}"
        )));
    }
    tokio::fs::create_dir(staging).await?;
    let built = async {
        report(Progress {
            step: "database",
            done: 0,
            total: 1,
        });
        vacuum_into(&source, &staging.join(DATABASE_FILE), false)
            .await
            .map_err(|e| {
                Error::Invalid(format!(
                    "the {DATABASE_FILE} of {origin} cannot be read as a SQLite database: {e}"
                ))
            })?;
        let collections = check_pocketbase(&staging.join(DATABASE_FILE), origin).await?;
        upgrade_collections(&staging.join(DATABASE_FILE)).await?;
        report(Progress {
            step: "database",
            done: 1,
            total: 1,
        });
        copy_auxiliary(from, staging).await?;
        let files = match files {
            Files::Copy => {
                copy_storage(from.join(STORAGE_DIR), staging.join(STORAGE_DIR), report).await?
            }
            Files::Move => {
                let moved = move_storage(from.join(STORAGE_DIR), staging.join(STORAGE_DIR)).await?;
                report(Progress {
                    step: "files",
                    done: moved,
                    total: moved,
                });
                moved
            }
        };
        Ok::<_, Error>(Summary {
            collections,
            files,
            code_files: 0,
        })
    }
    .await;
    if built.is_err() {
        let _ = tokio::fs::remove_dir_all(staging).await;
    }
    built
}

/// Whether the tenant directory `dir` holds only what provisioning made: no collection beyond
/// the system ones and `users`, no user, and no stored file. An import may replace such a
/// tenant without losing anything but its superusers.
pub async fn is_fresh(dir: &Path) -> Result<bool> {
    let path = dir.join(DATABASE_FILE);
    if !tokio::fs::try_exists(&path).await? {
        return Err(Error::NotFound);
    }
    let storage = dir.join(STORAGE_DIR);
    let has_files = tokio::task::spawn_blocking(move || count_files(&storage))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??
        > 0;
    if has_files {
        return Ok(false);
    }
    let db = Database::open(&path, database_options()).await?;
    let fresh = db
        .read(|c| {
            let own: i64 = c.query_row(
                "SELECT COUNT(*) FROM _collections WHERE system = 0 AND name != 'users'",
                [],
                |r| r.get(0),
            )?;
            let users: i64 = c
                .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
                .unwrap_or(0);
            Ok::<_, Error>(own == 0 && users == 0)
        })
        .await;
    db.close().await;
    fresh
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
    vacuum_into(
        &source,
        &to.join(DATABASE_FILE),
        database_options().exclusive,
    )
    .await?;
    let collections = check_pocketbase(&to.join(DATABASE_FILE), &dir.display().to_string()).await?;
    copy_auxiliary(&dir, to).await?;
    let files = copy_storage(dir.join(STORAGE_DIR), to.join(STORAGE_DIR), &quiet).await?;
    Ok(Summary {
        collections,
        files,
        code_files: 0,
    })
}

/// The directory beside data directory `data_dir` (its parent; `.` for a bare name), where
/// PocketBase keeps `pb_hooks`, `pb_migrations` and `pb_public`.
pub fn beside(data_dir: &Path) -> PathBuf {
    match data_dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Brings the code folders found in `source` (`source/pb_hooks`, …: the directory beside a
/// PocketBase data directory, or an unpacked zip's [`crate::archive::CODE_DIR`]) into the
/// tenant directory being built at `staging`, through a deploy's checks and limits (a link or
/// special file in them refuses the import), and through `check` when given (hooks that do not
/// load refuse it). Returns how many files came.
pub async fn import_code_from(
    source: &Path,
    staging: &Path,
    check: Option<Arc<dyn crate::hooks::CodeCheck>>,
) -> Result<u64> {
    let source = source.to_path_buf();
    let staging = staging.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut code = crate::code::Staging::new(&staging, crate::code::Limits::default())?;
        if crate::code::stage_found(&mut code, &source)? == 0 {
            return Ok(0);
        }
        let check = check.map(|check| move |dir: &Path| check.check(dir));
        let deployed = code.commit(check.as_ref().map(|c| c as crate::code::HooksCheck<'_>))?;
        Ok(deployed.iter().map(|f| f.files).sum())
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
}

/// Writes tenant `id`'s code folders beside the data directory `to` (see [`beside`]), so stock
/// PocketBase runs them with `serve --dir <to>` and the default `--hooksDir`,
/// `--migrationsDir` and `--publicDir` next to it. A folder already there with anything in it
/// is refused before anything is written. Returns how many files were copied.
pub async fn export_code(root: &Path, id: &str, to: &Path) -> Result<u64> {
    check_id(id)?;
    let dir = tenant_dir(root, id);
    let target = beside(to);
    tokio::task::spawn_blocking(move || {
        let found = crate::code::summary(&dir)?;
        for folder in &found {
            let path = folder.folder.path(&target);
            if std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_some()) {
                return Err(Error::Invalid(format!(
                    "{} is not empty; the tenant's code is written beside the data directory",
                    path.display()
                )));
            }
        }
        let copied = crate::code::copy_out(&dir, &target)?;
        Ok(copied.iter().map(|f| f.files).sum())
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
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
async fn check_pocketbase(path: &Path, origin: &str) -> Result<usize> {
    let db = Database::open(path, database_options()).await?;
    let origin = origin.to_string();
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
        .await;
    db.close().await;
    count
}

/// Runs on an imported database the data migrations of PocketBase releases newer than the one
/// that wrote it (see [`warren_schema::upgrade`]) and records them in `_migrations`, as
/// PocketBase 0.40 does at start-up; the database then reads and exports as 0.40's.
async fn upgrade_collections(path: &Path) -> Result<()> {
    use warren_schema::upgrade::{AUTH_ALERT_MIGRATION, INDEXES_MIGRATION, TableIndex, upgrade};
    let db = Database::open(path, database_options()).await?;
    let upgraded = db
        .write(|c| {
            c.execute_batch(&warren_schema::system::MIGRATIONS_DDL.replacen(
                "CREATE TABLE",
                "CREATE TABLE IF NOT EXISTS",
                1,
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
                    values.push(warren_store::sql::Value::Text(entry.collection.id.clone()));
                    c.execute(&update, warren_store::sql::params_from_iter(values))?;
                }
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            for migration in pending {
                c.execute(
                    "INSERT OR IGNORE INTO `_migrations` (file, applied) VALUES (?1, ?2)",
                    warren_store::sql::params![migration, now],
                )?;
            }
            Ok::<_, Error>(())
        })
        .await;
    db.close().await;
    upgraded
}

/// True for a database PocketBase 0.22 or older wrote: collections keep their fields in a
/// `schema` column (0.23 renamed it `fields`) and admins live in `_admins` (0.23 made them the
/// `_superusers` collection).
fn written_before_023(c: &warren_store::sql::Connection) -> Result<bool> {
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
        let copied = vacuum_into(&source, &dest, false).await.is_ok()
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

/// How many regular files are under `dir` (links and special files not counted; a missing
/// `dir` has none).
fn count_files(dir: &Path) -> Result<u64> {
    let mut count = 0;
    let first = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::Io(e)),
    };
    // One open listing per level of depth, as the copy walks it.
    let mut levels = vec![first];
    while let Some(listing) = levels.last_mut() {
        let Some(entry) = listing.next() else {
            levels.pop();
            continue;
        };
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            levels.push(std::fs::read_dir(entry.path())?);
        } else if kind.is_file() {
            count += 1;
        }
    }
    Ok(count)
}

/// Copies the regular files and directories under `from` into `to` (created as needed);
/// symbolic links and special files are skipped, so an import never reaches outside its
/// source. A missing `from` copies nothing. Returns how many files were copied, reporting
/// `files` progress.
///
/// The tree is walked twice (a count, then the copy) rather than listed, and each walk holds one
/// open directory listing per level of depth and nothing else, so a tree of any number of files
/// (PocketBase's `storage/<collection>/<record>/<file>`) is copied in memory bounded by its
/// depth, not its size.
async fn copy_storage(from: PathBuf, to: PathBuf, report: Report<'_>) -> Result<u64> {
    let counted = from.clone();
    let total = tokio::task::spawn_blocking(move || count_files(&counted))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(0u64);
    let copying = tokio::task::spawn_blocking(move || {
        match std::fs::symlink_metadata(&from) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::Io(e)),
        }
        std::fs::create_dir_all(&to)?;
        let mut copied = 0;
        // Each level: the listing being read and the directory it copies into.
        let mut levels = vec![(std::fs::read_dir(&from)?, to)];
        while let Some((listing, dst)) = levels.last_mut() {
            let Some(entry) = listing.next() else {
                levels.pop();
                continue;
            };
            let entry = entry?;
            let target = dst.join(entry.file_name());
            // `file_type` does not follow symbolic links.
            let kind = entry.file_type()?;
            if kind.is_dir() {
                std::fs::create_dir_all(&target)?;
                levels.push((std::fs::read_dir(entry.path())?, target));
            } else if kind.is_file() {
                std::fs::copy(entry.path(), &target)?;
                copied += 1;
                let _ = progress_tx.send(copied);
            }
        }
        Ok(copied)
    });
    tokio::pin!(copying);
    loop {
        tokio::select! {
            done = &mut copying => {
                let copied = done.map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
                report(Progress { step: "files", done: copied, total: total.max(copied) });
                return Ok(copied);
            }
            changed = progress_rx.changed() => {
                if changed.is_ok() {
                    let done = *progress_rx.borrow_and_update();
                    report(Progress { step: "files", done, total: total.max(done) });
                }
            }
        }
    }
}

/// Moves `from` (a scratch copy on the same file system) to `to` by one rename, after taking
/// out any symbolic link or special file, so the result holds only directories and regular
/// files. A missing `from` moves nothing. Returns how many files it holds.
async fn move_storage(from: PathBuf, to: PathBuf) -> Result<u64> {
    tokio::task::spawn_blocking(move || {
        let mut files = 0;
        let mut pending = vec![from.clone()];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(Error::Io(e)),
            };
            for entry in entries {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    pending.push(entry.path());
                } else if kind.is_file() {
                    files += 1;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        std::fs::rename(&from, &to)?;
        Ok(files)
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
    async fn a_provisioned_tenant_is_fresh_until_it_holds_files() {
        let root = tempfile::tempdir().unwrap();
        crate::provision(root.path(), "new").await.unwrap();
        let dir = tenant_dir(root.path(), "new");
        assert!(is_fresh(&dir).await.unwrap());
        std::fs::create_dir_all(dir.join("storage/c/r")).unwrap();
        std::fs::write(dir.join("storage/c/r/a.txt"), b"x").unwrap();
        assert!(!is_fresh(&dir).await.unwrap());
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

    #[tokio::test]
    async fn a_database_left_in_wal_state_imports_with_its_last_writes() {
        use warren_store::sql::Connection;
        let root = tempfile::tempdir().unwrap();
        crate::provision(root.path(), "src").await.unwrap();
        let source = tempfile::tempdir().unwrap();
        export(root.path(), "src", source.path()).await.unwrap();
        // A writer that never checkpoints and is still open, as a PocketBase killed mid-run
        // leaves its files: the newest rows exist only in data.db-wal and auxiliary.db-wal.
        let open = |name: &str| {
            let c = Connection::open(source.path().join(name)).unwrap();
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0")
                .unwrap();
            c
        };
        let data = open(DATABASE_FILE);
        data.execute_batch(
            "CREATE TABLE late (x TEXT); INSERT INTO late VALUES ('only in the wal')",
        )
        .unwrap();
        let logs = open(warren_logs::AUXILIARY_FILE);
        logs.execute_batch("CREATE TABLE late_logs (x TEXT); INSERT INTO late_logs VALUES (1)")
            .unwrap();
        let wal = std::fs::metadata(source.path().join("data.db-wal")).unwrap();
        assert!(wal.len() > 0, "the test needs rows in the WAL");

        import(root.path(), "copy", source.path()).await.unwrap();
        drop((data, logs));
        let dir = tenant_dir(root.path(), "copy");
        let c = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        let late: String = c.query_row("SELECT x FROM late", [], |r| r.get(0)).unwrap();
        assert_eq!(late, "only in the wal");
        let c = Connection::open(dir.join(warren_logs::AUXILIARY_FILE)).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM late_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_storage_tree_of_thousands_of_files_comes_across_whole() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        let mut expected = 0;
        for record in 0..1500 {
            let dir = from.path().join(format!("pbc_1/r{record:05}"));
            std::fs::create_dir_all(&dir).unwrap();
            for file in 0..(1 + record % 3) {
                std::fs::write(dir.join(format!("f{file}.txt")), format!("{record}/{file}"))
                    .unwrap();
                expected += 1;
            }
        }
        std::fs::create_dir_all(from.path().join("pbc_2/deep/a/b/c/d")).unwrap();
        std::fs::write(from.path().join("pbc_2/deep/a/b/c/d/x.bin"), b"x").unwrap();
        expected += 1;

        let dest = to.path().join("storage");
        let copied = copy_storage(from.path().to_path_buf(), dest.clone(), &|_| {})
            .await
            .unwrap();
        assert_eq!(copied, expected);
        assert_eq!(
            std::fs::read_to_string(dest.join("pbc_1/r01234/f1.txt")).unwrap(),
            "1234/1"
        );
        assert_eq!(
            std::fs::read(dest.join("pbc_2/deep/a/b/c/d/x.bin")).unwrap(),
            b"x"
        );
        assert_eq!(
            copy_storage(from.path().join("missing"), to.path().join("none"), &|_| {})
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn data_older_releases_wrote_is_upgraded_once_and_recorded() {
        use warren_schema::upgrade::{
            AUTH_ALERT_MIGRATION, INDEXES_MIGRATION, OLD_AUTH_ALERT_BODY,
        };
        use warren_store::sql::Connection;
        let root = tempfile::tempdir().unwrap();
        crate::provision(root.path(), "src").await.unwrap();
        let source = tempfile::tempdir().unwrap();
        export(root.path(), "src", source.path()).await.unwrap();
        // As a 0.30 database: without the two newest migrations, with the old alert email and
        // an index made outside PocketBase.
        let c = Connection::open(source.path().join(DATABASE_FILE)).unwrap();
        c.execute(
            "DELETE FROM _migrations WHERE file IN (?1, ?2)",
            [AUTH_ALERT_MIGRATION, INDEXES_MIGRATION],
        )
        .unwrap();
        let options: String = c
            .query_row(
                "SELECT options FROM _collections WHERE name = 'users'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut options: serde_json::Value = serde_json::from_str(&options).unwrap();
        options["authAlert"]["emailTemplate"]["body"] = OLD_AUTH_ALERT_BODY.into();
        c.execute(
            "UPDATE _collections SET options = ?1, updated = '2024-01-01 00:00:00.000Z'
             WHERE name = 'users'",
            [options.to_string()],
        )
        .unwrap();
        c.execute_batch("CREATE INDEX by_name ON users (name)")
            .unwrap();
        drop(c);

        import(root.path(), "copy", source.path()).await.unwrap();
        let c = Connection::open(tenant_dir(root.path(), "copy").join(DATABASE_FILE)).unwrap();
        let (options, indexes, updated): (String, String, String) = c
            .query_row(
                "SELECT options, indexes, updated FROM _collections WHERE name = 'users'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert!(options.contains("{ALERT_INFO}"), "{options}");
        assert!(indexes.contains("by_name"), "{indexes}");
        assert_ne!(updated, "2024-01-01 00:00:00.000Z");
        let recorded: i64 = c
            .query_row(
                "SELECT count(*) FROM _migrations WHERE file IN (?1, ?2)",
                [AUTH_ALERT_MIGRATION, INDEXES_MIGRATION],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(recorded, 2);
        // The imported tenant loads.
        crate::open_database(root.path(), "copy").await.unwrap();
    }

    #[tokio::test]
    async fn a_pocketbase_022_directory_is_refused_with_directions() {
        use warren_store::sql::Connection;
        let root = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let c = Connection::open(source.path().join(DATABASE_FILE)).unwrap();
        c.execute_batch(
            "CREATE TABLE _admins (id TEXT PRIMARY KEY, email TEXT);
             CREATE TABLE _collections (id TEXT PRIMARY KEY, name TEXT, type TEXT, schema JSON);",
        )
        .unwrap();
        drop(c);
        let err = import(root.path(), "old", source.path()).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains("PocketBase 0.22 or older"), "{message}");
        assert!(message.contains("pocketbase serve"), "{message}");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
