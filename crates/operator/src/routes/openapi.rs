//! `GET /v1/openapi.json`: the operator API's OpenAPI 3.1 document.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// `GET /v1/openapi.json`
#[utoipa::path(get, path = "/v1/openapi.json", tag = "health",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn get_openapi() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    (
        [(CONTENT_TYPE, "application/json")],
        DOCUMENT.get_or_init(crate::openapi::document).clone(),
    )
}
