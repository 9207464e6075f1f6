//! A project's superuser set from the console while another node serves the project: the
//! leader sends it to the owner (peer-only `/v1/cluster/superuser/{id}`), which sets it on its
//! copy; the password travels in the body only and is never logged.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use warren_api::ApiError;
use warren_control_plane::ControlPlane;
use warren_tenant::Error;
use warren_tenant::locality::{Locality, Remote};

use super::ClusterNode;

/// Peer-only: the owner sets a superuser of tenant `{id}` (`/v1/cluster/superuser/{id}`).
pub(super) const SUPERUSER: &str = "/v1/cluster/superuser/";
/// The most bytes of a request (an email of at most 254 and a password of at most 71
/// characters, as JSON) or of the owner's answer.
const BODY_LIMIT: usize = 4096;

/// The body sent to the owner. No `Debug`: the password is never printed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSuperuser {
    email: String,
    password: String,
}

/// The registry's view of the cluster: which tenants another node serves, and how to reach it.
pub struct Owners {
    node: Arc<ClusterNode>,
    /// The platform's host name, which node-to-node requests are sent to.
    platform_host: String,
}

impl ClusterNode {
    /// This node's [`Owners`], sending node-to-node requests to `platform_host`.
    pub fn owners(self: &Arc<Self>, platform_host: &str) -> Owners {
        Owners {
            node: self.clone(),
            platform_host: platform_host.to_string(),
        }
    }

    /// Whether this node serves tenant `id` now, with its data current (claimed under the
    /// directory's generation).
    fn serves(&self, id: &str) -> bool {
        self.directory.owner(id).is_some_and(|(owner, _)| {
            owner.lease == self.member.lease()
                && self.ownership_generation(id) == Some(owner.generation)
        })
    }

    /// Peer-only `POST /v1/cluster/superuser/{id}`: sets the superuser in the body on this
    /// node's copy of tenant `id`, when this node serves it; 200 `{email}`.
    pub(super) async fn set_superuser_here(
        &self,
        control: &ControlPlane,
        id: &str,
        request: Request,
    ) -> Response {
        if !self.serves(id) {
            return ApiError::new(
                StatusCode::CONFLICT,
                "This node does not serve the project.",
            )
            .into_response();
        }
        let Ok(body) = axum::body::to_bytes(request.into_body(), BODY_LIMIT).await else {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The body is too large.")
                .into_response();
        };
        let Ok(SetSuperuser { email, password }) = serde_json::from_slice(&body) else {
            return ApiError::bad_request().into_response();
        };
        let tenant = match control.registry.get(id).await {
            Ok(tenant) => tenant,
            Err(Error::NotFound) => return ApiError::not_found().into_response(),
            Err(Error::Draining) => {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, super::MOVING)
                    .into_response();
            }
            Err(e) => return ApiError::internal(e).into_response(),
        };
        match tenant
            .set_superuser(&self.passwords, &email, &password)
            .await
        {
            Ok(superuser) => {
                tracing::info!(tenant = id, "project superuser set for the leader");
                axum::Json(serde_json::json!({ "email": superuser.email })).into_response()
            }
            Err(Error::Invalid(reason)) => {
                ApiError::new(StatusCode::BAD_REQUEST, &reason).into_response()
            }
            Err(e) => ApiError::internal(e).into_response(),
        }
    }
}

impl Locality for Owners {
    fn elsewhere(&self, id: &str) -> bool {
        self.node
            .directory
            .owner(id)
            .is_some_and(|(owner, _)| owner.lease != self.node.member.lease())
    }

    fn set_superuser_there<'a>(
        &'a self,
        id: &'a str,
        email: &'a str,
        password: &'a str,
    ) -> Remote<'a, String> {
        Box::pin(async move {
            let Some((_, Some(owner))) = self.node.directory.owner(id) else {
                return Err(Error::Elsewhere);
            };
            let body = serde_json::to_vec(&SetSuperuser {
                email: email.to_string(),
                password: password.to_string(),
            })
            .map_err(|_| Error::Elsewhere)?;
            let request = Request::builder()
                .method(Method::POST)
                .uri(format!("{SUPERUSER}{id}"))
                .header(header::HOST, self.platform_host.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .map_err(|_| Error::Elsewhere)?;
            let response = self.node.forwarder.forward(&owner.advertise, request).await;
            let status = response.status();
            let answer = axum::body::to_bytes(response.into_body(), BODY_LIMIT)
                .await
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .unwrap_or_default();
            let text = |field: &str| answer[field].as_str().unwrap_or_default().to_string();
            match status {
                StatusCode::OK => Ok(text("email")),
                StatusCode::BAD_REQUEST => Err(Error::Invalid(text("message"))),
                _ => {
                    tracing::warn!(tenant = id, node = %owner.id, %status, "the owner did not set the superuser");
                    Err(Error::Elsewhere)
                }
            }
        })
    }
}
