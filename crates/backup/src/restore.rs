//! Reading backups back: listing them, fetching one into a staging directory with every object
//! checked against the manifest, and the integrity check of the databases. Nothing here puts a
//! restored tenant in place: the caller moves the staging directory only once this succeeded,
//! so a damaged backup is refused whole.

use std::path::{Path, PathBuf};

use warren_store::sql::{Connection, OpenFlags};

use crate::manifest::{self, MANIFEST, Manifest};
use crate::target::Target;
use crate::{Error, Progress, Report, Result, archive};

/// Every complete backup of tenant `tenant_id`, oldest first (by the moment it holds). Backups whose manifest cannot be
/// read are left out (and logged): they cannot be restored.
pub async fn list(target: &Target, tenant_id: &str) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for key in target.list(&format!("{tenant_id}/")).await? {
        let Some(id) = key
            .strip_prefix(&format!("{tenant_id}/"))
            .and_then(|rest| rest.strip_suffix(&format!("/{MANIFEST}")))
        else {
            continue;
        };
        if !manifest::is_id(id) {
            continue;
        }
        match load(target, tenant_id, id).await {
            Ok(found) => out.push(found),
            Err(e) => {
                tracing::warn!(tenant = %tenant_id, backup = %id, error = %e, "unreadable backup manifest")
            }
        }
    }
    // By the moment each snapshot holds (ids only have whole seconds), then by id.
    out.sort_by_cached_key(|m| (crate::parse_time(&m.created).ok(), m.id.clone()));
    Ok(out)
}

/// The manifest of backup `id` of tenant `tenant_id`.
pub async fn load(target: &Target, tenant_id: &str, id: &str) -> Result<Manifest> {
    if !manifest::is_id(id) {
        return Err(Error::Invalid(format!("{id:?} is not a backup id")));
    }
    let key = format!("{}{MANIFEST}", Manifest::dir(tenant_id, id));
    let bytes = match target.get_bytes(&key, manifest::MAX_MANIFEST).await {
        Err(Error::NotFound(_)) => return Err(Error::NotFound(format!("backup {id}"))),
        other => other?,
    };
    Manifest::parse(&bytes, tenant_id, id)
}

/// Deletes backup `id`: the manifest first (so it stops being listed), then its objects.
pub async fn delete(target: &Target, manifest: &Manifest) -> Result<()> {
    let dir = Manifest::dir(&manifest.tenant_id, &manifest.id);
    target.delete(&format!("{dir}{MANIFEST}")).await?;
    for key in target.list(&dir).await? {
        target.delete(&key).await?;
    }
    // The WAL shipped after it goes with it.
    let wal = crate::ship::generation_prefix(&manifest.tenant_id, &manifest.id);
    for key in target.list(&wal).await? {
        target.delete(&key).await?;
    }
    Ok(())
}

