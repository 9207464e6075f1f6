//! The tenant dashboard at `/_/`: hand-written ES modules and CSS embedded in the binary,
//! served with ETags, gzip and a strict content security policy.
//!
//! The dashboard is a client of the tenant's own public API, as PocketBase's dashboard is of
//! PocketBase's; nothing here reads a tenant. Debug builds read the files from `assets/` on
//! disk, so an edit shows on the next reload; release builds carry them inside the binary.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The policy every dashboard response carries: only the tenant's own origin, no inline code.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether `path` (a request path) belongs to the dashboard.
pub fn owns(path: &str) -> bool {
    path == "/_" || path.starts_with("/_/")
}

/// Answers one dashboard request (`owns(path)` must hold).
pub fn serve<B>(request: &Request<B>) -> Response {
    let path = request.uri().path();
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.");
    }
    if path == "/_" {
        return Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(header::LOCATION, "/_/")
            .body(Body::empty())
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "Redirect failed."));
    }
    let name = match path.strip_prefix("/_/").unwrap_or("") {
        "" => "index.html",
        rest => rest,
    };
    match asset(name) {
        Some(file) => respond(&file, request.headers(), request.method() == Method::HEAD),
        None => plain(
            StatusCode::NOT_FOUND,
            "The requested resource wasn't found.",
        ),
    }
}

/// One embedded file, with what serving it needs.
struct File {
    body: Vec<u8>,
    gzip: Option<Vec<u8>>,
    etag: String,
    mime: &'static str,
}

/// The file `name` under `assets/`, compressed once per content.
fn asset(name: &str) -> Option<Arc<File>> {
    if name
        .split('/')
        .any(|part| part.is_empty() || part == ".." || part.starts_with('.'))
    {
        return None;
    }
    let embedded = Assets::get(name)?;
    let hash = embedded.metadata.sha256_hash();
    let etag = format!("\"{}\"", hex(&hash[..12]));
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<File>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Ok(files) = cache.lock()
        && let Some(file) = files.get(name)
        && file.etag == etag
    {
        return Some(file.clone());
    }
    let mime = mime(name);
    let body = embedded.data.into_owned();
    let gzip = compressible(mime).then(|| gzip(&body)).flatten();
    let file = Arc::new(File {
        body,
        gzip,
        etag,
        mime,
    });
    if let Ok(mut files) = cache.lock() {
        files.insert(name.to_string(), file.clone());
    }
    Some(file)
}

fn respond(file: &File, headers: &HeaderMap, head: bool) -> Response {
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == file.etag));
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut builder = Response::builder()
        .header(header::ETAG, &file.etag)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::VARY, "Accept-Encoding")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "same-origin")
        .header(header::X_FRAME_OPTIONS, "DENY");
    if matches {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "Response failed."));
    }
    builder = builder.header(header::CONTENT_TYPE, HeaderValue::from_static(file.mime));
    let body = match (&file.gzip, accepts_gzip) {
        (Some(gzip), true) => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            gzip.clone()
        }
        _ => file.body.clone(),
    };
    builder = builder.header(header::CONTENT_LENGTH, body.len());
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    builder
        .body(body)
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "Response failed."))
}

/// A JSON error in PocketBase's envelope.
fn plain(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "{{\"data\":{{}},\"message\":\"{message}\",\"status\":{}}}",
        status.as_u16()
    );
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn mime(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn compressible(mime: &str) -> bool {
    mime.starts_with("text/") || mime == "image/svg+xml" || mime == "application/json"
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3), Compression::best());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every embedded file's name, raw size and gzip size (for size budgets and benchmarks).
pub fn sizes() -> Vec<(String, usize, usize)> {
    Assets::iter()
        .filter_map(|name| {
            let file = asset(&name)?;
            let compressed = file.gzip.as_ref().map_or(file.body.len(), Vec::len);
            Some((name.into_owned(), file.body.len(), compressed))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn get(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut builder = Request::builder().uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        serve(&builder.body(()).unwrap())
    }

    #[tokio::test]
    async fn index_is_served_with_etag_and_policy() {
        let response = get("/_/", &[]);
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            response
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY)
        );
        let etag = response.headers()[header::ETAG]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("<script type=\"module\""));
        let again = get("/_/", &[("if-none-match", &etag)]);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn gzip_when_accepted() {
        let response = get("/_/js/app.js", &[("accept-encoding", "gzip, br")]);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        let response = get("/_/js/app.js", &[]);
        assert!(!response.headers().contains_key(header::CONTENT_ENCODING));
    }

    #[test]
    fn bare_prefix_redirects_and_traversal_is_refused() {
        assert_eq!(get("/_", &[]).status(), StatusCode::MOVED_PERMANENTLY);
        for path in [
            "/_/../Cargo.toml",
            "/_/js/../../src/lib.rs",
            "/_/.hidden",
            "/_/nope.js",
        ] {
            assert_eq!(get(path, &[]).status(), StatusCode::NOT_FOUND, "{path}");
        }
        assert!(owns("/_/") && owns("/_") && !owns("/_x") && !owns("/api/health"));
    }

    #[tokio::test]
    async fn the_page_names_only_embedded_files_and_preloads_the_sign_in() {
        let body = get("/_/", &[])
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let page = String::from_utf8_lossy(&body);
        let named: Vec<&str> = ["src=\"", "href=\""]
            .iter()
            .flat_map(|mark| page.split(mark).skip(1))
            .filter_map(|rest| rest.split('"').next())
            .filter(|value| !value.starts_with('#'))
            .collect();
        assert!(named.len() >= 6, "{named:?}");
        for name in &named {
            assert!(
                asset(name).is_some(),
                "index.html names {name}, which is not embedded"
            );
        }
        // The first screen of a visitor is the sign-in: its module comes with the shell's.
        assert!(page.contains("rel=\"modulepreload\" href=\"js/screens/login.js\""));
    }

    #[test]
    fn whole_dashboard_stays_under_its_budget() {
        // The issue's bound: all JS and CSS under 150 KB compressed.
        let compressed: usize = sizes()
            .iter()
            .filter(|(name, ..)| name.ends_with(".js") || name.ends_with(".css"))
            .map(|(_, _, gzip)| gzip)
            .sum();
        assert!(
            compressed < 150 * 1024,
            "{compressed} bytes of JS and CSS, gzipped"
        );
    }
}
