//! Response headers PocketBase sends on every response, and CORS (any origin, as PocketBase's
//! default).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `Cross-Origin-Opener-Policy`, which `http` has no constant for. Named once: a name given as
/// text is parsed and copied into a new allocation at every insert.
const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");

/// The answer to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`), which
/// no route sees; `None` for any other request.
pub(crate) fn preflight(request: &Request) -> Option<Response> {
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !preflight {
        return None;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE"),
    );
    if let Some(asked) = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.append(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Method"),
    );
    headers.append(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Headers"),
    );
    Some(response)
}

/// Adds PocketBase's security headers to every response, and marks the response to a request
/// that came with an `Origin` (`has_origin`) as allowed from any origin.
pub(crate) fn finish(response: &mut Response, has_origin: bool) {
    // File downloads go without X-Frame-Options, as PocketBase serves them.
    let file_download = response
        .extensions()
        .get::<crate::routes::files::FileDownload>()
        .is_some();
    let too_large = response.status() == StatusCode::PAYLOAD_TOO_LARGE;
    let headers = response.headers_mut();
    // Room for the headers below and the length the router adds, taken at once while the map
    // holds one or two entries, instead of growing it (rehashing every entry) at the seventh.
    headers.reserve(8);
    if too_large {
        // Answered before the body was read to its end: the connection closes after this
        // response, and says so, so that a client does not send its next request on it.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(
        CROSS_ORIGIN_OPENER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !file_download {
        headers
            .entry(header::X_FRAME_OPTIONS)
            .or_insert(HeaderValue::from_static("SAMEORIGIN"));
    }
    headers.insert(
        header::X_XSS_PROTECTION,
        HeaderValue::from_static("1; mode=block"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if has_origin {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
}
