//! The seam between the tenant runtime and the tenant's own code (`pb_hooks`): the [`Code`]
//! a tenant's hooks load into, the [`CodeLoader`] the node installs, and the plain request,
//! response and error types that cross it. The engine lives in `warren-hooks`; this crate and
//! the HTTP crates only see these traits, so they do not depend on a JavaScript engine.
//!
//! A tenant without code pays one check of a cell per request (see [`crate::Tenant::code`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::Tenant;

/// A boxed future crossing the seam.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A refusal or failure of the tenant's code, rendered as PocketBase's error envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct HookError {
    /// HTTP status (400 for a thrown `BadRequestError`, 500 for a failure of the code).
    pub status: u16,
    /// The message the caller sees.
    pub message: String,
    /// Field details of the envelope.
    pub data: Map<String, Value>,
}

impl HookError {
    /// PocketBase's generic 500: the cause goes to the tenant's logs, not to the caller.
    pub fn internal() -> Self {
        Self {
            status: 500,
            message: "Something went wrong while processing your request.".into(),
            data: Map::new(),
        }
    }
}

/// A request to one of the tenant's own routes (`routerAdd`).
#[derive(Debug, Clone, Default)]
pub struct RouteRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (without `?`).
    pub query: String,
    /// Request headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
    /// The authenticated record (API JSON), if any.
    pub auth: Option<Map<String, Value>>,
    /// Whether `auth` is a superuser.
    pub superuser: bool,
    /// The client's address as the tenant's settings resolve it.
    pub remote_ip: String,
}

/// The answer of a tenant's route.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

/// The record events a tenant's hooks can listen to around a write (`onRecordCreate` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordEvent {
    /// Before a record is created (`onRecordCreate`).
    Create,
    /// Before a record is updated (`onRecordUpdate`).
    Update,
    /// Before a record is deleted (`onRecordDelete`).
    Delete,
    /// After a create committed (`onRecordAfterCreateSuccess`).
    AfterCreate,
    /// After an update committed (`onRecordAfterUpdateSuccess`).
    AfterUpdate,
    /// After a delete committed (`onRecordAfterDeleteSuccess`).
    AfterDelete,
    // ---- request, execute and error events ----
    /// An API create request, before its write (`onRecordCreateRequest`).
    CreateRequest,
    /// An API update request, before its write (`onRecordUpdateRequest`).
    UpdateRequest,
    /// An API delete request, before its delete (`onRecordDeleteRequest`).
    DeleteRequest,
    /// An API list request, before its answer (`onRecordsListRequest`).
    ListRequest,
    /// An API view request, before its answer (`onRecordViewRequest`).
    ViewRequest,
    /// A successful authentication, before its answer (`onRecordAuthRequest`).
    AuthRequest,
    /// A create about to be written, after the `Create` hooks (`onRecordCreateExecute`).
    CreateExecute,
    /// An update about to be written, after the `Update` hooks (`onRecordUpdateExecute`).
    UpdateExecute,
    /// A delete about to be made, after the `Delete` hooks (`onRecordDeleteExecute`).
    DeleteExecute,
    /// A create that failed (`onRecordAfterCreateError`).
    AfterCreateError,
    /// An update that failed (`onRecordAfterUpdateError`).
    AfterUpdateError,
    /// A delete that failed (`onRecordAfterDeleteError`).
    AfterDeleteError,
}

impl RecordEvent {
    /// The PocketBase name of the hook registering for this event.
    pub fn hook_name(self) -> &'static str {
        match self {
            Self::Create => "onRecordCreate",
            Self::Update => "onRecordUpdate",
            Self::Delete => "onRecordDelete",
            Self::AfterCreate => "onRecordAfterCreateSuccess",
            Self::AfterUpdate => "onRecordAfterUpdateSuccess",
            Self::AfterDelete => "onRecordAfterDeleteSuccess",
            Self::CreateRequest => "onRecordCreateRequest",
            Self::UpdateRequest => "onRecordUpdateRequest",
            Self::DeleteRequest => "onRecordDeleteRequest",
            Self::ListRequest => "onRecordsListRequest",
            Self::ViewRequest => "onRecordViewRequest",
            Self::AuthRequest => "onRecordAuthRequest",
            Self::CreateExecute => "onRecordCreateExecute",
            Self::UpdateExecute => "onRecordUpdateExecute",
            Self::DeleteExecute => "onRecordDeleteExecute",
            Self::AfterCreateError => "onRecordAfterCreateError",
            Self::AfterUpdateError => "onRecordAfterUpdateError",
            Self::AfterDeleteError => "onRecordAfterDeleteError",
        }
    }
}

