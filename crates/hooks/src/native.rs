//! The functions Rust gives a tenant's JavaScript (through the prelude, which keeps them out
//! of the tenant's reach): logging into the tenant's logs, `require` inside `pb_hooks`, route
//! and hook registration, `$app` and `$security` (mail, `$http` and `$os.getenv` are
//! [`crate::outside`]'s).

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rquickjs::{Ctx, Exception, Function, Object};
use serde_json::Map;
use warren_tenant::Tenant;

use crate::FILE_LIMIT;
use crate::router::{Route, Routes};

thread_local! {
    /// Whether this thread is running a tenant's JavaScript now. A write that `$app.save`
    /// makes from inside a hook comes back to the hooks on this thread; it must not wait for
    /// another of the tenant's runtimes while its caller holds one.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as running tenant code until dropped.
pub(crate) struct Inside(bool);

impl Inside {
    pub(crate) fn enter() -> Self {
        Self(INSIDE.with(|c| c.replace(true)))
    }

    /// Whether the current thread runs tenant code now.
    pub(crate) fn now() -> bool {
        INSIDE.with(Cell::get)
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        let previous = self.0;
        INSIDE.with(|c| c.set(previous));
    }
}

/// What the native functions of one tenant share with the engine.
pub(crate) struct Shared {
    /// The tenant's `pb_hooks` folder, canonical.
    pub(crate) hooks_dir: PathBuf,
    /// The tenant the running call belongs to (set for the duration of each call).
    pub(crate) tenant: Mutex<Option<Tenant>>,
    /// The node's async runtime, for the `$app` calls that wait on the database.
    pub(crate) handle: tokio::runtime::Handle,
    /// What `$app` writes through.
    pub(crate) services: Option<warren_tenant::ops::Services>,
    /// Routes registered while loading.
    pub(crate) routes: Mutex<Routes>,
    /// Hook name → the collection filters of each handler registered for it.
    pub(crate) listens: Mutex<HashMap<String, Vec<Vec<String>>>>,
    /// Whether the files are loading (routes and hooks register only then).
    pub(crate) loading: AtomicBool,
    /// What the code reaches outside the node (mail, `$http.send`).
    pub(crate) outside: crate::Outside,
}

impl Shared {
    pub(crate) fn tenant(&self) -> Option<Tenant> {
        self.tenant
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes a line of the tenant's code into its logs.
    pub(crate) fn log(&self, level: i64, message: &str, data: Map<String, serde_json::Value>) {
        if let Some(tenant) = self.tenant() {
            tracing::debug!(tenant = %tenant.id(), %message, "tenant code");
            tenant
                .logs()
                .record(warren_logs::Entry::new(level, message, data));
        }
    }
}

/// The virtual folder `require` accepts absolute names in (`${__hooks}/utils.js`).
pub(crate) const HOOKS_ALIAS: &str = "/pb_hooks";

/// Resolves `name` to a file inside `dir` (the canonical `pb_hooks`): relative to it, or under
/// [`HOOKS_ALIAS`]. No `..`, no other absolute paths, no symlink leading out.
pub(crate) fn resolve(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let refused = || format!("require({name:?}): only files inside pb_hooks can be required");
    if name.is_empty() || name.contains('\0') || name.len() > 1024 {
        return Err(refused());
    }
    let relative = match name.strip_prefix(HOOKS_ALIAS) {
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
        Some(_) => return Err(refused()),
        None => name,
    };
    let relative = Path::new(relative);
    let mut clean = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            _ => return Err(refused()),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(refused());
    }
    let mut path = dir.join(&clean);
    if path.extension().is_none() {
        path.set_extension("js");
    }
    let real = path
        .canonicalize()
        .map_err(|_| format!("require({name:?}): no such file in pb_hooks"))?;
    if !real.starts_with(dir) || !real.is_file() {
        return Err(refused());
    }
    Ok(real)
}

/// Reads a file `require` resolved, within [`FILE_LIMIT`].
pub(crate) fn read_source(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > FILE_LIMIT as u64 {
        return Err(format!(
            "{} is larger than {FILE_LIMIT} bytes",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

fn throw(ctx: &Ctx<'_>, message: &str) -> rquickjs::Error {
    Exception::throw_message(ctx, message)
}

/// Defines the `__native` object the prelude takes its functions from.
pub(crate) fn install(ctx: &Ctx<'_>, shared: std::sync::Arc<Shared>) -> rquickjs::Result<()> {
    let native = Object::new(ctx.clone())?;

    let s = shared.clone();
    native.set(
        "log",
        Function::new(ctx.clone(), move |level: String, message: String| {
            let level = match level.as_str() {
                "debug" => warren_logs::level::DEBUG,
                "warn" => warren_logs::level::WARN,
                "error" => warren_logs::level::ERROR,
                _ => warren_logs::level::INFO,
            };
            let mut data = Map::new();
            data.insert("type".into(), "console".into());
            s.log(level, &message, data);
        })?,
    )?;

    let s = shared.clone();
    native.set(
        "resolve",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, name: String| {
            resolve(&s.hooks_dir, &name)
                .map(|p| p.to_string_lossy().into_owned())
                .map_err(|m| throw(&ctx, &m))
        })?,
    )?;

    let s = shared.clone();
    native.set(
        "read",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, path: String| {
            let path = PathBuf::from(path);
            if !path.starts_with(&s.hooks_dir) {
                return Err(throw(
                    &ctx,
                    "require: only files inside pb_hooks can be read",
                ));
            }
            read_source(&path).map_err(|m| throw(&ctx, &m))
        })?,
    )?;

    let s = shared.clone();
    native.set(
        "route",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, method: String, path: String, index: usize| {
                if !s.loading.load(Ordering::Relaxed) {
                    return Err(throw(
                        &ctx,
                        "routerAdd can only be called while pb_hooks load",
                    ));
                }
                let route =
                    Route::new(&method, &path, index).map_err(|e| throw(&ctx, &e.to_string()))?;
                s.routes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(route);
                Ok(())
            },
        )?,
    )?;

    let s = shared.clone();
    native.set(
        "listen",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, name: String, filters: String| {
                if !s.loading.load(Ordering::Relaxed) {
                    return Err(throw(
                        &ctx,
                        &format!("{name} can only be called while pb_hooks load"),
                    ));
                }
                let filters: Vec<String> = serde_json::from_str(&filters).unwrap_or_default();
                s.listens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(name)
                    .or_default()
                    .push(filters);
                Ok(())
            },
        )?,
    )?;

    let s = shared.clone();
    native.set(
        "cronAdd",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, id: String, expression: String| {
                cron_add(&s, &id, &expression).map_err(|m| throw(&ctx, &m))
            },
        )?,
    )?;

    let s = shared.clone();
    native.set(
        "cronRemove",
        Function::new(ctx.clone(), move |id: String| {
            if let Some(tenant) = s.tenant() {
                tenant.crons().remove(&id);
            }
        })?,
    )?;

    let s = shared.clone();
    native.set(
        "app",
        Function::new(ctx.clone(), move |method: String, args: String| {
            crate::app::call(&s, &method, &args)
        })?,
    )?;

    native.set(
        "security",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, method: String, args: String| {
                crate::security::call(&method, &args).map_err(|m| throw(&ctx, &m))
            },
        )?,
    )?;

    crate::outside::install(ctx, &native, shared.clone())?;
    crate::writes::install(ctx, &native)?;

    ctx.globals().set("__native", native)?;
    ctx.globals().set("__hooks", HOOKS_ALIAS)?;
    Ok(())
}

