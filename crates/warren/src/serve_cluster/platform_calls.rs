//! The tenant API's questions to the platform (`/api/warren/*`: the console's one-time
//! dashboard links, a tenant's metered usage) asked on a node that does not lead: the leader
//! minted the link and holds the cluster's usage, so the question is sent to it (peer-only
//! `/v1/cluster/platform/{dashboard-link,usage}`) and its answer, or its refusal, returned.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warren_api::{ApiError, Platform};
use warren_control_plane::ControlPlane;

use super::ClusterNode;

/// Peer-only: the leader answers a platform question (`/v1/cluster/platform/{question}`).
pub(super) const PLATFORM: &str = "/v1/cluster/platform/";
/// The most bytes of a question (a tenant id, a code, two dates, as JSON).
const QUESTION_LIMIT: usize = 4096;
/// The most bytes of the leader's answer (a usage report of hourly rows).
const ANSWER_LIMIT: usize = 8 << 20;
/// What the tenant API says while the leader cannot answer.
const NO_LEADER: &str = "The platform cannot be reached right now; try again shortly.";

/// `dashboard-link`: the email one-time `code` signs in as on `tenant`, using it up.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    tenant: String,
    code: String,
}

/// `usage`: `tenant`'s hourly usage between `from` and `to`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Usage {
    tenant: String,
    from: Option<String>,
    to: Option<String>,
}

fn no_leader() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NO_LEADER)
}

impl ClusterNode {
    /// Whether the platform's questions are answered from this node's control plane: it
    /// leads, with the latest control database.
    pub fn answers_platform(&self) -> bool {
        self.leads_ready()
    }

    /// Asks the leader which email one-time dashboard `code` of `tenant` signs in as.
    pub async fn redeem_at_leader(
        &self,
        domain: &str,
        tenant: &str,
        code: &str,
    ) -> Result<String, ApiError> {
        let question = Link {
            tenant: tenant.to_string(),
            code: code.to_string(),
        };
        let answer = self.ask_leader(domain, "dashboard-link", &question).await?;
        answer["email"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(no_leader)
    }

    /// Asks the leader for `tenant`'s usage between `from` and `to`.
    pub async fn usage_at_leader(
        &self,
        domain: &str,
        tenant: &str,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Value, ApiError> {
        let question = Usage {
            tenant: tenant.to_string(),
            from,
            to,
        };
        self.ask_leader(domain, "usage", &question).await
    }

    /// Sends `body` to the leader's `/v1/cluster/platform/{question}`: its JSON answer, its
    /// refusal (a 4xx) as it gave it, anything else a 503.
    async fn ask_leader<T: Serialize>(
        &self,
        domain: &str,
        question: &str,
        body: &T,
    ) -> Result<Value, ApiError> {
        let leader = match self.directory.leader() {
            Some(leader) if leader.lease != self.member.lease() => leader,
            _ => return Err(no_leader()),
        };
        let body = serde_json::to_vec(body).map_err(|_| no_leader())?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{PLATFORM}{question}"))
            .header(header::HOST, domain)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .map_err(|_| no_leader())?;
        let response = self.forwarder.forward(&leader.advertise, request).await;
        let status = response.status();
        let answer = axum::body::to_bytes(response.into_body(), ANSWER_LIMIT)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        match (status, answer) {
            (StatusCode::OK, Some(answer)) => Ok(answer),
            (status, Some(answer)) if status.is_client_error() => {
                let message = answer["message"].as_str().unwrap_or_default();
                let mut error = ApiError::new(status, message);
                if let Value::Object(data) = &answer["data"] {
                    error.data = data.clone();
                }
                Err(error)
            }
            (status, _) => {
                tracing::warn!(question, leader = %leader.node, %status, "the leader did not answer a platform question");
                Err(no_leader())
            }
        }
    }

    /// Peer-only `POST /v1/cluster/platform/{question}`: the leader answers from its control
    /// plane.
    pub(super) async fn answer_platform(
        &self,
        control: &ControlPlane,
        question: &str,
        request: Request,
    ) -> Response {
        if !self.leads_ready() {
            return no_leader().into_response();
        }
        let Ok(body) = axum::body::to_bytes(request.into_body(), QUESTION_LIMIT).await else {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The body is too large.")
                .into_response();
        };
        let platform = crate::platform::ControlPlatform::new(control.clone(), None);
        let answer = match question {
            "dashboard-link" => match serde_json::from_slice::<Link>(&body) {
                Ok(Link { tenant, code }) => platform
                    .redeem_dashboard_link(&tenant, &code)
                    .await
                    .map(|email| json!({ "email": email })),
                Err(_) => Err(ApiError::bad_request()),
            },
            "usage" => match serde_json::from_slice::<Usage>(&body) {
                Ok(Usage { tenant, from, to }) => platform.usage(&tenant, from, to).await,
                Err(_) => Err(ApiError::bad_request()),
            },
            _ => Err(ApiError::not_found()),
        };
        match answer {
            Ok(answer) => axum::Json(answer).into_response(),
            Err(e) => e.into_response(),
        }
    }
}
