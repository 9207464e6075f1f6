//! The request logger: one entry per tenant request, pushed into the tenant's log buffer (see
//! `warren-logs`) after the response is ready. Nothing here waits on a database, except that a
//! request whose handler never looked at its token gets that token checked in a background
//! task, so its entry can still name the auth collection.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use serde_json::Value;
use warren_logs::{Entry, RequestData, level};
use warren_records::Caller;
use warren_records::policy::ClientAddr;
use warren_tenant::Tenant;

use crate::steps::Noted;

/// The caller a handler authenticated, shared between the handler's `Auth` extractor and the
/// logger: `(collection name, record id)`; empty for guests.
#[derive(Clone, Default)]
pub(crate) struct SeenAuth(Arc<OnceLock<(String, String)>>);

impl SeenAuth {
    /// Records the authenticated caller (the first one noted counts).
    pub(crate) fn note(&self, caller: &Caller) {
        let _ = self.0.set(describe(caller));
    }
}

/// Records the authenticated caller for the request's log entry.
pub(crate) fn note_auth(extensions: &axum::http::Extensions, caller: &Caller) {
    if let Some(noted) = extensions.get::<Noted>() {
        noted.seen.note(caller);
    }
}

fn describe(caller: &Caller) -> (String, String) {
    let text = |key: &str| {
        caller
            .record()
            .and_then(|r| r.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (text("collectionName"), text("id"))
}

/// The message of an error response, attached by `ApiError` for the logger.
#[derive(Clone, Debug)]
pub(crate) struct ErrorMessage(pub String);

/// What the log keeps of a tenant request while its route runs ([`crate::steps`]): taken
/// before, written as one entry once the response is ready ([`Pending::finish`]).
pub(crate) struct Pending {
    tenant: Tenant,
    started: Instant,
    seen: SeenAuth,
    method: Method,
    url: String,
    user_agent: String,
    referer: String,
    /// Kept as the header (a shared buffer, not a copy): it is read only when the handler did
    /// not authenticate the caller itself.
    token: Option<HeaderValue>,
    addr: ClientAddr,
}

impl Pending {
    /// Notes the request from `addr` (see [`crate::client::resolve`]), and leaves the
    /// client's addresses and the slot its handler names the caller in ([`note_auth`]) on the
    /// request, as one extension.
    pub(crate) fn start(tenant: &Tenant, request: &mut Request, addr: ClientAddr) -> Self {
        let seen = SeenAuth::default();
        request.extensions_mut().insert(Noted {
            addr: addr.clone(),
            seen: seen.clone(),
        });
        let url = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| request.uri().path().to_string());
        let headers = request.headers();
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        Self {
            tenant: tenant.clone(),
            started: Instant::now(),
            method: request.method().clone(),
            url,
            user_agent: text(header::USER_AGENT),
            referer: text(header::REFERER),
            token: headers
                .get(header::AUTHORIZATION)
                .filter(|v| v.to_str().is_ok_and(|t| !t.trim().is_empty()))
                .cloned(),
            addr,
            seen,
        }
    }

    /// Queues the request's entry in the tenant's log buffer, and hands the response back.
    pub(crate) async fn finish(self, response: Response) -> Response {
        let Self {
            tenant,
            started,
            seen,
            method,
            url,
            user_agent,
            referer,
            token,
            addr,
        } = self;
        let status = response.status().as_u16();
        if method == Method::PATCH && url.starts_with("/api/settings") && status == 200 {
            // The next request must already be logged (or not) under the new settings. Boxed:
            // the rare path's future stays out of every request's.
            if let Err(e) = Box::pin(tenant.logs().reload_settings()).await {
                tracing::warn!(error = %e, "log settings could not be reloaded");
            }
        }
        // As PocketBase: realtime connections and OAuth2 redirects are logged only when they fail.
        let quiet = method == Method::GET
            && (url.starts_with("/api/realtime") || url.starts_with("/api/oauth2-redirect"));
        // Static files are left out when served, as PocketBase's static handler does.
        let quiet = quiet
            || response
                .extensions()
                .get::<crate::routes::public::StaticFile>()
                .is_some();
        if quiet && status < 400 {
            return response;
        }
        let error = (status >= 400).then(|| {
            response
                .extensions()
                .get::<ErrorMessage>()
                .map(|m| m.0.clone())
                .unwrap_or_else(|| {
                    response
                        .status()
                        .canonical_reason()
                        .unwrap_or_default()
                        .to_string()
                })
        });
        let level = if error.is_some() {
            level::ERROR
        } else {
            level::INFO
        };
        let mut message = String::with_capacity(method.as_str().len() + 1 + url.len());
        message.push_str(method.as_str());
        message.push(' ');
        message.push_str(&url);
        let data = RequestData {
            method: method.as_str().to_string(),
            url,
            status,
            exec_time: started.elapsed().as_secs_f64() * 1000.0,
            user_agent,
            referer,
            remote_ip: Some(addr.remote),
            user_ip: Some(addr.real),
            error,
            ..RequestData::default()
        };
        match seen.0.get().cloned() {
            Some(auth) => tenant.logs().record(entry(level, message, data, auth)),
            None => match token {
                None => {
                    tenant
                        .logs()
                        .record(entry(level, message, data, Default::default()));
                }
                Some(token) => {
                    // The handler never authenticated (e.g. health): check the token off the
                    // response path so the entry still names the caller's collection.
                    tokio::spawn(async move {
                        let token = token.to_str().unwrap_or_default();
                        let token = crate::extract::strip_bearer(token).to_string();
                        let caller = warren_records::auth::authenticate(
                            tenant.db(),
                            &tenant.catalog(),
                            &token,
                        )
                        .await
                        .unwrap_or_default();
                        tenant
                            .logs()
                            .record(entry(level, message, data, describe(&caller)));
                    });
                }
            },
        }
        response
    }
}

fn entry(
    level: i64,
    message: String,
    mut data: RequestData,
    (collection, id): (String, String),
) -> Entry {
    data.auth = collection;
    data.auth_id = (!id.is_empty()).then_some(id);
    Entry::request(level, message, data)
}
