//! A tenant's loaded hooks: its runtimes, its routes and record hooks, and the calls into them
//! (each on one of the tenant's runtimes, on the engine's bounded blocking pool, metered and
//! capped by the tenant's plan).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rquickjs::{Function, Object};
use serde_json::{Map, Value, json};
use warren_tenant::Tenant;
use warren_tenant::hooks::{
    BoxFuture, Code, HookError, HookRequest, RecordEvent, RequestAnswer, RouteRequest,
    RouteResponse,
};

use crate::native::{self, Inside, Shared};
use crate::pool::{Pool, Runtime, thread_cpu};
use crate::router::Routes;
use crate::sandbox::{Failure, Sandbox};
use crate::{Engine, Error, Limits};

/// The JavaScript of the engine's API, run before the tenant's files.
pub(crate) const PRELUDE: &str = include_str!("prelude.js");

/// A tenant's hooks, loaded. Dropping it frees the tenant's runtimes.
pub struct TenantCode {
    engine: Engine,
    pool: Arc<Pool>,
    /// Runtimes the pool may hold.
    most: usize,
    /// The hour (since the Unix epoch) in which a spent CPU budget was last logged.
    reported: AtomicU64,
    routes: Routes,
    /// Hook name → the collection filters of each of its handlers (empty: every collection).
    listens: HashMap<String, Vec<Vec<String>>>,
}

impl TenantCode {
    /// Creates the tenant's first runtime and runs the prelude and `files` in order (blocking).
    /// Without `tenant` (a deploy's check in a scratch sandbox) `$app` is not available while
    /// the files load and nothing they register reaches a tenant.
    pub(crate) fn load(
        engine: Engine,
        tenant: Option<&Tenant>,
        dir: &Path,
        files: &[PathBuf],
        handle: tokio::runtime::Handle,
    ) -> Result<Self, Error> {
        let hooks_dir = dir.canonicalize()?;
        let mut sources = Vec::with_capacity(files.len());
        for file in files {
            let source = native::read_source(file).map_err(Error::Script)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            sources.push((name, source));
        }
        if let Some(tenant) = tenant {
            crate::forget_cron_jobs(tenant);
        }
        let limits = engine.limits();
        let (first, routes, listens) =
            prepare(&engine, tenant, &hooks_dir, &sources, &handle, limits)?;
        // More runtimes load the same sources without the tenant: their `cronAdd` only checks
        // its expression (the first registered the jobs) and their load logs nothing twice.
        let count = routes.len();
        let maker = engine.clone();
        let make = Box::new(move |limits: Limits| {
            let (runtime, routes, _) = prepare(&maker, None, &hooks_dir, &sources, &handle, limits)
                .map_err(|e| e.to_string())?;
            if routes.len() != count {
                return Err("the files registered other routes on a second load".to_string());
            }
            Ok(runtime)
        });
        let most = limits.runtimes.max(1);
        Ok(Self {
            engine,
            pool: Pool::new(first, most, make),
            most,
            reported: AtomicU64::new(0),
            routes,
            listens,
        })
    }

    /// The limits of a call into `tenant`'s code: the plan's (on its meter), else the engine's.
    fn limits_for(&self, tenant: &Tenant) -> Limits {
        let meter = tenant.meter();
        let mut limits = self.engine.limits();
        match meter.code_cpu_ms.load(Ordering::Relaxed) {
            0 => {}
            ms => limits.cpu = std::time::Duration::from_millis(ms),
        }
        match meter.code_memory_bytes.load(Ordering::Relaxed) {
            0 => {}
            bytes => limits.memory = usize::try_from(bytes).unwrap_or(usize::MAX),
        }
        limits
    }

