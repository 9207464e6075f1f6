//! The registry of open tenants: lazy open, idle close, LRU cap.
//!
//! Invariants:
//! - At most `max_open` tenants sit in the map; opening one more closes the least recently used.
//! - Closing only removes the registry's reference. Requests already holding a [`Tenant`] finish
//!   on it, and the database closes when the last handle drops, so eviction never breaks an
//!   in-flight request.
//! - Concurrent first requests for one tenant open it once (a shared `OnceCell` per slot).
//! - A tenant's files are deleted or replaced only under a [`Drained`] guard: new requests are
//!   refused, realtime clients disconnected, and every database handle (writer, readers, WAL
//!   shipping, request logs) closed before the guard is handed out.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use warren_records::Catalog;
use warren_records::policy::Policy;
use warren_store::Database;

use crate::dormant::{Dormancy, Dormant, FileState, Kept};
use crate::hooks::{Code, CodeLoader};
use crate::meter::Meter;
use crate::{DATABASE_FILE, Error, Result, database_options, tenant_dir};

/// Closed tenants whose collections and settings are kept for their next opening, per tenant
/// the registry may keep open: a closed tenant's entry is a small fraction of an open tenant's
/// memory (no SQLite connection, cache or schema), and a working set a few times the cap
/// reopens without reading anything.
const DORMANT_PER_OPEN: usize = 4;

/// Registry settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Directory holding one sub-directory per tenant.
    pub root: PathBuf,
    /// Most tenants open at once (bounds file descriptors and memory).
    pub max_open: usize,
    /// A tenant unused for this long is closed.
    pub idle_timeout: Duration,
}

/// An open tenant. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tenant {
    inner: Arc<TenantInner>,
}

struct TenantInner {
    /// Stable tenant id (also its directory name).
    id: String,
    /// The tenant's directory (database and stored files).
    dir: PathBuf,
    /// The tenant's database.
    db: Database,
    /// The tenant's collections; replaced whole after a schema change.
    catalog: RwLock<Arc<Catalog>>,
    /// The tenant's settings as last read (with the request policy parsed from them), and a
    /// generation bumped when they change.
    settings: Mutex<(u64, Option<Settings>)>,
    /// Held while the settings are read, so a burst of requests on a cold cache reads once.
    /// It holds the policy read last, which the next reading carries rate limit counters over
    /// from when the rate limits stayed the same.
    settings_read: tokio::sync::Mutex<Option<Arc<Policy>>>,
    /// The URL the tenant is reached at, as the host dispatcher last said; stands in for an
    /// `appURL` nobody chose (see [`crate::public_url`]).
    public_url: RwLock<Option<Arc<str>>>,
    /// The tenant's realtime clients; they are disconnected when the registry closes it.
    broker: warren_realtime::Broker,
    /// The tenant's request logs (`auxiliary.db`, opened on first use).
    logs: warren_logs::Logs,
    /// Usage counters and live limits (shared by every opening of this tenant id).
    meter: Arc<Meter>,
    /// The tenant's cron jobs: PocketBase's system jobs from the moment it opens, and those
    /// its code registers; gone with the open tenant.
    crons: crate::cron::Crons,
    /// Keeps the tenant's WAL shipping running while it is open (when the node ships WAL).
    _shipping: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// Loads the tenant's code (`pb_hooks`), if the node runs tenants' code.
    code_loader: Option<Arc<dyn CodeLoader>>,
    /// The tenant's code, loaded on first need; replaced by a fresh cell on reload. Dropped
    /// with the tenant, which unloads it.
    code: Mutex<Arc<CodeCell>>,
    /// Slow lists no index serves and the indexes proposed for them (see
    /// [`warren_records::advisor`]); empty, and allocating nothing, until a list is slow.
    advisor: warren_records::advisor::Advisor,
    /// Where this opening leaves its collections and settings once closed, and its
    /// generation there (see [`crate::dormant`]).
    dormancy: Weak<Dormancy>,
    generation: u64,
    /// The state of `data.db` and its `-wal` when the tenant opened: a file replaced since
    /// leaves nothing, and a close that opened no connection leaves the files as they were.
    files: Option<FileState>,
    /// Set when the collections could not be reloaded after a change: the catalog held may
    /// be stale, and the close leaves nothing behind.
    uncertain: std::sync::atomic::AtomicBool,
    /// Whether the tenant's snapshot on disk matched its files as this opening found them
    /// (see [`crate::snapshot`]).
    saved: bool,
}

impl Drop for TenantInner {
    /// Leaves the collections and settings to the tenant's next opening, with the state of
    /// its files once the database has closed (see [`crate::dormant`]).
    fn drop(&mut self) {
        // Its connections close as it goes: memory the trimmer may give back.
        warren_heap::note_freed();
        let Some(dormancy) = self.dormancy.upgrade() else {
            return;
        };
        let (id, generation, at_open) = (self.id.clone(), self.generation, self.files);
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone();
        let leaves = settings
            .filter(|_| !self.uncertain.load(Ordering::Relaxed))
            .map(|settings| {
                let catalog = self
                    .catalog
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let public_url = self
                    .public_url
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let kept = Kept {
                    stored: settings.stored,
                    value: settings.value,
                    policy: settings.policy,
                    public_url,
                };
                (catalog, kept)
            });
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            dormancy.closed(&id, generation, None);
            return;
        };
        let closed = self.db.on_close();
        let connected = self.db.connected();
        let path = self.db.path().to_path_buf();
        let root = self.dir.parent().map(Path::to_path_buf);
        // A shipped tenant always opens from its database: a snapshot would never be read.
        let saved = self.saved || self._shipping.is_some();
        runtime.spawn(async move {
            closed.wait().await;
            let dormant = leaves.and_then(|(catalog, kept)| {
                let at_open = at_open?;
                // Without a connection this opening changed nothing: no need to look again
                // (a change by anyone else shows at the next opening's look).
                let files = match connected.get() {
                    true => FileState::of(&path).ok()?,
                    false => at_open,
                };
                // Unless it connected, the files are as this opening found them, and so is
                // the snapshot it found matching them, if any.
                let saved = saved && !connected.get();
                (files.inode() == at_open.inode())
                    .then(|| Dormant::new(files, catalog, kept, saved))
            });
            let evicted = dormancy.closed(&id, generation, dormant);
            save_evicted(root, evicted).await;
        });
    }
}

/// A tenant's code once loaded (`None`: it has none).
type CodeCell = OnceCell<Option<Arc<dyn Code>>>;

/// Settings as read, and the request policy parsed from them once.
#[derive(Clone)]
struct Settings {
    /// As stored (over the defaults), before the public URL was applied; shared with every
    /// tenant that stored the same document.
    stored: Arc<serde_json::Value>,
    /// `stored` with the public URL applied, derived when first asked for.
    value: Derived,
    policy: Arc<Policy>,
}

/// A tenant's settings with its public URL applied, derived on first use: most requests need
/// only the policy, so most tenants hold no copy of their own.
pub(crate) type Derived = Arc<OnceLock<Arc<serde_json::Value>>>;

impl std::fmt::Debug for TenantInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantInner")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Continuous WAL shipping of open tenants (implemented by the backup crate). When a registry
/// has one, tenant databases are opened with `Database::open_shipped`.
pub trait Shipper: Send + Sync {
    /// Tenant `id` in `dir` opened its database `db`; the returned guard is kept while the
    /// tenant stays open and dropped when its last handle goes (shipping then finishes what
    /// is pending and lets the database close).
    fn opened(&self, id: &str, dir: &Path, db: &Database) -> Box<dyn std::any::Any + Send + Sync>;
}

impl Tenant {
    /// The tenant's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The tenant's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The tenant's request logs.
    pub fn logs(&self) -> &warren_logs::Logs {
        &self.inner.logs
    }

    /// The tenant's usage counters and live limits.
    pub fn meter(&self) -> &Arc<Meter> {
        &self.inner.meter
    }

    /// The tenant's cron jobs (run by the node's [`crate::cron::Scheduler`]).
    pub fn crons(&self) -> &crate::cron::Crons {
        &self.inner.crons
    }

    /// The tenant's realtime broker.
    pub fn broker(&self) -> &warren_realtime::Broker {
        &self.inner.broker
    }

    /// The tenant's index advisor.
    pub fn advisor(&self) -> &warren_records::advisor::Advisor {
        &self.inner.advisor
    }

    /// The tenant's database.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The tenant's code (`pb_hooks`), loaded on the first call; `None` when the tenant has
    /// none, the node runs no code, or it failed to load (the tenant's logs say why).
    pub async fn code(&self) -> Option<Arc<dyn Code>> {
        let loader = self.inner.code_loader.as_ref()?;
        let cell = self
            .inner
            .code
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(code) = cell.get() {
            return code.clone();
        }
        cell.get_or_init(|| async {
            match loader.load(self).await {
                Ok(code) => code,
                Err(message) => {
                    tracing::warn!(tenant = %self.id(), %message, "tenant code failed to load");
                    let mut data = serde_json::Map::new();
                    data.insert("type".into(), "hooks".into());
                    data.insert("error".into(), message.into());
                    self.logs().record(warren_logs::Entry::new(
                        warren_logs::level::ERROR,
                        "Failed to load pb_hooks",
                        data,
                    ));
                    None
                }
            }
        })
        .await
        .clone()
    }

