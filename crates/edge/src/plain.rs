//! The plain HTTP listener when HTTPS is on: ACME HTTP-01 answers under
//! `/.well-known/acme-challenge/`, and a 308 to the same host and path on HTTPS for the rest.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::acme::Acme;

#[derive(Clone)]
struct Plain {
    acme: Option<Arc<Acme>>,
    https_port: u16,
}

/// The router of the plain listener next to an HTTPS listener on `https_port`.
pub fn router(acme: Option<Arc<Acme>>, https_port: u16) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .fallback(redirect)
        .with_state(Plain { acme, https_port })
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "data": {}, "message": message, "status": status.as_u16() });
    (status, axum::Json(body)).into_response()
}

async fn challenge(State(plain): State<Plain>, Path(token): Path<String>) -> Response {
    let answer = match &plain.acme {
        Some(acme) => acme.http_challenge(&token).await,
        None => None,
    };
    match answer {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            "The requested resource wasn't found.",
        ),
    }
}

async fn redirect(State(plain): State<Plain>, request: Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.host().to_string()));
    let Some(name) = host.as_deref().and_then(host_without_port) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "The request has no valid Host header.",
        );
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if plain.https_port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{}{path}", plain.https_port)
    };
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, value)]).into_response(),
        Err(_) => json_error(StatusCode::BAD_REQUEST, "The request path is not valid."),
    }
}

/// The host name of a Host header value, if it is a plausible DNS name.
fn host_without_port(value: &str) -> Option<String> {
    let name = match value.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => value,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    crate::certs::plausible_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn get(uri: &str, host: &str) -> Response {
        router(None, 8443)
            .oneshot(
                Request::builder()
                    .uri(uri)
                    .header("host", host)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn everything_but_challenges_redirects_to_https() {
        let response = get("/api/health?x=1", "App.Example.com:8080").await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()["location"],
            "https://app.example.com:8443/api/health?x=1"
        );
        let response = get("/.well-known/acme-challenge/abc", "app.example.com").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = get("/", "bad host").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
