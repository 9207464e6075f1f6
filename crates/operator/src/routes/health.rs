//! `GET /v1/health`: the platform answers.

use axum::Json;
use serde_json::{Value, json};

/// The platform is up.
#[utoipa::path(get, path = "/v1/health", tag = "health",
    responses((status = 200, description = "The platform answers", body = Object)))]
pub async fn get_health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
