//! The operator API's error: the control plane's [`Error`] rendered as its JSON envelope.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use warren_control_plane::Error;

/// A control-plane error on its way to the operator as a response.
#[derive(Debug)]
pub struct ApiError(pub Error);

/// Result alias of the operator API's handlers.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl<E: Into<Error>> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let envelope = self.0.envelope();
        if envelope.status == 500 {
            tracing::error!(error = %self.0, "control plane request failed");
        }
        let status =
            StatusCode::from_u16(envelope.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(envelope)).into_response()
    }
}
