//! `ApiError`: every failure of the tenant API, rendered as PocketBase's error envelope
//! `{"data":{…},"message":"…","status":N}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An API error: status, a sentence-cased message and per-field details.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status (duplicated in the body).
    pub status: StatusCode,
    /// Human-readable message ending with a period.
    pub message: String,
    /// Field errors (`{"field":{"code":…,"message":…}}`), empty for most errors.
    pub data: Map<String, Value>,
}

impl ApiError {
    /// An error with `status` and `message` and no field details.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            data: Map::new(),
        }
    }

    /// 400 with PocketBase's generic message.
    pub fn bad_request() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Something went wrong while processing your request.",
        )
    }

    /// 404 with PocketBase's generic message.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "The requested resource wasn't found.",
        )
    }

    /// 500 that reveals nothing of the cause (which is logged instead).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong while processing your request.",
        )
    }

    /// Adds a field error `{code, message}`.
    pub fn field(mut self, name: &str, code: &str, message: &str) -> Self {
        self.data.insert(
            name.to_string(),
            json!({ "code": code, "message": message }),
        );
        self
    }
}

impl ApiError {
    /// Adds a field error `{code, message, params}`.
    pub fn field_params(mut self, name: &str, code: &str, message: &str, params: Value) -> Self {
        self.data.insert(
            name.to_string(),
            json!({ "code": code, "message": message, "params": params }),
        );
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({ "data": self.data, "message": self.message, "status": self.status.as_u16() });
        let mut response = (self.status, Json(body)).into_response();
        // The request logger records the message of failed requests.
        response
            .extensions_mut()
            .insert(crate::logger::ErrorMessage(self.message));
        response
    }
}

impl From<warren_tenant::Error> for ApiError {
    fn from(e: warren_tenant::Error) -> Self {
        match e {
            warren_tenant::Error::NotFound => Self::not_found(),
            other => Self::internal(other),
        }
    }
}

impl From<warren_secrets::Error> for ApiError {
    fn from(e: warren_secrets::Error) -> Self {
        Self::internal(e)
    }
}

impl From<warren_records::Error> for ApiError {
    fn from(e: warren_records::Error) -> Self {
        use warren_records::Error as E;
        match e {
            E::NotFound(message) => Self::new(StatusCode::NOT_FOUND, message),
            E::Forbidden(message) => Self::new(StatusCode::FORBIDDEN, message),
            E::BadRequest(message) => Self::new(StatusCode::BAD_REQUEST, message),
            E::Unauthorized(message) => Self::new(StatusCode::UNAUTHORIZED, message),
            E::ForbiddenOwned(message) => Self::new(StatusCode::FORBIDDEN, message),
            E::TooManyRequests(message) => Self::new(StatusCode::TOO_MANY_REQUESTS, message),
            // Synchronous shipping: committed on this node, but not in the backup target in
            // time, so not acknowledged.
            E::Store(warren_store::Error::NotShipped(message)) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
            }
            E::MfaRequired(_) => Self::new(
                StatusCode::UNAUTHORIZED,
                "Missing or invalid authentication.",
            ),
            E::Validation { message, errors } => {
                let data = match errors.to_value() {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                Self {
                    status: StatusCode::BAD_REQUEST,
                    message: message.to_string(),
                    data,
                }
            }
            other => Self::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synchronous shipping's refusal (committed locally, not in the backup target in time) is
    /// a 503 with its message, not a 500.
    #[test]
    fn a_write_not_shipped_in_time_is_a_503() {
        let e = warren_records::Error::Store(warren_store::Error::NotShipped(
            "not stored in the backup target within 10000 ms".into(),
        ));
        let api = ApiError::from(e);
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(api.message.contains("backup target"), "{}", api.message);
    }
}
