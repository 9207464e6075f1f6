//! `POST /api/batch`: several record writes in one transaction, within the tenant's batch
//! limits and rate limit rules.

use axum::Json;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use warren_records::batch::{Action, Outcome};
use warren_records::{Caller, Catalog, read};
use warren_tenant::ops;

use crate::client::ClientIp;
use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody, RequestHeaders};
use crate::fields::project;
use crate::query::Params;
use crate::router::Shared;

fn invalid(code: &str, message: &str) -> ApiError {
    let mut error = ApiError::new(StatusCode::BAD_REQUEST, "Invalid batch request data.");
    error.data.insert(
        "requests".into(),
        json!({ "code": code, "message": message }),
    );
    error
}

/// A failed item, wrapped as PocketBase reports it: the whole batch failed because of item `i`.
fn failed(index: usize, cause: ApiError) -> ApiError {
    let response =
        json!({ "data": cause.data, "message": cause.message, "status": cause.status.as_u16() });
    let mut error = ApiError::new(StatusCode::BAD_REQUEST, "Batch transaction failed.");
    error.data.insert(
        "requests".into(),
        json!({ index.to_string(): { "code": "batch_request_failed", "message": "Batch request failed.", "response": response } }),
    );
    error
}

/// Runs the batch; answers `[{body, status}]` in request order. The tenant's `batch` settings
/// decide whether batches are accepted, how many requests and bytes one may carry and how long
/// it may take; its rate limit rules count each item as PocketBase counts them (per collection
/// and action, on counters of their own, apart from the same routes called directly).
pub async fn create_batch(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    headers: RequestHeaders,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let policy = tenant.policy().await?;
    let limits = &policy.batch;
    if !limits.enabled || limits.max_requests == 0 {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Batch requests are not allowed.",
        ));
    }
    // The timeout counts from here: reading the body, planning and the transaction.
    let deadline = Instant::now() + limits.timeout;
    let (requests, mut uploads) = read_requests(&policy.batch, &headers, request).await?;
    let catalog = tenant.catalog();
    let mut items = Vec::with_capacity(requests.len());
    let mut projections = Vec::with_capacity(requests.len());
    let mut targets: Vec<Target> = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        let parsed = parse_item(request, &catalog, &caller, &headers);
        let (mut item, target, fields) = parsed.map_err(|e| failed(index, e))?;
        item.uploads = uploads.remove(&index).unwrap_or_default();
        items.push(item);
        targets.push(target);
        projections.push(fields);
    }
    let limited = policy.rate_limits.enabled
        && !policy.rate_limits.rules.is_empty()
        && !caller.is_superuser()
        && !policy.rate_limits.excludes(&ip);
    let admit = |index: usize, action: &Action| -> Result<(), warren_records::Error> {
        let Some(target) = targets.get(index).filter(|_| limited) else {
            return Ok(());
        };
        let (method, path, tags) = target.resolved(action);
        let request = crate::rates::Request {
            method: &method,
            path: &path,
            route: "",
            collection: Some(&target.entry.collection),
            tags,
        };
        crate::rates::check(&state, &tenant, &policy, &caller, &ip, &request)
            .map_err(|_| warren_records::Error::TooManyRequests("Too Many Requests."))
    };
    let batch = ops::Batch {
        caller: &caller,
        items,
        deadline,
        admit: &admit,
    };
    let services = crate::uploads::services(&state);
    let outcomes =
        ops::run_batch(&tenant, &services, batch)
            .await
            .map_err(|failure| match failure {
                ops::BatchError::Item { index, error } => failed(index, error.into()),
                // As PocketBase: not a 408, which some browsers retry on their own.
                ops::BatchError::TimedOut => {
                    ApiError::new(StatusCode::BAD_REQUEST, "Batch transaction failed.")
                }
            })?;
    let mut out = Vec::with_capacity(outcomes.len());
    for (outcome, fields) in outcomes.into_iter().zip(projections) {
        out.push(match outcome {
            Outcome::Record(record) => json!({ "body": project(record, &fields)?, "status": 200 }),
            Outcome::Deleted => json!({ "body": null, "status": 204 }),
        });
    }
    Ok(Json(Value::Array(out)))
}

