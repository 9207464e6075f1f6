//! `GET /api/health`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::ConnectInfo;
use axum::http::Extensions;
use serde_json::{Value, json};

use crate::extract::Auth;

/// Answers as PocketBase does; superusers also get `canBackup`, `realIP` and
/// `possibleProxyHeader`.
pub async fn get_health(Auth(caller): Auth, extensions: Extensions) -> Json<Value> {
    let data = match caller.is_superuser() {
        false => json!({}),
        true => {
            let ip = extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
                .unwrap_or_default();
            json!({ "canBackup": true, "realIP": ip, "possibleProxyHeader": "" })
        }
    };
    Json(json!({ "message": "API is healthy.", "code": 200, "data": data }))
}