    /// The 429 of a tenant whose code used its hourly CPU budget; the first refusal of the hour
    /// goes to the tenant's logs.
    fn over_budget(&self, tenant: &Tenant, wait: u64) -> HookError {
        let budget = tenant.meter().code_cpu_ms_per_hour.load(Ordering::Relaxed);
        let hour = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() / 3600)
            .unwrap_or(0);
        if self.reported.swap(hour, Ordering::Relaxed) != hour {
            let mut data = Map::new();
            data.insert("type".into(), "hooks".into());
            data.insert("budgetMs".into(), budget.into());
            tenant.logs().record(warren_logs::Entry::new(
                warren_logs::level::ERROR,
                format!(
                    "the project's code used its plan's {budget} CPU ms for this hour; calls \
                     into it are refused until the next hour"
                ),
                data,
            ));
        }
        HookError {
            status: 429,
            message: format!(
                "This project's server-side code used its plan's CPU time for this hour; it \
                 runs again in {wait} s."
            ),
            data: Map::new(),
        }
    }

    /// Bytes the tenant's idle runtimes hold now.
    pub fn memory_used(&self) -> i64 {
        self.pool.memory_used()
    }

    /// Runtimes of the tenant's code not in use now.
    pub fn idle_runtimes(&self) -> usize {
        self.pool.idle_count()
    }

    /// Runs `f` on one of the tenant's runtimes (a free one, or a new one while the pool may
    /// grow), then in a slot of the engine's pool, on a blocking thread, with `tenant` as the
    /// call's tenant and its plan's limits. The thread's CPU time goes to the tenant's meter;
    /// past the plan's hourly budget the call is refused without running.
    pub(crate) async fn run<R: Send + 'static, F: FnOnce(&Sandbox) -> R + Send + 'static>(
        &self,
        tenant: &Tenant,
        f: F,
    ) -> Result<R, HookError> {
        if let warren_tenant::meter::CodeBudget::Spent(wait) = tenant.meter().code_budget() {
            return Err(self.over_budget(tenant, wait));
        }
        let limits = self.limits_for(tenant);
        let mut f = f;
        // A runtime that cannot be made shrinks the pool; the call then waits for one of the
        // runtimes there are.
        for _ in 0..self.most {
            let mut lease = self.pool.lend().await;
            let permit = self.engine.permit().await;
            let pool = self.engine.pool();
            let caller = tenant.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let tenant = caller;
                let _slot = crate::sandbox::hold_slot(pool, permit);
                let _inside = Inside::enter();
                // Whatever transaction the call leaves open is rolled back when it ends.
                let _transaction = crate::transaction::Scope::new(limits.cpu);
                let started = thread_cpu();
                let runtime = match lease.runtime(limits) {
                    Ok(runtime) => runtime,
                    Err(why) => {
                        lease.shrink();
                        return Err((f, why));
                    }
                };
                runtime.sandbox.set_limits(limits.cpu, limits.memory);
                let shared = runtime.shared.clone();
                *shared.tenant.lock().unwrap_or_else(|p| p.into_inner()) = Some(tenant.clone());
                let result = f(&runtime.sandbox);
                *shared.tenant.lock().unwrap_or_else(|p| p.into_inner()) = None;
                let spent = thread_cpu().saturating_sub(started);
                tenant.meter().charge_code(spent.as_micros() as u64);
                Ok(result)
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "a call into tenant code panicked");
                HookError::internal()
            })?;
            match outcome {
                Ok(result) => return Ok(result),
                Err((back, why)) => {
                    tracing::warn!(tenant = %tenant.id(), error = %why, "no more runtime for tenant code");
                    f = back;
                }
            }
        }
        Err(HookError::internal())
    }

    /// Reads the prelude's JSON answer to a call: a failure of the call or of the runtime's
    /// memory, and a refusal thrown by the tenant's code, become the caller's error.
    pub(crate) fn answer(
        &self,
        tenant: &Tenant,
        what: &str,
        answer: Result<String, Failure>,
    ) -> Result<Value, HookError> {
        let answer: Value = match answer {
            Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
            Err(failure) => return Err(self.failed(tenant, what, &failure)),
        };
        if answer.get("fatal").is_some() {
            return Err(self.failed(tenant, what, &Failure::OutOfMemory));
        }
        if answer.get("error").is_some() {
            return Err(self.refusal(tenant, what, &answer));
        }
        Ok(answer)
    }

    /// Reports a failed call in the tenant's logs; the caller gets PocketBase's generic 500.
    pub(crate) fn failed(&self, tenant: &Tenant, what: &str, failure: &Failure) -> HookError {
        let mut data = Map::new();
        data.insert("type".into(), "hooks".into());
        data.insert("error".into(), failure.to_string().into());
        let limits = self.limits_for(tenant);
        let limit = match failure {
            Failure::Interrupted => format!(" (CPU limit {:?})", limits.cpu),
            Failure::OutOfMemory => format!(" (memory limit {} MiB)", limits.memory >> 20),
            Failure::Thrown(_) => String::new(),
        };
        tracing::info!(tenant = %tenant.id(), %what, error = %failure, "tenant code failed");
        tenant.logs().record(warren_logs::Entry::new(
            warren_logs::level::ERROR,
            format!("{what}: {}{limit}", headline(failure)),
            data,
        ));
        HookError::internal()
    }

    /// An answer `{"error":{status,message,data},"cause":...}` of the prelude as a refusal;
    /// the cause (a plain exception's text) goes to the tenant's logs.
    pub(crate) fn refusal(&self, tenant: &Tenant, what: &str, answer: &Value) -> HookError {
        let error = &answer["error"];
        if let Some(cause) = answer["cause"].as_str() {
            let mut data = Map::new();
            data.insert("type".into(), "hooks".into());
            data.insert("error".into(), cause.into());
            let first = cause.lines().next().unwrap_or_default();
            tenant.logs().record(warren_logs::Entry::new(
                warren_logs::level::ERROR,
                format!("{what}: {first}"),
                data,
            ));
        }
        HookError {
            status: error["status"]
                .as_u64()
                .filter(|s| (400..600).contains(s))
                .unwrap_or(400) as u16,
            message: error["message"].as_str().unwrap_or_default().to_string(),
            data: error["data"].as_object().cloned().unwrap_or_default(),
        }
    }

    /// Runs cron job `id`'s function under the same limits as every call; a failure is the
    /// job's error message (the scheduler logs it).
    async fn dispatch_cron(&self, tenant: &Tenant, id: &str) -> Result<(), String> {
        let job = id.to_string();
        let answer = self
            .run(tenant, move |sandbox| {
                sandbox.call(move |ctx| {
                    let warren: Object = ctx.globals().get("__warren")?;
                    let cron: Function = warren.get("cron")?;
                    let answer: rquickjs::String = cron.call((job,))?;
                    answer.to_string()
                })
            })
            .await
            .map_err(|e| format!("cron job {id}: {e}"))?;
        let text = match answer {
            Ok(text) => text,
            Err(failure) => {
                let limits = self.limits_for(tenant);
                let limit = match failure {
                    Failure::Interrupted => format!(" (CPU limit {:?})", limits.cpu),
                    Failure::OutOfMemory => format!(" (memory limit {} MiB)", limits.memory >> 20),
                    Failure::Thrown(_) => String::new(),
                };
                return Err(format!("cron job {id}: {}{limit}", headline(&failure)));
            }
        };
        let answer: Value = serde_json::from_str(&text).unwrap_or_default();
        if answer["missing"] == true {
            return Err(format!("cron job {id}: the project's code has no such job"));
        }
        match answer["cause"].as_str() {
            Some(cause) => Err(format!("cron job {id}: {cause}")),
            None => Ok(()),
        }
    }

    async fn dispatch_route(
        &self,
        tenant: &Tenant,
        request: RouteRequest,
    ) -> Option<Result<RouteResponse, HookError>> {
        let (index, params) = self.routes.find(&request.method, &request.path)?;
        let what = format!("{} {}", request.method, request.path);
        let payload = route_payload(&request).to_string();
        let params = json!(params).to_string();
        let limit = self.engine.limits().response;
        let too_large =
            || Failure::Thrown(format!("the response is larger than {} MiB", limit >> 20));
        let answer = self
            .run(tenant, move |sandbox| {
                sandbox.call(move |ctx| {
                    let warren: Object = ctx.globals().get("__warren")?;
                    let route: Function = warren.get("route")?;
                    let answer: rquickjs::Value = route.call((payload, index, params))?;
                    if let Some(text) = answer.as_string() {
                        return Ok(RouteAnswer::Json(text.to_string()?));
                    }
                    let Some(list) = answer.as_array() else {
                        return Ok(RouteAnswer::Json(String::new()));
                    };
                    // UTF-8 takes at least as many bytes as the string has UTF-16 units.
                    let units: f64 = list.get(3)?;
                    if units > limit as f64 {
                        return Ok(RouteAnswer::TooLarge);
                    }
                    let status: f64 = list.get(0)?;
                    Ok(RouteAnswer::Response {
                        status,
                        headers: list.get(1)?,
                        body: list.get(2)?,
                    })
                })
            })
            .await;
        let answer = match answer {
            Ok(Ok(RouteAnswer::Response {
                status,
                headers,
                body,
            })) => {
                if body.len() > limit {
                    return Some(Err(self.failed(tenant, &what, &too_large())));
                }
                let headers = headers
                    .into_iter()
                    .filter_map(|pair| {
                        let mut pair = pair.into_iter();
                        Some((pair.next()?, pair.next()?))
                    })
                    .collect();
                return Some(Ok(RouteResponse {
                    status: if (100.0..600.0).contains(&status) {
                        status as u16
                    } else {
                        200
                    },
                    headers,
                    body: body.into_bytes(),
                }));
            }
            Ok(Ok(RouteAnswer::TooLarge)) => {
                return Some(Err(self.failed(tenant, &what, &too_large())));
            }
            Ok(Ok(RouteAnswer::Json(text))) => text,
            Ok(Err(failure)) => return Some(Err(self.failed(tenant, &what, &failure))),
            Err(e) => return Some(Err(e)),
        };
        let answer: Value = match serde_json::from_str(&answer) {
            Ok(value) => value,
            Err(e) => {
                let failure = Failure::Thrown(format!("the route's answer was not readable: {e}"));
                return Some(Err(self.failed(tenant, &what, &failure)));
            }
        };
        if answer.get("fatal").is_some() {
            return Some(Err(self.failed(tenant, &what, &Failure::OutOfMemory)));
        }
        if answer.get("error").is_some() {
            return Some(Err(self.refusal(tenant, &what, &answer)));
        }
        let failure = Failure::Thrown("the route's answer was not readable".into());
        Some(Err(self.failed(tenant, &what, &failure)))
    }

    async fn dispatch_record(
        &self,
        tenant: &Tenant,
        event: RecordEvent,
        collection: &str,
        record: Map<String, Value>,
    ) -> Result<Map<String, Value>, HookError> {
        // A write made by `$app` from inside this tenant's code: its caller holds a runtime
        // already, so the hooks are not entered again.
        if Inside::now() || !self.listens(event, collection) {
            return Ok(record);
        }
        let name = event.hook_name();
        let what = format!("{name}({collection})");
        let payload = Value::Object(record.clone()).to_string();
        let collection_name = collection.to_string();
        let collection_id = record
            .get("collectionId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let answer = self
            .run(tenant, move |sandbox| {
                sandbox.call(move |ctx| {
                    let warren: Object = ctx.globals().get("__warren")?;
                    let dispatch: Function = warren.get("recordEvent")?;
                    let answer: rquickjs::String =
                        dispatch.call((name, collection_name, collection_id, payload))?;
                    answer.to_string()
                })
            })
            .await?;
        let answer = self.answer(tenant, &what, answer)?;
        written(&answer)
    }
}

