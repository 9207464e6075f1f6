//! Taking a backup: a consistent online copy of the tenant's databases, its stored files, all
//! compressed, uploaded, and the manifest last.
//!
//! The databases are copied with `VACUUM INTO` on a read-only connection of their own. In WAL
//! mode a reader never blocks the writer, so the tenant keeps writing while the copy runs; the
//! copy holds exactly the transactions committed when its read began. Scratch files are never
//! fsynced: they are uploaded and deleted, and syncing them would only queue the tenant's own
//! commit fsyncs behind megabytes of backup data. Stored files are packed
//! after the database copy, so every file a copied record names is there (files uploaded
//! later may be too, which is harmless).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use warren_store::sql::{Connection, OpenFlags};

use crate::manifest::{self, Manifest};
use crate::ship::Shipping;
use crate::target::Target;
use crate::{Error, Progress, Report, Result, archive};

/// The tenant to back up.
#[derive(Debug, Clone)]
pub struct Source {
    /// Stable id (names its directory in the target).
    pub tenant_id: String,
    /// Slug, recorded in the manifest.
    pub slug: String,
    /// The tenant's directory (`data.db`, `auxiliary.db`, `storage/`).
    pub dir: PathBuf,
    /// The platform's default file bucket (tenants without their own S3 settings keep their
    /// files there under their id when it is set).
    pub file_bucket: Option<warren_files::S3Config>,
    /// Whether this process opens `data.db` for itself (a served tenant's, see
    /// `warren_store::Options::exclusive`); its copy is then read the same way.
    pub exclusive: bool,
}

/// Removes a scratch directory when dropped, whatever happened.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Takes a backup of `source` into `target`, working in a fresh directory under `scratch`.
/// Returns the manifest once it is stored: from then on the backup is listed and restorable.
pub async fn create(
    target: &Target,
    scratch: &Path,
    source: &Source,
    report: Report<'_>,
) -> Result<Manifest> {
    create_shipped(target, scratch, source, None, report).await
}

/// Like [`create`]; when `shipping` ships the tenant in this process, the database copy is the
/// file right after a full checkpoint, taken by its shipper, and the snapshot starts the
/// tenant's next WAL generation (recorded in the manifest's `wal`).
pub async fn create_shipped(
    target: &Target,
    scratch: &Path,
    source: &Source,
    shipping: Option<&Shipping>,
    report: Report<'_>,
) -> Result<Manifest> {
    let base = match shipping {
        Some(shipping) => Base::Shipper(shipping),
        None => Base::Vacuum,
    };
    create_with(target, scratch, source, base, report).await
}

/// Takes a snapshot of a tenant that is not open anywhere (its directory freshly restored,
/// with no WAL) which starts a new WAL chain under ownership generation `ownership`: the
/// database file is copied as it is, so the chain's segments apply to it page for page.
/// [`crate::ship::start_chain`] then records the chain in the directory for its shipper.
pub async fn create_chain_start(
    target: &Target,
    scratch: &Path,
    source: &Source,
    ownership: u64,
    report: Report<'_>,
) -> Result<Manifest> {
    let wal = source.dir.join("data.db-wal");
    if tokio::fs::metadata(&wal).await.is_ok_and(|m| m.len() > 0) {
        return Err(Error::Invalid(
            "a chain can start offline only from a database without WAL".into(),
        ));
    }
    create_with(target, scratch, source, Base::Offline(ownership), report).await
}

/// How a snapshot gets its database copy.
enum Base<'a> {
    /// `VACUUM INTO` on a connection of its own (no chain starts).
    Vacuum,
    /// From the tenant's shipper when it ships the tenant here (a chain starts).
    Shipper(&'a Shipping),
    /// The closed database file as it is, under this ownership generation (a chain starts).
    Offline(u64),
}

