//! `GET /api/health`.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warren_tenant::Tenant;

use crate::extract::Auth;
use crate::router::Shared;

/// Headers that suggest a proxy in front, besides the tenant's trusted ones (PocketBase's list).
const COMMON_PROXY_HEADERS: [&str; 2] = ["CF-Connecting-IP", "Fly-Client-IP"];

/// Answers as PocketBase does; superusers also get `canBackup`, `realIP` and
/// `possibleProxyHeader` (the first trusted or common proxy header the request carries);
/// `canBackup` is false while a backup or restore of the tenant (`/api/backups`) runs.
pub async fn get_health(
    State(state): State<Shared>,
    Auth(caller): Auth,
    request: Request,
) -> Response {
    // The request is taken whole: extracting its headers and extensions would copy them.
    let (headers, extensions) = (request.headers(), request.extensions());
    let data = match caller.is_superuser() {
        false => {
            // Everyone else gets the same answer, written once.
            return ([(header::CONTENT_TYPE, "application/json")], GUEST_ANSWER).into_response();
        }
        true => {
            let ip = crate::client::addr(extensions).real;
            let tenant = extensions.get::<Tenant>();
            let can_backup = tenant.is_none_or(|t| !state.backups.is_running(t.id()));
            let trusted = match tenant {
                Some(tenant) => tenant
                    .policy()
                    .await
                    .map(|p| p.trusted_proxy.headers.clone())
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let proxy_header = trusted
                .iter()
                .map(String::as_str)
                .chain(COMMON_PROXY_HEADERS)
                .find(|name| headers.get(*name).is_some_and(|v| !v.as_bytes().is_empty()))
                .unwrap_or_default()
                .to_string();
            json!({ "canBackup": can_backup, "realIP": ip, "possibleProxyHeader": proxy_header })
        }
    };
    Json(json!({ "message": "API is healthy.", "code": 200, "data": data })).into_response()
}

/// The answer for anyone but a superuser, as serde_json writes it (keys sorted).
const GUEST_ANSWER: &str = r#"{"code":200,"data":{},"message":"API is healthy."}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_answer_is_what_serde_json_writes() {
        let answer = json!({ "message": "API is healthy.", "code": 200, "data": {} });
        assert_eq!(answer.to_string(), GUEST_ANSWER);
    }
}
