//! Tenants' own JavaScript (`pb_hooks/*.pb.js`): one QuickJS-NG sandbox per tenant with
//! PocketBase's JS API (routes, middlewares, record and mail hooks, `$app`, `$apis`,
//! `$security`, `$http`, `$os.getenv`, `console`, `require`), and the tenant's
//! `pb_migrations` run in one transaction (`$app.runInTransaction`, collections and raw SQL
//! from JavaScript).
//!
//! The [`Engine`] is the node's [`CodeLoader`]: the tenant registry asks it for a tenant's code
//! the first time a request needs it, and drops the loaded [`TenantCode`] with the tenant. Every
//! call into a tenant's code borrows one of the tenant's runtimes (QuickJS is single-threaded;
//! a busy tenant gets up to [`Limits::runtimes`] of them, loaded alike), runs on the blocking
//! pool behind a node-wide semaphore, with a CPU-time deadline (an interrupt handler) and the
//! runtime's memory limit (both from the tenant's plan), and its thread CPU time is metered
//! against the plan's hourly budget; a runaway tenant delays only its own requests.
//!
//! It depends on the tenant runtime (for the write pipeline and logs) and never on HTTP
//! crates: requests and answers cross as [`warren_tenant::hooks`]'s plain types.

mod app;
mod code;
pub mod http;
mod mail;
mod migrations;
mod native;
mod outside;
mod pool;
pub mod router;
mod sandbox;
mod security;
mod transaction;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use warren_tenant::Tenant;
use warren_tenant::hooks::{BoxFuture, Code, CodeCheck, CodeLoader};

pub use code::TenantCode;
pub use migrations::{Direction, MIGRATION_TIME};
pub use outside::Outside;
pub use pool::IDLE_RUNTIME;
pub use sandbox::Sandbox;

/// CPU time one call into a tenant's code may take (a request handler, a hook, loading).
pub const CPU_LIMIT: Duration = Duration::from_secs(1);
/// Memory one tenant's JavaScript runtime may allocate.
pub const MEMORY_LIMIT: usize = 64 << 20;
/// Native stack the JavaScript of one call may use (deep recursion stops here).
pub const STACK_LIMIT: usize = 512 << 10;
/// Most runtimes one tenant's code may have at once (its calls in parallel).
pub const MAX_RUNTIMES: usize = 8;
/// Largest body a tenant's route may answer.
pub const RESPONSE_LIMIT: usize = 8 << 20;
/// Largest `.js` file loaded from `pb_hooks` (also for `require`).
pub const FILE_LIMIT: usize = 2 << 20;
/// Most `*.pb.js` files loaded per tenant.
pub const MAX_FILES: usize = 256;
/// Calls into tenants' code running at once on the node.
pub const POOL_SIZE: usize = 8;
/// Name of the folder in a tenant's directory holding its hooks.
pub const HOOKS_DIR: &str = "pb_hooks";

/// Limits of every call into a tenant's code.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// CPU time per call.
    pub cpu: Duration,
    /// Memory of the tenant's runtime.
    pub memory: usize,
    /// Native stack per call.
    pub stack: usize,
    /// Largest response body of a route.
    pub response: usize,
    /// Runtimes one tenant's code may have at once (each holds up to `memory`).
    pub runtimes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu: CPU_LIMIT,
            memory: MEMORY_LIMIT,
            stack: STACK_LIMIT,
            response: RESPONSE_LIMIT,
            // More than the node's cores: a call waiting for its record's write (`e.next()`),
            // a mail or `$http.send` holds its runtime without using a core, and the writes of
            // several calls must be in flight together to share a group commit.
            runtimes: std::thread::available_parallelism()
                .map(|cores| usize::from(cores) * 4)
                .unwrap_or(1)
                .clamp(2, MAX_RUNTIMES),
        }
    }
}

/// Why a tenant's code failed to load.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of `pb_hooks` could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The engine refused the code (syntax error, an exception at load, a limit).
    #[error("{0}")]
    Script(String),
}

/// The node's JavaScript engine: limits, and the bounded pool calls run on. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    limits: Limits,
    /// What `$app.save`/`delete` write through (none: hooks cannot write records).
    services: Option<warren_tenant::ops::Services>,
    /// Calls into tenants' code running at once.
    pool: Arc<Semaphore>,
    /// What the code reaches outside the node (mail, `$http.send`).
    outside: Outside,
}

