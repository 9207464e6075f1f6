//! Planned moves of a tenant between live nodes: the operator's `POST /v1/tenants/{slug}/move`
//! and `/v1/tenants/{slug}/pin` (answered by the leader), the owner's hand-off (writes stopped, the tenant drained and
//! closed so its last WAL is shipped, ownership handed over) and the target's claim and restore.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use warren_api::ApiError;
use warren_cluster::ownership::{self, Claim};
use warren_cluster::pins;
use warren_control_plane::ControlPlane;

use super::{ClusterNode, MOVING};

/// Peer-only: the owner hands tenant `{id}` to node `{node}` (`/v1/cluster/handoff/{id}/{node}`).
const HANDOFF: &str = "/v1/cluster/handoff/";
/// Peer-only: this node claims tenant `{id}` now and restores it (`/v1/cluster/claim/{id}`).
const CLAIM: &str = "/v1/cluster/claim/";
/// How long the owner waits for a moving tenant's in-flight requests.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    node: String,
    /// `true`: the tenant is pinned to `node` once there; otherwise a pin to another node is
    /// removed (the tenant lives where the operator moved it).
    #[serde(default)]
    pin: bool,
}

fn envelope(status: StatusCode, message: &str) -> Response {
    ApiError::new(status, message).into_response()
}

