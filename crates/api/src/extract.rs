//! Extractors: the request's tenant, its caller, its headers, and JSON bodies whose errors come
//! out in PocketBase's envelope.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde_json::{Map, Value};
use warren_filter::{HeaderSource, Headers, header_name_is};
use warren_records::Caller;
use warren_records::auth::{Pending, Token};
use warren_tenant::Tenant;

use crate::error::ApiError;

/// The tenant this request is for (set by the host dispatcher).
pub struct CurrentTenant(pub Tenant);

impl<S: Send + Sync> FromRequestParts<S> for CurrentTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .map(Self)
            .ok_or_else(ApiError::not_found)
    }
}

/// The request's headers, copied once and shared by every rule context and hook request the
/// request makes (a batch's items included).
#[derive(Clone)]
pub(crate) struct RequestHeaders(Arc<Sent>);

/// Headers as they arrived, looked up by a rule's name for one only when a rule reads it (see
/// [`Headers`]): a request whose rules read no header copies none into a map of its own.
struct Sent(HeaderMap);

impl HeaderSource for Sent {
    fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .filter(|(sent, _)| header_name_is(sent.as_str(), name))
            .find_map(|(_, value)| value.to_str().ok())
    }
}

impl RequestHeaders {
    /// A copy of `headers`.
    pub(crate) fn new(headers: &HeaderMap) -> Self {
        Self(Arc::new(Sent(headers.clone())))
    }

    /// What `@request.headers.*` reads.
    pub(crate) fn for_rules(&self) -> Headers {
        Headers::shared(self.0.clone())
    }
}

impl std::ops::Deref for RequestHeaders {
    type Target = HeaderMap;

    fn deref(&self) -> &HeaderMap {
        &self.0.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::new(&parts.headers))
    }
}

/// Who is calling: a guest, an auth record or a superuser of the request's tenant. As in
/// PocketBase, an invalid or expired token never fails the request by itself; it just leaves
/// the caller a guest.
pub struct Auth(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(known) = parts.extensions.get::<Caller>() {
            return Ok(Self(known.clone()));
        }
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(parts, state).await?;
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(strip_bearer)
            .filter(|t| !t.is_empty());
        let caller = match token {
            None => Caller::Guest,
            Some(token) => {
                warren_records::auth::authenticate(tenant.db(), &tenant.catalog(), token).await?
            }
        };
        crate::logger::note_auth(&parts.extensions, &caller);
        parts.extensions.insert(caller.clone());
        Ok(Self(caller))
    }
}

/// The caller as the record view takes it: a token is only peeked at here and checked inside
/// the route's own database read (one read for both). The route hands the resolved caller back
/// with [`Who::note`] for the request log.
pub struct Who {
    /// The caller, or the token still to check.
    pub pending: Pending,
    /// Where the request log learns the caller.
    seen: Option<crate::logger::SeenAuth>,
}

impl Who {
    /// Tells the request log who the caller turned out to be.
    pub fn note(&self, caller: &Caller) {
        if let Some(seen) = &self.seen {
            seen.note(caller);
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(known) = parts.extensions.get::<Caller>() {
            return Ok(Self {
                pending: Pending::Known(known.clone()),
                seen: None,
            });
        }
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(parts, state).await?;
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(strip_bearer)
            .filter(|t| !t.is_empty())
            .and_then(|t| Token::peek(&tenant.catalog(), t));
        let seen = parts
            .extensions
            .get::<crate::steps::Noted>()
            .map(|noted| noted.seen.clone());
        let pending = match token {
            Some(token) => Pending::Token(token),
            None => {
                crate::logger::note_auth(&parts.extensions, &Caller::Guest);
                parts.extensions.insert(Caller::Guest);
                Pending::Known(Caller::Guest)
            }
        };
        Ok(Self { pending, seen })
    }
}

/// Strips an optional, case-insensitive `Bearer ` prefix.
pub(crate) fn strip_bearer(value: &str) -> &str {
    let value = value.trim();
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => value[7..].trim(),
        _ => value,
    }
}

/// A JSON object body. Malformed JSON or a non-object gives PocketBase's generic 400; keys of
/// fixed forms are matched case-insensitively, as PocketBase does.
pub struct JsonObject(pub Map<String, Value>);

impl JsonObject {
    /// The value of `key`, compared without regard to case.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(rejection.status(), "Request entity too large.")
                } else {
                    ApiError::bad_request()
                }
            })?;
        if bytes.is_empty() {
            return Ok(Self(Map::new()));
        }
        // Only the first JSON value counts; trailing bytes are ignored, as PocketBase does.
        let mut stream = serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>();
        match stream.next() {
            Some(Ok(Value::Object(map))) => Ok(Self(map)),
            _ => Err(ApiError::bad_request()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_bearer;

    #[test]
    fn bearer_prefix_is_optional_and_case_insensitive() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bearer abc"), "abc");
        assert_eq!(strip_bearer("BEARER  abc "), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
    }
}

/// Lets only superusers through: guests get 401, other auth records 403.
pub fn require_superuser(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Superuser { .. } => Ok(()),
        Caller::Guest => Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "The request requires valid record authorization token.",
        )),
        Caller::Record { .. } => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "The authorized record is not allowed to perform this action.",
        )),
    }
}

pub use warren_files::Upload;

