//! File uploads of record writes: checks each uploaded file against its field (`maxSize`,
//! `mimeTypes`), names it, puts it in the tenant's storage right before the database write,
//! takes it back out when the write fails, and deletes files the write dropped (and files of
//! deleted records) once the write has committed.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use warren_files::{Backend, Files, PutMeta, S3Config, Storage, name};
use warren_records::{Change, ChangeAction, Entry};
use warren_schema::FieldKind;
use warren_schema::field::DEFAULT_FILE_MAX_SIZE;
use warren_tenant::Tenant;

use crate::error::ApiError;
use crate::extract::Upload;

/// PocketBase's default request body limit.
const BASE_LIMIT: usize = 32 << 20;

/// The body limit of a record create/update on `entry`: the default plus room for every file
/// field at its `maxSize` × `maxSelect`.
pub fn body_limit(entry: &Entry) -> usize {
    let mut limit = BASE_LIMIT as u64;
    for field in &entry.collection.fields {
        if let FieldKind::File(o) = &field.kind {
            let size = if o.max_size > 0 {
                o.max_size as u64
            } else {
                DEFAULT_FILE_MAX_SIZE as u64
            };
            limit = limit.saturating_add(size.saturating_mul(o.max_select.max(1) as u64));
        }
    }
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// The tenant's own S3 settings (`settings.s3`), when enabled.
pub async fn own_s3(tenant: &Tenant) -> Result<Option<S3Config>, ApiError> {
    let settings = tenant.settings().await?;
    Ok(warren_records::settings::get(&settings, "s3")
        .and_then(|v| serde_json::from_value::<S3Config>(v.clone()).ok())
        .filter(S3Config::is_usable))
}

/// The tenant's storage backend.
pub async fn backend(files: &Files, tenant: &Tenant) -> Result<Backend, ApiError> {
    let own = own_s3(tenant).await?;
    files
        .backend(tenant.id(), tenant.dir(), own.as_ref())
        .map_err(ApiError::internal)
}

/// Files written for a record write that has not committed yet.
pub struct Pending {
    /// Where they went.
    backend: Option<Backend>,
    /// The record's collection id.
    collection_id: String,
    /// The record's id.
    record_id: String,
    /// Keys written for this request.
    written: Vec<String>,
    /// File names the record held before an update.
    before: Vec<String>,
    /// Stored names by body key, for the records engine.
    pub names: BTreeMap<String, Vec<String>>,
}

fn field_error(
    message: &'static str,
    field: &str,
    code: &str,
    text: String,
    params: Value,
) -> ApiError {
    let mut error = ApiError::new(StatusCode::BAD_REQUEST, message);
    let mut entry = json!({ "code": code, "message": text });
    if !params.is_null() {
        entry["params"] = params;
    }
    error.data.insert(field.to_string(), entry);
    error
}

/// The field name of an upload key (`field`, `field+`, `+field`).
fn field_of(key: &str) -> &str {
    key.strip_prefix('+')
        .or_else(|| key.strip_suffix('+'))
        .unwrap_or(key)
}

/// File names currently held by record `id`'s file fields.
async fn stored_names(
    tenant: &Tenant,
    entry: &std::sync::Arc<Entry>,
    id: &str,
) -> Result<Vec<String>, ApiError> {
    let (lookup, id) = (entry.clone(), id.to_string());
    let data = tenant
        .db()
        .read(move |c| warren_records::auth::load_data(c, &lookup, &id))
        .await?;
    Ok(data.map(|d| file_names(entry, &d)).unwrap_or_default())
}

/// Every file name in `data`'s file fields.
fn file_names(entry: &Entry, data: &BTreeMap<String, Value>) -> Vec<String> {
    let mut names = Vec::new();
    for field in &entry.collection.fields {
        if !matches!(field.kind, FieldKind::File(_)) {
            continue;
        }
        match data.get(&field.name) {
            Some(Value::String(s)) if !s.is_empty() => names.push(s.clone()),
            Some(Value::Array(list)) => {
                names.extend(list.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
    }
    names
}

/// Checks and stores the uploads of a create (`existing = None`) or update of `entry`. On
/// create without an `id` in the body, one is generated (the files' directory needs it).
pub async fn stage(
    files: &Files,
    tenant: &Tenant,
    entry: &std::sync::Arc<Entry>,
    body: &mut Map<String, Value>,
    uploads: Vec<Upload>,
    existing: Option<&str>,
) -> Result<Pending, ApiError> {
    let message = if existing.is_some() {
        "Failed to update record."
    } else {
        "Failed to create record."
    };
    let collection = &entry.collection;
    let has_files = collection
        .fields
        .iter()
        .any(|f| matches!(f.kind, FieldKind::File(_)));
    let mut pending = Pending {
        backend: None,
        collection_id: collection.id.clone(),
        record_id: existing.unwrap_or_default().to_string(),
        written: Vec::new(),
        before: Vec::new(),
        names: BTreeMap::new(),
    };
    if let Some(id) = existing
        && has_files
    {
        pending.before = stored_names(tenant, entry, id).await?;
    }
    // Uploads for keys that are not file fields are ignored, as PocketBase ignores them.
    let mut accepted = Vec::new();
    for upload in uploads {
        let Some(field) = collection.field(field_of(&upload.key)) else {
            continue;
        };
        let FieldKind::File(options) = &field.kind else {
            continue;
        };
        let client = name::client_basename(&upload.filename).to_string();
        let max = if options.max_size > 0 {
            options.max_size
        } else {
            DEFAULT_FILE_MAX_SIZE
        };
        if upload.file.size > max as u64 {
            return Err(field_error(
                message,
                &field.name,
                "validation_file_size_limit",
                format!(
                    "Failed to upload {client} - the maximum allowed file size is {max} bytes."
                ),
                json!({ "file": client, "maxSize": max }),
            ));
        }
        let sniffed = upload.file.sniffed();
        let stored = name::stored_name(&client, &sniffed.ext);
        if !warren_files::mime::allowed(&sniffed.mime, &options.mime_types) {
            return Err(field_error(
                message,
                &field.name,
                "validation_invalid_mime_type",
                format!(
                    "\"{stored}\" mime type must be one of: {}.",
                    options.mime_types.join(", ")
                ),
                Value::Null,
            ));
        }
        accepted.push((upload, stored, sniffed.mime, client));
    }
    if accepted.is_empty() {
        return Ok(pending);
    }
    if existing.is_none() {
        let id = match body.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => {
                let pattern = collection
                    .field("id")
                    .and_then(|f| match &f.kind {
                        FieldKind::Text(o) => Some(o.autogenerate_pattern.clone()),
                        _ => None,
                    })
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "[a-z0-9]{15}".to_string());
                let id = warren_schema::id::generate_from_pattern(&pattern)
                    .unwrap_or_else(|| name::random_suffix(15));
                body.insert("id".into(), Value::String(id.clone()));
                id
            }
        };
        pending.record_id = id;
    }
    let backend = backend(files, tenant).await?;
    pending.backend = Some(backend.clone());
    for (upload, stored, mime, client) in accepted {
        let key =
            name::file_key(&pending.collection_id, &pending.record_id, &stored).map_err(|_| {
                field_error(
                    message,
                    "id",
                    "validation_invalid_format",
                    "Invalid value format.".into(),
                    Value::Null,
                )
            })?;
        let meta = PutMeta {
            content_type: mime,
            original_name: client,
        };
        if let Err(e) = backend.put_file(&key, upload.file.path(), &meta).await {
            pending.rollback().await;
            return Err(ApiError::internal(e));
        }
        pending.written.push(key);
        pending
            .names
            .entry(upload.key.clone())
            .or_default()
            .push(stored);
    }
    Ok(pending)
}

impl Pending {
    /// Takes back every file this request wrote (the write failed).
    pub async fn rollback(self) {
        if let Some(backend) = &self.backend {
            for key in &self.written {
                if let Err(e) = backend.delete(key).await {
                    tracing::warn!(error = %e, key, "an upload of a failed write was not removed");
                }
            }
        }
    }

    /// After a committed write: deletes the files the record no longer holds (and their
    /// thumbs), and the files of records the write deleted.
    pub async fn commit(self, files: &Files, tenant: &Tenant, changes: &[Change]) {
        let after = changes.iter().find(|c| {
            c.entry.collection.id == self.collection_id
                && c.data.get("id").and_then(Value::as_str) == Some(self.record_id.as_str())
                && c.action != ChangeAction::Delete
        });
        if let Some(change) = after
            && !self.before.is_empty()
        {
            let kept = file_names(&change.entry, &change.data);
            let dropped: Vec<&String> = self.before.iter().filter(|n| !kept.contains(n)).collect();
            if !dropped.is_empty() {
                let backend = match self.backend {
                    Some(b) => Ok(b),
                    None => backend(files, tenant).await,
                };
                if let Ok(backend) = backend {
                    for name in dropped {
                        remove_file(&backend, &self.collection_id, &self.record_id, name).await;
                    }
                }
            }
        }
        remove_deleted(files, tenant, changes).await;
    }
}

/// Deletes one stored file and its thumbs.
async fn remove_file(backend: &Backend, collection_id: &str, record_id: &str, filename: &str) {
    let Ok(key) = name::file_key(collection_id, record_id, filename) else {
        return;
    };
    let thumbs = format!("{collection_id}/{record_id}/thumbs_{filename}/");
    for result in [
        backend.delete(&key).await,
        backend.delete_prefix(&thumbs).await,
    ] {
        if let Err(e) = result {
            tracing::warn!(error = %e, key, "a dropped file was not removed");
        }
    }
}

/// Deletes the files of every record `changes` deleted.
pub async fn remove_deleted(files: &Files, tenant: &Tenant, changes: &[Change]) {
    let deleted: Vec<(String, String)> = changes
        .iter()
        .filter(|c| c.action == ChangeAction::Delete)
        .filter_map(|c| {
            let id = c.data.get("id").and_then(Value::as_str)?;
            Some((c.entry.collection.id.clone(), id.to_string()))
        })
        .collect();
    if deleted.is_empty() {
        return;
    }
    let Ok(backend) = backend(files, tenant).await else {
        return;
    };
    for (collection_id, record_id) in deleted {
        if let Ok(prefix) = name::record_prefix(&collection_id, &record_id)
            && let Err(e) = backend.delete_prefix(&prefix).await
        {
            tracing::warn!(error = %e, prefix, "files of a deleted record were not removed");
        }
    }
}

/// Deletes every file of a deleted collection.
pub async fn remove_collection(files: &Files, tenant: &Tenant, collection_id: &str) {
    let Ok(backend) = backend(files, tenant).await else {
        return;
    };
    if let Ok(prefix) = name::collection_prefix(collection_id)
        && let Err(e) = backend.delete_prefix(&prefix).await
    {
        tracing::warn!(error = %e, prefix, "files of a deleted collection were not removed");
    }
}