impl ClusterNode {
    /// Answers the platform requests of planned moves; any other request comes back.
    pub async fn moves(
        &self,
        control: &ControlPlane,
        request: Request,
        from_peer: bool,
    ) -> Result<Response, Request> {
        let path = request.uri().path().to_string();
        if let Some(rest) = path.strip_prefix("/v1/cluster/") {
            // The node-to-node steps: only peers (shown the cluster secret) reach them.
            if !from_peer || request.method() != Method::POST {
                return Ok(ApiError::not_found().into_response());
            }
            if rest == "relay" {
                return Ok(self.receive_relayed(control, request).await);
            }
            let parts: Vec<&str> = rest.split('/').collect();
            return Ok(match parts.as_slice() {
                ["handoff", id, node] => self.hand_off(control, id, node).await,
                ["claim", id] => self.take(id).await,
                ["provision", id] => self.provision_here(control, id, request).await,
                ["platform", question] => self.answer_platform(control, question, request).await,
                _ => ApiError::not_found().into_response(),
            });
        }
        let Some((slug, action)) = path
            .strip_prefix("/v1/tenants/")
            .and_then(|p| p.split_once('/'))
            .filter(|(slug, _)| !slug.is_empty())
        else {
            return Err(request);
        };
        let pin_request = match (action, request.method()) {
            ("move", &Method::POST) => false,
            ("pin", &Method::GET | &Method::DELETE) => true,
            _ => return Err(request),
        };
        let slug = slug.to_string();
        let leads = self
            .directory
            .leader()
            .is_some_and(|l| l.lease == self.member.lease());
        if !leads || !self.platform_ready() {
            // Forwarded to the leader like the rest of the operator API (or refused while
            // this new leader restores the control database).
            return Err(request);
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !control.operator_token.accepts(authorization) {
            return Ok(envelope(
                StatusCode::UNAUTHORIZED,
                "Missing or invalid operator token.",
            ));
        }
        if pin_request {
            let unpin = request.method() == Method::DELETE;
            let info = match control.directory.resolve(&slug).await {
                Ok(Some(info)) => info,
                Ok(None) => return Ok(ApiError::not_found().into_response()),
                Err(e) => return Ok(ApiError::internal(e).into_response()),
            };
            return Ok(self.pin_answer(&info.id, unpin).await);
        }
        let body = match axum::body::to_bytes(request.into_body(), 1024).await {
            Ok(body) => body,
            Err(_) => return Ok(ApiError::bad_request().into_response()),
        };
        let Ok(MoveBody { node, pin }) = serde_json::from_slice(&body) else {
            return Ok(envelope(
                StatusCode::BAD_REQUEST,
                "The body must be {\"node\": ID, \"pin\": true|false}.",
            ));
        };
        let info = match control.directory.resolve(&slug).await {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(ApiError::not_found().into_response()),
            Err(e) => return Ok(ApiError::internal(e).into_response()),
        };
        let moved = self.move_tenant(control, &info.id, &node).await;
        if moved.status() != StatusCode::OK {
            return Ok(moved);
        }
        let pinned = self.directory.pin(&info.id);
        let changed = if pin {
            if pinned.as_deref() == Some(node.as_str()) {
                Ok(())
            } else {
                match pins::pin(&self.member, &info.id, &node).await {
                    Ok(revision) => {
                        // Answered once this node's own view has the pin.
                        self.directory
                            .caught_up(revision, Duration::from_secs(2))
                            .await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        } else if pinned.is_some_and(|p| p != node) {
            pins::unpin(&self.member, &info.id).await.map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = changed {
            return Ok(
                ApiError::internal(format!("the project moved, but its pin: {e}")).into_response(),
            );
        }
        Ok(moved)
    }

    /// `GET` (`unpin` false) or `DELETE` (`unpin` true) `/v1/tenants/{slug}/pin`: the node
    /// tenant `id` is pinned to (`null` when none), after removing the pin when asked.
    async fn pin_answer(&self, id: &str, unpin: bool) -> Response {
        if unpin && let Err(e) = pins::unpin(&self.member, id).await {
            return ApiError::internal(e).into_response();
        }
        let node = if unpin { None } else { self.directory.pin(id) };
        (
            StatusCode::OK,
            axum::Json(json!({ "tenant": id, "pin": node })),
        )
            .into_response()
    }

    /// The leader's part: asks the owner of tenant `id` to hand it to node `to`.
    pub(super) async fn move_tenant(&self, control: &ControlPlane, id: &str, to: &str) -> Response {
        if !self.directory.nodes().iter().any(|n| n.id == to) {
            return envelope(StatusCode::BAD_REQUEST, "No live node has that id.");
        }
        match self.directory.owner(id) {
            Some((owner, _)) if owner.node == to => (
                StatusCode::OK,
                axum::Json(json!({ "tenant": id, "node": to, "generation": owner.generation })),
            )
                .into_response(),
            Some((owner, _)) if owner.lease == self.member.lease() => {
                self.hand_off(control, id, to).await
            }
            Some((_, Some(node))) => {
                self.to_peer(control, &node.advertise, &format!("{HANDOFF}{id}/{to}"))
                    .await
            }
            Some((_, None)) => envelope(StatusCode::SERVICE_UNAVAILABLE, MOVING),
            None => {
                let Some(node) = self.directory.nodes().into_iter().find(|n| n.id == to) else {
                    return envelope(StatusCode::BAD_REQUEST, "No live node has that id.");
                };
                self.to_peer(control, &node.advertise, &format!("{CLAIM}{id}"))
                    .await
            }
        }
    }

    /// The owner's part: stops serving tenant `id` (new requests answer "moving"), waits for
    /// its in-flight requests and closes it (its realtime clients are disconnected, and its
    /// shipper ships the last WAL before it lets the database go), hands it over and asks node
    /// `to` to claim and restore it.
    async fn hand_off(&self, control: &ControlPlane, id: &str, to: &str) -> Response {
        let started = Instant::now();
        let Some((owner, _)) = self
            .directory
            .owner(id)
            .filter(|(o, _)| o.lease == self.member.lease())
        else {
            return envelope(StatusCode::CONFLICT, "This node does not own the project.");
        };
        let Some(target) = self.directory.nodes().into_iter().find(|n| n.id == to) else {
            return envelope(StatusCode::BAD_REQUEST, "No live node has that id.");
        };
        if self.restorer().is_none() {
            return envelope(
                StatusCode::BAD_REQUEST,
                "Projects move through the backup target; this server has none (--backup-url).",
            );
        }
        // The target restores from the backup target: a tenant none of whose snapshots is
        // there yet (just created) would have nothing to restore.
        match control.backups.target() {
            Some(backups) => match warren_backup::latest::newest_chain(backups, id).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return envelope(
                        StatusCode::CONFLICT,
                        "The project has no backup to move through yet; try again shortly.",
                    );
                }
                Err(e) => return ApiError::internal(e).into_response(),
            },
            None => {
                return envelope(
                    StatusCode::BAD_REQUEST,
                    "Projects move through the backup target; this server has none (--backup-url).",
                );
            }
        }
        if !self.moving_out(id, true) {
            return envelope(StatusCode::CONFLICT, "The project is already moving.");
        }
        let drained = match control.registry.drain(id, DRAIN_LIMIT).await {
            Ok(drained) => drained,
            Err(e) => {
                self.moving_out(id, false);
                tracing::warn!(tenant = id, error = %e, "draining a moving tenant failed");
                return envelope(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The project is still in use; try again.",
                );
            }
        };
        // Handed over in one step, so the tenant never lacks an owner another node could
        // claim (placement may point any node at it) between a release and the target's claim.
        let handed = ownership::hand_over(&self.member, id, &owner, to).await;
        if let Ok(Some(_)) = &handed {
            // The copy here is no longer the latest once the target owns the tenant.
            self.stale
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_string());
        }
        drop(drained);
        let answer = match handed {
            Ok(Some(handed)) => {
                // Requests here are forwarded to the target once this node's directory has
                // seen the change; until then they answer "moving".
                self.directory
                    .caught_up(handed.revision, Duration::from_secs(5))
                    .await;
                self.to_peer(control, &target.advertise, &format!("{CLAIM}{id}"))
                    .await
            }
            Ok(None) => envelope(
                StatusCode::CONFLICT,
                "The project's owner or the target node changed meanwhile.",
            ),
            Err(e) => ApiError::internal(e).into_response(),
        };
        self.moving_out(id, false);
        tracing::info!(tenant = id, to, took = ?started.elapsed(), status = %answer.status(), "tenant handed off");
        answer
    }

    /// The target's part: claims tenant `id` now and starts restoring it.
    async fn take(&self, id: &str) -> Response {
        if !warren_cluster::valid_id(id) {
            return ApiError::not_found().into_response();
        }
        match ownership::claim(&self.member, id).await {
            Ok(Claim::Granted(owner)) => {
                self.claimed(id, owner.generation, self.has_data(id)).await;
                if !self.has_data(id) {
                    self.restore_from_backup_target(id);
                }
                (
                    StatusCode::OK,
                    axum::Json(
                        json!({ "tenant": id, "node": self.node(), "generation": owner.generation }),
                    ),
                )
                    .into_response()
            }
            Ok(Claim::Held(owner)) => envelope(
                StatusCode::CONFLICT,
                &format!("Node {} took the project meanwhile.", owner.node),
            ),
            Err(e) => ApiError::internal(e).into_response(),
        }
    }

    /// Sends a node-to-node step to the peer at `advertise`; its answer comes back.
    async fn to_peer(&self, control: &ControlPlane, advertise: &str, path: &str) -> Response {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, control.urls.domain.as_str())
            .body(Body::empty());
        match request {
            Ok(request) => self.forwarder.forward(advertise, request).await,
            Err(e) => ApiError::internal(e).into_response(),
        }
    }

    /// Marks tenant `id` as handed off from here (`true`; whether it was not yet) or done.
    fn moving_out(&self, id: &str, on: bool) -> bool {
        let mut moving = self.moving.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            moving.insert(id.to_string())
        } else {
            moving.remove(id)
        }
    }

    /// Whether tenant `id` is being handed off from here (it answers "moving").
    pub(super) fn is_moving_out(&self, id: &str) -> bool {
        self.moving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }
}
