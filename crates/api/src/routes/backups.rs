//! `/api/backups`: the tenant's own PocketBase-style backups (list, create, upload, download
//! with a superuser file token, delete, restore), for its superusers. The work is
//! `warren_tenant::backups`'; this module parses and renders.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use warren_schema::datetime::DateTime;
use warren_tenant::backups::{self, Quota};
use warren_tenant::{Error as TenantError, Tenant};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody, require_superuser};
use crate::query::Params;
use crate::router::Shared;

/// Largest backup upload (the plan's `maxUploadBytes` and backup quota may bound it lower).
const MAX_UPLOAD: u64 = 16 << 30;

/// Bytes of a refused upload read (and dropped) before answering.
const REFUSED_BODY_READ: usize = 256 << 10;

const BUSY: &str = "Try again later - another backup/restore process has already been started.";

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn validation() -> ApiError {
    invalid("An error occurred while validating the submitted data.")
}

/// A refusal of the tenant runtime as a 400 saying why; other failures stay 500s.
fn refused(e: TenantError, prefix: &str) -> ApiError {
    match e {
        TenantError::Invalid(reason) | TenantError::TooLarge(reason) => {
            let end = if reason.ends_with(['.', '?', '!']) {
                ""
            } else {
                "."
            };
            invalid(format!("{prefix} {reason}{end}"))
        }
        TenantError::Draining => invalid(BUSY),
        other => ApiError::internal(other),
    }
}

/// `GET /api/backups`
pub async fn list_backups(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let files = backups::list(tenant.dir())
        .await
        .map_err(ApiError::internal)?;
    let listed = files.iter().map(|file| {
        let millis = file
            .modified
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let modified = DateTime {
            unix_millis: millis,
        };
        json!({ "key": file.key, "size": file.size, "modified": modified.format() })
    });
    Ok(Json(Value::Array(listed.collect())))
}

