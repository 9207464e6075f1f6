//! The console's answers that are not pages: the platform's JSON envelope for a route that is
//! off (the outbox with an SMTP relay) and for a failure before a page could be started.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warren_control_plane::Error;

/// The JSON 404 the rest of the platform host answers with.
pub fn not_found() -> Response {
    envelope(
        StatusCode::NOT_FOUND,
        "The requested resource wasn't found.",
    )
}

/// The JSON 500 for a failure while reading who the visitor is (logged).
pub fn internal(error: Error) -> Response {
    tracing::error!(error = %error, "console request failed");
    envelope(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong while processing your request.",
    )
}

fn envelope(status: StatusCode, message: &str) -> Response {
    let body = json!({ "data": {}, "message": message, "status": status.as_u16() });
    (status, Json(body)).into_response()
}