/// Registers cron job `id` of the running call's tenant: each run calls the function the
/// prelude keeps under `id` in the tenant's code as it is loaded then. Without a tenant (a
/// deploy's scratch check) the expression is only checked.
fn cron_add(shared: &Shared, id: &str, expression: &str) -> Result<(), String> {
    let Some(tenant) = shared.tenant() else {
        warren_tenant::cron::Schedule::parse(expression)
            .map_err(|e| format!("failed to add new cron job: {e}"))?;
        return Ok(());
    };
    let job = id.to_string();
    // The callback gets the tenant on each run and keeps no handle of its own (no cycle).
    let run = warren_tenant::cron::job_fn(move |tenant: Tenant| {
        let job = job.clone();
        async move {
            let Some(code) = tenant.code().await else {
                return Err(format!(
                    "cron job {job}: the project's pb_hooks did not load"
                ));
            };
            code.cron(&tenant, &job).await
        }
    });
    tenant
        .crons()
        .add(id, expression, run)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_stays_inside_pb_hooks() {
        let root = tempfile::tempdir().unwrap();
        let hooks = root.path().join("pb_hooks");
        std::fs::create_dir_all(hooks.join("lib")).unwrap();
        std::fs::write(hooks.join("lib/util.js"), "module.exports = 1").unwrap();
        std::fs::write(root.path().join("secret.js"), "x").unwrap();
        let hooks = hooks.canonicalize().unwrap();
        assert!(resolve(&hooks, "./lib/util.js").is_ok());
        assert!(resolve(&hooks, "lib/util").is_ok());
        assert!(resolve(&hooks, "/pb_hooks/lib/util.js").is_ok());
        assert!(resolve(&hooks, "../secret.js").is_err());
        assert!(resolve(&hooks, "lib/../../secret.js").is_err());
        assert!(resolve(&hooks, "/etc/passwd").is_err());
        assert!(resolve(&hooks, &root.path().join("secret.js").to_string_lossy()).is_err());
        std::os::unix::fs::symlink(root.path().join("secret.js"), hooks.join("out.js")).unwrap();
        assert!(resolve(&hooks, "out.js").is_err());
    }
}