    /// The tenant's code if it is loaded already (no loading).
    pub fn loaded_code(&self) -> Option<Arc<dyn Code>> {
        self.inner
            .code
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get()
            .cloned()
            .flatten()
    }

    /// Forgets the tenant's loaded code; it loads again from the tenant's directory, in the
    /// background when there is a `pb_hooks` folder (for its cron jobs), else on the next
    /// request that needs it (a deploy calls this). Calls running on the old code finish on
    /// it.
    pub fn reload_code(&self) {
        *self.inner.code.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(OnceCell::new());
        self.load_code_soon();
    }

    /// Applies the migrations of its `pb_migrations` folder not applied yet (files copied in
    /// by hand, an import) as the tenant opens, the first time in this process or once the
    /// folder changed (see [`crate::automigrate`]); a tenant without that folder pays one
    /// directory look-up. A failure goes into the tenant's logs and leaves the data as it was.
    async fn migrate_on_open(&self) {
        let Some(loader) = self.inner.code_loader.as_ref() else {
            return;
        };
        let dir = crate::code::migrations_dir(self.dir());
        let Some(stamp) = crate::automigrate::Stamp::of(&dir) else {
            return;
        };
        if crate::automigrate::applied(&dir, stamp) {
            return;
        }
        match loader.migrate(self, &dir).await {
            Ok(applied) => {
                crate::automigrate::record(&dir, stamp);
                if !applied.is_empty() {
                    tracing::info!(tenant = %self.id(), ?applied, "migrations applied");
                }
            }
            Err(message) => {
                tracing::warn!(tenant = %self.id(), %message, "migrations failed");
                let mut data = serde_json::Map::new();
                data.insert("type".into(), "migrations".into());
                data.insert("error".into(), message.clone().into());
                self.logs().record(warren_logs::Entry::new(
                    warren_logs::level::ERROR,
                    format!("Failed to apply pb_migrations: {message}"),
                    data,
                ));
            }
        }
    }

    /// Loads the tenant's code in the background when it has a `pb_hooks` folder and the node
    /// runs code, so the cron jobs it registers exist without waiting for a request that needs
    /// the code. The task holds the tenant only while it loads.
    fn load_code_soon(&self) {
        if self.inner.code_loader.is_none() || !crate::code::hooks_dir(self.dir()).is_dir() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let tenant = self.clone();
        handle.spawn(async move {
            tenant.code().await;
        });
    }

    /// The tenant's collections as of now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The tenant's settings, read once and kept until [`Tenant::forget_settings`].
    pub async fn settings(&self) -> Result<Arc<serde_json::Value>> {
        let settings = self.cached_settings().await?;
        Ok(settings
            .value
            .get_or_init(|| match self.public_url() {
                Some(url) if crate::public_url::applies(&settings.stored) => {
                    let mut value = (*settings.stored).clone();
                    crate::public_url::apply(&mut value, &url);
                    Arc::new(value)
                }
                _ => settings.stored.clone(),
            })
            .clone())
    }

    /// What the settings decide about each request (client address, superuser IPs, batch and
    /// rate limits), parsed once per settings change: no read and no parsing per request.
    pub async fn policy(&self) -> Result<Arc<Policy>> {
        Ok(self.cached_settings().await?.policy)
    }

    async fn cached_settings(&self) -> Result<Settings> {
        if let Some(settings) = &self
            .inner
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
        {
            return Ok(settings.clone());
        }
        let mut reading = self.inner.settings_read.lock().await;
        let generation = {
            let cached = self
                .inner
                .settings
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(settings) = &cached.1 {
                return Ok(settings.clone());
            }
            cached.0
        };
        let stored = warren_records::settings::load_shared(&self.inner.db)
            .await
            .map_err(|e| Error::Invalid(format!("the settings cannot be read: {e}")))?;
        // The policy reads nothing the public URL changes.
        let policy = Arc::new(match reading.as_deref() {
            Some(previous) => Policy::after(&stored, previous),
            None => Policy::from_settings(&stored),
        });
        *reading = Some(policy.clone());
        let loaded = Settings {
            stored,
            policy,
            value: Derived::default(),
        };
        let mut cached = self
            .inner
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A change committed while this read ran must not be overwritten by older settings.
        if cached.0 == generation {
            cached.1 = Some(loaded.clone());
        }
        Ok(loaded)
    }

    /// Tells the tenant the URL it is reached at (its verified custom domain, else its host
    /// under the platform domain). A change re-derives the cached settings, whose `appURL`
    /// may follow it, from the settings as stored (no new read).
    pub fn set_public_url(&self, url: &str) {
        let known = self
            .inner
            .public_url
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            == Some(url);
        if known {
            return;
        }
        *self
            .inner
            .public_url
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::from(url));
        let mut cached = self
            .inner
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A read running now finishes with the old URL: it must not be kept. The policy reads
        // nothing the URL changes; the settings derive again when next asked for.
        cached.0 += 1;
        cached.1 = cached.1.take().map(|old| Settings {
            value: Derived::default(),
            ..old
        });
    }

    /// The URL the tenant is reached at, once a request has told it.
    pub fn public_url(&self) -> Option<Arc<str>> {
        self.inner
            .public_url
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `settings` with the public URL as `meta.appURL` when nobody chose one.
    pub fn with_public_url(&self, mut settings: serde_json::Value) -> serde_json::Value {
        if let Some(url) = self.public_url() {
            crate::public_url::apply(&mut settings, &url);
        }
        settings
    }

    /// Drops the cached settings (after a settings change has committed).
    pub fn forget_settings(&self) {
        let mut cached = self
            .inner
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cached.0 += 1;
        cached.1 = None;
    }

    /// Reloads the collections from the database (after a schema change has committed).
    pub async fn reload_catalog(&self) -> Result<Arc<Catalog>> {
        let loaded = load_catalog(&self.inner.db).await;
        if loaded.is_err() {
            self.inner.uncertain.store(true, Ordering::Relaxed);
        }
        let catalog = Arc::new(loaded?);
        *self
            .inner
            .catalog
            .write()
            .unwrap_or_else(|p| p.into_inner()) = catalog.clone();
        // Clients signed in to a collection that is gone (or no longer auth) become guests.
        self.inner.broker.catalog_changed(&catalog);
        Ok(catalog)
    }
}

async fn load_catalog(db: &Database) -> Result<Catalog> {
    db.read(|c| {
        Catalog::load(c).map_err(|e| Error::Invalid(format!("the collections cannot be read: {e}")))
    })
    .await
}

/// The open tenants of this node. Cheap to clone; the idle sweeper stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    /// Settings.
    config: RegistryConfig,
    /// Tenant id → slot. The lock is held only for map operations, never across an await.
    slots: Mutex<HashMap<String, Slot>>,
    /// Reference point for `last_used` stamps.
    epoch: Instant,
    /// Tenant id → usage meter, kept while tenants close and reopen.
    meters: Mutex<HashMap<String, Arc<Meter>>>,
    /// Tenants held closed by a [`Drained`] guard (their data is being replaced).
    draining: Mutex<HashSet<String>>,
    /// Tenant id → tenants closed while requests still held them, so a later drain waits for
    /// those handles too. Weak: an entry costs nothing once the last handle is gone.
    lingering: Mutex<HashMap<String, Vec<Weak<TenantInner>>>>,
    /// What closed tenants left for their next opening.
    dormancy: Arc<Dormancy>,
    /// The open tenants to close next (locked only under the map's lock).
    victims: Mutex<Victims>,
    /// Request logs closed tenants had not written yet, waiting for their next opening.
    logs: warren_logs::Backlog,
    /// WAL shipping of opened tenants, if the node ships.
    shipper: RwLock<Option<Arc<dyn Shipper>>>,
    /// Loads the code of opened tenants, if the node runs tenants' code.
    code_loader: RwLock<Option<Arc<dyn CodeLoader>>>,
    /// What checks a deploy's staged hooks before they go live (none: no check).
    code_check: RwLock<Option<Arc<dyn crate::hooks::CodeCheck>>>,
    /// Which tenants another node serves (cluster mode; none: every tenant is here).
    locality: RwLock<Option<Arc<dyn crate::Locality>>>,
}

struct Slot {
    /// The tenant once opened; shared so concurrent first requests open it once.
    cell: Arc<OnceCell<Tenant>>,
    /// Milliseconds since `epoch` of the last request.
    last_used: Arc<AtomicU64>,
}

impl Registry {
    /// Creates the registry and starts its idle sweeper on the current runtime.
    pub fn new(config: RegistryConfig) -> Self {
        let dormant = config.max_open.saturating_mul(DORMANT_PER_OPEN);
        let inner = Arc::new(RegistryInner {
            config,
            slots: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            meters: Mutex::new(HashMap::new()),
            draining: Mutex::new(HashSet::new()),
            lingering: Mutex::new(HashMap::new()),
            dormancy: Arc::new(Dormancy::new(dormant)),
            victims: Mutex::new(Victims::default()),
            logs: warren_logs::Backlog::new(),
            shipper: RwLock::new(None),
            code_loader: RwLock::new(None),
            code_check: RwLock::new(None),
            locality: RwLock::new(None),
        });
        let every = (inner.config.idle_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(15));
        tokio::spawn(sweep_idle(Arc::downgrade(&inner), every));
        Self { inner }
    }

