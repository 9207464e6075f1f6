//! `POST /api/batch`: several record writes in one transaction.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use warren_records::batch::{self, Action, Item, Outcome};
use warren_records::{read, settings};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody};
use crate::fields::project;
use crate::query::Params;
use crate::router::ApiState;

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

/// Runs the batch; answers `[{body, status}]` in request order.
pub async fn create_batch(
    State(state): State<ApiState>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    headers: HeaderMap,
    form: FormBody,
) -> Result<impl IntoResponse, ApiError> {
    let body = form.data;
    let mut uploads = batch_uploads(form.files);
    let config = tenant.settings().await?;
    if settings::get(&config, "batch.enabled") != Some(&Value::Bool(true)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Batch requests are not allowed.",
        ));
    }
    let max = settings::get(&config, "batch.maxRequests")
        .and_then(Value::as_u64)
        .unwrap_or(50);
    let requests = match body.get("requests") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => return Err(invalid("validation_required", "Cannot be blank.")),
    };
    if requests.len() as u64 > max {
        return Err(invalid(
            "validation_length_too_long",
            &format!("The length must be no more than {max}."),
        ));
    }
    let catalog = tenant.catalog();
    let mut items = Vec::with_capacity(requests.len());
    let mut pendings: Vec<crate::uploads::Pending> = Vec::new();
    let mut projections = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_uppercase();
        let url = request
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut item_body = match request.get("body") {
            Some(Value::Object(map)) => map.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(failed(index, ApiError::bad_request())),
        };
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let params = Params::parse(query).map_err(|e| failed(index, e))?;
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (collection, id) = match segments.as_slice() {
            ["api", "collections", c, "records"] => (*c, None),
            ["api", "collections", c, "records", id] => (*c, Some(*id)),
            _ => return Err(failed(index, ApiError::bad_request())),
        };
        let action = match (method.as_str(), id) {
            ("POST", None) => Action::Create,
            ("PUT", None) => Action::Upsert,
            ("PATCH", Some(id)) => Action::Update(id.to_string()),
            ("DELETE", Some(id)) => Action::Delete(id.to_string()),
            _ => return Err(failed(index, ApiError::bad_request())),
        };
        let entry = read::collection(&catalog, collection).map_err(|e| failed(index, e.into()))?;
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST);
        let mut ctx = super::records::context(&caller, &method, &params, &headers);
        ctx.context = "batch".into();
        let existing = match &action {
            Action::Update(id) => Some(id.clone()),
            Action::Upsert => item_body
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_string),
            _ => None,
        };
        let item_files = uploads.remove(&index).unwrap_or_default();
        let staged = crate::uploads::stage(
            &state.files,
            &tenant,
            &entry,
            &mut item_body,
            item_files,
            existing.as_deref(),
        )
        .await;
        let pending = match staged {
            Ok(pending) => pending,
            Err(e) => {
                for pending in pendings {
                    pending.rollback().await;
                }
                return Err(failed(index, e));
            }
        };
        items.push(Item {
            entry,
            action,
            body: item_body,
            ctx,
            expand: params.text("expand").to_string(),
            uploads: pending.names.clone(),
        });
        pendings.push(pending);
        projections.push(params.text("fields").to_string());
    }
    let ran = batch::run(
        tenant.db(),
        catalog.clone(),
        &caller,
        items,
        &state.passwords,
    )
    .await;
    let (outcomes, changes) = match ran {
        Ok(done) => done,
        Err(failure) => {
            for pending in pendings {
                pending.rollback().await;
            }
            return Err(failed(failure.index, failure.error.into()));
        }
    };
    for pending in pendings {
        pending.commit(&state.files, &tenant, &changes).await;
    }
    super::realtime::publish(&tenant, catalog, changes);
    let mut out = Vec::with_capacity(outcomes.len());
    for (outcome, fields) in outcomes.into_iter().zip(projections) {
        out.push(match outcome {
            Outcome::Record(record) => json!({ "body": project(record, &fields)?, "status": 200 }),
            Outcome::Deleted => json!({ "body": null, "status": 204 }),
        });
    }
    Ok(Json(Value::Array(out)))
}

/// Batch file parts by item: `requests.N.field` and `requests[N].field` become uploads with
/// key `field` of item N.
fn batch_uploads(
    files: Vec<crate::extract::Upload>,
) -> std::collections::BTreeMap<usize, Vec<crate::extract::Upload>> {
    let mut out: std::collections::BTreeMap<usize, Vec<crate::extract::Upload>> =
        std::collections::BTreeMap::new();
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
