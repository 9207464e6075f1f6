//! `GET /v1/health`: the platform answers.

use axum::Json;
use serde_json::{Value, json};

/// The platform is up.
pub async fn get_health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