/// `POST /api/backups` `{name?}`
pub async fn create_backup(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    body: FormBody,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    if state.backups.is_running(tenant.id()) {
        return Err(invalid(BUSY));
    }
    let name = match body.data.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(name)) => name.clone(),
        Some(_) => {
            return Err(validation().field("name", "validation_invalid", "Must be a string."));
        }
    };
    if let Some(problem) = name_problem(&tenant, &name).await? {
        return Err(problem);
    }
    let key = if name.is_empty() {
        backups::generated_name(&tenant, "pb_backup_").await
    } else {
        name
    };
    backups::check_quota(tenant.dir(), tenant.meter().backup_quota(), 0)
        .await
        .map_err(|e| refused(e, "Failed to create backup:"))?;
    let Some(_active) = state.backups.begin(tenant.id(), &key) else {
        return Err(invalid(BUSY));
    };
    state
        .backups
        .create(&tenant, &key)
        .await
        .map_err(|e| refused(e, "Failed to create backup:"))?;
    // The new backup's size is known only now: over the plan's bytes, it is not kept.
    if let Err(e) = backups::check_quota(
        tenant.dir(),
        Quota {
            max_count: 0,
            ..tenant.meter().backup_quota()
        },
        0,
    )
    .await
    {
        let _ = backups::delete(tenant.dir(), &key).await;
        return Err(refused(e, "Failed to create backup:"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Why `name` cannot name a new backup, as PocketBase's field error (empty: generated).
async fn name_problem(tenant: &Tenant, name: &str) -> Result<Option<ApiError>, ApiError> {
    if name.is_empty() {
        return Ok(None);
    }
    if name.len() > backups::MAX_KEY {
        return Ok(Some(validation().field(
            "name",
            "validation_length_out_of_range",
            "The length must be between 1 and 150.",
        )));
    }
    if !backups::valid_name(name) {
        return Ok(Some(validation().field(
            "name",
            "validation_match_invalid",
            "Must be in a valid format.",
        )));
    }
    if backups::exists(tenant.dir(), name).await? {
        return Ok(Some(validation().field(
            "name",
            "validation_backup_name_exists",
            "The backup file name is invalid or already exists.",
        )));
    }
    Ok(None)
}

/// `POST /api/backups/upload` (multipart `file`, a zip)
pub async fn upload_backup(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    State(state): State<Shared>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    if let Err(refusal) = require_superuser(&caller) {
        // Closing a connection with unread bytes resets it, and the client may never read the
        // refusal: a small body is read and dropped first, as Go's server does.
        let _ = axum::body::to_bytes(request.into_body(), REFUSED_BODY_READ).await;
        return Err(refusal);
    }
    let quota = tenant.meter().backup_quota();
    let limit = usize::try_from(MAX_UPLOAD).unwrap_or(usize::MAX);
    let form = FormBody::read_limited(request, limit).await?;
    let Some(upload) = form.files.iter().find(|f| f.key == "file") else {
        return Err(validation().field("file", "validation_required", "Cannot be blank."));
    };
    let key = upload.filename.clone();
    if upload.file.sniffed().mime != "application/zip" {
        let message = format!("{key:?} mime type must be one of: application/zip.");
        return Err(validation().field("file", "validation_invalid_mime_type", &message));
    }
    if !backups::valid_name(&key) {
        return Err(validation().field(
            "file",
            "validation_invalid_name",
            "The file name must be lowercase letters, digits, '_' and '-' ending in .zip.",
        ));
    }
    if backups::exists(tenant.dir(), &key).await? {
        return Err(validation().field(
            "file",
            "validation_backup_name_exists",
            "Backup file with the specified name already exists.",
        ));
    }
    backups::check_quota(tenant.dir(), quota, upload.file.size)
        .await
        .map_err(|e| refused(e, "Failed to upload backup:"))?;
    state
        .backups
        .add(&tenant, &key, upload.file.path())
        .await
        .map_err(|e| match e {
            TenantError::Invalid(reason) | TenantError::TooLarge(reason) => {
                let message = format!("The file is not a PocketBase backup: {reason}.");
                validation().field("file", "validation_invalid_backup", &message)
            }
            other => ApiError::internal(other),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/backups/{key}?token=` (a superuser file token)
pub async fn download_backup(
    CurrentTenant(tenant): CurrentTenant,
    Path(key): Path<String>,
    params: Params,
    parts: Parts,
) -> Result<Response, ApiError> {
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "Insufficient permissions to access the resource.",
        )
    };
    let token = params.text("token");
    let catalog = tenant.catalog();
    let caller = crate::routes::files::file_token_caller(&tenant, &catalog, token).await?;
    if !caller.is_some_and(|c| c.is_superuser()) {
        return Err(forbidden());
    }
    let ip = crate::client::addr(&parts.extensions).real;
    if !tenant.policy().await?.superuser_allowed(&ip) {
        return Err(forbidden());
    }
    let path = backups::path_of(tenant.dir(), &key).ok_or_else(ApiError::not_found)?;
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiError::not_found()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let size = file.metadata().await.map_err(ApiError::internal)?.len();
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    // The key is checked to be `[a-z0-9_-]+.zip`, so it is a valid header value.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{key}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `DELETE /api/backups/{key}`
pub async fn delete_backup(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    if state.backups.in_use(tenant.id(), &key) {
        return Err(invalid(
            "The backup is currently being used and cannot be deleted.",
        ));
    }
    match backups::delete(tenant.dir(), &key).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(TenantError::NotFound) => Err(invalid("Invalid or already deleted backup file.")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// `POST /api/backups/{key}/restore`: answers once the backup is unpacked and checked; the
/// tenant is then drained and replaced (requests meanwhile get 503).
pub async fn restore_backup(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    if state.backups.is_running(tenant.id()) {
        return Err(invalid(BUSY));
    }
    if !backups::exists(tenant.dir(), &key).await? {
        return Err(invalid("Missing or invalid backup file."));
    }
    let Some(active) = state.backups.begin(tenant.id(), &key) else {
        return Err(invalid(BUSY));
    };
    state
        .backups
        .restore(&tenant, &key, active)
        .await
        .map_err(|e| refused(e, "The backup cannot be restored:"))?;
    Ok(StatusCode::NO_CONTENT)
}
