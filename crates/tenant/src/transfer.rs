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
    let summary = build(from, &staging, files, &origin, report).await?;
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
        vacuum_into(&source, &staging.join(DATABASE_FILE))
            .await
            .map_err(|e| {
                Error::Invalid(format!(
                    "the {DATABASE_FILE} of {origin} cannot be read as a SQLite database: {e}"
                ))
            })?;
        let collections = check_pocketbase(&staging.join(DATABASE_FILE), origin).await?;
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
        Ok::<_, Error>(Summary { collections, files })
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
        .await?;
    drop(db);
    Ok(fresh)
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
    let collections = check_pocketbase(&to.join(DATABASE_FILE), &dir.display().to_string()).await?;
    copy_auxiliary(&dir, to).await?;
    let files = copy_storage(dir.join(STORAGE_DIR), to.join(STORAGE_DIR), &quiet).await?;
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

/// How many regular files are under `dir` (links and special files not counted; a missing
/// `dir` has none).
fn count_files(dir: &Path) -> Result<u64> {
    let mut count = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::Io(e)),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                count += 1;
            }
        }
    }
    Ok(count)
}

/// Copies the regular files and directories under `from` into `to` (created as needed);
/// symbolic links and special files are skipped, so an import never reaches outside its
/// source. A missing `from` copies nothing. Returns how many files were copied, reporting
/// `files` progress. The tree is walked twice (a count, then the copy) rather than listed, so
/// memory does not grow with the number of files.
async fn copy_storage(from: PathBuf, to: PathBuf, report: Report<'_>) -> Result<u64> {
    let counted = from.clone();
    let total = tokio::task::spawn_blocking(move || count_files(&counted))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(0u64);
    let copying = tokio::task::spawn_blocking(move || {
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
}
