//! `GET /{path...}`: the tenant's static site from its `pb_public/`, where no API route matched,
//! with PocketBase's index fallback and redirects, validators, caching headers and gzip.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use warren_tenant::Tenant;
use warren_tenant::code::{Lookup, lookup, public_dir};

use crate::error::ApiError;

/// Largest text file compressed on the fly; bigger ones go as they are, so one request costs
/// bounded CPU and memory.
const GZIP_MAX_BYTES: u64 = 2 << 20;

/// Files up to this size are read whole; bigger ones are streamed.
const READ_WHOLE_BYTES: u64 = 256 << 10;

/// Marks a successful static response, which the request log leaves out as PocketBase does.
#[derive(Clone, Copy, Debug)]
pub struct StaticFile;

/// The fallback of the tenant router: a file of `pb_public/` for GET and HEAD outside `/api/`,
/// PocketBase's JSON 404 for everything else.
pub async fn serve_public(request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    if !(method == Method::GET || method == Method::HEAD)
        || path == "/api"
        || path.starts_with("/api/")
    {
        return ApiError::not_found().into_response();
    }
    let Some(tenant) = request.extensions().get::<Tenant>().cloned() else {
        return ApiError::not_found().into_response();
    };
    let public = public_dir(tenant.dir());
    let raw = path.clone();
    let found = tokio::task::spawn_blocking(move || lookup(&public, &raw)).await;
    match found {
        Ok(Lookup::File(file, meta)) => {
            match send_file(&file, &meta, request.headers(), method == Method::HEAD).await {
                Ok(mut response) => {
                    response.extensions_mut().insert(StaticFile);
                    response
                }
                // Gone between the lookup and the read (a deploy swapped the folder): as missing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    ApiError::not_found().into_response()
                }
                Err(e) => ApiError::internal(e).into_response(),
            }
        }
        Ok(Lookup::Redirect(location)) => match HeaderValue::from_str(&location) {
            Ok(location) => {
                let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
                response.headers_mut().insert(header::LOCATION, location);
                response
            }
            Err(_) => ApiError::not_found().into_response(),
        },
        Ok(Lookup::NotFound) => ApiError::not_found().into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// The response for one file: 304 when the client's validator matches, else the file, gzipped
/// when that pays and the client accepts it.
async fn send_file(
    path: &Path,
    meta: &std::fs::Metadata,
    request: &HeaderMap,
    head: bool,
) -> std::io::Result<Response> {
    let content_type = content_type(path);
    let compressible =
        compressible(content_type) && meta.len() <= GZIP_MAX_BYTES && meta.len() > 256;
    let gzip = compressible && accepts_gzip(request);
    let tag = etag(meta, gzip);
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if content_type.starts_with("text/html") {
            "no-cache"
        } else {
            "public, max-age=600"
        }),
    );
    if compressible {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if not_modified(request, &tag, modified) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().extend(headers);
        return Ok(response);
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let body = if gzip {
        let data = tokio::fs::read(path).await?;
        let packed = tokio::task::spawn_blocking(move || gzip_bytes(&data))
            .await
            .map_err(std::io::Error::other)??;
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(packed.len()));
        if head {
            Body::empty()
        } else {
            Body::from(packed)
        }
    } else {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
        if head {
            Body::empty()
        } else if meta.len() <= READ_WHOLE_BYTES {
            Body::from(tokio::fs::read(path).await?)
        } else {
            use tokio::io::AsyncReadExt;
            let file = tokio::fs::File::open(path).await?;
            // `take`: a file that grew since its metadata was read still matches Content-Length.
            Body::from_stream(tokio_util::io::ReaderStream::new(file.take(meta.len())))
        }
    };
    let mut response = body.into_response();
    response.headers_mut().extend(headers);
    Ok(response)
}

/// A strong validator from the file's identity, size and modification time (a deploy writes
/// new files, so each deploy changes it); the gzip form is a different representation.
fn etag(meta: &std::fs::Metadata, gzip: bool) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    let nanos = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let suffix = if gzip { "-gz" } else { "" };
    format!("\"{inode:x}-{:x}-{nanos:x}{suffix}\"", meta.len())
}

/// Whether the request's validators match: `If-None-Match` when present (any listed tag, or
/// `*`), else `If-Modified-Since` at a second's precision.
fn not_modified(request: &HeaderMap, tag: &str, modified: SystemTime) -> bool {
    if let Some(value) = request.get(header::IF_NONE_MATCH) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        return value
            .split(',')
            .map(str::trim)
            .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag);
    }
    let Some(since) = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs(modified) <= secs(since)
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a non-zero quality.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let Some(value) = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !zero
    })
}

fn gzip_bytes(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::default(),
    );
    encoder.write_all(data)?;
    encoder.finish()
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/javascript")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/manifest+json")
        || content_type.starts_with("application/xml")
        || content_type.starts_with("image/svg+xml")
        || content_type.starts_with("application/wasm")
}

/// The content type of a static file, by its extension (what browsers need for modules,
/// styles and fonts, where `nosniff` forbids guessing).
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_only_when_offered_with_a_quality() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepts_gzip(&headers)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn validators_match_listed_tags_and_dates() {
        let tag = "\"a-b-c\"";
        let now = SystemTime::now();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"a-b-c\""),
        );
        assert!(not_modified(&headers, tag, now));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\""));
        headers.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_str(&httpdate::fmt_http_date(now)).unwrap(),
        );
        // If-None-Match decides when present.
        assert!(!not_modified(&headers, tag, now));
        headers.remove(header::IF_NONE_MATCH);
        assert!(not_modified(&headers, tag, now));
        assert!(!not_modified(
            &headers,
            tag,
            now + std::time::Duration::from_secs(5)
        ));
    }
}
