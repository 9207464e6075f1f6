//! Extractors: the request's tenant, its caller, and JSON bodies whose errors come out in
//! PocketBase's envelope.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde_json::{Map, Value};
use warren_records::Caller;
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
        parts.extensions.insert(caller.clone());
        Ok(Self(caller))
    }
}

/// Strips an optional, case-insensitive `Bearer ` prefix.
fn strip_bearer(value: &str) -> &str {
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

    /// The string value of `key`, or "" when missing or not a string.
    pub fn text(&self, key: &str) -> &str {
        self.get(key).and_then(Value::as_str).unwrap_or("")
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