/// Hook name → the collection filters of each of its handlers (empty: every collection).
type Listens = HashMap<String, Vec<Vec<String>>>;

/// Makes one runtime of a tenant's code: the sandbox, the engine's API, then `sources` in order.
/// Returns it with the routes and hook listeners its files registered.
fn prepare(
    engine: &Engine,
    tenant: Option<&Tenant>,
    hooks_dir: &Path,
    sources: &[(String, String)],
    handle: &tokio::runtime::Handle,
    limits: Limits,
) -> Result<(Runtime, Routes, Listens), Error> {
    let shared = Arc::new(Shared {
        hooks_dir: hooks_dir.to_path_buf(),
        tenant: Mutex::new(tenant.cloned()),
        handle: handle.clone(),
        services: engine.services(),
        routes: Mutex::new(Routes::default()),
        listens: Mutex::new(HashMap::new()),
        loading: std::sync::atomic::AtomicBool::new(true),
        outside: engine.outside(),
    });
    let sandbox = Sandbox::new(limits).map_err(Error::Script)?;
    let _inside = Inside::enter();
    let installed = shared.clone();
    sandbox
        .call(move |ctx| {
            native::install(ctx, installed)?;
            ctx.eval::<(), _>(PRELUDE)
        })
        .map_err(|f| Error::Script(format!("the engine's prelude failed: {f}")))?;
    for (name, source) in sources {
        let filename = format!("{}/{name}", native::HOOKS_ALIAS);
        sandbox
            .call(|ctx| {
                let mut options = rquickjs::context::EvalOptions::default();
                options.filename = Some(filename.clone());
                options.strict = false;
                ctx.eval_with_options::<(), _>(source.as_str(), options)
            })
            .map_err(|f| Error::Script(format!("{name}: {f}")))?;
    }
    shared.loading.store(false, Ordering::Relaxed);
    *shared.tenant.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let routes = std::mem::take(&mut *shared.routes.lock().unwrap_or_else(|p| p.into_inner()));
    let listens = std::mem::take(&mut *shared.listens.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((Runtime::new(sandbox, shared), routes, listens))
}

/// What a route call hands back: the response itself, or the prelude's JSON for a refusal or
/// a failure.
enum RouteAnswer {
    Response {
        status: f64,
        headers: Vec<Vec<String>>,
        body: String,
    },
    /// The body is past the response limit (not copied out of the runtime).
    TooLarge,
    Json(String),
}

impl TenantCode {
    /// Runs the hooks of a request, execute or error `event` (see [`Code::request_event`]).
    async fn dispatch_request(
        &self,
        tenant: &Tenant,
        event: RecordEvent,
        (collection, collection_id): (&str, &str),
        data: Map<String, Value>,
        request: &HookRequest,
        writes: Option<tokio::sync::mpsc::Sender<warren_tenant::hooks::WriteRequest>>,
    ) -> Result<RequestAnswer, HookError> {
        if Inside::now() || !self.listens(event, collection) {
            return Ok(RequestAnswer::Next(data));
        }
        let name = event.hook_name();
        let what = format!("{name}({collection})");
        let payload = Value::Object(data).to_string();
        let request = request_payload(event, request);
        let names = (collection.to_string(), collection_id.to_string());
        let answer = self
            .run(tenant, move |sandbox| {
                // Where the last `e.next()` of a write request's chain hands the record.
                let previous = crate::writes::set(writes);
                let answer = sandbox.call(move |ctx| {
                    let warren: Object = ctx.globals().get("__warren")?;
                    let dispatch: Function = warren.get("requestEvent")?;
                    let answer: rquickjs::String =
                        dispatch.call((name, names.0, names.1, payload, request))?;
                    answer.to_string()
                });
                crate::writes::set(previous);
                answer
            })
            .await?;
        let answer = self.answer(tenant, &what, answer)?;
        if answer["stopped"] == true {
            return Ok(RequestAnswer::Stopped);
        }
        if let Some(response) = answer.get("response") {
            let body = response["body"].as_str().unwrap_or_default();
            if body.len() > self.engine.limits().response {
                let limit = self.engine.limits().response >> 20;
                let failure = Failure::Thrown(format!("the response is larger than {limit} MiB"));
                return Err(self.failed(tenant, &what, &failure));
            }
            return Ok(RequestAnswer::Written(RouteResponse {
                status: response["status"]
                    .as_u64()
                    .filter(|s| (100..600).contains(s))
                    .unwrap_or(200) as u16,
                headers: header_pairs(&response["headers"]),
                body: body.as_bytes().to_vec(),
            }));
        }
        let data = answer["data"].as_object().cloned().unwrap_or_default();
        Ok(RequestAnswer::Next(data))
    }
}

impl TenantCode {
    /// Runs the before-write hooks of `event` and its `…Execute` hooks with `e.next()`
    /// writing over `writes` (see [`Code::record_event_writing`]).
    async fn dispatch_record_writing(
        &self,
        tenant: &Tenant,
        event: RecordEvent,
        collection: &str,
        record: Map<String, Value>,
        writes: tokio::sync::mpsc::Sender<warren_tenant::hooks::WriteRequest>,
    ) -> Result<Map<String, Value>, HookError> {
        let execute = match event {
            RecordEvent::Create => RecordEvent::CreateExecute,
            RecordEvent::Update => RecordEvent::UpdateExecute,
            RecordEvent::Delete => RecordEvent::DeleteExecute,
            _ => {
                return self
                    .dispatch_record(tenant, event, collection, record)
                    .await;
            }
        };
        // A write made by `$app` from inside this tenant's code: no hooks, the caller writes.
        if Inside::now() || !(self.listens(event, collection) || self.listens(execute, collection))
        {
            return Ok(record);
        }
        let what = format!("{}({collection})", event.hook_name());
        let collection_id = record
            .get("collectionId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let payload = Value::Object(record).to_string();
        let names = (
            event.hook_name(),
            execute.hook_name(),
            collection.to_string(),
            collection_id,
        );
        let answer = self
            .run(tenant, move |sandbox| {
                let previous = crate::writes::set(Some(writes));
                let answer = sandbox.call(move |ctx| {
                    let warren: Object = ctx.globals().get("__warren")?;
                    let dispatch: Function = warren.get("recordWrite")?;
                    let answer: rquickjs::String =
                        dispatch.call((names.0, names.1, names.2, names.3, payload))?;
                    answer.to_string()
                });
                crate::writes::set(previous);
                answer
            })
            .await?;
        let answer = self.answer(tenant, &what, answer)?;
        written(&answer)
    }
}

/// The request as `e.auth` and `e.requestInfo()` read it; none for the execute and error
/// events, which PocketBase fires outside a request.
fn request_payload(event: RecordEvent, request: &HookRequest) -> String {
    let outside = matches!(
        event,
        RecordEvent::CreateExecute
            | RecordEvent::UpdateExecute
            | RecordEvent::DeleteExecute
            | RecordEvent::AfterCreateError
            | RecordEvent::AfterUpdateError
            | RecordEvent::AfterDeleteError
    );
    if outside {
        return String::new();
    }
    json!({
        "method": request.method,
        "path": "",
        "query": "",
        "queryMap": request.query,
        "headers": request.headers,
        "body": request.body,
        "auth": request.auth,
        "superuser": request.superuser,
        "remoteIp": "",
    })
    .to_string()
}

/// `[[name, value], ...]` of a hook's answer as header pairs.
fn header_pairs(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .map(|list| {
            list.iter()
                .filter_map(|pair| {
                    Some((
                        pair.get(0)?.as_str()?.to_string(),
                        pair.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The record a before-write hook chain left, when it reached its end (`e.next()`); a chain
/// that stopped without it stops the write.
fn written(answer: &Value) -> Result<Map<String, Value>, HookError> {
    if answer["proceeded"] != Value::Bool(true) {
        return Err(HookError {
            status: 400,
            message: "The write was stopped by a hook that did not call e.next().".into(),
            data: Map::new(),
        });
    }
    let mut changed = answer["record"].as_object().cloned().unwrap_or_default();
    changed.retain(|key, _| key != "collectionName" && key != "collectionId" && key != "expand");
    Ok(changed)
}

fn headline(failure: &Failure) -> String {
    failure
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The request as the prelude reads it.
fn route_payload(request: &RouteRequest) -> Value {
    let mut headers = Map::new();
    for (name, value) in &request.headers {
        headers
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Value::String(value.clone()));
    }
    let mut query = Map::new();
    for (key, value) in form_pairs(&request.query) {
        query.entry(key).or_insert(Value::String(value));
    }
    let content_type = headers
        .get("content-type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = if request.body.is_empty() {
        Value::Object(Map::new())
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(&request.body).unwrap_or_else(|_| Value::Object(Map::new()))
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(&request.body);
        let mut form = Map::new();
        for (key, value) in form_pairs(&text) {
            form.entry(key).or_insert(Value::String(value));
        }
        Value::Object(form)
    } else {
        Value::Object(Map::new())
    };
    json!({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "queryMap": query,
        "headers": headers,
        "body": body,
        "auth": request.auth,
        "superuser": request.superuser,
        "remoteIp": request.remote_ip,
    })
}

/// `a=1&b=x%20y` as decoded pairs (`+` as a space, as browsers encode forms).
fn form_pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

impl Code for TenantCode {
    fn route<'a>(
        &'a self,
        tenant: &'a Tenant,
        request: RouteRequest,
    ) -> BoxFuture<'a, Option<Result<RouteResponse, HookError>>> {
        Box::pin(self.dispatch_route(tenant, request))
    }

    fn listens(&self, event: RecordEvent, collection: &str) -> bool {
        self.listens.get(event.hook_name()).is_some_and(|handlers| {
            handlers
                .iter()
                .any(|filters| filters.is_empty() || filters.iter().any(|f| f == collection))
        })
    }

    fn record_event<'a>(
        &'a self,
        tenant: &'a Tenant,
        event: RecordEvent,
        collection: &'a str,
        record: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Map<String, Value>, HookError>> {
        Box::pin(self.dispatch_record(tenant, event, collection, record))
    }

    fn record_event_writing<'a>(
        &'a self,
        tenant: &'a Tenant,
        event: RecordEvent,
        collection: &'a str,
        record: Map<String, Value>,
        writes: tokio::sync::mpsc::Sender<warren_tenant::hooks::WriteRequest>,
    ) -> BoxFuture<'a, Result<Map<String, Value>, HookError>> {
        Box::pin(self.dispatch_record_writing(tenant, event, collection, record, writes))
    }

    fn request_event<'a>(
        &'a self,
        tenant: &'a Tenant,
        event: RecordEvent,
        collection: (&'a str, &'a str),
        data: Map<String, Value>,
        request: &'a HookRequest,
    ) -> BoxFuture<'a, Result<RequestAnswer, HookError>> {
        Box::pin(self.dispatch_request(tenant, event, collection, data, request, None))
    }

    fn request_event_writing<'a>(
        &'a self,
        tenant: &'a Tenant,
        event: RecordEvent,
        collection: (&'a str, &'a str),
        data: Map<String, Value>,
        request: &'a HookRequest,
        writes: tokio::sync::mpsc::Sender<warren_tenant::hooks::WriteRequest>,
    ) -> BoxFuture<'a, Result<RequestAnswer, HookError>> {
        let writes = Some(writes);
        Box::pin(self.dispatch_request(tenant, event, collection, data, request, writes))
    }

    fn cron<'a>(&'a self, tenant: &'a Tenant, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.dispatch_cron(tenant, id))
    }

    fn listens_mail(&self, hook: &str) -> bool {
        self.listens.contains_key(hook)
    }

    fn mail<'a>(
        &'a self,
        tenant: &'a Tenant,
        mail: warren_tenant::hooks::MailEvent,
    ) -> BoxFuture<'a, Result<Option<Value>, HookError>> {
        Box::pin(self.dispatch_mail(tenant, mail))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A fresh sandbox with the engine's API, as a tenant's load starts.
    fn prepared() -> Sandbox {
        let shared = Arc::new(Shared {
            hooks_dir: std::env::temp_dir(),
            tenant: Mutex::new(None),
            handle: tokio::runtime::Handle::current(),
            services: None,
            routes: Mutex::new(Routes::default()),
            listens: Mutex::new(HashMap::new()),
            loading: std::sync::atomic::AtomicBool::new(true),
            outside: crate::Outside::default(),
        });
        let sandbox = Sandbox::new(crate::Limits::default()).unwrap();
        sandbox
            .call(move |ctx| {
                native::install(ctx, shared)?;
                ctx.eval::<(), _>(PRELUDE)
            })
            .unwrap();
        sandbox
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_tenant_runtime_starts_fast_and_small() {
        prepared();
        let runs = 20;
        let started = Instant::now();
        let sandboxes: Vec<_> = (0..runs).map(|_| prepared()).collect();
        let each = started.elapsed() / runs;
        let memory = sandboxes[0].memory_used();
        println!("tenant runtime: start-up {each:?}, {} KiB", memory >> 10);
        assert!(each.as_millis() < 50, "start-up {each:?}");
        assert!(memory < 4 << 20, "memory {memory}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn request_events_change_refuse_or_answer() {
        let sandbox = prepared();
        let hooks = r#"
            onRecordsListRequest((e) => {
                e.result.totalItems = 7;
                for (const r of e.records) r.set("title", r.getString("title") + "!");
                e.next();
            }, "posts");
            onRecordViewRequest((e) => {
                if (e.record.id === "no") throw new ForbiddenError("Not this one.");
                if (e.record.id === "me") return e.json(201, { auth: e.auth.id, q: e.requestInfo().query.q });
                if (e.record.id === "quiet") return;
                e.next();
            });
            onRecordAuthRequest((e) => { e.meta = { via: e.authMethod }; e.token = "t2"; e.next(); });
        "#;
        sandbox.call(|ctx| ctx.eval::<(), _>(hooks)).unwrap();
        let dispatch = |name: &'static str, data: Value| {
            let request = json!({"method": "GET", "path": "", "query": "", "queryMap": {"q": "x"},
                "headers": {}, "body": {}, "auth": {"id": "u1", "collectionName": "users"},
                "superuser": false, "remoteIp": ""})
            .to_string();
            let text = sandbox
                .call(move |ctx| {
                    let warren: Object = ctx.globals().get("__warren")?;
                    let dispatch: Function = warren.get("requestEvent")?;
                    let answer: rquickjs::String =
                        dispatch.call((name, "posts", "pbc_1", data.to_string(), request))?;
                    answer.to_string()
                })
                .unwrap();
            serde_json::from_str::<Value>(&text).unwrap()
        };
        let list = dispatch(
            "onRecordsListRequest",
            json!({"result": {"page": 1, "totalItems": 1}, "records": [{"id": "a", "title": "hi"}]}),
        );
        assert_eq!(list["data"]["result"]["totalItems"], 7);
        assert_eq!(list["data"]["result"]["items"][0]["title"], "hi!");
        let refused = dispatch("onRecordViewRequest", json!({"record": {"id": "no"}}));
        assert_eq!(refused["error"]["status"], 403);
        assert_eq!(refused["error"]["message"], "Not this one.");
        let answered = dispatch("onRecordViewRequest", json!({"record": {"id": "me"}}));
        assert_eq!(answered["response"]["status"], 201);
        assert_eq!(answered["response"]["body"], r#"{"auth":"u1","q":"x"}"#);
        let quiet = dispatch("onRecordViewRequest", json!({"record": {"id": "quiet"}}));
        assert_eq!(quiet["stopped"], true);
        let auth = dispatch(
            "onRecordAuthRequest",
            json!({"record": {"id": "u1"}, "token": "t1", "authMethod": "otp"}),
        );
        assert_eq!(auth["data"]["token"], "t2");
        assert_eq!(auth["data"]["meta"], json!({"via": "otp"}));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn e_next_writes_and_code_after_it_sees_the_saved_record() {
        let sandbox = prepared();
        let hooks = r#"
            onRecordCreate((e) => {
                e.record.set("title", "from hook");
                e.next();
                e.record.set("seen", e.record.id);
            }, "posts");
            onRecordCreateExecute((e) => { e.record.set("executed", true); e.next(); });
        "#;
        sandbox.call(|ctx| ctx.eval::<(), _>(hooks)).unwrap();
        let (writes, mut asked) = tokio::sync::mpsc::channel(1);
        let call = tokio::task::spawn_blocking(move || {
            let previous = crate::writes::set(Some(writes));
            let answer = sandbox.call(|ctx| {
                let warren: Object = ctx.globals().get("__warren")?;
                let dispatch: Function = warren.get("recordWrite")?;
                let args = ("onRecordCreate", "onRecordCreateExecute", "posts", "", "{}");
                let answer: rquickjs::String = dispatch.call(args)?;
                answer.to_string()
            });
            crate::writes::set(previous);
            answer.unwrap()
        });
        let (record, reply): warren_tenant::hooks::WriteRequest = asked.recv().await.unwrap();
        // The write sees what both chains left before their e.next().
        assert_eq!(record["title"], "from hook");
        assert_eq!(record["executed"], true);
        let mut saved = record.clone();
        saved.insert("id".into(), "saved123".into());
        reply.send(Ok(saved)).unwrap();
        let answer: Value = serde_json::from_str(&call.await.unwrap()).unwrap();
        assert_eq!(answer["written"], true);
        assert_eq!(answer["record"]["seen"], "saved123");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_api_is_there_and_unknown_calls_name_themselves() {
        let sandbox = prepared();
        let check = |source: &'static str| {
            sandbox.call(move |ctx| {
                let value: rquickjs::Value = ctx.eval(source)?;
                Ok(value.as_bool())
            })
        };
        assert_eq!(
            check(
                "typeof routerAdd === 'function' && typeof $apis.requireAuth === 'function' && typeof __native === 'undefined'"
            ),
            Ok(Some(true))
        );
        match check("$app.noSuchFinder()") {
            Err(Failure::Thrown(message)) => {
                assert!(message.contains("$app.noSuchFinder"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        match check("migrate(() => {})") {
            Err(Failure::Thrown(message)) => assert!(message.contains("migrate"), "{message}"),
            other => panic!("{other:?}"),
        }
        // Without a tenant (a deploy's check) cronAdd only checks its expression.
        assert_eq!(
            check("cronAdd('x', '* * * * *', () => {}); true"),
            Ok(Some(true))
        );
        match check("cronAdd('x', 'every minute', () => {})") {
            Err(Failure::Thrown(message)) => {
                assert!(message.contains("failed to add new cron job"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        // The engine's entry points cannot be replaced by the tenant.
        assert_eq!(
            check("try { __warren = null } catch (e) {} typeof __warren.route === 'function'"),
            Ok(Some(true))
        );
    }
}
