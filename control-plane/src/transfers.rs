//! Imports of uploaded PocketBase zips into a project, and exports of a project as a zip: the
//! upload spooled to disk under the plan's size limit, the job that unpacks, builds and swaps
//! the project's data in, and its progress for the status routes.
//!
//! An import goes only into a project that holds nothing yet (only what provisioning made, see
//! [`warren_tenant::transfer::is_fresh`]). Everything is assembled in scratch directories next
//! to the tenants; only when the new directory is complete and checked is the tenant drained
//! through the registry and its directory swapped by two renames, after checking once more
//! that it is still empty. A failure at any step removes the scratch files and changes
//! nothing. One import per project runs at a time; the latest job of each project is kept in
//! memory for its status page.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use warren_tenant::archive::{self, Limits};
use warren_tenant::transfer::{self, Files, Progress};

use crate::tenants::{TenantInfo, Tenants};
use crate::{Error, Result};

/// How long an import waits for the project's in-flight requests before swapping its data.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Most entries an uploaded zip may hold.
const MAX_ENTRIES: usize = 1_000_000;
/// Unpacked bytes allowed per compressed byte (zip-bomb bound), and at least this many bytes.
const MAX_RATIO: u64 = 100;
const MIN_UNPACKED: u64 = 256 << 20;
/// Prefixes of the scratch files and directories in the tenants' root.
const SCRATCH: [&str; 4] = [".upload-", ".unpack-", ".staging-", ".export-"];

/// Imports and exports of this node's tenants. Cheap to clone.
#[derive(Clone)]
pub struct Transfers {
    inner: Arc<Inner>,
}

struct Inner {
    /// Tenant bookkeeping, and the root their directories live in.
    tenants: Tenants,
    /// The open tenants, drained while an import swaps a tenant's data.
    registry: warren_tenant::Registry,
    /// The latest import job of each tenant (by tenant id).
    jobs: Mutex<HashMap<String, Arc<Mutex<Job>>>>,
}

/// An import as its status route shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Random id of this import.
    pub id: String,
    /// The project's slug.
    pub slug: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    /// The current step: `unpack` (bytes), `database`, `files` (count), `swap`, `done`.
    pub step: String,
    /// Units of the step done.
    pub done: u64,
    /// Units of the step in all.
    pub total: u64,
    /// Size of the uploaded zip in bytes.
    pub upload_bytes: u64,
    /// Collections imported, once done.
    pub collections: usize,
    /// Files imported, once done.
    pub files: u64,
    /// Why it failed (nothing was changed).
    pub error: String,
    /// When it started and finished (RFC 3339).
    pub started: String,
    pub finished: String,
}

/// An uploaded zip in the scratch space, removed when dropped.
#[derive(Debug)]
pub struct Upload {
    path: PathBuf,
    bytes: u64,
}

