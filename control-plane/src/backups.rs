//! Backups of tenants as the node runs them: snapshots into the backup target, restores into a
//! new tenant or in place, restore drills, retention, the schedule, and the bookkeeping of
//! every run in the control database (`backup_runs`).
//!
//! Concurrency: one backup or restore per tenant at a time, and at most `concurrency` across
//! the node, so a schedule over thousands of tenants never saturates it.
//!
//! In-place restores fetch and check the whole backup first, while the tenant keeps serving;
//! only then is the tenant drained through the registry (requests get 503 for that moment),
//! its directory swapped for the restored one by two renames on one file system, and reopened
//! by the next request.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use warren_backup::pitr;
use warren_backup::restore::{self, Drill};
use warren_backup::ship::Shipping;
use warren_backup::snapshot::{self, Source};
use warren_backup::{Manifest, Report, Target};
use warren_store::sql::{OptionalExtension, params};

use crate::relay::{BackupRun, Record, Relay};
use crate::tenants::{TenantInfo, Tenants};
use crate::{Error, Result, slug};

/// How long a backup or restore waits for another one of the same tenant to finish.
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// How long an in-place restore waits for a tenant's in-flight requests to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Backups of this node's tenants. Cheap to clone; disabled without a target.
#[derive(Clone)]
pub struct Backups {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// Where backups go.
    target: Target,
    /// Tenant bookkeeping.
    tenants: Tenants,
    /// The open tenants, drained for in-place restores (absent in CLI processes).
    registry: Option<warren_tenant::Registry>,
    /// Working space for snapshots and drills.
    scratch: PathBuf,
    /// Bounds backups and restores running at once across the node.
    permits: Semaphore,
    /// Tenant ids with a backup or restore running.
    busy: Mutex<HashSet<String>>,
    /// The schedule's policy once it runs (the status summary judges staleness by it).
    policy: Mutex<Option<Arc<dyn Policy>>>,
    /// No server serves the data directory and none can start (the CLI holds its lock), so an
    /// in-place restore may swap a tenant's directory without draining it.
    exclusive: bool,
    /// The platform's default file bucket (files of tenants without their own S3 settings).
    file_bucket: Option<warren_backup::remote::S3Config>,
    /// Continuous WAL shipping of open tenants, when enabled.
    shipping: Option<Shipping>,
    /// Restore drills (scheduled and `verify`) that passed and failed since the start.
    drills_passed: std::sync::atomic::AtomicU64,
    drills_failed: std::sync::atomic::AtomicU64,
    /// In a cluster: where finished runs go too while this node does not lead.
    relay: std::sync::OnceLock<Relay>,
    /// In a cluster: tenants this node's control database does not know (created on the
    /// leader), looked up in the cluster's directory.
    lookup: std::sync::OnceLock<TenantLookup>,
}

/// Finds a tenant by id where the control database does not have it.
pub type TenantLookup = Arc<dyn Fn(&str) -> Option<TenantInfo> + Send + Sync>;

/// Hands each opened tenant to the WAL shipping.
struct ShipHook(Shipping);

impl warren_tenant::Shipper for ShipHook {
    fn opened(
        &self,
        id: &str,
        dir: &Path,
        db: &warren_store::Database,
    ) -> Box<dyn std::any::Any + Send + Sync> {
        Box::new(self.0.start(id, dir, db.clone()))
    }
}

/// What a restore should do.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// Restore this snapshot alone. Without it (and without `at`) a restore brings back the
    /// latest shipped state: the newest snapshot and every WAL segment shipped after it.
    pub backup: Option<String>,
    /// Restore the state as of this moment (RFC 3339): the newest snapshot at or before it,
    /// and its generation's WAL up to it.
    pub at: Option<String>,
    /// Slug of a new tenant to restore into; ignored with `in_place`.
    pub to: Option<String>,
    /// Replace the tenant itself.
    pub in_place: bool,
}

/// Which state a restore put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// The latest shipped state: a snapshot and every WAL segment shipped after it.
    Latest,
    /// The state as of a requested moment.
    Moment,
    /// A snapshot alone: the one named, or the newest when no WAL was shipped after it.
    Snapshot,
}

impl Restored {
    /// How answers name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Restored::Latest => "latest shipped state",
            Restored::Moment => "point in time",
            Restored::Snapshot => "snapshot",
        }
    }
}

/// What a restore did, for its answer.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    /// The tenant restored into: a new one, or the tenant itself in place.
    pub tenant: TenantInfo,
    /// Which state it holds.
    pub restored: Restored,
    /// The snapshot the restore started from.
    pub backup: String,
    /// WAL transactions replayed on top of the snapshot.
    pub transactions: u64,
    /// The moment the restored state reaches (RFC 3339): it holds every transaction the tenant
    /// committed up to then, as far as the backup target knows.
    pub through: String,
}