/// One batch request as a write (its uploads not yet attached), where it goes (for its rate
/// limit rule) and its `fields` projection.
fn parse_item(
    request: &Value,
    catalog: &Catalog,
    caller: &Caller,
    headers: &RequestHeaders,
) -> Result<(ops::BatchItem, Target, String), ApiError> {
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_uppercase();
    let url = request
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = match request.get("body") {
        Some(Value::Object(map)) => map.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(ApiError::bad_request()),
    };
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let params = Params::parse(query)?;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (collection, id) = match segments.as_slice() {
        ["api", "collections", c, "records"] => (*c, None),
        ["api", "collections", c, "records", id] => (*c, Some(*id)),
        _ => return Err(ApiError::bad_request()),
    };
    let action = match (method.as_str(), id) {
        ("POST", None) => Action::Create,
        ("PUT", None) => Action::Upsert,
        ("PATCH", Some(id)) => Action::Update(id.to_string()),
        ("DELETE", Some(id)) => Action::Delete(id.to_string()),
        _ => return Err(ApiError::bad_request()),
    };
    let entry = read::collection(catalog, collection)?;
    let target = Target {
        segment: collection.to_string(),
        entry: entry.clone(),
    };
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST);
    let mut ctx = super::records::context(caller, &method, &params, headers);
    ctx.context = "batch".into();
    let item = ops::BatchItem {
        entry,
        action,
        body,
        ctx,
        expand: params.text("expand").to_string(),
        uploads: Vec::new(),
        request: super::records::hook_request(caller, &method, &params, headers, Map::new()),
    };
    Ok((item, target, params.text("fields").to_string()))
}

/// Reads the batch body within `limits` (size, number of requests) and checks that every item
/// decodes as PocketBase decodes it; returns the items and their uploads by item.
async fn read_requests(
    limits: &warren_records::policy::BatchLimits,
    headers: &HeaderMap,
    request: Request,
) -> Result<(Vec<Value>, Uploads), ApiError> {
    let max_body = usize::try_from(limits.max_body_size).unwrap_or(usize::MAX);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_size) {
        return Err(too_large());
    }
    // As PocketBase: a body that turns out larger than declared (or undeclared and too
    // large) fails to read like any other unreadable body.
    let form = FormBody::read_limited(request, max_body)
        .await
        .map_err(|_| unreadable())?;
    let mut body = form.data;
    let uploads = batch_uploads(form.files);
    let max = limits.max_requests;
    let requests = match body.remove("requests") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        None | Some(Value::Null) | Some(Value::Array(_)) => {
            return Err(invalid("validation_required", "Cannot be blank."));
        }
        Some(_) => return Err(unreadable()),
    };
    // Items that are not `{method, url, headers?, body?}` objects do not decode in PocketBase.
    let decodes = |item: &Value| {
        let text = |key: &str| matches!(item.get(key), None | Some(Value::Null | Value::String(_)));
        item.is_object()
            && text("method")
            && text("url")
            && matches!(
                item.get("body"),
                None | Some(Value::Null | Value::Object(_))
            )
            && matches!(
                item.get("headers"),
                None | Some(Value::Null | Value::Object(_))
            )
    };
    if !requests.iter().all(decodes) {
        return Err(unreadable());
    }
    if requests.len() as u64 > max {
        return Err(invalid(
            "validation_length_too_long",
            &format!("The length must be no more than {max}."),
        ));
    }
    Ok((requests, uploads))
}

/// Batch uploads by item index.
type Uploads = std::collections::BTreeMap<usize, Vec<crate::extract::Upload>>;

/// Where one batch item goes, for its rate limit rule.
struct Target {
    /// The collection as the item's URL names it (name or id).
    segment: String,
    /// The collection.
    entry: std::sync::Arc<warren_records::Entry>,
}

impl Target {
    /// The method, path and action tag the item counts as (an upsert counts as the create or
    /// the update it turned out to be, at that route's path).
    fn resolved(&self, action: &Action) -> (Method, String, &'static [&'static str]) {
        let records = format!("/api/collections/{}/records", self.segment);
        match action {
            Action::Create => (Method::POST, records, &["create"]),
            Action::Update(id) => (Method::PATCH, format!("{records}/{id}"), &["update"]),
            Action::Delete(id) => (Method::DELETE, format!("{records}/{id}"), &["delete"]),
            Action::Upsert => (Method::PUT, records, &[]),
        }
    }
}

fn unreadable() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "Failed to read the submitted batch data.",
    )
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large.")
}

/// Batch file parts by item: `requests.N.field` and `requests[N].field` become uploads with
/// key `field` of item N.
fn batch_uploads(files: Vec<crate::extract::Upload>) -> Uploads {
    let mut out = Uploads::new();
    for mut upload in files {
        let Some(rest) = upload.key.strip_prefix("requests") else {
            continue;
        };
        let parsed = if let Some(rest) = rest.strip_prefix('[') {
            rest.split_once("].")
        } else {
            rest.strip_prefix('.').and_then(|r| r.split_once('.'))
        };
        let Some((index, field)) = parsed else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        upload.key = field.to_string();
        out.entry(index).or_default().push(upload);
    }
    out
}