    /// Ships the WAL of every tenant opened from now on.
    pub fn set_shipper(&self, shipper: Arc<dyn Shipper>) {
        *self
            .inner
            .shipper
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(shipper);
    }

    /// Runs the code (`pb_hooks`) of every tenant opened from now on through `loader`.
    pub fn set_code_loader(&self, loader: Arc<dyn CodeLoader>) {
        *self
            .inner
            .code_loader
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(loader);
    }

    /// Checks the staged hooks of every deploy from now on through `check`.
    pub fn set_code_check(&self, check: Arc<dyn crate::hooks::CodeCheck>) {
        *self
            .inner
            .code_check
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(check);
    }

    /// Asks `locality` from now on whether a tenant is served by another node.
    pub fn set_locality(&self, locality: Arc<dyn crate::Locality>) {
        *self
            .inner
            .locality
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(locality);
    }

    /// Refuses ([`Error::Elsewhere`]) an action on tenant `id`'s data when another node of
    /// the cluster serves it: this node's copy is then stale, and what is done to it is lost.
    pub fn check_here(&self, id: &str) -> Result<()> {
        match self.locality() {
            Some(locality) if locality.elsewhere(id) => Err(Error::Elsewhere),
            _ => Ok(()),
        }
    }

    /// The cluster's view of where tenants are served, if the node is in a cluster.
    pub fn locality(&self) -> Option<Arc<dyn crate::Locality>> {
        self.inner
            .locality
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The node's code loader (which also runs migrations), if it runs tenants' code.
    pub fn code_loader(&self) -> Option<Arc<dyn CodeLoader>> {
        self.inner
            .code_loader
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The check of a deploy's staged hooks, if the node installed one.
    pub fn code_check(&self) -> Option<Arc<dyn crate::hooks::CodeCheck>> {
        self.inner
            .code_check
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Drops the loaded code of tenant `id` if it is open; its next request that needs the
    /// code loads it again from the tenant's directory (called after a deploy).
    pub fn reload_code(&self, id: &str) {
        let open = self
            .inner
            .lock()
            .get(id)
            .and_then(|slot| slot.cell.get().cloned());
        if let Some(tenant) = open {
            tenant.reload_code();
        }
    }

    /// The directory holding the tenants.
    pub fn root(&self) -> &Path {
        &self.inner.config.root
    }

    /// Returns tenant `id`, opening it if needed.
    pub async fn get(&self, id: &str) -> Result<Tenant> {
        if self.inner.is_draining(id) {
            return Err(Error::Draining);
        }
        let mut evicted = None;
        let (cell, last_used) = {
            let mut slots = self.inner.lock();
            let now = self.inner.now_ms();
            let slot = slots.entry(id.to_string()).or_insert_with(|| Slot {
                cell: Arc::new(OnceCell::new()),
                last_used: Arc::new(AtomicU64::new(now)),
            });
            slot.last_used.store(now, Ordering::Relaxed);
            let handles = (slot.cell.clone(), slot.last_used.clone());
            if slots.len() > self.inner.config.max_open {
                let mut victims = self.inner.victims.lock().unwrap_or_else(|p| p.into_inner());
                evicted = victims.evict(&mut slots, id);
            }
            handles
        };
        // Closed outside the map's lock, and off this request's thread where that is slow.
        release(evicted);
        let root = self.inner.config.root.clone();
        let shipper = self
            .inner
            .shipper
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let code_loader = self
            .inner
            .code_loader
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let opened = cell
            .get_or_try_init(|| {
                open(
                    root,
                    id.to_string(),
                    self.meter(id),
                    shipper,
                    code_loader,
                    self.inner.dormancy.clone(),
                    &self.inner.logs,
                )
            })
            .await;
        match opened {
            // A drain that began while this request opened the tenant wins.
            Ok(_) if self.inner.is_draining(id) => Err(Error::Draining),
            Ok(tenant) => {
                last_used.store(self.inner.now_ms(), Ordering::Relaxed);
                Ok(tenant.clone())
            }
            Err(e) => {
                // Do not keep an empty slot for a tenant that failed to open.
                let mut slots = self.inner.lock();
                if slots
                    .get(id)
                    .is_some_and(|slot| Arc::ptr_eq(&slot.cell, &cell))
                {
                    slots.remove(id);
                }
                Err(e)
            }
        }
    }

    /// The usage meter of tenant `id` (created on first use; kept while it is closed).
    pub fn meter(&self, id: &str) -> Arc<Meter> {
        self.inner
            .meters()
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// Every meter: tenant id and counters.
    pub fn meters(&self) -> Vec<(String, Arc<Meter>)> {
        self.inner
            .meters()
            .iter()
            .map(|(id, meter)| (id.clone(), meter.clone()))
            .collect()
    }

    /// Drops the meter of tenant `id` (after its last usage was persisted, or on deletion).
    pub fn forget_meter(&self, id: &str) {
        self.inner.meters().remove(id);
    }

    /// Closes tenant `id` if open (in-flight requests finish on their handles). Its next
    /// opening reads everything again: a caller closes a tenant to act on its files.
    pub fn close(&self, id: &str) {
        self.inner.dormancy.forget(id);
        self.inner.logs.discard(&self.aux_path(id));
        let removed = self.inner.lock().remove(id);
        removed.iter().for_each(disconnect);
        let closed = removed.and_then(|slot| slot.cell.get().map(|t| Arc::downgrade(&t.inner)));
        self.inner.linger(id, closed.into_iter().collect());
    }

    /// Closes tenant `id` and keeps it closed until the returned guard is dropped; requests
    /// meanwhile get [`Error::Draining`]. Returns once every handle to the tenant is gone and
    /// its databases are closed, so its files can be replaced; fails after `limit` if handles
    /// are still held (the tenant then reopens when the guard drops).
    pub async fn drain(&self, id: &str, limit: Duration) -> Result<Drained> {
        if !self
            .inner
            .draining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string())
        {
            return Err(Error::Draining);
        }
        let guard = Drained {
            registry: self.clone(),
            id: id.to_string(),
        };
        // Its files are about to change: the next opening reads everything again.
        self.inner.dormancy.forget(id);
        // The open tenant, and any closed earlier whose handles a request still holds.
        let mut open = self.inner.take_lingering(id);
        if let Some(slot) = self.inner.lock().remove(id) {
            disconnect(&slot);
            open.extend(slot.cell.get().cloned());
        }
        let mut closing = Vec::new();
        for tenant in &open {
            let _ = tenant.logs().flush().await;
            closing.push(tenant.db().on_close());
            closing.extend(tenant.logs().on_close());
        }
        let held: Vec<_> = open.iter().map(|t| Arc::downgrade(&t.inner)).collect();
        drop(open);
        let closed = tokio::time::timeout(limit, async {
            for db in closing {
                db.wait().await;
            }
            // Every handle is gone, so no close parks more: write what earlier ones left.
            self.inner.logs.settle(&self.aux_path(id)).await;
        })
        .await;
        match closed {
            Ok(()) => Ok(guard),
            Err(_) => {
                // The next drain waits for these handles again.
                self.inner.linger(id, held);
                Err(Error::Invalid(
                    "the tenant is still in use; try again".into(),
                ))
            }
        }
    }

    /// Closes every tenant and disconnects their realtime clients (server shutdown: open SSE
    /// streams would otherwise hold the graceful drain open).
    pub fn close_all(&self) {
        let removed = std::mem::take(&mut *self.inner.lock());
        removed.values().for_each(disconnect);
    }

    /// Writes the request logs closed tenants left unwritten (see [`warren_logs::Backlog`]),
    /// waiting at most `limit`; false if that was not enough. For a server stopping, after
    /// [`Registry::close_all`].
    pub async fn write_closed_logs(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.inner.logs.write_all())
            .await
            .is_ok()
    }

    /// The request logs of closed tenants waiting to be written: tenants, approximate bytes.
    pub fn closed_logs(&self) -> (usize, usize) {
        self.inner.logs.size()
    }

    fn aux_path(&self, id: &str) -> PathBuf {
        tenant_dir(&self.inner.config.root, id).join(warren_logs::AUXILIARY_FILE)
    }

    /// Drains tenant `id` (see [`Registry::drain`], waiting at most `limit`) and deletes its
    /// directory and everything in it; nothing is deleted while it is still in use.
    pub async fn remove(&self, id: &str, limit: Duration) -> Result<()> {
        self.drain(id, limit).await?.remove_files().await
    }

    /// The tenants open now (not those being drained).
    pub fn open_tenants(&self) -> Vec<Tenant> {
        let open: Vec<Tenant> = self
            .inner
            .lock()
            .values()
            .filter_map(|slot| slot.cell.get().cloned())
            .collect();
        open.into_iter()
            .filter(|t| !self.inner.is_draining(t.id()))
            .collect()
    }

    /// How many tenants are open now.
    pub fn open_count(&self) -> usize {
        self.inner
            .lock()
            .values()
            .filter(|slot| slot.cell.initialized())
            .count()
    }

    /// Closes every tenant unused for longer than the idle timeout; returns how many.
    pub fn close_idle(&self) -> usize {
        self.inner.close_idle()
    }
}

/// Holds a drained tenant closed; dropping it lets the tenant open again.
pub struct Drained {
    registry: Registry,
    id: String,
}

impl Drained {
    /// The drained tenant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Deletes the drained tenant's directory and everything in it (already gone is fine).
    /// Its databases are closed, so no handle writes into the deleted files; once the guard
    /// drops, the tenant is simply not found.
    pub async fn remove_files(self) -> Result<()> {
        let dir = tenant_dir(&self.registry.inner.config.root, &self.id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts the directory `staging` (on the same file system) in place of the drained
    /// tenant's directory: the old one is renamed to `aside`, the new one renamed in, the
    /// parent synced, and only then the old one removed. On failure the old one is put back.
    /// The tenant's own kept backups (`backups/`, see [`crate::backups`]) and its code
    /// (`pb_hooks/`, `pb_migrations/`, `pb_public/`, see [`crate::code`]) and its secrets
    /// ([`crate::secrets`]) are not its data: they move across into the new directory, as
    /// PocketBase keeps them over a restore, unless `staging` brings its own.
    pub async fn replace_files(&self, staging: &Path, aside: &Path) -> Result<()> {
        let root = &self.registry.inner.config.root;
        let (dir, old) = (tenant_dir(root, &self.id), aside);
        tokio::fs::rename(&dir, old).await?;
        let mut moved = Vec::new();
        let kept = [
            crate::backups::BACKUPS_DIR,
            crate::code::HOOKS,
            crate::code::MIGRATIONS,
            crate::code::PUBLIC,
            crate::secrets::FILE,
        ];
        for name in kept {
            let (kept, carried) = (old.join(name), staging.join(name));
            if !tokio::fs::try_exists(&carried).await.unwrap_or(true)
                && tokio::fs::rename(&kept, &carried).await.is_ok()
            {
                moved.push((kept, carried));
            }
        }
        if let Err(e) = tokio::fs::rename(staging, &dir).await {
            for (kept, carried) in moved {
                let _ = tokio::fs::rename(&carried, &kept).await;
            }
            let _ = tokio::fs::rename(old, &dir).await;
            return Err(e.into());
        }
        tokio::fs::File::open(root).await?.sync_all().await?;
        let _ = tokio::fs::remove_dir_all(old).await;
        crate::automigrate::forget(&crate::code::migrations_dir(&dir));
        Ok(())
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        self.registry
            .inner
            .draining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl RegistryInner {
    fn is_draining(&self, id: &str) -> bool {
        self.draining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding this lock cannot leave the map inconsistent (single operations),
        // so a poisoned lock is still usable.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers `held` (closed tenants of `id`) until their handles are gone.
    fn linger(&self, id: &str, held: Vec<Weak<TenantInner>>) {
        let mut lingering = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        lingering.retain(|_, held| {
            held.retain(|t| t.strong_count() > 0);
            !held.is_empty()
        });
        let alive = held.into_iter().filter(|t| t.strong_count() > 0);
        lingering.entry(id.to_string()).or_default().extend(alive);
        if lingering.get(id).is_some_and(Vec::is_empty) {
            lingering.remove(id);
        }
    }

    /// The closed tenants of `id` still held by a request.
    fn take_lingering(&self, id: &str) -> Vec<Tenant> {
        let held = self
            .lingering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .unwrap_or_default();
        held.iter()
            .filter_map(Weak::upgrade)
            .map(|inner| Tenant { inner })
            .collect()
    }

    fn meters(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Meter>>> {
        self.meters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn close_idle(&self) -> usize {
        let limit = self.config.idle_timeout.as_millis() as u64;
        let now = self.now_ms();
        // A tenant with realtime clients is in use even without requests.
        let closed: Vec<Slot> = self
            .lock()
            .extract_if(|_, slot| {
                now.saturating_sub(slot.last_used.load(Ordering::Relaxed)) >= limit
                    && slot
                        .cell
                        .get()
                        .is_none_or(|t| t.broker().client_count() == 0)
            })
            .map(|(_, slot)| slot)
            .collect();
        let count = closed.len();
        // Outside the map's lock: requests for other tenants do not wait for these closes.
        closed.into_iter().for_each(|slot| release(Some(slot)));
        count
    }
}

/// Open tenants found least recently used by the last scan, for the closes that follow.
///
/// The scan is O(open tenants) under the map's lock, and past the cap every open closes a
/// tenant: one scan finds the [`VICTIMS`] least recently used, and the closes that follow take
/// them in order. The result is exactly the least recently used tenant still: a candidate used
/// since the scan (its stamp changed) or closed since (its slot is another) is skipped, and
/// every tenant not among the candidates was used later than all of them.
#[derive(Default)]
struct Victims {
    /// Most recently used first, so the next to close is at the end.
    next: Vec<(u64, String, Arc<AtomicU64>)>,
}

/// Candidates one scan finds.
const VICTIMS: usize = 32;

impl Victims {
    /// Removes the least recently used slot other than `keep` and returns it, for the caller to
    /// release once the map's lock is let go.
    fn evict(&mut self, slots: &mut HashMap<String, Slot>, keep: &str) -> Option<Slot> {
        loop {
            let Some((used, id, stamp)) = self.next.pop() else {
                self.scan(slots, keep);
                if self.next.is_empty() {
                    return None;
                }
                continue;
            };
            let unchanged = slots.get(&id).is_some_and(|slot| {
                Arc::ptr_eq(&slot.last_used, &stamp)
                    && slot.last_used.load(Ordering::Relaxed) == used
            });
            if unchanged && id != keep {
                return slots.remove(&id);
            }
        }
    }

    fn scan(&mut self, slots: &HashMap<String, Slot>, keep: &str) {
        // The tenant being opened was stamped just now: it is no candidate.
        let mut all: Vec<(u64, &String, &Arc<AtomicU64>)> = slots
            .iter()
            .filter(|(id, _)| id.as_str() != keep)
            .map(|(id, slot)| (slot.last_used.load(Ordering::Relaxed), id, &slot.last_used))
            .collect();
        let count = VICTIMS.min(all.len());
        if count < all.len() {
            all.select_nth_unstable_by_key(count, |(used, _, _)| *used);
            all.truncate(count);
        }
        all.sort_unstable_by_key(|(used, _, _)| std::cmp::Reverse(*used));
        self.next = all
            .into_iter()
            .map(|(used, id, stamp)| (used, id.clone(), stamp.clone()))
            .collect();
    }
}

/// Lets go of a slot taken out of the map: its realtime clients are disconnected and, when no
/// request holds the tenant any more, the tenant closes. Its databases close on the blocking
/// pool whoever drops them; a tenant whose code is loaded is dropped there too, since
/// unloading a runtime takes a while.
fn release(slot: Option<Slot>) {
    let Some(slot) = slot else { return };
    disconnect(&slot);
    let slow = slot
        .cell
        .get()
        .is_some_and(|tenant| tenant.loaded_code().is_some());
    if slow && let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn_blocking(move || drop(slot));
    }
}

/// Disconnects a closed tenant's realtime clients (they reconnect and reopen it).
fn disconnect(slot: &Slot) {
    if let Some(tenant) = slot.cell.get() {
        tenant.broker().close();
    }
}

async fn open(
    root: PathBuf,
    id: String,
    meter: Arc<Meter>,
    shipper: Option<Arc<dyn Shipper>>,
    code_loader: Option<Arc<dyn CodeLoader>>,
    dormancy: Arc<Dormancy>,
    backlog: &warren_logs::Backlog,
) -> Result<Tenant> {
    let dir = tenant_dir(&root, &id);
    let path = dir.join(DATABASE_FILE);
    // Never create a database for a tenant that was not provisioned (or was deleted). Two
    // `stat` calls, on this thread: they tell whether the files are as the last close left them.
    let files = match FileState::of(&path) {
        Ok(files) => files,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound),
        Err(e) => return Err(e.into()),
    };
    // A shipped database records its commits from its first open: it always opens whole.
    let (generation, dormant) = dormancy.open(&id, shipper.is_none().then_some(files));
    let opened = match dormant {
        // Reopened as it was closed: nothing to read, and no connection until one is needed.
        Some(dormant) => Opened {
            db: Database::open_lazy(&path, database_options())?,
            catalog: dormant.catalog,
            settings: dormant.settings,
            saved: dormant.saved,
        },
        None => match shipper.is_none().then(|| from_snapshot(&dir, files)) {
            Some(read) => match read.await {
                // Opened as provisioning left it: the same, without reading the database.
                Some((catalog, stored)) => Opened {
                    saved: true,
                    ..Opened::read(
                        Database::open_lazy(&path, database_options())?,
                        catalog,
                        stored,
                    )
                },
                None => open_files(&path, false).await?,
            },
            None => open_files(&path, true).await?,
        },
    };
    let Opened {
        db,
        catalog,
        settings: kept,
        saved,
    } = opened;
    let catalog = RwLock::new(catalog);
    let (stored, policy) = (kept.stored.clone(), kept.policy.clone());
    let settings = Settings {
        value: kept.value,
        stored: kept.stored,
        policy: kept.policy,
    };
    let shipping = shipper.map(|s| s.opened(&id, &dir, &db));
    let logs =
        warren_logs::Logs::parking(dir.join(warren_logs::AUXILIARY_FILE), db.clone(), backlog);
    // The settings are known: the first batch of logs need not open a read connection to
    // read them again.
    logs.set_settings(warren_logs::LogSettings::from_settings(&stored));
    let crons = crate::cron::Crons::default();
    crate::cron::system::register(&crons);
    tracing::debug!(tenant = %id, "tenant opened");
    let tenant = Tenant {
        inner: Arc::new(TenantInner {
            id,
            dir,
            db,
            catalog,
            settings: Mutex::new((0, Some(settings))),
            settings_read: tokio::sync::Mutex::new(Some(policy)),
            public_url: RwLock::new(kept.public_url),
            logs,
            broker: warren_realtime::Broker::new(),
            meter,
            crons,
            _shipping: shipping,
            code_loader,
            code: Mutex::new(Arc::new(OnceCell::new())),
            advisor: warren_records::advisor::Advisor::default(),
            dormancy: Arc::downgrade(&dormancy),
            generation,
            files: Some(files),
            uncertain: std::sync::atomic::AtomicBool::new(false),
            saved,
        }),
    };
    tenant.migrate_on_open().await;
    // A tenant whose code registers cron jobs gets them as it opens.
    tenant.load_code_soon();
    Ok(tenant)
}

/// A tenant's database handle with its collections, settings and request policy.
struct Opened {
    db: Database,
    catalog: Arc<Catalog>,
    settings: Kept,
    /// Whether the snapshot on disk matches the files as they were found.
    saved: bool,
}

/// The collections and settings provisioning saved for the tenant in `dir`, if its files are
/// still in state `files` (see [`crate::snapshot`]); read and parsed on the blocking pool. A
/// snapshot whose collections do not parse is deleted: the database decides.
async fn from_snapshot(dir: &Path, files: FileState) -> Option<(Catalog, Arc<serde_json::Value>)> {
    let dir = dir.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        let contents = crate::snapshot::read(&dir, files)?;
        let Ok(catalog) = Catalog::from_rows(&contents.collections) else {
            crate::snapshot::discard(&dir);
            return None;
        };
        let stored = warren_records::settings::shared_of(contents.settings.as_deref());
        Some((catalog, stored))
    });
    read.await.ok().flatten()
}

/// Saves, as each tenant's snapshot, the dormant entries the bound pushed out that no snapshot
/// on disk matches (see [`crate::snapshot`]), on the blocking pool. `root` is the tenants'
/// directory.
async fn save_evicted(root: Option<PathBuf>, evicted: Vec<(String, Dormant)>) {
    let (Some(root), false) = (root, evicted.iter().all(|(_, d)| d.saved)) else {
        return;
    };
    let save = move || {
        for (id, dormant) in evicted.into_iter().filter(|(_, d)| !d.saved) {
            let contents =
                crate::snapshot::Contents::of(&dormant.catalog, &dormant.settings.stored);
            let dir = crate::tenant_dir(&root, &id);
            if let Err(e) = crate::snapshot::write(&dir, dormant.files(), contents) {
                tracing::warn!(tenant = %id, error = %e, "catalog snapshot not written");
            }
        }
    };
    let _ = tokio::task::spawn_blocking(save).await;
}

/// Opens the tenant database at `path` and reads its collections and settings, on the writer
/// connection as it opens: one blocking hop, and no read connection opened for them.
async fn open_files(path: &Path, shipped: bool) -> Result<Opened> {
    let (db, read) = Database::open_reading(path, database_options(), shipped, |c| {
        let catalog = Catalog::load(c)
            .map_err(|e| Error::Invalid(format!("the collections cannot be read: {e}")))?;
        let stored = warren_records::settings::load_shared_in(c)
            .map_err(|e| Error::Invalid(format!("the settings cannot be read: {e}")))?;
        Ok::<_, Error>((catalog, stored))
    })
    .await?;
    let (catalog, stored) = read?;
    Ok(Opened::read(db, catalog, stored))
}

impl Opened {
    /// `db` with the collections and stored settings just read for it.
    fn read(db: Database, catalog: Catalog, stored: Arc<serde_json::Value>) -> Self {
        Opened {
            db,
            catalog: Arc::new(catalog),
            settings: Kept {
                value: Derived::default(),
                policy: Arc::new(Policy::from_settings(&stored)),
                stored,
                public_url: None,
            },
            saved: false,
        }
    }
}

/// Background task: closes idle tenants until the registry is dropped.
async fn sweep_idle(registry: Weak<RegistryInner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let closed = registry.close_idle();
        if closed > 0 {
            tracing::debug!(closed, "idle tenants closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision;

    async fn registry(max_open: usize, idle: Duration) -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(RegistryConfig {
            root: dir.path().to_path_buf(),
            max_open,
            idle_timeout: idle,
        });
        (dir, registry)
    }

    #[tokio::test]
    async fn unknown_tenants_are_not_created() {
        let (dir, registry) = registry(4, Duration::from_secs(60)).await;
        assert!(matches!(registry.get("nope").await, Err(Error::NotFound)));
        assert!(!dir.path().join("nope").exists());
        assert_eq!(registry.open_count(), 0);
    }

    #[tokio::test]
    async fn the_lru_cap_bounds_open_tenants() {
        let (dir, registry) = registry(3, Duration::from_secs(60)).await;
        for i in 0..10 {
            provision(dir.path(), &format!("t{i}")).await.unwrap();
            registry.get(&format!("t{i}")).await.unwrap();
            assert!(registry.open_count() <= 3);
        }
        // The most recent ones stay open; an evicted one reopens on demand.
        registry.get("t0").await.unwrap();
        assert_eq!(registry.open_count(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_evicted_tenant_releases_its_databases() {
        let (dir, registry) = registry(1, Duration::from_secs(60)).await;
        for id in ["a", "b"] {
            provision(dir.path(), id).await.unwrap();
        }
        let a = registry.get("a").await.unwrap();
        // A write connects it (a tenant opened as provisioning left it has no connection yet).
        a.db()
            .write(|c| {
                Ok::<_, Error>(c.execute("INSERT INTO _params (id, value) VALUES ('k', '1')", [])?)
            })
            .await
            .unwrap();
        a.logs().record(warren_logs::Entry::new(
            warren_logs::level::INFO,
            "GET /api/health",
            serde_json::Map::new(),
        ));
        a.logs().flush().await.unwrap();
        let closed = [a.db().on_close(), a.logs().on_close().unwrap()];
        drop(a);
        // Opening "b" past the cap of one evicts "a": both its databases close.
        registry.get("b").await.unwrap();
        for db in closed {
            tokio::time::timeout(Duration::from_secs(5), db.wait())
                .await
                .unwrap();
        }
        // Checkpointed: the WAL is kept, empty.
        let wal = std::fs::metadata(dir.path().join("a").join("data.db-wal"));
        assert!(wal.is_ok_and(|m| m.len() == 0));
    }

    /// Opens `id`, then closes it by opening `other` past a cap of one, and waits until its
    /// close has left what it leaves; returns the catalog it had.
    async fn open_and_evict(registry: &Registry, id: &str, other: &str) -> Arc<Catalog> {
        let tenant = registry.get(id).await.unwrap();
        let catalog = tenant.catalog();
        let closed = tenant.db().on_close();
        drop(tenant);
        registry.get(other).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), closed.wait())
            .await
            .unwrap();
        // The entry is recorded by a task woken by the close.
        for _ in 0..100 {
            if registry.inner.dormancy.len() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        catalog
    }

    fn slots(stamps: &[(&str, u64)]) -> HashMap<String, Slot> {
        stamps
            .iter()
            .map(|(id, used)| {
                let slot = Slot {
                    cell: Arc::new(OnceCell::new()),
                    last_used: Arc::new(AtomicU64::new(*used)),
                };
                (id.to_string(), slot)
            })
            .collect()
    }

    #[test]
    fn closes_take_the_least_recently_used_first_and_skip_those_used_since() {
        let mut slots = slots(&[("a", 5), ("b", 1), ("c", 3), ("d", 2), ("e", 4)]);
        let mut victims = Victims::default();
        let mut evict = |slots: &mut HashMap<String, Slot>, keep: &str| {
            let before: HashSet<String> = slots.keys().cloned().collect();
            victims.evict(slots, keep).map(|_| {
                let after: HashSet<String> = slots.keys().cloned().collect();
                before.difference(&after).next().unwrap().clone()
            })
        };
        // The tenant being opened (stamped now) stays, whatever the candidates.
        slots.extend(self::slots(&[("f", 10)]));
        assert_eq!(evict(&mut slots, "f").as_deref(), Some("b"));
        assert_eq!(evict(&mut slots, "x").as_deref(), Some("d"));
        // "c" was used since the scan: "e" goes first.
        slots["c"].last_used.store(9, Ordering::Relaxed);
        assert_eq!(evict(&mut slots, "x").as_deref(), Some("e"));
        // "a" closed and opened again since (a new slot): its old stamp no longer counts.
        slots.remove("a");
        slots.extend(self::slots(&[("a", 5)]));
        assert_eq!(evict(&mut slots, "x").as_deref(), Some("a"));
        assert_eq!(evict(&mut slots, "x").as_deref(), Some("c"));
        assert_eq!(evict(&mut slots, "x").as_deref(), Some("f"));
        assert_eq!(evict(&mut slots, "x"), None);
    }

    #[test]
    fn one_scan_serves_many_closes_in_order() {
        let stamps: Vec<(String, u64)> = (0..100).map(|i| (format!("t{i}"), 1000 - i)).collect();
        let refs: Vec<(&str, u64)> = stamps.iter().map(|(id, u)| (id.as_str(), *u)).collect();
        let mut slots = slots(&refs);
        let mut victims = Victims::default();
        let mut order = Vec::new();
        while victims.evict(&mut slots, "none").is_some() {
            order.push(100 - slots.len());
        }
        assert_eq!(order.len(), 100);
        // Oldest first: t99 (stamp 901) ... t0 (stamp 1000), checked by what is left.
        let mut slots = self::slots(&refs);
        for expected in (0..100).rev() {
            victims.evict(&mut slots, "none").unwrap();
            assert!(!slots.contains_key(&format!("t{expected}")));
            assert_eq!(slots.len(), expected);
        }
    }

    /// Another program (its own connection) changes tenant `id`'s app name.
    async fn rename_elsewhere(root: &Path, id: &str, name: &str) {
        let db = crate::open_database(root, id).await.unwrap();
        let mut settings = warren_records::settings::load(&db).await.unwrap();
        settings["meta"]["appName"] = name.into();
        warren_records::settings::save(&db, &settings)
            .await
            .unwrap();
        db.close().await;
    }

    /// Changes `tenant`'s app name as a settings request does.
    async fn rename_in(tenant: &Tenant, name: &str) {
        let mut settings = warren_records::settings::load(tenant.db()).await.unwrap();
        settings["meta"]["appName"] = name.into();
        warren_records::settings::save(tenant.db(), &settings)
            .await
            .unwrap();
        tenant.forget_settings();
        assert_eq!(tenant.settings().await.unwrap()["meta"]["appName"], name);
    }

    /// The collections of tenant `id` as its database holds them now.
    async fn collections_on_disk(root: &Path, id: &str) -> Vec<warren_schema::Collection> {
        let db = crate::open_database(root, id).await.unwrap();
        let catalog = load_catalog(&db).await.unwrap();
        db.close().await;
        catalog
            .entries()
            .iter()
            .map(|e| e.collection.clone())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provisioned_tenant_opens_from_its_snapshot_without_a_connection() {
        let (dir, registry) = registry(4, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        let opened = opens_without_a_connection(&registry, dir.path(), "a", "Acme").await;
        assert!(opened.iter().any(|c| c.name == "users"));
    }

    /// Opens tenant `id` and checks that it serves its settings (app name `name`) and
    /// collections without a connection and without touching its files; returns the
    /// collections, each as the database holds it (auth secrets included).
    async fn opens_without_a_connection(
        registry: &Registry,
        root: &Path,
        id: &str,
        name: &str,
    ) -> Vec<warren_schema::Collection> {
        let path = root.join(id).join(DATABASE_FILE);
        let before = FileState::of(&path).unwrap();
        let tenant = registry.get(id).await.unwrap();
        assert!(!tenant.db().connected().get());
        assert_eq!(tenant.settings().await.unwrap()["meta"]["appName"], name);
        assert!(!tenant.db().connected().get());
        assert_eq!(FileState::of(&path).unwrap(), before);
        let opened: Vec<_> = tenant
            .catalog()
            .entries()
            .iter()
            .map(|e| e.collection.clone())
            .collect();
        assert_eq!(opened, collections_on_disk(root, id).await);
        opened
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_changed_since_provisioning_is_read_from_its_database() {
        let (dir, registry) = registry(4, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        let snapshot = dir.path().join("a").join(crate::snapshot::FILE);
        assert!(snapshot.exists());
        rename_elsewhere(dir.path(), "a", "Changed").await;
        let a = registry.get("a").await.unwrap();
        assert_eq!(a.settings().await.unwrap()["meta"]["appName"], "Changed");
        assert!(!snapshot.exists());
    }

    /// Opens and closes each of `ids` in turn (a cap of one), so that each leaves a dormant
    /// entry and pushes out the oldest once the entries' bound is reached.
    async fn cycle(registry: &Registry, ids: &[&str]) {
        for pair in ids.windows(2) {
            open_and_evict(registry, pair[0], pair[1]).await;
        }
    }

    /// A registry with a cap of one open tenant (so four dormant entries) over `ids`, each
    /// provisioned.
    async fn one_open_of(ids: &[&str]) -> (tempfile::TempDir, Registry) {
        let (dir, registry) = registry(1, Duration::from_secs(60)).await;
        for id in ids {
            provision(dir.path(), id).await.unwrap();
        }
        (dir, registry)
    }

    /// Waits until the snapshot of tenant `id` matches its files (saving runs in the
    /// background); false after two seconds.
    async fn snapshot_matches(root: &Path, id: &str) -> bool {
        let dir = root.join(id);
        for _ in 0..200 {
            let files = FileState::of(&dir.join(DATABASE_FILE)).unwrap();
            if crate::snapshot::read(&dir, files).is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_used_tenant_pushed_out_of_the_dormant_entries_opens_from_its_saved_snapshot() {
        let ids = ["a", "b", "c", "d", "e", "f"];
        let (dir, registry) = one_open_of(&ids).await;
        let a = registry.get("a").await.unwrap();
        // Changed the way requests change a tenant: collections of each kind, and settings.
        let bodies = [
            serde_json::json!({"name": "posts", "type": "base", "listRule": "title != ''",
                "fields": [{"name": "title", "type": "text", "required": true},
                    {"name": "tags", "type": "select", "values": ["x", "y"], "maxSelect": 2},
                    {"name": "cover", "type": "file", "maxSelect": 1, "maxSize": 1000}],
                "indexes": ["CREATE INDEX idx_title ON posts (title)"]}),
            serde_json::json!({"name": "members", "type": "auth",
                "fields": [{"name": "nick", "type": "text"}]}),
            serde_json::json!({"name": "titles", "type": "view",
                "viewQuery": "SELECT id, title FROM posts", "listRule": ""}),
        ];
        for body in bodies {
            warren_records::collections::create(a.db(), body)
                .await
                .unwrap();
        }
        a.reload_catalog().await.unwrap();
        rename_in(&a, "Used").await;
        drop(a);
        open_and_evict(&registry, "a", "b").await;
        // Its close writes nothing: the snapshot provisioning wrote no longer matches.
        let tenant = dir.path().join("a");
        let files = FileState::of(&tenant.join(DATABASE_FILE)).unwrap();
        assert!(crate::snapshot::read(&tenant, files).is_none());
        // Four more closes push its dormant entry out, and that saves it.
        cycle(&registry, &ids[1..]).await;
        assert!(snapshot_matches(dir.path(), "a").await);
        drop(registry);

        // A restarted server keeps no dormant entries: the snapshot serves, with no connection.
        let registry = Registry::new(RegistryConfig {
            root: dir.path().to_path_buf(),
            max_open: 4,
            idle_timeout: Duration::from_secs(60),
        });
        let opened = opens_without_a_connection(&registry, dir.path(), "a", "Used").await;
        for name in ["posts", "members", "titles"] {
            assert!(opened.iter().any(|c| c.name == name), "{name}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_its_snapshot_already_matches_is_not_saved_again() {
        let ids = ["a", "b", "c", "d", "e", "f"];
        let (dir, registry) = one_open_of(&ids).await;
        let snapshot = dir.path().join("a").join(crate::snapshot::FILE);
        let written = std::fs::metadata(&snapshot).unwrap();
        // Opened from its snapshot and closed without a connection, then pushed out.
        cycle(&registry, &ids).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = std::fs::metadata(&snapshot).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (now.ino(), now.mtime_nsec()),
            (written.ino(), written.mtime_nsec())
        );
        assert!(snapshot_matches(dir.path(), "a").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_whose_collections_do_not_parse_leaves_the_database_to_decide() {
        let (dir, registry) = registry(4, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        let tenant = dir.path().join("a");
        let files = FileState::of(&tenant.join(DATABASE_FILE)).unwrap();
        let mut broken = collections_on_disk(dir.path(), "a").await[0].to_row();
        broken.fields = "not json".into();
        // Taken after the look at the database, so the snapshot matches the files.
        let files_now = FileState::of(&tenant.join(DATABASE_FILE)).unwrap();
        assert_ne!(files, files_now);
        let contents = crate::snapshot::Contents {
            collections: vec![broken],
            settings: None,
        };
        crate::snapshot::write(&tenant, files_now, contents).unwrap();
        let a = registry.get("a").await.unwrap();
        assert!(a.catalog().get("users").is_some());
        assert!(!tenant.join(crate::snapshot::FILE).exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_made_elsewhere_while_a_reopen_served_nothing_is_read_again() {
        let (dir, registry) = registry(1, Duration::from_secs(60)).await;
        for id in ["a", "b"] {
            provision(dir.path(), id).await.unwrap();
        }
        open_and_evict(&registry, "a", "b").await;
        // Reopened from what its close left, it opens no connection ...
        let a = registry.get("a").await.unwrap();
        assert!(!a.db().connected().get());
        // ... while another program changes its settings.
        rename_elsewhere(dir.path(), "a", "Changed").await;
        drop(a);
        // Its close leaves the files' state as it was at the opening: the next one sees the
        // change.
        open_and_evict(&registry, "a", "b").await;
        let a = registry.get("a").await.unwrap();
        assert_eq!(a.settings().await.unwrap()["meta"]["appName"], "Changed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reopen_keeps_the_settings_derived_for_its_public_url() {
        let (dir, registry) = registry(1, Duration::from_secs(60)).await;
        for id in ["a", "b"] {
            provision(dir.path(), id).await.unwrap();
        }
        let a = registry.get("a").await.unwrap();
        a.set_public_url("https://a.example.com");
        let derived = a.settings().await.unwrap();
        assert_eq!(derived["meta"]["appURL"], "https://a.example.com");
        drop(a);
        open_and_evict(&registry, "a", "b").await;

        // Reached at the same URL: the same settings, not derived again.
        let a = registry.get("a").await.unwrap();
        assert_eq!(a.public_url().as_deref(), Some("https://a.example.com"));
        a.set_public_url("https://a.example.com");
        assert!(Arc::ptr_eq(&a.settings().await.unwrap(), &derived));
        // Reached at another: derived again from the settings as stored.
        a.set_public_url("https://shop.example.org");
        assert_eq!(
            a.settings().await.unwrap()["meta"]["appURL"],
            "https://shop.example.org"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_reopened_as_it_was_closed_reads_nothing_again() {
        let (dir, registry) = registry(1, Duration::from_secs(60)).await;
        for id in ["a", "b"] {
            provision(dir.path(), id).await.unwrap();
        }
        let catalog = open_and_evict(&registry, "a", "b").await;
        assert_eq!(registry.inner.dormancy.len(), 1);
        let before = FileState::of(&dir.path().join("a").join(DATABASE_FILE)).unwrap();
        let a = registry.get("a").await.unwrap();
        // The same parsed collections, and no connection opened to serve the settings.
        assert!(Arc::ptr_eq(&a.catalog(), &catalog));
        assert_eq!(a.settings().await.unwrap()["meta"]["appName"], "Acme");
        assert_eq!(
            FileState::of(&dir.path().join("a").join(DATABASE_FILE)).unwrap(),
            before
        );
        // Its database still opens when a request needs it.
        let count: i64 = a
            .db()
            .read(|c| {
                Ok::<_, Error>(c.query_row("SELECT count(*) FROM _collections", [], |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(count as usize, catalog.entries().len());
        a.db()
            .write(|c| {
                Ok::<_, Error>(c.execute("INSERT INTO _params (id, value) VALUES ('k', '1')", [])?)
            })
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_changed_while_closed_is_read_again() {
        let (dir, registry) = registry(1, Duration::from_secs(60)).await;
        for id in ["a", "b"] {
            provision(dir.path(), id).await.unwrap();
        }
        let catalog = open_and_evict(&registry, "a", "b").await;
        // Another program changes the settings while the tenant is closed.
        rename_elsewhere(dir.path(), "a", "Changed").await;
        let a = registry.get("a").await.unwrap();
        assert!(!Arc::ptr_eq(&a.catalog(), &catalog));
        assert_eq!(a.settings().await.unwrap()["meta"]["appName"], "Changed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drained_or_closed_tenant_is_read_again() {
        let (dir, registry) = registry(1, Duration::from_secs(60)).await;
        for id in ["a", "b"] {
            provision(dir.path(), id).await.unwrap();
        }
        let catalog = open_and_evict(&registry, "a", "b").await;
        drop(registry.drain("a", Duration::from_secs(5)).await.unwrap());
        let a = registry.get("a").await.unwrap();
        assert!(!Arc::ptr_eq(&a.catalog(), &catalog));
        drop(a);
        let catalog = open_and_evict(&registry, "b", "a").await;
        registry.close("a");
        registry.close("b");
        let b = registry.get("b").await.unwrap();
        assert!(!Arc::ptr_eq(&b.catalog(), &catalog));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_closed_as_idle_releases_its_database() {
        let (dir, registry) = registry(10, Duration::from_millis(30)).await;
        provision(dir.path(), "a").await.unwrap();
        let a = registry.get("a").await.unwrap();
        let closed = a.db().on_close();
        drop(a);
        let freed = warren_heap::freed();
        tokio::time::sleep(Duration::from_millis(60)).await;
        registry.close_idle();
        tokio::time::timeout(Duration::from_secs(5), closed.wait())
            .await
            .unwrap();
        assert_eq!(registry.open_count(), 0);
        // What its connections held is noted for the trimmer to give back.
        assert!(warren_heap::freed() > freed);
    }

    #[tokio::test]
    async fn idle_tenants_close_and_reopen() {
        let (dir, registry) = registry(10, Duration::from_millis(30)).await;
        provision(dir.path(), "a").await.unwrap();
        let tenant = registry.get("a").await.unwrap();
        tenant
            .db()
            .write(|c| {
                Ok::<_, Error>(
                    c.execute("INSERT INTO _params (id, value) VALUES ('k', 'one')", [])?,
                )
            })
            .await
            .unwrap();
        drop(tenant);
        tokio::time::sleep(Duration::from_millis(40)).await;
        // Closed by the background sweeper or by this call, whichever comes first.
        registry.close_idle();
        assert_eq!(registry.open_count(), 0);
        let tenant = registry.get("a").await.unwrap();
        let value: String = tenant
            .db()
            .read(|c| {
                Ok::<_, Error>(c.query_row(
                    "SELECT value FROM _params WHERE id = 'k'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(value, "one");
    }

    #[tokio::test]
    async fn concurrent_first_requests_open_once() {
        let (dir, registry) = registry(10, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let registry = registry.clone();
                tokio::spawn(async move { registry.get("a").await.unwrap() })
            })
            .collect();
        let mut tenants = Vec::new();
        for handle in handles {
            tenants.push(handle.await.unwrap());
        }
        assert!(
            tenants
                .windows(2)
                .all(|w| Arc::ptr_eq(&w[0].inner, &w[1].inner))
        );
    }

    #[tokio::test]
    async fn a_drained_tenant_is_closed_until_the_guard_drops() {
        let (dir, registry) = registry(10, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        let tenant = registry.get("a").await.unwrap();
        let held = tenant.clone();
        drop(tenant);
        let draining = {
            let registry = registry.clone();
            tokio::spawn(async move { registry.drain("a", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Still held by a request: the drain waits for it.
        assert!(!draining.is_finished());
        assert!(matches!(registry.get("a").await, Err(Error::Draining)));
        drop(held);
        let guard = draining.await.unwrap().unwrap();
        assert!(matches!(registry.get("a").await, Err(Error::Draining)));
        drop(guard);
        registry.get("a").await.unwrap();
    }

    /// Records one request log entry in tenant `id` and closes it by opening `other` past a
    /// cap of one; returns once its unwritten entries wait in the registry's backlog.
    async fn log_and_evict(registry: &Registry, id: &str, other: &str) {
        let tenant = registry.get(id).await.unwrap();
        tenant.logs().record(warren_logs::Entry::new(
            warren_logs::level::INFO,
            "GET /api/health",
            serde_json::Map::new(),
        ));
        drop(tenant);
        registry.get(other).await.unwrap();
        // The evicted tenant's logs drop once nothing holds them (a flusher's tick may).
        for _ in 0..1000 {
            if registry.closed_logs().0 > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the closed tenant's logs never waited in the backlog");
    }

    fn logged_rows(dir: &Path, id: &str) -> i64 {
        let aux = dir.join(id).join(warren_logs::AUXILIARY_FILE);
        warren_store::sql::Connection::open(aux)
            .unwrap()
            .query_row("SELECT count(*) FROM _logs", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_tenants_logs_wait_for_its_next_opening_and_a_drain_writes_them() {
        let (dir, registry) = registry(1, Duration::from_secs(60)).await;
        for id in ["a", "b"] {
            provision(dir.path(), id).await.unwrap();
        }
        log_and_evict(&registry, "a", "b").await;
        // The next opening takes them back; its own close leaves them with its own entry.
        registry.get("a").await.unwrap();
        assert_eq!(registry.closed_logs().0, 0);
        log_and_evict(&registry, "a", "b").await;
        assert_eq!(registry.closed_logs().0, 1);

        // A drain writes them before it returns.
        let guard = registry.drain("a", Duration::from_secs(5)).await.unwrap();
        assert_eq!(registry.closed_logs(), (0, 0));
        assert_eq!(logged_rows(dir.path(), "a"), 2);
        drop(guard);

        // Closing a tenant to act on its files drops what it left instead.
        log_and_evict(&registry, "a", "b").await;
        registry.close("a");
        assert_eq!(registry.closed_logs(), (0, 0));
        assert!(registry.write_closed_logs(Duration::from_secs(5)).await);
        assert_eq!(logged_rows(dir.path(), "a"), 2);

        // A stopping server writes every one.
        log_and_evict(&registry, "a", "b").await;
        registry.close_all();
        assert!(registry.write_closed_logs(Duration::from_secs(5)).await);
        assert_eq!(logged_rows(dir.path(), "a"), 3);
    }

    #[tokio::test]
    async fn replacing_a_tenants_files_keeps_its_own_backups_and_code() {
        let (dir, registry) = registry(10, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        let backups = dir.path().join("a").join(crate::backups::BACKUPS_DIR);
        std::fs::create_dir(&backups).unwrap();
        std::fs::write(backups.join("kept.zip"), b"zip").unwrap();
        let public = crate::code::public_dir(&dir.path().join("a"));
        std::fs::create_dir(&public).unwrap();
        std::fs::write(public.join("index.html"), b"site").unwrap();
        let hooks = crate::code::hooks_dir(&dir.path().join("a"));
        std::fs::create_dir(&hooks).unwrap();
        std::fs::write(hooks.join("old.pb.js"), b"old").unwrap();
        let staging = dir.path().join(".staging-new");
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("marker"), b"new").unwrap();
        // Code the new directory brings replaces the old; code it lacks is carried over.
        std::fs::create_dir(staging.join(crate::code::HOOKS)).unwrap();
        std::fs::write(staging.join(crate::code::HOOKS).join("new.pb.js"), b"new").unwrap();
        let drained = registry.drain("a", Duration::from_secs(5)).await.unwrap();
        drained
            .replace_files(&staging, &dir.path().join(".staging-old"))
            .await
            .unwrap();
        let tenant = dir.path().join("a");
        assert!(tenant.join("marker").exists() && !tenant.join(DATABASE_FILE).exists());
        assert_eq!(std::fs::read(backups.join("kept.zip")).unwrap(), b"zip");
        assert_eq!(std::fs::read(public.join("index.html")).unwrap(), b"site");
        assert!(hooks.join("new.pb.js").exists() && !hooks.join("old.pb.js").exists());
        assert!(!staging.exists() && !dir.path().join(".staging-old").exists());
    }

    #[tokio::test]
    async fn removing_a_tenant_deletes_its_data() {
        let (dir, registry) = registry(10, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        registry.get("a").await.unwrap();
        registry.remove("a", Duration::from_secs(5)).await.unwrap();
        assert!(!dir.path().join("a").exists());
        assert!(matches!(registry.get("a").await, Err(Error::NotFound)));
    }

    #[tokio::test]
    async fn removing_waits_for_requests_in_flight() {
        let (dir, registry) = registry(10, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        let held = registry.get("a").await.unwrap();
        let removing = {
            let registry = registry.clone();
            tokio::spawn(async move { registry.remove("a", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!removing.is_finished());
        assert!(dir.path().join("a").join(DATABASE_FILE).exists());
        assert!(matches!(registry.get("a").await, Err(Error::Draining)));
        drop(held);
        removing.await.unwrap().unwrap();
        assert!(!dir.path().join("a").exists());
        assert!(matches!(registry.get("a").await, Err(Error::NotFound)));
    }

    #[tokio::test]
    async fn a_tenant_still_in_use_is_not_removed() {
        let (dir, registry) = registry(10, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        let held = registry.get("a").await.unwrap();
        let too_soon = Duration::from_millis(20);
        assert!(registry.remove("a", too_soon).await.is_err());
        assert!(dir.path().join("a").join(DATABASE_FILE).exists());
        // Asking again still waits for the handle held since the first attempt.
        assert!(registry.remove("a", too_soon).await.is_err());
        assert!(dir.path().join("a").join(DATABASE_FILE).exists());
        drop(held);
        registry.get("a").await.unwrap();
    }

    async fn stamps(tenant: &Tenant, name: &'static str) -> (String, String) {
        tenant
            .db()
            .read(move |c| {
                Ok::<_, Error>(c.query_row(
                    "SELECT created, updated FROM _collections WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await
            .unwrap()
    }

    /// The token secrets tenant `tenant` stores for auth collection `name`.
    async fn stored_secrets(tenant: &Tenant, name: &'static str) -> Vec<String> {
        let options: String = tenant
            .db()
            .read(move |c| {
                Ok::<_, Error>(c.query_row(
                    "SELECT options FROM _collections WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        let options: serde_json::Value = serde_json::from_str(&options).unwrap();
        [
            "authToken",
            "passwordResetToken",
            "emailChangeToken",
            "verificationToken",
            "fileToken",
        ]
        .iter()
        .map(|token| options[token]["secret"].as_str().unwrap().to_owned())
        .collect()
    }

    fn held_secrets(entry: &warren_records::catalog::Entry) -> Vec<String> {
        let options = entry.collection.auth_options().unwrap();
        [
            &options.auth_token,
            &options.password_reset_token,
            &options.email_change_token,
            &options.verification_token,
            &options.file_token,
        ]
        .iter()
        .map(|token| token.secret.clone())
        .collect()
    }

    #[tokio::test]
    async fn tenants_share_the_parsed_system_collections_but_keep_their_own_stamps() {
        let (dir, registry) = registry(10, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        provision(dir.path(), "b").await.unwrap();
        let (a, b) = (
            registry.get("a").await.unwrap(),
            registry.get("b").await.unwrap(),
        );
        let (ca, cb) = (a.catalog(), b.catalog());
        let (ma, mb) = (ca.get("_mfas").unwrap(), cb.get("_mfas").unwrap());
        // Parsed once: the filter view of the collection is the same allocation.
        assert!(Arc::ptr_eq(&ma.info, &mb.info));
        assert_eq!(
            (ma.collection.created.clone(), ma.collection.updated.clone()),
            stamps(&a, "_mfas").await
        );
        assert_eq!(
            (mb.collection.created.clone(), mb.collection.updated.clone()),
            stamps(&b, "_mfas").await
        );
        assert!(ma.collection.fields.shares(&mb.collection.fields));
        // Auth collections share what they parse alike, but each keeps its own secrets, as
        // its own database stores them.
        for name in ["_superusers", "users"] {
            let (sa, sb) = (ca.get(name).unwrap(), cb.get(name).unwrap());
            assert!(Arc::ptr_eq(&sa.info, &sb.info), "{name}");
            assert!(sa.collection.fields.shares(&sb.collection.fields), "{name}");
            assert_eq!(held_secrets(sa), stored_secrets(&a, name).await, "{name}");
            assert_eq!(held_secrets(sb), stored_secrets(&b, name).await, "{name}");
            assert_ne!(held_secrets(sa), held_secrets(sb), "{name}");
            assert!(held_secrets(sa).iter().all(|s| !s.is_empty()), "{name}");
        }
    }

    #[tokio::test]
    async fn a_changed_collection_is_seen_on_reload_and_reopen_by_that_tenant_only() {
        let (dir, registry) = registry(10, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        provision(dir.path(), "b").await.unwrap();
        let a = registry.get("a").await.unwrap();
        let b = registry.get("b").await.unwrap();
        let before = a
            .catalog()
            .get("_mfas")
            .unwrap()
            .collection
            .list_rule
            .clone();
        a.db()
            .write(|c| {
                Ok::<_, Error>(c.execute(
                    "UPDATE _collections SET listRule = 'id != \"\"' WHERE name = '_mfas'",
                    [],
                )?)
            })
            .await
            .unwrap();
        let changed = Some("id != \"\"".to_string());
        let reloaded = a.reload_catalog().await.unwrap();
        assert_eq!(reloaded.get("_mfas").unwrap().collection.list_rule, changed);
        assert!(reloaded.get("_mfas").unwrap().rules.list.is_some());
        drop(a);
        registry.close("a");
        let reopened = registry.get("a").await.unwrap();
        assert_eq!(
            reopened
                .catalog()
                .get("_mfas")
                .unwrap()
                .collection
                .list_rule,
            changed
        );
        // The other tenant, and one opened afterwards, keep the stored rule.
        assert_eq!(
            b.catalog().get("_mfas").unwrap().collection.list_rule,
            before
        );
        drop(b);
        registry.close("b");
        let b = registry.get("b").await.unwrap();
        assert_eq!(
            b.catalog().get("_mfas").unwrap().collection.list_rule,
            before
        );
        assert_ne!(before, changed);
    }

    #[tokio::test]
    async fn draining_waits_for_handles_of_a_tenant_closed_before() {
        let (dir, registry) = registry(10, Duration::from_secs(60)).await;
        provision(dir.path(), "a").await.unwrap();
        let held = registry.get("a").await.unwrap();
        registry.close("a");
        assert!(
            registry
                .drain("a", Duration::from_millis(20))
                .await
                .is_err()
        );
        drop(held);
        registry.drain("a", Duration::from_secs(5)).await.unwrap();
    }
}