/// A tenant's backup status, for the operator API and the console.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Outcome of the latest snapshot run (`running`, `complete`, `failed`, or `""`).
    pub last_status: String,
    /// When the latest snapshot run started.
    pub last_started: String,
    /// Its error, if it failed.
    pub last_error: String,
    /// When the latest successful snapshot started.
    pub last_success: String,
    /// The backup the latest successful snapshot made.
    pub last_backup: String,
    /// When the latest failed snapshot started (even if a later one succeeded).
    pub last_failure: String,
    /// That failure's error.
    pub last_failure_error: String,
    /// When the latest restore drill (scheduled or `verify`) started.
    pub last_drill: String,
    /// Its outcome (`running`, `complete`, `failed`, or `""`).
    pub last_drill_status: String,
    /// Its error, if it failed.
    pub last_drill_error: String,
}

/// Keeps a tenant marked busy until dropped.
struct Busy<'a>(&'a Inner, String);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

impl Backups {
    /// No backup target: every backup operation fails with a clear message.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Backups into `target`, working under `scratch`, at most `concurrency` at once.
    pub fn new(
        target: Target,
        tenants: Tenants,
        registry: Option<warren_tenant::Registry>,
        scratch: PathBuf,
        concurrency: usize,
    ) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                target,
                tenants,
                registry,
                scratch,
                permits: Semaphore::new(concurrency.max(1)),
                busy: Mutex::new(HashSet::new()),
                policy: Mutex::new(None),
                exclusive: false,
                file_bucket: None,
                shipping: None,
                drills_passed: Default::default(),
                drills_failed: Default::default(),
                relay: std::sync::OnceLock::new(),
                lookup: std::sync::OnceLock::new(),
            })),
        }
    }

    /// Backups for a process that holds the data directory exclusively (no server serves it):
    /// in-place restores swap the tenant's directory without draining it.
    /// Backups that copy the files tenants keep in the platform's default bucket `bucket`
    /// (tenants with their own S3 settings are always copied). Call it before cloning.
    pub fn with_file_bucket(mut self, bucket: Option<warren_backup::remote::S3Config>) -> Self {
        if let Some(inner) = self.inner.as_mut().and_then(Arc::get_mut) {
            inner.file_bucket = bucket;
        }
        self
    }

    /// In a cluster: every run finished while this node does not lead is also queued for the
    /// leader's control database.
    pub fn set_relay(&self, relay: Relay) {
        if let Some(inner) = &self.inner {
            let _ = inner.relay.set(relay);
        }
    }

    /// In a cluster: how the snapshot that starts a tenant's WAL shipping finds a tenant this
    /// node's control database does not know (one it took over from another node).
    pub fn set_tenant_lookup(&self, lookup: TenantLookup) {
        if let Some(inner) = &self.inner {
            let _ = inner.lookup.set(lookup);
        }
    }

    /// Call it on a fresh value, before it is cloned.
    pub fn exclusive(mut self) -> Self {
        if let Some(inner) = self.inner.as_mut().and_then(Arc::get_mut) {
            inner.exclusive = inner.registry.is_none();
        }
        self
    }

    /// Ships the WAL of every tenant the registry opens from now on (at most once per
    /// `interval` per tenant), and takes the snapshot a tenant's shipping needs to start a
    /// generation. Call once, before the handle is cloned; a no-op without a target or a
    /// registry.
    pub fn enable_shipping(&mut self, interval: Duration) -> Option<Shipping> {
        let inner = Arc::get_mut(self.inner.as_mut()?)?;
        let registry = inner.registry.clone()?;
        let shipping = Shipping::new(inner.target.clone(), interval);
        inner.shipping = Some(shipping.clone());
        registry.set_shipper(Arc::new(ShipHook(shipping.clone())));
        let mut wanted = shipping.take_wanted()?;
        let backups = self.clone();
        tokio::spawn(async move {
            while let Some(id) = wanted.recv().await {
                let backups = backups.clone();
                tokio::spawn(async move {
                    let Ok(inner) = backups.inner() else { return };
                    let found = match inner.tenants.find_id(&id).await {
                        Ok(found) => found,
                        Err(e) => {
                            tracing::warn!(tenant = %id, error = %e, "looking up a tenant to snapshot failed");
                            return;
                        }
                    };
                    let Some(tenant) = found.or_else(|| inner.lookup.get().and_then(|l| l(&id)))
                    else {
                        tracing::warn!(tenant = %id, "WAL shipping needs a snapshot of a tenant this node does not know");
                        return;
                    };
                    match backups.create_for(&tenant, &warren_backup::quiet).await {
                        Ok(made) => {
                            tracing::info!(slug = %tenant.slug, backup = %made.id, "snapshot taken to start WAL shipping")
                        }
                        Err(e) => {
                            tracing::warn!(slug = %tenant.slug, error = %e, "the snapshot WAL shipping needs failed")
                        }
                    }
                });
            }
        });
        Some(shipping)
    }

    /// The backup target, when backups are enabled (what a node taking a tenant over restores
    /// from: see `warren_tenant::handoff::restore_latest`).
    pub fn target(&self) -> Option<&Target> {
        Some(&self.inner.as_ref()?.target)
    }

    /// The WAL shipping, when enabled.
    pub fn shipping(&self) -> Option<&Shipping> {
        self.inner.as_ref()?.shipping.as_ref()
    }

    /// Waits (at most `limit`) until every tenant's shipping has sent what was pending and
    /// stopped; the server calls it at shutdown, after closing the tenants.
    pub async fn wait_shipping(&self, limit: Duration) -> bool {
        match self.shipping() {
            Some(shipping) => shipping.wait_stopped(limit).await,
            None => true,
        }
    }

    /// Removes what runs interrupted by a crash left behind (scratch copies, restore staging).
    /// Called by the server at start, before it runs any backup.
    pub fn remove_leftovers(&self) {
        let Some(inner) = &self.inner else { return };
        let _ = std::fs::remove_dir_all(&inner.scratch);
        if let Ok(entries) = std::fs::read_dir(inner.tenants.root()) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".restore-")
                    || name.starts_with(".replaced-")
                    || name.starts_with(warren_backup::state::SCRATCH_PREFIX)
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }

    /// Whether a target is configured.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    fn inner(&self) -> Result<&Inner> {
        self.inner.as_deref().ok_or_else(|| {
            Error::Invalid(
                "backupUrl",
                "No backup target is configured (--backup-url).".into(),
            )
        })
    }

    /// The target, for messages.
    pub fn describe(&self) -> String {
        self.inner
            .as_ref()
            .map(|i| i.target.describe())
            .unwrap_or_default()
    }

    async fn tenant(&self, slug: &str) -> Result<TenantInfo> {
        self.inner()?
            .tenants
            .find(slug)
            .await?
            .ok_or(Error::NotFound)
    }

    /// Takes a backup of tenant `slug` now.
    pub async fn create(&self, slug: &str, report: Report<'_>) -> Result<Manifest> {
        let tenant = self.tenant(slug).await?;
        self.create_for(&tenant, report).await
    }

    /// Takes a backup of `tenant` now (a cluster node acting for the leader, whose control
    /// database may not know the tenant, passes it whole).
    pub async fn create_for(&self, tenant: &TenantInfo, report: Report<'_>) -> Result<Manifest> {
        let inner = self.inner()?;
        inner.check_here(&tenant.id)?;
        let _busy = inner.claim_wait(&tenant.id).await?;
        let _permit = inner.permits.acquire().await.map_err(|_| Error::NotFound)?;
        let run = inner.start_run(tenant, "snapshot", "").await?;
        let source = Source {
            tenant_id: tenant.id.clone(),
            slug: tenant.slug.clone(),
            dir: warren_tenant::tenant_dir(inner.tenants.root(), &tenant.id),
            file_bucket: inner.file_bucket.clone(),
            exclusive: warren_tenant::database_options().exclusive,
        };
        // A shipped tenant is opened (if it is not) so that its shipper takes the copy.
        let _open = match (&inner.shipping, &inner.registry) {
            (Some(_), Some(registry)) => registry.get(&tenant.id).await.ok(),
            _ => None,
        };
        let made = snapshot::create_shipped(
            &inner.target,
            &inner.scratch,
            &source,
            inner.shipping.as_ref(),
            report,
        )
        .await;
        match &made {
            Ok(manifest) => {
                inner
                    .finish_run(run, &manifest.id, manifest.size(), "")
                    .await?
            }
            Err(e) => inner.finish_run(run, "", 0, &e.to_string()).await?,
        }
        Ok(made?)
    }

    /// Makes a change of `tenant`'s code or secrets (`items`) as durable as its data when the
    /// tenant is shipped: stored as a state object in its current chain (see
    /// `warren_backup::state`) before this returns, or, when the tenant has no chain a restore
    /// would use yet, carried by a snapshot taken now (snapshots pack the code, and the
    /// secrets go with the chain they start). Without shipping it does nothing: a single node
    /// without a target, or the CLI.
    pub async fn keep_state(
        &self,
        tenant: &TenantInfo,
        items: warren_backup::state::Items,
    ) -> Result<()> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let (Some(shipping), Some(registry)) = (&inner.shipping, &inner.registry) else {
            return Ok(());
        };
        // Opened (if it is not) so that its shipper runs; held open until the state is stored.
        let _open = registry.get(&tenant.id).await?;
        match shipping.store_state(&tenant.id, items).await {
            Some(Ok(true)) => Ok(()),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(false)) | None => {
                self.create_for(tenant, &warren_backup::quiet).await?;
                Ok(())
            }
        }
    }

    /// Records snapshot `manifest`, stored by other code than this handle's (the one a cluster
    /// node stores when it takes a tenant over, starting the tenant's chain under its claim), as
    /// a complete `snapshot` run (relayed to the leader like every run).
    pub async fn record_snapshot(&self, manifest: &Manifest) -> Result<()> {
        let inner = self.inner()?;
        let run = inner
            .start_run_of(&manifest.tenant_id, &manifest.slug, "snapshot", "")
            .await?;
        inner
            .finish_run(run, &manifest.id, manifest.size(), "")
            .await
    }

    /// Every complete backup of tenant `slug`, oldest first.
    pub async fn list(&self, slug: &str) -> Result<Vec<Manifest>> {
        let tenant = self.tenant(slug).await?;
        Ok(restore::list(&self.inner()?.target, &tenant.id).await?)
    }

    /// The backup a restore or drill of `tenant_id` uses.
    async fn choose(
        &self,
        tenant_id: &str,
        backup: Option<&str>,
        at: Option<&str>,
    ) -> Result<Manifest> {
        let target = &self.inner()?.target;
        if let Some(id) = backup {
            return Ok(restore::load(target, tenant_id, id).await?);
        }
        let all = restore::list(target, tenant_id).await?;
        let chosen = match at {
            None => all.into_iter().last(),
            Some(at) => {
                // The newest snapshot before the moment; one the WAL replays on top of wins.
                let at = parse_at(at)?;
                let before: Vec<Manifest> = all
                    .into_iter()
                    .filter(|m| {
                        warren_backup::parse_time(&m.created).is_ok_and(|created| created <= at)
                    })
                    .collect();
                match before.iter().rposition(|m| m.wal.is_some()) {
                    Some(i) => before.into_iter().nth(i),
                    None => before.into_iter().last(),
                }
            }
        };
        chosen.ok_or_else(|| Error::Invalid("backup", "There is no such backup.".into()))
    }

    /// Restores a backup of tenant `slug` into a new tenant (the default) or in place. The
    /// backup is fetched and checked whole before anything changes; a damaged one is refused.
    pub async fn restore(
        &self,
        slug: &str,
        request: &RestoreRequest,
        report: Report<'_>,
    ) -> Result<RestoreOutcome> {
        let tenant = self.tenant(slug).await?;
        self.restore_tenant(tenant, request, report).await
    }

    /// [`Backups::restore`] of `tenant`, passed whole (a cluster node acting for the leader).
    pub async fn restore_tenant(
        &self,
        tenant: TenantInfo,
        request: &RestoreRequest,
        report: Report<'_>,
    ) -> Result<RestoreOutcome> {
        let inner = self.inner()?;
        let slug = tenant.slug.clone();
        let new_slug = if request.in_place {
            None
        } else {
            let to = request
                .to
                .clone()
                .unwrap_or_else(|| format!("{slug}-restored"));
            slug::validate(&to).map_err(|reason| Error::Invalid("to", reason))?;
            if inner.tenants.find(&to).await?.is_some() {
                return Err(Error::SlugTaken);
            }
            Some(to)
        };
        if request.in_place {
            inner.check_here(&tenant.id)?;
        }
        if request.in_place && inner.registry.is_none() && !inner.exclusive {
            return Err(Error::Invalid(
                "inPlace",
                "An in-place restore of a served tenant goes through the operator API (POST /v1/tenants/{slug}/backups/restore).".into(),
            ));
        }
        // A tenant shipped by this process first ships what it committed so far: a restore
        // of the latest state, or as of now, then holds every transaction up to the request.
        if request.backup.is_none()
            && let Some(shipping) = &inner.shipping
        {
            shipping.flush(&tenant.id).await?;
        }
        let (manifest, restored) = match (&request.backup, &request.at) {
            (Some(id), _) => (
                restore::load(&inner.target, &tenant.id, id).await?,
                Restored::Snapshot,
            ),
            (None, Some(at)) => (
                self.choose(&tenant.id, None, Some(at)).await?,
                Restored::Moment,
            ),
            (None, None) => self.latest(&tenant).await?,
        };
        let _busy = inner.claim_wait(&tenant.id).await?;
        let _permit = inner.permits.acquire().await.map_err(|_| Error::NotFound)?;
        let run = inner.start_run(&tenant, "restore", &manifest.id).await?;
        let staging = restore::staging_dir(inner.tenants.root());
        let replay_until = match (restored, &request.at) {
            (Restored::Moment, Some(at)) => {
                let at = parse_at(at)?;
                Some((at.unix_timestamp_nanos() / 1_000_000) as i64)
            }
            // Every shipped transaction, however late.
            (Restored::Latest, _) => Some(i64::MAX),
            _ => None,
        };
        let done: Result<RestoreOutcome> = async {
            restore::fetch(&inner.target, &manifest, &staging, report).await?;
            let mut transactions = 0;
            let mut through = snapshot_ms(&manifest);
            if let Some(until_ms) = replay_until {
                let replayed =
                    pitr::replay(&inner.target, &manifest, &staging, until_ms, report).await?;
                tracing::info!(
                    backup = %manifest.id,
                    transactions = replayed.transactions,
                    last_commit_ms = replayed.last_ms,
                    "WAL replayed"
                );
                transactions = replayed.transactions;
                let known = self.known_through(&tenant, &manifest).await?;
                if restored == Restored::Moment {
                    // Nothing is put in place unless the shipped WAL is known to reach the
                    // moment.
                    pitr::check_covered(&manifest, until_ms, &replayed, known.0, known.1)
                        .map_err(about_at)?;
                    // Without shipped WAL the snapshot before the moment is all there is.
                    if manifest.wal.is_some() {
                        through = Some(until_ms);
                    }
                } else {
                    through = through
                        .max(Some(replayed.last_ms))
                        .max(known.0)
                        .max(known.1);
                }
            }
            let tenant = match new_slug {
                Some(to) => {
                    let id = warren_secrets::random::record_id();
                    let bucket = inner.file_bucket.as_ref();
                    warren_backup::remote::put_back(&staging, &id, bucket, report).await?;
                    let dir = warren_tenant::tenant_dir(inner.tenants.root(), &id);
                    tokio::fs::rename(&staging, &dir).await.map_err(Error::Io)?;
                    sync_dir(inner.tenants.root()).await?;
                    inner.tenants.register(id, &to, false).await?
                }
                None => {
                    let bucket = inner.file_bucket.as_ref();
                    warren_backup::remote::put_back(&staging, &tenant.id, bucket, report).await?;
                    inner.swap_in(&tenant, &staging).await?;
                    tenant.clone()
                }
            };
            Ok(RestoreOutcome {
                tenant,
                restored,
                backup: manifest.id.clone(),
                transactions,
                through: through
                    .map(warren_backup::format_ms)
                    .unwrap_or_else(|| manifest.created.clone()),
            })
        }
        .await;
        if done.is_err() {
            let _ = tokio::fs::remove_dir_all(&staging).await;
        }
        match &done {
            Ok(_) => {
                inner
                    .finish_run(run, &manifest.id, manifest.size(), "")
                    .await?
            }
            Err(e) => {
                inner
                    .finish_run(run, &manifest.id, 0, &e.to_string())
                    .await?
            }
        }
        done
    }

    /// The snapshot a restore of the latest state starts from, and whether its generation's
    /// WAL is replayed on top: among the snapshots of the highest ownership generation, the
    /// newest snapshot, with its WAL when it has some. A newer
    /// snapshot without WAL (taken by another process, or before shipping was on) wins over
    /// the newest shipped generation unless that generation is known to reach past it.
    async fn latest(&self, tenant: &TenantInfo) -> Result<(Manifest, Restored)> {
        let all = restore::list(&self.inner()?.target, &tenant.id).await?;
        let Some((newest, shipped)) = warren_backup::latest::candidates(all) else {
            return Err(Error::Invalid("backup", "There is no such backup.".into()));
        };
        if newest.wal.is_some() {
            return Ok((newest, Restored::Latest));
        }
        let Some(shipped) = shipped else {
            return Ok((newest, Restored::Snapshot));
        };
        let (mark, local) = self.known_through(tenant, &shipped).await?;
        if warren_backup::latest::reaches_past(&newest, mark.max(local)) {
            Ok((shipped, Restored::Latest))
        } else {
            Ok((newest, Restored::Snapshot))
        }
    }

    /// Up to when the generation after `manifest` is known to hold every transaction of
    /// `tenant`: by the coverage mark in the target, and by the tenant's own shipping state
    /// (see [`warren_backup::ship::local_through`]).
    async fn known_through(
        &self,
        tenant: &TenantInfo,
        manifest: &Manifest,
    ) -> Result<(Option<i64>, Option<i64>)> {
        let inner = self.inner()?;
        let mark = pitr::shipped_through(&inner.target, manifest).await?;
        let dir = warren_tenant::tenant_dir(inner.tenants.root(), &tenant.id);
        let id = manifest.id.clone();
        let local =
            tokio::task::spawn_blocking(move || warren_backup::ship::local_through(&dir, &id))
                .await
                .ok()
                .flatten();
        Ok((mark, local))
    }

    /// Restores the latest (or the given) backup of tenant `slug` into a scratch directory and
    /// checks integrity and record counts.
    pub async fn verify(
        &self,
        slug: &str,
        backup: Option<&str>,
        report: Report<'_>,
    ) -> Result<Drill> {
        let tenant = self.tenant(slug).await?;
        self.drill_run(&tenant, backup, "verify", report).await
    }

    /// A restore drill of `tenant`, recorded as a run of `kind` (`verify` when asked for,
    /// `drill` when scheduled).
    pub(crate) async fn drill_run(
        &self,
        tenant: &TenantInfo,
        backup: Option<&str>,
        kind: &'static str,
        report: Report<'_>,
    ) -> Result<Drill> {
        let inner = self.inner()?;
        let manifest = self.choose(&tenant.id, backup, None).await?;
        let _permit = inner.permits.acquire().await.map_err(|_| Error::NotFound)?;
        let run = inner.start_run(tenant, kind, &manifest.id).await?;
        let drill = restore::drill(&inner.target, &manifest, &inner.scratch, report).await;
        let error = match &drill {
            Ok(d) if d.mismatches.is_empty() => String::new(),
            Ok(d) => format!("record counts differ: {:?}", d.mismatches),
            Err(e) => e.to_string(),
        };
        let counter = if error.is_empty() {
            &inner.drills_passed
        } else {
            &inner.drills_failed
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        inner
            .finish_run(run, &manifest.id, manifest.size(), &error)
            .await?;
        Ok(drill?)
    }

    /// Deletes backups of tenant `slug` beyond the newest `keep`, and those older than
    /// `max_age`; the newest backup is always kept. Returns how many were deleted.
    pub async fn prune(&self, slug: &str, retention: &Retention) -> Result<usize> {
        let tenant = self.tenant(slug).await?;
        self.prune_for(&tenant, retention).await
    }

    async fn prune_for(&self, tenant: &TenantInfo, retention: &Retention) -> Result<usize> {
        let target = &self.inner()?.target;
        let all = restore::list(target, &tenant.id).await?;
        let now = time::OffsetDateTime::now_utc();
        let mut deleted = 0;
        let mut deleted_wal_until: Option<String> = None;
        let count = all.len();
        for (i, manifest) in all.iter().enumerate() {
            let newer = count - 1 - i;
            if newer == 0 {
                break;
            }
            let too_many = retention.keep > 0 && newer >= retention.keep;
            let too_old = retention.max_age.is_some_and(|age| {
                warren_backup::parse_time(&manifest.created)
                    .is_ok_and(|created| now - created > age)
            });
            if too_many || too_old {
                restore::delete(target, manifest).await?;
                deleted += 1;
            } else if deleted_wal_until.is_none() {
                deleted_wal_until = Some(manifest.id.clone());
            }
        }
        // Shipped WAL older than the oldest snapshot kept can no longer be replayed.
        if let Some(oldest) = deleted_wal_until.or_else(|| all.last().map(|m| m.id.clone())) {
            restore::delete_wal_before(target, &tenant.id, &oldest).await?;
        }
        Ok(deleted)
    }

    /// Tenant `slug`'s backup status.
    pub async fn status(&self, slug: &str) -> Result<Status> {
        let tenant = self
            .tenants_any()?
            .find(slug)
            .await?
            .ok_or(Error::NotFound)?;
        status_of(self.tenants_any()?, &tenant.id).await
    }

    pub(crate) fn tenants_any(&self) -> Result<&Tenants> {
        Ok(&self.inner()?.tenants)
    }

    /// The schedule's policy, once the schedule runs.
    pub(crate) fn policy(&self) -> Option<Arc<dyn Policy>> {
        let inner = self.inner.as_ref()?;
        inner
            .policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Restore drills passed and failed since the process started.
    pub(crate) fn drill_counts(&self) -> (u64, u64) {
        self.inner.as_ref().map_or((0, 0), |inner| {
            (
                inner
                    .drills_passed
                    .load(std::sync::atomic::Ordering::Relaxed),
                inner
                    .drills_failed
                    .load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    }

    /// Backups and restores running now on this node.
    pub(crate) fn running(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| {
            inner.busy.lock().unwrap_or_else(|p| p.into_inner()).len()
        })
    }

    /// Runs the schedule until the returned task is aborted: every `check`, each tenant whose
    /// last successful backup is older than its policy's interval (and whose database changed
    /// since) is backed up, at most `concurrency` at once, then pruned.
    pub fn start_schedule(
        &self,
        policy: Arc<dyn Policy>,
        check: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let inner = self.inner.as_ref()?;
        *inner.policy.lock().unwrap_or_else(|p| p.into_inner()) = Some(policy.clone());
        let backups = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(check);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = backups.run_due(policy.as_ref()).await {
                    tracing::warn!(error = %e, "backup schedule pass failed");
                }
            }
        }))
    }

    /// One pass of the schedule; returns how many backups were taken.
    pub async fn run_due(&self, policy: &dyn Policy) -> Result<usize> {
        let inner = self.inner()?;
        let tenants = inner.tenants.list().await?;
        let mut running = tokio::task::JoinSet::new();
        for tenant in tenants {
            let Some(every) = policy.interval(&tenant) else {
                continue;
            };
            // Another node serves it (cluster mode) and backs it up.
            if inner.check_here(&tenant.id).is_err() {
                continue;
            }
            let status = status_of(&inner.tenants, &tenant.id).await?;
            if !is_due(
                &status,
                every,
                &warren_tenant::tenant_dir(inner.tenants.root(), &tenant.id),
            ) {
                continue;
            }
            let backups = self.clone();
            let retention = policy.retention(&tenant);
            running.spawn(async move {
                let made = backups.create_for(&tenant, &warren_backup::quiet).await;
                match made {
                    Ok(_) => {
                        if let Err(e) = backups.prune_for(&tenant, &retention).await {
                            tracing::warn!(slug = %tenant.slug, error = %e, "pruning backups failed");
                        }
                        true
                    }
                    Err(e) => {
                        tracing::warn!(slug = %tenant.slug, error = %e, "scheduled backup failed");
                        false
                    }
                }
            });
        }
        let mut made = 0;
        while let Some(done) = running.join_next().await {
            if done.unwrap_or(false) {
                made += 1;
            }
        }
        Ok(made)
    }
}

