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

/// The modules of the first screens: the sign-in, and the collections page it leads to.
const FIRST_SCREENS: [&str; 2] = ["js/screens/login.js", "js/screens/collections-page.js"];

/// The file `name` under `assets/`, compressed once per content.
fn asset(name: &str) -> Option<Arc<File>> {
    if name
        .split('/')
        .any(|part| part.is_empty() || part == ".." || part.starts_with('.'))
    {
        return None;
    }
    if name == "index.html" {
        return page();
    }
    let embedded = Assets::get(name)?;
    let etag = format!("\"{}\"", hex(&embedded.metadata.sha256_hash()[..12]));
    Some(cached(name, etag, || embedded.data.into_owned()))
}

/// The cached file `name` when its ETag is still `etag`, else `body()` compressed and cached.
fn cached(name: &str, etag: String, body: impl FnOnce() -> Vec<u8>) -> Arc<File> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<File>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Ok(files) = cache.lock()
        && let Some(file) = files.get(name)
        && file.etag == etag
    {
        return file.clone();
    }
    let mime = mime(name);
    let body = body();
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
    file
}

/// `index.html` with a module preload for every module the first screens import, however
/// deep: the browser then fetches them all at once instead of one import level after another.
/// Its ETag covers every file it preloads, so a changed module changes the page.
fn page() -> Option<Arc<File>> {
    let index = Assets::get("index.html")?;
    let mut tags = hex(&index.metadata.sha256_hash()[..12]);
    let mut modules: Vec<String> = Vec::new();
    let mut queue: Vec<String> = FIRST_SCREENS.iter().rev().map(|s| s.to_string()).collect();
    while let Some(name) = queue.pop() {
        if modules.contains(&name) {
            continue;
        }
        let Some(file) = Assets::get(&name) else {
            continue;
        };
        tags.push_str(&hex(&file.metadata.sha256_hash()[..6]));
        let text = String::from_utf8_lossy(&file.data);
        queue.extend(static_imports(&name, &text).into_iter().rev());
        modules.push(name);
    }
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&tags, &mut hasher);
    let etag = format!("\"p{:016x}\"", std::hash::Hasher::finish(&hasher));
    Some(cached("index.html", etag, || {
        let html = String::from_utf8_lossy(&index.data).into_owned();
        let links: String = modules
            .iter()
            .filter(|m| !html.contains(&format!("href=\"{m}\"")))
            .map(|m| format!("<link rel=\"modulepreload\" href=\"{m}\">\n"))
            .collect();
        match html.find("<script type=\"module\"") {
            Some(at) => format!("{}{links}{}", &html[..at], &html[at..]),
            None => html,
        }
        .into_bytes()
    }))
}

/// The modules `text` (the module `from`) imports statically, as asset names.
fn static_imports(from: &str, text: &str) -> Vec<String> {
    let dir = from.rsplit_once('/').map_or("", |(dir, _)| dir);
    text.lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with("import ") || line.starts_with("export "))
        .filter_map(|line| {
            let quoted = line
                .split(" from ")
                .nth(1)
                .or_else(|| line.strip_prefix("import "))?;
            let quote = quoted
                .trim_start()
                .chars()
                .next()
                .filter(|c| *c == '\'' || *c == '"')?;
            quoted.trim_start()[1..].split(quote).next()
        })
        .filter(|target| target.starts_with("./") || target.starts_with("../"))
        .filter_map(|target| {
            let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            for part in target.split('/') {
                match part {
                    "." => {}
                    ".." => {
                        parts.pop()?;
                    }
                    other => parts.push(other),
                }
            }
            Some(parts.join("/"))
        })
        .collect()
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
    async fn the_page_names_only_embedded_files_and_preloads_the_first_screens() {
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
        // The first screens' modules, however deep, come with the shell's.
        for module in [
            "js/screens/login.js",
            "js/screens/collections-page.js",
            "js/screens/records.js",
        ] {
            assert!(
                page.contains(&format!("rel=\"modulepreload\" href=\"{module}\"")),
                "{module} is not preloaded"
            );
        }
        assert_eq!(page.matches("href=\"js/app.js\"").count(), 1);
    }

    #[test]
    fn static_imports_resolve_against_the_importing_module() {
        let text = "// A screen.\nimport { a } from '../api.js';\nimport { b } from \"./b.js\";\nimport './c.js';\nexport { d } from './d.js';\nconst x = import(`./e.js`);\nimport { f } from 'https://cdn.example/f.js';\n";
        assert_eq!(
            static_imports("js/screens/x.js", text),
            [
                "js/api.js",
                "js/screens/b.js",
                "js/screens/c.js",
                "js/screens/d.js"
            ]
        );
        assert!(static_imports("x.js", "import '../../etc/passwd';").is_empty());
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