/// A request body in any form PocketBase accepts: JSON, multipart (text parts type-inferred,
/// `@jsonPayload` merged over them, files kept aside) or urlencoded. Anything else with a body
/// is `400 Unsupported Content-Type.`
pub struct FormBody {
    /// The body's data.
    pub data: Map<String, Value>,
    /// Uploaded files.
    pub files: Vec<Upload>,
}

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let empty_length = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        if empty_length {
            return Ok(Self {
                data: Map::new(),
                files: Vec::new(),
            });
        }
        if content_type.starts_with("multipart/form-data") {
            return multipart(request, state).await;
        }
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = read_bytes(request, state).await?;
            let mut data = Map::new();
            for (key, value) in form_urlencoded_pairs(&bytes) {
                push_inferred(&mut data, key, Value::String(value));
            }
            return Ok(Self {
                data,
                files: Vec::new(),
            });
        }
        let is_json = content_type.is_empty() || content_type.starts_with("application/json");
        let bytes = read_bytes(request, state).await?;
        if bytes.is_empty() {
            return Ok(Self {
                data: Map::new(),
                files: Vec::new(),
            });
        }
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "Unsupported Content-Type.",
            ));
        }
        let mut stream = serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>();
        match stream.next() {
            Some(Ok(Value::Object(data))) => Ok(Self {
                data,
                files: Vec::new(),
            }),
            _ => Err(ApiError::bad_request()),
        }
    }
}

async fn read_bytes<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(rejection.status(), "Request entity too large.")
            } else {
                ApiError::bad_request()
            }
        })
}

impl FormBody {
    /// Reads a body of at most `limit` bytes (the route's own limit replaces the default one;
    /// the route must be registered with `DefaultBodyLimit::disable()`).
    pub async fn read_limited(request: Request, limit: usize) -> Result<Self, ApiError> {
        let request =
            request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
        Self::from_request(request, &()).await
    }
}

async fn multipart<S: Send + Sync>(request: Request, state: &S) -> Result<FormBody, ApiError> {
    let spool_dir = match request.extensions().get::<Tenant>() {
        Some(tenant) => warren_files::Files::upload_dir(tenant.dir()),
        None => std::env::temp_dir(),
    };
    let mut form = axum::extract::Multipart::from_request(request, state)
        .await
        .map_err(|_| ApiError::bad_request())?;
    let mut data = Map::new();
    let mut payloads = Vec::new();
    let mut files = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(e.status(), "Request entity too large."));
            }
            Err(_) => return Err(ApiError::bad_request()),
        };
        let key = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        if let Some(filename) = filename {
            files.push(Upload {
                key,
                filename,
                file: std::sync::Arc::new(spool_field(field, &spool_dir).await?),
            });
            continue;
        }
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(e.status(), "Request entity too large.")
            } else {
                ApiError::bad_request()
            }
        })?;
        match () {
            _ if key == "@jsonPayload" => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(payload)) => payloads.push(payload),
                _ => return Err(ApiError::bad_request()),
            },
            _ => {
                let text =
                    String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::bad_request())?;
                push_inferred(&mut data, key, Value::String(text));
            }
        }
    }
    for payload in payloads {
        data.extend(payload);
    }
    Ok(FormBody { data, files })
}

/// Streams one file part to a temporary file (the body limit bounds its size).
async fn spool_field(
    mut field: axum::extract::multipart::Field<'_>,
    dir: &std::path::Path,
) -> Result<warren_files::Staged, ApiError> {
    let filename = field.file_name().unwrap_or_default().to_string();
    let mut spool = warren_files::Spool::create(dir, u64::MAX)
        .await
        .map_err(ApiError::internal)?;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => spool.push(&chunk).await.map_err(ApiError::internal)?,
            Ok(None) => break,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(e.status(), "Request entity too large."));
            }
            Err(_) => return Err(ApiError::bad_request()),
        }
    }
    spool.finish(filename).await.map_err(ApiError::internal)
}

/// Adds a form value, inferring PocketBase's types (`true`/`false`, numbers that print back the
/// same) and turning repeated keys into arrays.
fn push_inferred(data: &mut Map<String, Value>, key: String, raw: Value) {
    let value = match raw {
        Value::String(text) => infer(text),
        other => other,
    };
    match data.get_mut(&key) {
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            data.insert(key, value);
        }
    }
}

fn infer(text: String) -> Value {
    match text.as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let numeric = text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b == b'-' || b == b'.' || b.is_ascii_digit());
    if numeric
        && let Ok(n) = text.parse::<f64>()
        && n.is_finite()
    {
        let printed = if n.fract() == 0.0 && n.abs() < 1e15 {
            format!("{}", n as i64)
        } else {
            format!("{n}")
        };
        if printed == text {
            return serde_json::Number::from_f64(n)
                .map(Value::Number)
                .unwrap_or(Value::String(text));
        }
    }
    Value::String(text)
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded.
fn form_urlencoded_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    crate::query::Params::pairs(&text)
}

#[cfg(test)]
mod form_tests {
    use serde_json::json;

    use super::infer;

    #[test]
    fn form_values_are_inferred_like_pocketbase() {
        assert_eq!(infer("true".into()), json!(true));
        assert_eq!(infer("12".into()), json!(12.0));
        assert_eq!(infer("-1.5".into()), json!(-1.5));
        assert_eq!(infer("1.50".into()), json!("1.50"));
        assert_eq!(infer("1e5".into()), json!("1e5"));
        assert_eq!(infer("".into()), json!(""));
        assert_eq!(infer("007".into()), json!("007"));
    }
}
