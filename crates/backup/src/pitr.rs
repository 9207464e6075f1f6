//! Point-in-time restore: on top of a fetched snapshot, replays the shipped WAL segments of its
//! generation up to a moment, then keeps exactly the stored files that the restored records
//! name (fetching those uploaded after the snapshot from the shipped files).
//!
//! Segments are read in order from 0, only those shipped under the chain's ownership
//! generation (the snapshot's; see [`crate::manifest::Manifest::ownership_generation`]); a missing segment before the moment, or one that is
//! damaged or truncated, refuses the whole restore (the staging directory is the caller's to
//! remove). The replay stops at the first transaction committed after the moment.

use std::collections::HashSet;
use std::path::Path;

use warren_store::sql::{Connection, OpenFlags};

use crate::manifest::Manifest;
use crate::ship::{Through, generation_prefix, parse_segment, through_key};
use crate::target::Target;
use crate::wal::{self, Replayed, Segment};
use crate::{Error, Progress, Report, Result, restore};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

/// Replays the generation of `manifest` onto the restored tenant in `staging` up to `at`
/// (ms since the Unix epoch). A snapshot without shipped WAL is left as it is.
pub async fn replay(
    target: &Target,
    manifest: &Manifest,
    staging: &Path,
    at_ms: i64,
    report: Report<'_>,
) -> Result<Replayed> {
    let mut done = Replayed::default();
    if manifest.wal.is_none() {
        return Ok(done);
    }
    let prefix = generation_prefix(&manifest.tenant_id, &manifest.id);
    let keys = target.list(&prefix).await?;
    let files_prefix = format!("{prefix}files/");
    // Only segments shipped under the chain's own ownership generation belong to it: a node
    // holding the tenant under any other one (a stale owner) never extends it.
    let mut segments: Vec<(u64, String)> = Vec::new();
    for key in &keys {
        let Some((seq, ownership)) = key.strip_prefix(&prefix).and_then(parse_segment) else {
            continue;
        };
        if ownership == manifest.ownership_generation {
            segments.push((seq, key.clone()));
        } else {
            tracing::warn!(tenant = %manifest.tenant_id, backup = %manifest.id, %key, ownership, "a WAL segment shipped under another ownership generation than its chain's is ignored");
        }
    }
    segments.sort();
    let shipped_files: Vec<String> = keys
        .iter()
        .filter_map(|k| k.strip_prefix(&files_prefix).map(str::to_string))
        .collect();

    let db_path = staging.join("data.db");
    let path = db_path.clone();
    let mut db = blocking(move || {
        Ok(std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?)
    })
    .await?;
    let total = segments.len() as u64;
    for (expected, (seq, key)) in segments.into_iter().enumerate() {
        let expected = expected as u64;
        if seq != expected {
            return Err(Error::Corrupt(format!(
                "WAL segment {expected} after backup {} is missing",
                manifest.id
            )));
        }
        report(Progress {
            step: format!("replay WAL segment {seq}"),
            done: seq,
            total,
        });
        let sealed = match target.get_bytes(&key, wal::MAX_SEGMENT).await {
            Err(Error::NotFound(key)) => return Err(Error::Corrupt(format!("{key} is missing"))),
            other => other?,
        };
        let (file, more, progress) = blocking(move || {
            let segment = Segment::open(&sealed)?;
            if segment.seq != seq {
                return Err(Error::Corrupt(format!(
                    "WAL segment {seq} holds segment {}",
                    segment.seq
                )));
            }
            if wal::db_page_size(&mut db)? != segment.page_size {
                return Err(Error::Corrupt(format!(
                    "WAL segment {seq} has another page size than the database"
                )));
            }
            let more = wal::replay(&mut db, &segment, at_ms, &mut done)?;
            Ok((db, more, done))
        })
        .await?;
        db = file;
        done = progress;
        if !more {
            break;
        }
    }
    blocking(move || {
        db.sync_all()?;
        drop(db);
        restore::integrity_check(&db_path)
    })
    .await?;
    restore_files(target, &files_prefix, &shipped_files, staging).await?;
    Ok(done)
}