impl Engine {
    /// An engine with `limits` running at most `pool` calls at once; `$app` writes through
    /// `services` (without them hooks can read records but not write them).
    pub fn new(
        limits: Limits,
        pool: usize,
        services: Option<warren_tenant::ops::Services>,
    ) -> Self {
        Self {
            inner: Arc::new(EngineInner {
                limits,
                services,
                pool: Arc::new(Semaphore::new(pool.max(1))),
                outside: Outside::default(),
            }),
        }
    }

    /// The same engine letting tenants' code reach `outside` (its mailer, private networks).
    pub fn with_outside(self, outside: Outside) -> Self {
        Self {
            inner: Arc::new(EngineInner {
                limits: self.inner.limits,
                services: self.inner.services.clone(),
                pool: self.inner.pool.clone(),
                outside,
            }),
        }
    }

    /// What tenants' code reaches outside the node.
    pub(crate) fn outside(&self) -> Outside {
        self.inner.outside.clone()
    }

    /// What `$app` writes through.
    pub(crate) fn services(&self) -> Option<warren_tenant::ops::Services> {
        self.inner.services.clone()
    }

    /// The limits of every call.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Loads the hooks in `<tenant dir>/pb_hooks` for `tenant`: `Ok(None)` when the folder is
    /// missing or holds no `*.pb.js` file.
    pub async fn load(&self, tenant: &Tenant) -> Result<Option<TenantCode>, Error> {
        let dir = tenant.dir().join(HOOKS_DIR);
        let Some(files) = hook_files(&dir).await? else {
            forget_cron_jobs(tenant);
            return Ok(None);
        };
        let permit = self.permit().await;
        let engine = self.clone();
        let tenant = tenant.clone();
        let handle = tokio::runtime::Handle::current();
        let loaded = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = pool::thread_cpu();
            let loaded = TenantCode::load(engine, Some(&tenant), &dir, &files, handle);
            let spent = pool::thread_cpu().saturating_sub(started);
            tenant.meter().charge_code(spent.as_micros() as u64);
            loaded
        })
        .await
        .map_err(|e| Error::Script(format!("loading failed: {e}")))??;
        Ok(Some(loaded))
    }

    /// The node's pool of calls (for a call to give its slot back while it waits).
    pub(crate) fn pool(&self) -> Arc<Semaphore> {
        self.inner.pool.clone()
    }

    /// A slot of the pool (waits while the node runs [`POOL_SIZE`] calls).
    pub(crate) async fn permit(&self) -> tokio::sync::OwnedSemaphorePermit {
        match self.inner.pool.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed; a fresh one keeps the call going if it ever is.
            Err(_) => match Arc::new(Semaphore::new(1)).acquire_owned().await {
                Ok(permit) => permit,
                Err(_) => unreachable!("a new semaphore with one permit is open"),
            },
        }
    }
}

impl CodeCheck for Engine {
    fn check(&self, hooks_dir: &Path) -> Result<(), String> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| "the hooks check needs the node's runtime".to_string())?;
        let files = handle
            .block_on(hook_files(hooks_dir))
            .map_err(|e| e.to_string())?;
        let Some(files) = files else { return Ok(()) };
        let _permit = handle.block_on(self.permit());
        // The scratch code is dropped here: it belongs to no tenant and registers nothing.
        TenantCode::load(self.clone(), None, hooks_dir, &files, handle)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

impl CodeLoader for Engine {
    fn load<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Code>>, String>> {
        Box::pin(async move {
            match Engine::load(self, tenant).await {
                Ok(Some(code)) => Ok(Some(Arc::new(code) as Arc<dyn Code>)),
                Ok(None) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn migrate<'a>(
        &'a self,
        tenant: &'a Tenant,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(Engine::migrate(self, tenant, dir, Direction::Up))
    }
}

/// Removes the cron jobs the tenant's code registered (every job but PocketBase's system
/// jobs), as code is (re)loaded: the new code registers its own.
pub(crate) fn forget_cron_jobs(tenant: &Tenant) {
    let crons = tenant.crons();
    for job in crons.jobs() {
        if !job.id.starts_with(warren_tenant::cron::SYSTEM_PREFIX) {
            crons.remove(&job.id);
        }
    }
}

/// The `*.pb.js` files of `dir` in name order; `None` if there is no such folder or file.
async fn hook_files(dir: &Path) -> Result<Option<Vec<PathBuf>>, Error> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".pb.js") && entry.file_type().await?.is_file() {
            files.push(entry.path());
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    if files.len() > MAX_FILES {
        return Err(Error::Script(format!(
            "pb_hooks holds more than {MAX_FILES} *.pb.js files"
        )));
    }
    files.sort();
    Ok(Some(files))
}
