//! `/api/files`: downloads (thumbs, ranges, protected files behind a file token) and file
//! tokens.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use warren_files::{Storage, ThumbSize, mime, name};
use warren_records::{Caller, Entry, read};
use warren_schema::FieldKind;
use warren_schema::field::FileOptions;
use warren_secrets::TokenKind;
use warren_tenant::Tenant;

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant};
use crate::query::Params;
use crate::router::Shared;

/// Marks a file download, whose response must not carry `X-Frame-Options`.
#[derive(Debug, Clone, Copy)]
pub struct FileDownload;

const CACHE_CONTROL: &str = "max-age=2592000, stale-while-revalidate=86400";
const CSP: &str = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox";

/// `GET /api/files/{collection}/{recordId}/{filename}`
pub async fn download_file(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Path((collection, record_id, filename)): Path<(String, String, String)>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    if name::file_key("c", &record_id, &filename).is_err() {
        return Err(ApiError::not_found());
    }
    let catalog = tenant.catalog();
    let entry = catalog
        .get(&collection)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let (lookup, id) = (entry.clone(), record_id.clone());
    let data = tenant
        .db()
        .read(move |c| warren_records::auth::load_data(c, &lookup, &id))
        .await?
        .ok_or_else(ApiError::not_found)?;
    let options = file_field(&entry, &data, &filename).ok_or_else(ApiError::not_found)?;
    if options.protected {
        let token = params.text("token");
        if !may_read_protected(&tenant, &entry, &record_id, token).await? {
            return Err(ApiError::not_found());
        }
    }
    let backend = crate::uploads::backend(&state.files, &tenant).await?;
    let key = name::file_key(&entry.collection.id, &record_id, &filename)
        .map_err(|_| ApiError::not_found())?;
    let meta = backend
        .stat(&key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    let original_type = meta
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let mut served_key = key.clone();
    let mut served_name = filename.clone();
    let thumb = params.text("thumb");
    if !thumb.is_empty()
        && (thumb == "100x100" || options.thumbs.iter().any(|t| t == thumb))
        && mime::is_thumbable(&original_type)
        && let Some(size) = ThumbSize::parse(thumb)
    {
        let thumb_key = name::thumb_key(&entry.collection.id, &record_id, &filename, thumb)
            .map_err(|_| ApiError::not_found())?;
        let scope = format!("{}\u{0}{}", tenant.id(), tenant.dir().display());
        match state
            .files
            .ensure_thumb(&backend, &scope, &key, &thumb_key, size)
            .await
        {
            Ok(true) => {
                served_key = thumb_key;
                served_name = format!("{thumb}_{filename}");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "thumb failed; serving the original"),
        }
    }
    let download = params.flag("download").unwrap_or(false);
    serve(&backend, &served_key, &served_name, download, &headers).await
}

/// The options of the file field of `data` holding `filename`.
fn file_field<'a>(
    entry: &'a Entry,
    data: &std::collections::BTreeMap<String, Value>,
    filename: &str,
) -> Option<&'a FileOptions> {
    entry.collection.fields.iter().find_map(|field| {
        let FieldKind::File(options) = &field.kind else {
            return None;
        };
        let holds = match data.get(&field.name) {
            Some(Value::String(s)) => s == filename,
            Some(Value::Array(list)) => list.iter().any(|v| v.as_str() == Some(filename)),
            _ => false,
        };
        holds.then_some(options)
    })
}