/// Deletes the shipped WAL of tenant `tenant_id` that follows backups older than `oldest`
/// (the oldest backup kept), including generations whose snapshot never completed.
pub async fn delete_wal_before(target: &Target, tenant_id: &str, oldest: &str) -> Result<usize> {
    let prefix = crate::ship::tenant_prefix(tenant_id);
    let mut deleted = 0;
    for key in target.list(&prefix).await? {
        let Some(generation) = key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('/').next())
        else {
            continue;
        };
        if manifest::is_id(generation) && generation < oldest {
            target.delete(&key).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Fetches backup `manifest` into `staging` (created; must not exist): `data.db`,
/// `auxiliary.db`, `storage/` and the code folders it has, each checked against its checksums, the databases checked
/// with `PRAGMA integrity_check`. On any error `staging` is removed again.
pub async fn fetch(
    target: &Target,
    manifest: &Manifest,
    staging: &Path,
    report: Report<'_>,
) -> Result<()> {
    tokio::fs::create_dir_all(staging.parent().unwrap_or(Path::new("."))).await?;
    tokio::fs::create_dir(staging).await?;
    let fetched = fetch_into(target, manifest, staging, report).await;
    if fetched.is_err() {
        let _ = tokio::fs::remove_dir_all(staging).await;
    }
    fetched
}

async fn fetch_into(
    target: &Target,
    manifest: &Manifest,
    staging: &Path,
    report: Report<'_>,
) -> Result<()> {
    let downloads = staging.join(".download");
    tokio::fs::create_dir(&downloads).await?;
    let dir = Manifest::dir(&manifest.tenant_id, &manifest.id);
    for entry in &manifest.objects {
        let packed = downloads.join(&entry.object);
        let got = target
            .get_file(
                &format!("{dir}{}", entry.object),
                &packed,
                entry.size,
                report,
            )
            .await;
        match got {
            Err(Error::NotFound(key)) => {
                return Err(Error::Corrupt(format!("{key} is missing")));
            }
            other => {
                other?;
            }
        }
        report(Progress {
            step: format!("check {}", entry.name),
            done: 0,
            total: entry.raw_size,
        });
        let (entry, dest) = (entry.clone(), staging.join(&entry.name));
        tokio::task::spawn_blocking(move || {
            archive::check_compressed(&packed, &entry)?;
            if entry.name == "storage"
                || entry.name == crate::remote::NAME
                || crate::CODE_FOLDERS.contains(&entry.name.as_str())
            {
                archive::decompress_dir(&packed, &dest, &entry)?;
            } else {
                archive::decompress_file(&packed, &dest, &entry)?;
                integrity_check(&dest)?;
            }
            std::fs::remove_file(&packed)?;
            Ok::<_, Error>(())
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    }
    tokio::fs::remove_dir(&downloads).await?;
    tokio::fs::create_dir_all(staging.join("storage")).await?;
    sync_dir(staging).await?;
    Ok(())
}

/// Runs `PRAGMA integrity_check` on the database file at `path`.
pub fn integrity_check(path: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::Corrupt(format!("{} cannot be opened: {e}", name(path))))?;
    let result: Result<String, _> = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0));
    match result {
        Ok(ok) if ok == "ok" => Ok(()),
        Ok(problem) => Err(Error::Corrupt(format!(
            "{} fails its integrity check: {problem}",
            name(path)
        ))),
        Err(e) => Err(Error::Corrupt(format!(
            "{} fails its integrity check: {e}",
            name(path)
        ))),
    }
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn sync_dir(dir: &Path) -> Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await?;
    Ok(())
}

/// A staging directory name under `root` for a restore (hidden from tenant listings).
pub fn staging_dir(root: &Path) -> PathBuf {
    root.join(format!(".restore-{:016x}", rand::random::<u64>()))
}

/// The outcome of a restore drill.
#[derive(Debug, Clone)]
pub struct Drill {
    /// The backup checked.
    pub manifest: Manifest,
    /// Collections whose record count differs: (name, expected, found).
    pub mismatches: Vec<(String, i64, i64)>,
}

/// Restores `manifest` into a scratch directory, checks integrity and compares record counts
/// with the manifest's; the scratch copy is removed afterwards.
pub async fn drill(
    target: &Target,
    manifest: &Manifest,
    scratch: &Path,
    report: Report<'_>,
) -> Result<Drill> {
    let staging = staging_dir(scratch);
    fetch(target, manifest, &staging, report).await?;
    let db = staging.join("data.db");
    let counted = tokio::task::spawn_blocking(move || crate::snapshot::count_records(&db)).await;
    let _ = tokio::fs::remove_dir_all(&staging).await;
    let counted = counted.map_err(|e| Error::Io(std::io::Error::other(e)))??;
    let mut mismatches = Vec::new();
    for (name, expected) in &manifest.counts {
        let found = counted.get(name).copied().unwrap_or(-1);
        if found != *expected {
            mismatches.push((name.clone(), *expected, found));
        }
    }
    Ok(Drill {
        manifest: manifest.clone(),
        mismatches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shipped_wal_older_than_the_oldest_backup_kept_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Dir(dir.path().to_path_buf());
        let ids = [
            "20261125T100000Z-0000000a",
            "20261125T110000Z-0000000b",
            "20261125T120000Z-0000000c",
        ];
        for id in ids {
            let prefix = crate::ship::generation_prefix("t1", id);
            target
                .put_bytes(&format!("{prefix}0000000000.wal.zst"), b"x".to_vec())
                .await
                .unwrap();
            target
                .put_bytes(&format!("{prefix}files/c/r/f.txt"), b"x".to_vec())
                .await
                .unwrap();
        }
        target
            .put_bytes(
                &crate::ship::segment_key("t2", ids[0], 0, 0),
                b"other tenant".to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(delete_wal_before(&target, "t1", ids[1]).await.unwrap(), 2);
        let left = target.list("wal/").await.unwrap();
        assert!(
            left.iter()
                .all(|k| !k.starts_with(&format!("wal/t1/{}", ids[0])))
        );
        assert_eq!(left.len(), 5, "{left:?}");
    }

    #[tokio::test]
    async fn deleting_a_backup_deletes_the_wal_shipped_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Dir(dir.path().to_path_buf());
        let manifest = Manifest {
            format: manifest::FORMAT,
            id: "20261125T100000Z-0000000a".into(),
            tenant_id: "t1".into(),
            slug: "s".into(),
            created: "2026-11-25T10:00:00Z".into(),
            finished: "2026-11-25T10:00:01Z".into(),
            objects: Vec::new(),
            counts: Default::default(),
            wal: None,
            ownership_generation: 0,
        };
        let dir_key = Manifest::dir("t1", &manifest.id);
        target
            .put_bytes(&format!("{dir_key}{MANIFEST}"), b"{}".to_vec())
            .await
            .unwrap();
        let prefix = crate::ship::generation_prefix("t1", &manifest.id);
        for key in [
            format!("{prefix}0000000000.wal.zst"),
            format!("{prefix}0000000001.wal.zst"),
            format!("{prefix}files/c/r/f.txt"),
        ] {
            target.put_bytes(&key, b"x".to_vec()).await.unwrap();
        }
        delete(&target, &manifest).await.unwrap();
        assert!(target.list("t1/").await.unwrap().is_empty());
        assert!(target.list("wal/").await.unwrap().is_empty());
    }
}