async fn create_with(
    target: &Target,
    scratch: &Path,
    source: &Source,
    base: Base<'_>,
    report: Report<'_>,
) -> Result<Manifest> {
    let started = time::OffsetDateTime::now_utc();
    let ownership = match &base {
        Base::Vacuum => 0,
        Base::Shipper(shipping) => shipping.ownership_of(&source.tenant_id),
        Base::Offline(ownership) => *ownership,
    };
    let id = manifest::new_id_owned(started, ownership);
    let work = Scratch(scratch.join(format!("snapshot-{}-{id}", source.tenant_id)));
    tokio::fs::create_dir_all(&work.0).await?;

    report(Progress {
        step: "copy data.db".into(),
        done: 0,
        total: 0,
    });
    let data = source.dir.join("data.db");
    if !tokio::fs::try_exists(&data).await? {
        return Err(Error::NotFound(format!("{} has no database", source.slug)));
    }
    let mut created = crate::now_rfc3339();
    let copy = work.0.join("data.db");
    let base_kind = match &base {
        Base::Offline(ownership) => Base::Offline(*ownership),
        _ => Base::Vacuum,
    };
    let based = match base {
        Base::Shipper(shipping) => shipping.base(&source.tenant_id, &id, &copy).await,
        Base::Vacuum => None,
        Base::Offline(_) => {
            let (from, to) = (data.clone(), copy.clone());
            tokio::task::spawn_blocking(move || std::fs::copy(&from, &to))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))??;
            Some(Ok(crate::ship::WalStart {
                salt1: 0,
                salt2: 0,
                frames: 0,
                time_ms: warren_store::commits::now_ms(),
            }))
        }
    };
    let wal = match based {
        Some(start) => {
            let start = start?;
            if let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(start.time_ms) * 1_000_000,
            ) {
                created = crate::format_time(at);
            }
            Some(start)
        }
        None => {
            warren_store::scratch_copy(&data, &copy, source.exclusive).await?;
            None
        }
    };
    // An offline chain start stores the chain's state object 0 (the secrets) itself; a
    // shipper does it when it takes the copy.
    if let Base::Offline(ownership) = base_kind {
        crate::state::store_secrets(target, &source.tenant_id, &id, ownership, &source.dir).await?;
    }
    let mut copies = vec![("data.db", copy)];
    let aux = source.dir.join("auxiliary.db");
    if tokio::fs::try_exists(&aux).await? {
        report(Progress {
            step: "copy auxiliary.db".into(),
            done: 0,
            total: 0,
        });
        let aux_copy = work.0.join("auxiliary.db");
        warren_store::scratch_copy(&aux, &aux_copy, false).await?;
        copies.push(("auxiliary.db", aux_copy));
    }

    let counts = {
        let copy = copies[0].1.clone();
        tokio::task::spawn_blocking(move || count_records(&copy))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??
    };

    report(Progress {
        step: "compress".into(),
        done: 0,
        total: 0,
    });
    // Files kept in S3 are copied after the database, like local files (see the module doc).
    let remote = {
        let (db, id, default) = (
            copies[0].1.clone(),
            source.tenant_id.clone(),
            source.file_bucket.clone(),
        );
        tokio::task::spawn_blocking(move || {
            match crate::remote::locate(&db, &id, default.as_ref())? {
                Some(bucket) => Ok::<_, Error>(Some((bucket, crate::remote::collections(&db)?))),
                None => Ok(None),
            }
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??
    };
    let remote_dir = work.0.join(crate::remote::NAME);
    if let Some((bucket, collections)) = &remote {
        tokio::fs::create_dir_all(&remote_dir).await?;
        crate::remote::download(bucket, collections, &remote_dir, report).await?;
    }
    let storage = source.dir.join("storage");
    let code_root = source.dir.clone();
    let packed = work.0.clone();
    let objects = tokio::task::spawn_blocking(move || {
        let mut objects = Vec::new();
        for (name, path) in &copies {
            let dest = packed.join(format!("{name}.zst"));
            objects.push(archive::compress_file(path, &dest, name)?);
            std::fs::remove_file(path)?;
        }
        objects.push(archive::compress_dir(
            &storage,
            &packed.join("storage.tar.zst"),
            "storage",
        )?);
        // The code a tenant runs comes back with its data (absent folders are not packed).
        for name in crate::CODE_FOLDERS {
            let folder = code_root.join(name);
            if std::fs::symlink_metadata(&folder).is_ok_and(|m| m.is_dir()) {
                objects.push(archive::compress_dir(
                    &folder,
                    &packed.join(format!("{name}.tar.zst")),
                    name,
                )?);
            }
        }
        if remote_dir.is_dir() {
            objects.push(archive::compress_dir(
                &remote_dir,
                &packed.join(format!("{}.tar.zst", crate::remote::NAME)),
                crate::remote::NAME,
            )?);
            std::fs::remove_dir_all(&remote_dir)?;
        }
        Ok::<_, Error>(objects)
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))??;

    let dir = Manifest::dir(&source.tenant_id, &id);
    for object in &objects {
        target
            .put_file(
                &format!("{dir}{}", object.object),
                &work.0.join(&object.object),
                report,
            )
            .await?;
    }
    let manifest = Manifest {
        format: manifest::FORMAT,
        id,
        tenant_id: source.tenant_id.clone(),
        slug: source.slug.clone(),
        created,
        finished: crate::now_rfc3339(),
        objects,
        counts,
        wal,
        ownership_generation: ownership,
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    target
        .put_bytes(&format!("{dir}{}", manifest::MANIFEST), body)
        .await?;
    Ok(manifest)
}

/// Records per collection table (views have no records of their own); none for a database
/// without collections (the cluster's control database is shipped like a tenant's).
pub fn count_records(db: &Path) -> Result<BTreeMap<String, i64>> {
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
        return Ok(BTreeMap::new());
    }
    let names: Vec<String> = conn
        .prepare("SELECT name FROM _collections WHERE type != 'view' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut counts = BTreeMap::new();
    for name in names {
        let quoted = name.replace('`', "``");
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM `{quoted}`"), [], |r| {
            r.get(0)
        })?;
        counts.insert(name, n);
    }
    Ok(counts)
}
