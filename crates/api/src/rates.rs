//! Enforces a tenant's `settings.rateLimits` before any handler runs: picks the rule for the
//! request (collection action tags first, then method and path), counts the client IP against
//! it and answers 429 in PocketBase's envelope past the limit. Settings changes apply to the
//! next request and, as in PocketBase, start every counter afresh; superusers and excluded IPs
//! are never limited. Batch items are counted here too (see `routes/batch.rs`).

use std::time::Duration;

use axum::extract::{MatchedPath, Request as HttpRequest};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use warren_records::policy::Policy;
use warren_records::rates::{AUDIENCE_ALL, AUDIENCE_AUTH, AUDIENCE_GUEST};
use warren_tenant::Tenant;

use crate::error::ApiError;
use crate::router::{ApiState, Shared};

const COLLECTION_ROUTES: &str = "/api/collections/{collection}/";

/// The action tags of a per-collection route (`create`, `authWithPassword` + `auth`, …), as
/// PocketBase names them in `collection:action` labels.
pub(crate) fn tags(route: &str, method: &Method) -> &'static [&'static str] {
    if route == "/api/files/{collection}/{record}/{filename}" {
        return &["file"];
    }
    let Some(rest) = route.strip_prefix(COLLECTION_ROUTES) else {
        return &[];
    };
    match (rest, method.as_str()) {
        ("records", "GET") => &["list"],
        ("records", "POST") => &["create"],
        ("records/{id}", "GET") => &["view"],
        ("records/{id}", "PATCH") => &["update"],
        ("records/{id}", "DELETE") => &["delete"],
        ("auth-methods", _) => &["listAuthMethods"],
        ("auth-refresh", _) => &["authRefresh"],
        ("auth-with-password", _) => &["authWithPassword", "auth"],
        ("auth-with-oauth2", _) => &["authWithOAuth2", "auth"],
        ("auth-with-otp", _) => &["authWithOTP", "auth"],
        ("request-otp", _) => &["requestOTP"],
        ("request-password-reset", _) => &["requestPasswordReset"],
        ("confirm-password-reset", _) => &["confirmPasswordReset"],
        ("request-verification", _) => &["requestVerification"],
        ("confirm-verification", _) => &["confirmVerification"],
        ("request-email-change", _) => &["requestEmailChange"],
        ("confirm-email-change", _) => &["confirmEmailChange"],
        _ => &[],
    }
}

/// The collection named by the request path's first segment after the route prefix.
fn path_collection(path: &str, route: &str) -> Option<String> {
    let prefix = if route.starts_with(COLLECTION_ROUTES) {
        "/api/collections/"
    } else {
        "/api/files/"
    };
    let rest = path.strip_prefix(prefix)?;
    let raw = rest.split('/').next()?;
    Some(percent_decode(raw))
}

fn percent_decode(raw: &str) -> String {
    url_decode(raw).unwrap_or_else(|| raw.to_string())
}

fn url_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The last of Warren's checks before the route ([`crate::client::admit`]): applies the
/// tenant's rate limit rules; `Err` holds the 429 that refuses the request.
pub(crate) async fn limit_rates(
    state: &Shared,
    tenant: &Tenant,
    policy: &Policy,
    request: &mut HttpRequest,
) -> Result<(), Response> {
    let limits = &policy.rate_limits;
    if !limits.enabled || limits.rules.is_empty() {
        return Ok(());
    }
    let ip = crate::client::addr(request.extensions()).real;
    if limits.excludes(&ip) {
        return Ok(());
    }
    let caller = match crate::client::authenticate(state, request).await {
        Ok(caller) => caller,
        Err(e) => return Err(e.into_response()),
    };
    if caller.is_superuser() {
        return Ok(());
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let tags = tags(&route, request.method());
    let collection = if tags.is_empty() {
        None
    } else {
        path_collection(request.uri().path(), &route)
            .and_then(|c| tenant.catalog().get(&c).cloned())
    };
    let picked = Request {
        method: request.method(),
        path: request.uri().path(),
        route: &route,
        collection: collection.as_ref().map(|e| &e.collection),
        tags,
    };
    check(state, tenant, policy, &caller, &ip, &picked).map_err(IntoResponse::into_response)
}

/// What a rate limit rule is picked by: one request, or one request inside a batch.
pub(crate) struct Request<'a> {
    /// Its method.
    pub method: &'a Method,
    /// Its path (without the query).
    pub path: &'a str,
    /// The route pattern it matched; empty inside a batch, which keeps a batch's items on
    /// counters of their own, as in PocketBase.
    pub route: &'a str,
    /// The collection of a per-collection route.
    pub collection: Option<&'a warren_schema::Collection>,
    /// The route's action tags (`create`, `auth`, …).
    pub tags: &'static [&'static str],
}

/// Counts one request from `ip` against the rule that covers it; 429 past the limit.
/// Superusers and excluded addresses are the caller's to skip.
pub(crate) fn check(
    state: &ApiState,
    tenant: &Tenant,
    policy: &Policy,
    caller: &warren_records::Caller,
    ip: &str,
    request: &Request<'_>,
) -> Result<(), ApiError> {
    if ip.is_empty() {
        return Ok(());
    }
    let audiences: [&str; 2] = if caller.id().is_some() {
        [AUDIENCE_ALL, AUDIENCE_AUTH]
    } else {
        [AUDIENCE_ALL, AUDIENCE_GUEST]
    };
    let Request {
        method,
        path,
        route,
        collection,
        tags,
    } = request;
    let mut labels: Vec<String> = Vec::with_capacity(2 + tags.len() * 2);
    if let Some(collection) = collection {
        labels.extend(tags.iter().map(|t| format!("{}:{t}", collection.name)));
        labels.extend(tags.iter().map(|t| format!("*:{t}")));
    }
    labels.push(format!("{method} {path}"));
    labels.push(path.to_string());
    let epoch = policy.epoch;
    let Some(rule) = policy.rate_limits.find(&labels, &audiences) else {
        return Ok(());
    };
    // A per-collection route counts per collection and action; any other counts per rule.
    let counter = match collection {
        Some(collection) => {
            let pattern = if route.is_empty() {
                String::new()
            } else {
                format!("{method} {route}")
            };
            format!("{}{pattern}{}", collection.id, tags.concat())
        }
        None => rule.label.clone(),
    };
    // Counters live as long as the settings they were counted under.
    let key = format!(
        "{}\0rate\0{counter}\0{}\0{epoch}\0{ip}",
        tenant.id(),
        rule.audience,
    );
    if state
        .rates
        .allow(&key, rule.max_requests, Duration::from_secs(rule.duration))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests.",
        ))
    }
}
