//! Cluster mode: a project's actions on its data run on the node that serves it, as operator
//! API requests (`/v1/tenants/{slug}/...`) the cluster sends there; the console renders their
//! answers as it renders its own.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use warren_control_plane::TenantInfo;

use crate::Console;

/// The most bytes of a JSON answer read.
const ANSWER_LIMIT: usize = 1 << 20;

/// Runs operator API requests on a tenant's data on the node that serves the tenant (which
/// may be this one); given to the console by a cluster node.
pub trait Elsewhere: Send + Sync {
    /// Runs `request` (`/v1/tenants/{slug}/...`, no token needed) on `tenant`; its answer.
    fn run(&self, tenant: TenantInfo, request: Request) -> BoxFuture<'static, Response>;
}

/// Where `project`'s actions go when this node does not serve it now (cluster mode only).
pub(crate) fn of(state: &Console, project: &TenantInfo) -> Option<Arc<dyn Elsewhere>> {
    let remote = state.inner.elsewhere.get()?;
    state
        .registry
        .locality()
        .is_some_and(|locality| locality.elsewhere(&project.id))
        .then(|| remote.clone())
}

/// `method /v1/tenants/{slug}/{rest}` with `body` (of `content_type`), run where `project`
/// is served.
pub(crate) async fn run(
    elsewhere: &dyn Elsewhere,
    project: &TenantInfo,
    method: Method,
    rest: &str,
    content_type: Option<&'static str>,
    body: Body,
) -> Response {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/v1/tenants/{}/{rest}", project.slug));
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    match request.body(body) {
        Ok(request) => elsewhere.run(project.clone(), request).await,
        Err(_) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The request could not be made.",
        ),
    }
}

/// `Ok` for a 2xx answer (its body unread), or the answer's status and message.
pub(crate) async fn done(response: Response) -> Result<(), (StatusCode, String)> {
    if response.status().is_success() {
        return Ok(());
    }
    json::<serde_json::Value>(response).await.map(|_| ())
}

/// The status and message of a refusal by the node serving a project (a 502 without a
/// message when its answer reads as a success).
pub(crate) async fn refused(answer: Response) -> (StatusCode, String) {
    json::<serde_json::Value>(answer)
        .await
        .err()
        .unwrap_or((StatusCode::BAD_GATEWAY, String::new()))
}

/// Why the node serving a project did not do what was asked.
pub(crate) struct Refusal {
    /// The answer's status.
    pub(crate) status: StatusCode,
    /// Its message.
    pub(crate) message: String,
    /// What it said about the refused field, when it named one.
    pub(crate) field: Option<String>,
}

/// The JSON of a 2xx answer, or the answer's status and message (the refused field's message
/// when it named one).
pub(crate) async fn json<T: DeserializeOwned>(
    response: Response,
) -> Result<T, (StatusCode, String)> {
    answer(response)
        .await
        .map_err(|refusal| (refusal.status, refusal.field.unwrap_or(refusal.message)))
}

/// The JSON of a 2xx answer, or why it was refused.
pub(crate) async fn answer<T: DeserializeOwned>(response: Response) -> Result<T, Refusal> {
    let status = response.status();
    let refused = |status, message: &str| Refusal {
        status,
        message: message.to_string(),
        field: None,
    };
    let bytes = axum::body::to_bytes(response.into_body(), ANSWER_LIMIT)
        .await
        .map_err(|_| refused(StatusCode::BAD_GATEWAY, "The answer was too large."))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|_| {
            refused(
                StatusCode::BAD_GATEWAY,
                "The project's server answered something else.",
            )
        });
    }
    let envelope = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default();
    let message = envelope["message"]
        .as_str()
        .unwrap_or("The project's server could not do it; try again shortly.")
        .to_string();
    let field = envelope["data"].as_object().and_then(|fields| {
        fields
            .values()
            .find_map(|field| field["message"].as_str().map(str::to_string))
    });
    Err(Refusal {
        status,
        message,
        field,
    })
}

fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(
        serde_json::json!({ "status": status.as_u16(), "message": message, "data": {} })
            .to_string(),
    ));
    *response.status_mut() = status;
    response
}