/// Whether a tenant with `status` is due for a backup every `every`: never backed up, or the
/// last success is older than `every` and its database changed after it.
pub(crate) fn is_due(status: &Status, every: Duration, dir: &Path) -> bool {
    let Ok(last) = parse_sqlite_time(&status.last_success) else {
        return true;
    };
    let now = time::OffsetDateTime::now_utc();
    if now - last < every {
        return false;
    }
    let changed = ["data.db", "data.db-wal", "auxiliary.db", "auxiliary.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok()?.modified().ok())
        .max()
        .map(time::OffsetDateTime::from);
    changed.is_none_or(|changed| changed > last)
}

pub(crate) fn parse_sqlite_time(text: &str) -> std::result::Result<time::OffsetDateTime, ()> {
    // `YYYY-MM-DD HH:MM:SS.mmmZ` → RFC 3339.
    warren_backup::parse_time(&text.replacen(' ', "T", 1)).map_err(|_| ())
}

pub(crate) async fn status_of(tenants: &Tenants, tenant_id: &str) -> Result<Status> {
    let id = tenant_id.to_string();
    tenants
        .db()
        .read(move |c| {
            let last = c
                .prepare_cached(
                    "SELECT status, started, error FROM backup_runs
                     WHERE tenant_id = ?1 AND kind = 'snapshot' ORDER BY id DESC LIMIT 1",
                )?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let success: Option<(String, String)> = c
                .prepare_cached(
                    "SELECT started, backup FROM backup_runs WHERE tenant_id = ?1 AND kind = 'snapshot'
                     AND status = 'complete' ORDER BY id DESC LIMIT 1",
                )?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (last_status, last_started, last_error) = last.unwrap_or_default();
            let (last_success, last_backup) = success.unwrap_or_default();
            let (last_failure, last_failure_error) = c
                .prepare_cached(
                    "SELECT started, error FROM backup_runs WHERE tenant_id = ?1
                     AND kind = 'snapshot' AND status = 'failed' ORDER BY id DESC LIMIT 1",
                )?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .unwrap_or_default();
            let (last_drill, last_drill_status, last_drill_error) = c
                .prepare_cached(
                    "SELECT started, status, error FROM backup_runs WHERE tenant_id = ?1
                     AND kind IN ('drill', 'verify') ORDER BY id DESC LIMIT 1",
                )?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
                .unwrap_or_default();
            Ok(Status {
                last_status,
                last_started,
                last_error,
                last_success,
                last_backup,
                last_failure,
                last_failure_error,
                last_drill,
                last_drill_status,
                last_drill_error,
            })
        })
        .await
}

/// How often a tenant is backed up and how long its backups are kept. Plans decide this per
/// tenant; [`FixedPolicy`] applies one setting to every tenant.
pub trait Policy: Send + Sync {
    /// How often tenant `tenant` is backed up; `None` for never.
    fn interval(&self, tenant: &TenantInfo) -> Option<Duration>;
    /// Which of its backups are kept.
    fn retention(&self, tenant: &TenantInfo) -> Retention;
}

/// Which backups of a tenant are kept (the newest always is).
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Keep at most this many (0: no limit).
    pub keep: usize,
    /// Delete backups older than this.
    pub max_age: Option<Duration>,
}