/// Whether a file token lets its holder read protected files of record `id`: the token must
/// be a valid file token of this tenant, and its record must pass the collection's view rule.
async fn may_read_protected(
    tenant: &Tenant,
    entry: &Arc<Entry>,
    id: &str,
    token: &str,
) -> Result<bool, ApiError> {
    let catalog = tenant.catalog();
    let caller = match file_token_caller(tenant, &catalog, token).await? {
        Some(caller) => caller,
        None => Caller::Guest,
    };
    if caller.is_superuser() {
        return Ok(true);
    }
    if entry.rules.view.is_none() {
        return Ok(false);
    }
    let mut ctx = caller.context();
    ctx.context = "protectedFile".into();
    match read::view(tenant.db(), catalog, entry.clone(), &caller, ctx, id, "").await {
        Ok(_) => Ok(true),
        Err(warren_records::Error::NotFound(_) | warren_records::Error::Forbidden(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The caller a file token stands for, or `None` when it is not a valid file token.
pub(crate) async fn file_token_caller(
    tenant: &Tenant,
    catalog: &warren_records::Catalog,
    token: &str,
) -> Result<Option<Caller>, ApiError> {
    if token.is_empty() || token.len() > 4096 {
        return Ok(None);
    }
    let Ok(claims) = warren_secrets::token::peek(token) else {
        return Ok(None);
    };
    if claims.kind != TokenKind::File {
        return Ok(None);
    }
    let Some(auth_entry) = catalog.get(&claims.collection_id).cloned() else {
        return Ok(None);
    };
    if auth_entry.collection.id != claims.collection_id {
        return Ok(None);
    }
    let Some(options) = auth_entry.collection.auth_options() else {
        return Ok(None);
    };
    let secret = options.file_token.secret.clone();
    let (lookup, id) = (auth_entry.clone(), claims.id.clone());
    let Some(data) = tenant
        .db()
        .read(move |c| warren_records::auth::load_data(c, &lookup, &id))
        .await?
    else {
        return Ok(None);
    };
    let token_key = data
        .get("tokenKey")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token_key.is_empty()
        || warren_secrets::token::verify(token, TokenKind::File, token_key, &secret).is_err()
    {
        return Ok(None);
    }
    let record = warren_schema::record::RecordJson::build(
        &auth_entry.collection,
        &data,
        warren_schema::record::Visibility {
            show_hidden: true,
            show_email: true,
        },
    );
    let Value::Object(record) = record.to_value() else {
        return Ok(None);
    };
    Ok(Some(
        if auth_entry.collection.id == warren_schema::system::SUPERUSERS_ID {
            Caller::Superuser {
                record: record.into(),
            }
        } else {
            Caller::Record {
                record: record.into(),
            }
        },
    ))
}

/// A requested byte range: `Some(Ok((start, end)))` inclusive, `Some(Err(()))` when it cannot
/// be satisfied, `None` for the whole file (no header, or several ranges).
fn parse_range(header: Option<&str>, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        if start >= size {
            return Some(Err(()));
        }
        let end = if b.is_empty() {
            size - 1
        } else {
            let end: u64 = b.parse().ok()?;
            if end < start {
                return None;
            }
            end.min(size - 1)
        };
        (start, end)
    };
    Some(Ok(range))
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Streams a stored object with PocketBase's download headers, honouring `Range` and
/// `If-Modified-Since`.
async fn serve(
    backend: &warren_files::Backend,
    key: &str,
    filename: &str,
    download: bool,
    request: &HeaderMap,
) -> Result<Response, ApiError> {
    let meta = backend
        .stat(key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    let content_type = mime::served_type(filename, meta.content_type.as_deref().unwrap_or(""));
    let disposition = if !download && mime::is_inline(&content_type) {
        "inline"
    } else {
        "attachment"
    };
    // Seconds precision, as HTTP dates carry.
    let modified = meta
        .modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut response = Response::new(Body::empty());
    response.extensions_mut().insert(FileDownload);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_DISPOSITION,
        header_value(&format!("{disposition}; filename=\"{filename}\"")),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CONTENT_TYPE, header_value(&content_type));
    let since = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    if modified > SystemTime::UNIX_EPOCH && since.is_some_and(|since| modified <= since) {
        headers.remove(header::CONTENT_TYPE);
        headers.insert(
            header::LAST_MODIFIED,
            header_value(&httpdate::fmt_http_date(modified)),
        );
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }
    let range = match parse_range(
        request.get(header::RANGE).and_then(|v| v.to_str().ok()),
        meta.size,
    ) {
        Some(Err(())) => {
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{}", meta.size)),
            );
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            *response.body_mut() = Body::from("invalid range: failed to overlap\n");
            return Ok(response);
        }
        Some(Ok(range)) => Some(range),
        None => None,
    };
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    if modified > SystemTime::UNIX_EPOCH {
        headers.insert(
            header::LAST_MODIFIED,
            header_value(&httpdate::fmt_http_date(modified)),
        );
    }
    let length = match range {
        Some((start, end)) => {
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {start}-{end}/{}", meta.size)),
            );
            end - start + 1
        }
        None => meta.size,
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let object = backend
        .get(key, range)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    *response.body_mut() = Body::from_stream(object.body);
    Ok(response)
}

/// `POST /api/files/token`: a short-lived file token for the calling auth record.
pub async fn create_file_token(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let (Some(collection_id), Some(id)) = (caller.collection_id(), caller.id()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request requires valid record authorization token.",
        ));
    };
    let catalog = tenant.catalog();
    let entry = catalog
        .get(collection_id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let options = entry
        .collection
        .auth_options()
        .ok_or_else(ApiError::not_found)?;
    let (secret, duration) = (
        options.file_token.secret.clone(),
        options.file_token.duration.max(1) as u64,
    );
    let (lookup, lookup_id) = (entry.clone(), id.to_string());
    let data = tenant
        .db()
        .read(move |c| warren_records::auth::load_data(c, &lookup, &lookup_id))
        .await?
        .ok_or_else(ApiError::not_found)?;
    let token_key = data
        .get("tokenKey")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let claims = warren_secrets::token::Claims {
        collection_id: entry.collection.id.clone(),
        email: None,
        exp: warren_secrets::token::now() + duration,
        id: id.to_string(),
        new_email: None,
        refreshable: None,
        kind: TokenKind::File,
    };
    let token =
        warren_secrets::token::sign(&claims, token_key, &secret).map_err(ApiError::internal)?;
    Ok(Json(json!({ "token": token })))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_parse_like_go_serve_content() {
        assert_eq!(parse_range(Some("bytes=1-2"), 5), Some(Ok((1, 2))));
        assert_eq!(parse_range(Some("bytes=3-"), 5), Some(Ok((3, 4))));
        assert_eq!(parse_range(Some("bytes=-2"), 5), Some(Ok((3, 4))));
        assert_eq!(parse_range(Some("bytes=1-100"), 5), Some(Ok((1, 4))));
        assert_eq!(parse_range(Some("bytes=10-20"), 5), Some(Err(())));
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 5), None);
        assert_eq!(parse_range(None, 5), None);
        assert_eq!(parse_range(Some("items=0-1"), 5), None);
    }
}