/// What a request hook sees of the API request: `e.auth` and `e.requestInfo()`.
#[derive(Debug, Clone, Default)]
pub struct HookRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The query parameters (the first value of each).
    pub query: Map<String, Value>,
    /// The request headers (names lowercase; `e.requestInfo()` writes `-` as `_`).
    pub headers: Map<String, Value>,
    /// The submitted body (form fields and JSON; files are not in it).
    pub body: Map<String, Value>,
    /// The authenticated record (API JSON with `collectionName`), if any.
    pub auth: Option<Map<String, Value>>,
    /// Whether `auth` is a superuser.
    pub superuser: bool,
}

/// What the hooks of a request event decided.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestAnswer {
    /// The chain reached its end (`e.next()`): the event's data as the hooks left it; the
    /// request goes on with it.
    Next(Map<String, Value>),
    /// A hook answered the request itself (`e.json(...)`) without `e.next()`.
    Written(RouteResponse),
    /// No hook answered nor called `e.next()`: PocketBase answers an empty 200.
    Stopped,
}

/// A write a hook chain asks for with `e.next()` (see [`Code::record_event_writing`]): the
/// record as the hooks left it, and where the saved record (or the refusal) goes.
pub type WriteRequest = (
    Map<String, Value>,
    tokio::sync::oneshot::Sender<Result<Map<String, Value>, HookError>>,
);

tokio::task_local! {
    static NESTED: ();
}

/// Runs `write` as the write a call into the tenant's code is waiting for (the `e.next()` of a
/// request hook). That call holds one of the tenant's runtimes while it waits, so the calls
/// `write` makes into the code (the record's model hooks) may take one beyond the pool's bound
/// instead of waiting for it; otherwise requests waiting in `e.next()` could hold every
/// runtime and wait for each other. Nesting is one level deep: code that writes from inside
/// (`$app`) runs no hooks.
pub async fn nested<F: Future>(write: F) -> F::Output {
    NESTED.scope((), write).await
}

/// Whether the running task is a write that a call into the tenant's code waits for.
pub fn is_nested() -> bool {
    NESTED.try_with(|_| ()).is_ok()
}