/// The same schedule and retention for every active tenant.
#[derive(Debug, Clone)]
pub struct FixedPolicy {
    /// Interval between backups.
    pub every: Duration,
    /// What is kept.
    pub retention: Retention,
}

impl Policy for FixedPolicy {
    fn interval(&self, tenant: &TenantInfo) -> Option<Duration> {
        tenant.status.is_active().then_some(self.every)
    }

    fn retention(&self, _: &TenantInfo) -> Retention {
        self.retention.clone()
    }
}

impl Inner {
    /// Refuses an action on tenant `id`'s data when another node of the cluster serves it.
    fn check_here(&self, id: &str) -> Result<()> {
        match &self.registry {
            Some(registry) => Ok(registry.check_here(id)?),
            None => Ok(()),
        }
    }

    fn claim(&self, tenant_id: &str) -> Result<Busy<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(tenant_id.to_string()) {
            return Err(Error::Invalid(
                "backup",
                "A backup or restore of this tenant is already running.".into(),
            ));
        }
        Ok(Busy(self, tenant_id.to_string()))
    }

    /// [`Inner::claim`], waiting a while for a run that holds the tenant (such as the snapshot
    /// that starts its WAL shipping) to finish.
    async fn claim_wait(&self, tenant_id: &str) -> Result<Busy<'_>> {
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            match self.claim(tenant_id) {
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                claimed => return claimed,
            }
        }
    }

    async fn start_run(
        &self,
        tenant: &TenantInfo,
        kind: &'static str,
        backup: &str,
    ) -> Result<i64> {
        self.start_run_of(&tenant.id, &tenant.slug, kind, backup)
            .await
    }

    async fn start_run_of(
        &self,
        tenant_id: &str,
        slug: &str,
        kind: &'static str,
        backup: &str,
    ) -> Result<i64> {
        let (id, slug, backup) = (tenant_id.to_string(), slug.to_string(), backup.to_string());
        self.tenants
            .db()
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO backup_runs (tenant_id, slug, kind, backup) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, slug, kind, backup])?;
                Ok(c.last_insert_rowid())
            })
            .await
    }

    async fn finish_run(&self, run: i64, backup: &str, bytes: u64, error: &str) -> Result<()> {
        let (backup, error) = (backup.to_string(), error.to_string());
        let finished = self
            .tenants
            .db()
            .write(move |c| {
                Ok::<_, Error>(
                    c.prepare_cached(
                        "UPDATE backup_runs SET status = ?2, finished = strftime('%Y-%m-%d %H:%M:%fZ'),
                         backup = CASE WHEN ?3 = '' THEN backup ELSE ?3 END, bytes = ?4, error = ?5
                         WHERE id = ?1
                         RETURNING tenant_id, slug, kind, backup, status, started, finished, bytes,
                           error",
                    )?
                    .query_row(
                        params![
                            run,
                            if error.is_empty() {
                                "complete"
                            } else {
                                "failed"
                            },
                            backup,
                            bytes as i64,
                            error
                        ],
                        |r| {
                            Ok(BackupRun {
                                tenant_id: r.get(0)?,
                                slug: r.get(1)?,
                                kind: r.get(2)?,
                                backup: r.get(3)?,
                                status: r.get(4)?,
                                started: r.get(5)?,
                                finished: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                                bytes: r.get::<_, i64>(7)?.max(0) as u64,
                                error: r.get(8)?,
                            })
                        },
                    )
                    .optional()?,
                )
            })
            .await?;
        if let (Some(relay), Some(mut finished)) = (self.relay.get(), finished)
            && relay.elsewhere()
        {
            finished.error = clip(finished.error, 2000);
            relay.push(vec![Record::BackupRun(finished)]);
        }
        Ok(())
    }

    /// Replaces tenant `tenant`'s directory with the checked `staging` directory, with the
    /// tenant drained (without a registry only when no server runs: see [`Backups::exclusive`]).
    async fn swap_in(&self, tenant: &TenantInfo, staging: &Path) -> Result<()> {
        let registry = match &self.registry {
            Some(registry) => registry.clone(),
            None if self.exclusive => crate::lifecycle::offline_registry(self.tenants.root()),
            None => return Err(Error::NotFound),
        };
        let drained = registry.drain(&tenant.id, DRAIN_LIMIT).await?;
        let aside = self.tenants.root().join(format!(
            ".replaced-{}-{:08x}",
            tenant.id,
            rand::random::<u32>()
        ));
        Ok(drained.replace_files(staging, &aside).await?)
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn clip(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

async fn sync_dir(dir: &Path) -> Result<()> {
    tokio::fs::File::open(dir)
        .await
        .map_err(Error::Io)?
        .sync_all()
        .await
        .map_err(Error::Io)
}
/// When snapshot `manifest` was taken (ms since the Unix epoch): the checkpoint its database
/// copy follows for a shipped snapshot, else its start.
fn snapshot_ms(manifest: &Manifest) -> Option<i64> {
    match &manifest.wal {
        Some(start) => Some(start.time_ms),
        None => warren_backup::parse_time(&manifest.created)
            .ok()
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
    }
}

/// The restore moment `at`, or a validation error about the `at` field.
fn parse_at(at: &str) -> Result<time::OffsetDateTime> {
    warren_backup::parse_time(at).map_err(about_at)
}

/// A backup error about the requested moment, reported against the `at` field.
fn about_at(error: warren_backup::Error) -> Error {
    match error {
        warren_backup::Error::Invalid(reason) => Error::Invalid("at", reason),
        other => other.into(),
    }
}