/// Up to when the generation of `manifest` is known to hold every committed transaction, by
/// the coverage mark its shipper stores in the target (`None` when there is none).
pub async fn shipped_through(target: &Target, manifest: &Manifest) -> Result<Option<i64>> {
    let key = through_key(&manifest.tenant_id, &manifest.id);
    match target.get_bytes(&key, 4096).await {
        Ok(bytes) => Ok(serde_json::from_slice::<Through>(&bytes)
            .ok()
            .map(|t| t.through_ms)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Refuses a replay that cannot be the state as of `at_ms`: the replay met no transaction
/// after the moment, and neither the generation's coverage mark (`through_ms`) nor the
/// tenant's own shipping state (`local_ms`, see [`crate::ship::local_through`]) shows that
/// every transaction up to the moment was shipped. Transactions committed up to the moment
/// may then still be missing from the target.
pub fn check_covered(
    manifest: &Manifest,
    at_ms: i64,
    done: &Replayed,
    through_ms: Option<i64>,
    local_ms: Option<i64>,
) -> Result<()> {
    if manifest.wal.is_none() || done.stopped {
        return Ok(());
    }
    let known = through_ms.max(local_ms);
    if known.is_some_and(|t| t >= at_ms) {
        return Ok(());
    }
    let reach = match (known, done.last_ms) {
        (Some(t), last) => t.max(last),
        (None, last) => last,
    };
    let reach = crate::format_ms(reach);
    Err(Error::Invalid(format!(
        "the WAL shipped after backup {} is known to be complete only up to {reach}; \
         transactions committed before the requested moment may not be shipped yet: try \
         again once shipping has caught up, or restore an earlier moment",
        manifest.id
    )))
}

/// Fetches the shipped files the restored records name and are missing, then removes every
/// stored file no restored record names.
async fn restore_files(
    target: &Target,
    prefix: &str,
    shipped: &[String],
    staging: &Path,
) -> Result<()> {
    let db = staging.join("data.db");
    let named = blocking(move || named_files(&db)).await?;
    let storage = staging.join("storage");
    for rel in shipped {
        if !owner(rel).is_some_and(|o| named.contains(&o)) {
            continue;
        }
        let dest = storage.join(rel);
        if tokio::fs::try_exists(&dest).await? {
            continue;
        }
        let sealed = target
            .get_bytes(&format!("{prefix}{rel}"), wal::MAX_SEGMENT)
            .await?;
        let bytes = blocking(move || wal::open_file(&sealed)).await?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&dest, bytes).await?;
    }
    blocking(move || {
        prune(&storage, Path::new(""), &named)?;
        Ok(())
    })
    .await
}

/// The record file a stored path belongs to: `<collection>/<record>/<name>` for the file
/// itself, its `.attrs` sidecar and its thumbs.
fn owner(rel: &str) -> Option<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() < 3 {
        return None;
    }
    let name = match parts[2].strip_prefix("thumbs_") {
        Some(name) if parts.len() >= 4 => name,
        _ => parts[2].strip_suffix(".attrs").unwrap_or(parts[2]),
    };
    Some(format!("{}/{}/{name}", parts[0], parts[1]))
}

/// Removes files under `root/rel` that belong to no named record file, and empty directories.
fn prune(root: &Path, rel: &Path, named: &HashSet<String>) -> Result<bool> {
    let dir = root.join(rel);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    let mut empty = true;
    for entry in entries {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            if prune(root, &path, named)? {
                std::fs::remove_dir(root.join(&path))?;
            } else {
                empty = false;
            }
            continue;
        }
        let keep = match path.to_str().and_then(owner) {
            Some(owner) => named.contains(&owner),
            None => true,
        };
        if keep {
            empty = false;
        } else {
            std::fs::remove_file(root.join(&path))?;
        }
    }
    Ok(empty && !rel.as_os_str().is_empty())
}

/// Every `<collection id>/<record id>/<file name>` named by a file field of a record (none in
/// a database without collections, such as the cluster's control database).
pub fn named_files(db: &Path) -> Result<HashSet<String>> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let has_collections: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_collections'",
        [],
        |r| r.get(0),
    )?;
    if has_collections == 0 {
        return Ok(HashSet::new());
    }
    let collections: Vec<(String, String, String)> = conn
        .prepare("SELECT id, name, fields FROM _collections WHERE type != 'view'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut named = HashSet::new();
    for (id, name, fields) in collections {
        let fields: Vec<serde_json::Value> = serde_json::from_str(&fields).unwrap_or_default();
        for field in fields {
            if field.get("type").and_then(|t| t.as_str()) != Some("file") {
                continue;
            }
            let Some(column) = field.get("name").and_then(|n| n.as_str()) else {
                continue;
            };
            let sql = format!(
                "SELECT id, `{}` FROM `{}`",
                column.replace('`', "``"),
                name.replace('`', "``")
            );
            let mut statement = conn.prepare(&sql)?;
            let rows = statement.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            for row in rows {
                let (record, value) = row?;
                let value = value.unwrap_or_default();
                let names: Vec<String> = if value.starts_with('[') {
                    serde_json::from_str(&value).unwrap_or_default()
                } else if value.is_empty() {
                    Vec::new()
                } else {
                    vec![value]
                };
                for file in names {
                    named.insert(format!("{id}/{record}/{file}"));
                }
            }
        }
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_belong_to_their_record_file() {
        assert_eq!(owner("c/r/a.png").as_deref(), Some("c/r/a.png"));
        assert_eq!(owner("c/r/a.png.attrs").as_deref(), Some("c/r/a.png"));
        assert_eq!(
            owner("c/r/thumbs_a.png/10x10_a.png").as_deref(),
            Some("c/r/a.png")
        );
        assert_eq!(owner("c/x"), None);
    }
}