impl Upload {
    /// Its size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Where it is spooled.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A zip of a tenant, ready to stream: an open file whose name is already removed.
pub struct Export {
    /// The zip, read from its start.
    pub file: tokio::fs::File,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The upload limit of `tenant`'s plan, in bytes (`None`: no limit).
pub fn upload_limit(tenant: &TenantInfo) -> Option<u64> {
    Some(tenant.limits.max_upload_bytes).filter(|&max| max > 0)
}

/// The refusal of an upload larger than `limit` bytes.
pub fn too_large(limit: u64) -> Error {
    Error::TooLarge(format!(
        "The upload is larger than the plan allows ({limit} bytes)."
    ))
}

impl Transfers {
    /// Imports and exports of the tenants in `tenants`, served through `registry`.
    pub fn new(tenants: Tenants, registry: warren_tenant::Registry) -> Self {
        Self {
            inner: Arc::new(Inner {
                tenants,
                registry,
                jobs: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Removes scratch files left by a crash; called by the server at start.
    pub fn remove_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(self.inner.tenants.root()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if SCRATCH.iter().any(|p| name.starts_with(p)) {
                let path = entry.path();
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
    }

    fn scratch(&self, prefix: &str, suffix: &str) -> PathBuf {
        self.inner.tenants.root().join(format!(
            "{prefix}{}{suffix}",
            warren_secrets::random::record_id()
        ))
    }

    /// Writes a request body to a scratch file, refusing it (and removing what was written)
    /// once it passes `limit` bytes.
    pub async fn receive<S, B, E>(&self, mut body: S, limit: Option<u64>) -> Result<Upload>
    where
        S: futures_util::Stream<Item = std::result::Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        tokio::fs::create_dir_all(self.inner.tenants.root())
            .await
            .map_err(Error::Io)?;
        let mut upload = Upload {
            path: self.scratch(".upload-", ".zip"),
            bytes: 0,
        };
        let mut file = tokio::fs::File::create_new(&upload.path)
            .await
            .map_err(Error::Io)?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| Error::Invalid("file", format!("The upload was interrupted: {e}.")))?;
            let chunk = chunk.as_ref();
            upload.bytes += chunk.len() as u64;
            if let Some(limit) = limit.filter(|&limit| upload.bytes > limit) {
                return Err(too_large(limit));
            }
            file.write_all(chunk).await.map_err(Error::Io)?;
        }
        file.flush().await.map_err(Error::Io)?;
        Ok(upload)
    }

    /// The latest import job of `tenant`, if any since the server started.
    pub fn job(&self, tenant: &TenantInfo) -> Option<Job> {
        let jobs = self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let job = jobs.get(&tenant.id)?;
        let job = job.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Some(job)
    }

    /// Starts importing `upload` into `tenant`. Checks at once (before answering) that the
    /// project is empty and no other import runs, and that the zip's directory is readable,
    /// safe and within bounds; the rest runs in the background. The receiver gets the
    /// outcome when the job ends.
    pub async fn start_import(
        &self,
        tenant: &TenantInfo,
        upload: Upload,
    ) -> Result<(Job, tokio::sync::oneshot::Receiver<Result<Job>>)> {
        self.inner.registry.check_here(&tenant.id)?;
        let dir = warren_tenant::tenant_dir(self.inner.tenants.root(), &tenant.id);
        let limits = unpack_limits(tenant, upload.bytes);
        let zip = upload.path.clone();
        tokio::task::spawn_blocking(move || archive::check(&zip, limits))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
            .map_err(|refusal| Error::Tenant(refusal.into()))?;
        if !transfer::is_fresh(&dir).await? {
            return Err(not_empty());
        }
        let job = Arc::new(Mutex::new(Job {
            id: warren_secrets::random::record_id(),
            slug: tenant.slug.clone(),
            status: "running".into(),
            step: "unpack".into(),
            done: 0,
            total: 0,
            upload_bytes: upload.bytes,
            collections: 0,
            files: 0,
            error: String::new(),
            started: warren_backup::now_rfc3339(),
            finished: String::new(),
        }));
        {
            let mut jobs = self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(running) = jobs.get(&tenant.id) {
                let running = running.lock().unwrap_or_else(|p| p.into_inner());
                if running.status == "running" {
                    return Err(Error::Busy(
                        "An import into this project is already running.".into(),
                    ));
                }
            }
            jobs.insert(tenant.id.clone(), job.clone());
        }
        let first = job.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move {
            let outcome = this.run_import(&tenant, &upload, limits, &job).await;
            drop(upload);
            let finished = {
                let mut job = job.lock().unwrap_or_else(|p| p.into_inner());
                job.finished = warren_backup::now_rfc3339();
                match &outcome {
                    Ok(summary) => {
                        job.status = "done".into();
                        job.step = "done".into();
                        job.collections = summary.collections;
                        job.files = summary.files;
                        tracing::info!(slug = %tenant.slug, collections = summary.collections, files = summary.files, "project imported");
                    }
                    Err(e) => {
                        job.status = "failed".into();
                        job.error = e.to_string();
                        tracing::info!(slug = %tenant.slug, error = %e, "project import refused");
                    }
                }
                job.clone()
            };
            let _ = tx.send(outcome.map(|_| finished));
        });
        Ok((first, rx))
    }

    async fn run_import(
        &self,
        tenant: &TenantInfo,
        upload: &Upload,
        limits: Limits,
        job: &Arc<Mutex<Job>>,
    ) -> Result<transfer::Summary> {
        let unpacked = self.scratch(".unpack-", "");
        let staging = self.scratch(".staging-", "");
        let report = {
            let job = job.clone();
            move |p: Progress| {
                let mut job = job.lock().unwrap_or_else(|p| p.into_inner());
                job.step = p.step.into();
                job.done = p.done;
                job.total = p.total;
            }
        };
        let done = async {
            let (zip, dest, report_unpack) =
                (upload.path.clone(), unpacked.clone(), report.clone());
            let contents = tokio::task::spawn_blocking(move || {
                archive::unpack(&zip, &dest, limits, &report_unpack)
            })
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
            tracing::debug!(prefix = %contents.prefix, entries = contents.entries, "zip unpacked");
            let mut summary =
                transfer::build(&unpacked, &staging, Files::Move, "the zip", &report).await?;
            // Code at the top of the zip, beside its pb_data folder, comes in too.
            let code = unpacked.join(archive::CODE_DIR);
            // Its hooks must load, as a deploy's must.
            let check = self.inner.registry.code_check();
            summary.code_files = transfer::import_code_from(&code, &staging, check).await?;
            report(Progress {
                step: "swap",
                done: 0,
                total: 1,
            });
            self.swap_in(tenant, &staging).await?;
            Ok(summary)
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&unpacked).await;
        if done.is_err() {
            let _ = tokio::fs::remove_dir_all(&staging).await;
        }
        done
    }

    /// Replaces `tenant`'s directory with `staging` while the registry holds it closed, if it
    /// is still empty then.
    async fn swap_in(&self, tenant: &TenantInfo, staging: &Path) -> Result<()> {
        let drained = self.inner.registry.drain(&tenant.id, DRAIN_LIMIT).await?;
        let dir = warren_tenant::tenant_dir(self.inner.tenants.root(), &tenant.id);
        if !transfer::is_fresh(&dir).await? {
            return Err(not_empty());
        }
        let aside = self.scratch(".staging-", "-replaced");
        Ok(drained.replace_files(staging, &aside).await?)
    }

    /// Writes `tenant` as a zip of a PocketBase data directory (what stock PocketBase serves
    /// once unzipped as `pb_data`), in scratch space, and opens it for streaming.
    pub async fn export(&self, tenant: &TenantInfo) -> Result<Export> {
        self.inner.registry.check_here(&tenant.id)?;
        tokio::fs::create_dir_all(self.inner.tenants.root())
            .await
            .map_err(Error::Io)?;
        let dir = self.scratch(".export-", "");
        let zip = self.scratch(".export-", ".zip");
        let made = async {
            transfer::export(self.inner.tenants.root(), &tenant.id, &dir).await?;
            let (from, to) = (dir.clone(), zip.clone());
            tokio::task::spawn_blocking(move || archive::pack(&from, &to, &transfer::quiet))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
            let file = tokio::fs::File::open(&zip).await.map_err(Error::Io)?;
            let bytes = file.metadata().await.map_err(Error::Io)?.len();
            Ok(Export { file, bytes })
        }
        .await;
        // The open file keeps its content readable after its name is gone.
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let _ = tokio::fs::remove_file(&zip).await;
        made
    }
}

fn not_empty() -> Error {
    Error::Busy(
        "The project is not empty: an import goes only into a project without collections, users or files of its own. Create a new project for it.".into(),
    )
}

/// Bounds on what an upload of `bytes` may unpack to for `tenant`: a ratio of its size (a
/// zip bomb stops there), and the plan's storage quota.
fn unpack_limits(tenant: &TenantInfo, bytes: u64) -> Limits {
    let mut max_bytes = bytes.saturating_mul(MAX_RATIO).max(MIN_UNPACKED);
    if tenant.limits.storage_bytes > 0 {
        max_bytes = max_bytes.min(tenant.limits.storage_bytes);
    }
    Limits {
        max_entries: MAX_ENTRIES,
        max_bytes,
    }
}