/// A tenant's loaded code. Each call into it holds one of the tenant's runtimes, and is bounded
/// in time and memory and metered by the implementation.
pub trait Code: Send + Sync {
    /// Answers `request` if one of the tenant's routes matches it; `None` if none does.
    fn route<'a>(
        &'a self,
        tenant: &'a Tenant,
        request: RouteRequest,
    ) -> BoxFuture<'a, Option<Result<RouteResponse, HookError>>>;

    /// Whether a hook listens for `event` on `collection` (cheap, no call into the code).
    fn listens(&self, event: RecordEvent, collection: &str) -> bool;

    /// Runs the hooks of `event` on `record` (the record's fields, `id` and
    /// `collectionName` included) of `collection`. Returns the record as the hooks left it,
    /// or their refusal (the write must then not happen).
    fn record_event<'a>(
        &'a self,
        tenant: &'a Tenant,
        event: RecordEvent,
        collection: &'a str,
        record: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Map<String, Value>, HookError>>;

    /// Runs the `Create`, `Update` or `Delete` hooks of `event`, then its `…Execute` hooks, on
    /// `record`; the last `e.next()` sends the record over `writes` and waits for the write,
    /// so code after it sees the saved record. Returns the record as the hooks left it; when
    /// nothing came over `writes` (code that cannot write from inside, or a write made by the
    /// code itself) the caller writes it.
    fn record_event_writing<'a>(
        &'a self,
        tenant: &'a Tenant,
        event: RecordEvent,
        collection: &'a str,
        record: Map<String, Value>,
        writes: tokio::sync::mpsc::Sender<WriteRequest>,
    ) -> BoxFuture<'a, Result<Map<String, Value>, HookError>> {
        drop(writes);
        self.record_event(tenant, event, collection, record)
    }

    /// Runs the hooks of a request, execute or error `event` on `data` (the event's fields:
    /// `record`, `records`, `result`, `token`, `meta`, `authMethod`, `error`) of `collection`,
    /// with `request` as `e.auth` and `e.requestInfo()`. Returns what the hooks decided. Code
    /// that knows no such events lets everything through.
    fn request_event<'a>(
        &'a self,
        tenant: &'a Tenant,
        event: RecordEvent,
        collection: (&'a str, &'a str),
        data: Map<String, Value>,
        request: &'a HookRequest,
    ) -> BoxFuture<'a, Result<RequestAnswer, HookError>> {
        let _ = (tenant, event, collection, request);
        Box::pin(async move { Ok(RequestAnswer::Next(data)) })
    }

    /// [`Code::request_event`] for `CreateRequest`, `UpdateRequest` and `DeleteRequest`,
    /// where the last `e.next()` sends the record over `writes` and waits for the write (the
    /// rest of the request), so code after it sees the saved record, as in PocketBase. When
    /// nothing came over `writes` the caller writes after the hooks.
    fn request_event_writing<'a>(
        &'a self,
        tenant: &'a Tenant,
        event: RecordEvent,
        collection: (&'a str, &'a str),
        data: Map<String, Value>,
        request: &'a HookRequest,
        writes: tokio::sync::mpsc::Sender<WriteRequest>,
    ) -> BoxFuture<'a, Result<RequestAnswer, HookError>> {
        drop(writes);
        self.request_event(tenant, event, collection, data, request)
    }

    /// Runs the function the code registered as cron job `id` (`cronAdd`); `Err` is the
    /// failure the tenant's logs get (an exception, a limit, no such job).
    fn cron<'a>(&'a self, tenant: &'a Tenant, id: &'a str) -> BoxFuture<'a, Result<(), String>>;

    // ---- mail hooks (`onMailerSend`, `onMailerRecord…Send`) ----

    /// Whether a handler is registered for mail hook `hook` (cheap, no call into the code).
    fn listens_mail(&self, hook: &str) -> bool {
        let _ = hook;
        false
    }

    /// Runs the mail hooks on `mail`: first `mail.hook` (a record mail's own hook, when it
    /// has one), then `onMailerSend`. `Ok(Some(message))` is the message to send as the hooks
    /// left it (JSON of `warren_mail::Message`); `Ok(None)` when a hook did not call
    /// `e.next()` (nothing is sent); `Err` when one threw.
    fn mail<'a>(
        &'a self,
        tenant: &'a Tenant,
        mail: MailEvent,
    ) -> BoxFuture<'a, Result<Option<Value>, HookError>> {
        let _ = tenant;
        Box::pin(async move { Ok(Some(mail.message)) })
    }
}

/// A mail on its way out, as the tenant's mail hooks see it.
#[derive(Debug, Clone, Default)]
pub struct MailEvent {
    /// The record mail's own hook (`onMailerRecordVerificationSend` ...), if any.
    pub hook: Option<&'static str>,
    /// The message (JSON of `warren_mail::Message`).
    pub message: Value,
    /// The auth record the mail is about (record mails).
    pub record: Option<Map<String, Value>>,
    /// The collection of `record` (`collectionName`).
    pub collection: String,
    /// Extra data of the record mail (`e.meta`: the token, the new address, the OTP id ...).
    pub meta: Map<String, Value>,
}

/// Loads a tenant's code; installed on the registry by the node (see
/// [`crate::Registry::set_code_loader`]).
pub trait CodeLoader: Send + Sync {
    /// Loads the code of `tenant` from its directory: `Ok(None)` when it has none, an error
    /// (the message the tenant's logs get) when it fails to load.
    fn load<'a>(
        &'a self,
        tenant: &'a Tenant,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Code>>, String>>;

    /// Applies the pending migrations of `dir` (a `pb_migrations` folder) to `tenant`, all in
    /// one transaction; returns the files applied, or why none stands (the failing file and
    /// its error). A loader that runs no migrations applies none.
    fn migrate<'a>(
        &'a self,
        tenant: &'a Tenant,
        dir: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<Vec<String>, String>> {
        let _ = (tenant, dir);
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Checks a staged `pb_hooks` folder before a deploy makes it live: loads it in a scratch
/// sandbox with the same limits, registering nothing live. Installed on the registry by the
/// node (see [`crate::Registry::set_code_check`]).
pub trait CodeCheck: Send + Sync {
    /// Whether the hooks in `hooks_dir` load; `Err` is the engine's message (file and line
    /// where it gives them). Blocking: call it from `spawn_blocking` inside a Tokio runtime.
    fn check(&self, hooks_dir: &std::path::Path) -> Result<(), String>;
}
