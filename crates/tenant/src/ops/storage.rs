//! Uploaded files of record writes: checks each upload against its field (`maxSize`,
//! `mimeTypes`), names it, puts it in the tenant's storage right before the database write,
//! takes it back out when the write fails, and deletes files the write dropped (and files of
//! deleted records and collections) once the write has committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use warren_files::{Backend, Files, PutMeta, S3Config, Storage, Upload, name};
use warren_records::{Change, ChangeAction, Entry};
use warren_schema::FieldKind;
use warren_schema::error::{FieldError, ValidationErrors};
use warren_schema::field::DEFAULT_FILE_MAX_SIZE;

use super::Error;
use crate::Tenant;

/// The tenant's own S3 settings (`settings.s3`), when enabled.
pub async fn own_s3(tenant: &Tenant) -> Result<Option<S3Config>, Error> {
    let settings = tenant.settings().await?;
    Ok(warren_records::settings::get(&settings, "s3")
        .and_then(|v| serde_json::from_value::<S3Config>(v.clone()).ok())
        .filter(S3Config::is_usable))
}

/// The tenant's storage backend.
pub async fn backend(files: &Files, tenant: &Tenant) -> Result<Backend, Error> {
    let own = own_s3(tenant).await?;
    Ok(files.backend(tenant.id(), tenant.dir(), own.as_ref())?)
}

/// Files written for a record write that has not committed yet.
pub(crate) struct Pending {
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
    pub(crate) names: BTreeMap<String, Vec<String>>,
}

/// A refused upload, reported on `field` as PocketBase reports it (the message kept as is).
fn field_error(message: &'static str, field: &str, error: FieldError) -> Error {
    let mut errors = ValidationErrors::new();
    errors.add(field, error);
    Error::Records(warren_records::Error::Validation { message, errors })
}

/// A field error whose message is used exactly as given.
fn exact(code: &str, text: String, params: Map<String, Value>) -> FieldError {
    FieldError {
        code: code.to_string(),
        message: text,
        params,
    }
}

/// The field name of an upload key (`field`, `field+`, `+field`).
fn field_of(key: &str) -> &str {
    key.strip_prefix('+')
        .or_else(|| key.strip_suffix('+'))
        .unwrap_or(key)
}

/// File names currently held by record `id`'s file fields.
async fn stored_names(tenant: &Tenant, entry: &Arc<Entry>, id: &str) -> Result<Vec<String>, Error> {
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

/// An upload its field accepts, with its stored name, sniffed type and client name.
struct Accepted {
    upload: Upload,
    stored: String,
    mime: String,
    client: String,
}

/// Checks every upload against its field; uploads for keys that are not file fields are
/// ignored, as PocketBase ignores them.
fn accept(
    entry: &Entry,
    uploads: Vec<Upload>,
    message: &'static str,
) -> Result<Vec<Accepted>, Error> {
    let collection = &entry.collection;
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
            let params = json!({ "file": client, "maxSize": max });
            let params = params.as_object().cloned().unwrap_or_default();
            return Err(field_error(
                message,
                &field.name,
                exact(
                    "validation_file_size_limit",
                    format!(
                        "Failed to upload {client} - the maximum allowed file size is {max} bytes."
                    ),
                    params,
                ),
            ));
        }
        let sniffed = upload.file.sniffed();
        let stored = name::stored_name(&client, &sniffed.ext);
        if !warren_files::mime::allowed(&sniffed.mime, &options.mime_types) {
            return Err(field_error(
                message,
                &field.name,
                exact(
                    "validation_invalid_mime_type",
                    format!(
                        "\"{stored}\" mime type must be one of: {}.",
                        options.mime_types.join(", ")
                    ),
                    Map::new(),
                ),
            ));
        }
        accepted.push(Accepted {
            upload,
            stored,
            mime: sniffed.mime,
            client,
        });
    }
    Ok(accepted)
}

/// The id of a record being created: the body's, or a new one put into the body (the files'
/// directory needs it before the write).
fn new_record_id(entry: &Entry, body: &mut Map<String, Value>) -> String {
    if let Some(Value::String(id)) = body.get("id")
        && !id.is_empty()
    {
        return id.clone();
    }
    let pattern = entry
        .collection
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

/// Checks and stores the uploads of a create (`existing = None`) or update of `entry`. On
/// create without an `id` in the body, one is generated.
pub(crate) async fn stage(
    files: &Files,
    tenant: &Tenant,
    entry: &Arc<Entry>,
    body: &mut Map<String, Value>,
    uploads: Vec<Upload>,
    existing: Option<&str>,
) -> Result<Pending, Error> {
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
    let accepted = accept(entry, uploads, message)?;
    if accepted.is_empty() {
        return Ok(pending);
    }
    if existing.is_none() {
        pending.record_id = new_record_id(entry, body);
    }
    let backend = backend(files, tenant).await?;
    pending.backend = Some(backend.clone());
    for file in accepted {
        let key = name::file_key(&pending.collection_id, &pending.record_id, &file.stored)
            .map_err(|_| {
                field_error(
                    message,
                    "id",
                    exact(
                        "validation_invalid_format",
                        "Invalid value format.".into(),
                        Map::new(),
                    ),
                )
            })?;
        let meta = PutMeta {
            content_type: file.mime,
            original_name: file.client,
        };
        if let Err(e) = backend.put_file(&key, file.upload.file.path(), &meta).await {
            pending.rollback().await;
            return Err(e.into());
        }
        pending.written.push(key);
        pending
            .names
            .entry(file.upload.key.clone())
            .or_default()
            .push(file.stored);
    }
    Ok(pending)
}

impl Pending {
    /// Takes back every file this request wrote (the write failed).
    pub(crate) async fn rollback(self) {
        if let Some(backend) = &self.backend {
            for key in &self.written {
                if let Err(e) = backend.delete(key).await {
                    tracing::warn!(error = %e, key, "an upload of a failed write was not removed");
                }
            }
        }
    }

    /// After a committed write: deletes the files the record no longer holds (and their
    /// thumbs). Files of deleted records are [`remove_deleted`]'s.
    pub(crate) async fn commit(self, files: &Files, tenant: &Tenant, changes: &[Change]) {
        let after = changes.iter().find(|c| {
            c.entry.collection.id == self.collection_id
                && c.data.get("id").and_then(Value::as_str) == Some(self.record_id.as_str())
                && c.action != ChangeAction::Delete
        });
        let Some(change) = after else {
            return;
        };
        if self.before.is_empty() {
            return;
        }
        let kept = file_names(&change.entry, &change.data);
        let dropped: Vec<&String> = self.before.iter().filter(|n| !kept.contains(n)).collect();
        if dropped.is_empty() {
            return;
        }
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

/// Rolls back every pending upload of a failed write.
pub(crate) async fn rollback_all(pendings: Vec<Pending>) {
    for pending in pendings {
        pending.rollback().await;
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
pub(crate) async fn remove_deleted(files: &Files, tenant: &Tenant, changes: &[Change]) {
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
pub(crate) async fn remove_collection(files: &Files, tenant: &Tenant, collection_id: &str) {
    let Ok(backend) = backend(files, tenant).await else {
        return;
    };
    if let Ok(prefix) = name::collection_prefix(collection_id)
        && let Err(e) = backend.delete_prefix(&prefix).await
    {
        tracing::warn!(error = %e, prefix, "files of a deleted collection were not removed");
    }
}
