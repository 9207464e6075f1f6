//! Busy tenants of a node that died (or left) are claimed and restored as soon as they are
//! free, not on their next request: a node remembers the tenants it recently forwarded
//! requests for, and when the directory reports one of them freed it routes a request of its
//! own for it, which makes the node placement gives the tenant claim it and start its restore.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use tokio::sync::broadcast::error::RecvError;
use warren_control_plane::TenantInfo;

use super::{ClusterNode, Route};

/// A tenant forwarded for within this long is busy.
const BUSY_WINDOW: Duration = Duration::from_secs(30);
/// The most tenants remembered (those seen longest ago go first).
const MAX_REMEMBERED: usize = 4096;
/// Freed busy tenants routed at once.
const AT_ONCE: usize = 4;

/// The tenants this node forwarded requests for, and when it last did.
#[derive(Debug, Default)]
pub(super) struct Recent {
    seen: HashMap<String, Instant>,
}

impl Recent {
    /// Notes a request for tenant `id` at `now`.
    fn note(&mut self, id: &str, now: Instant) {
        if let Some(at) = self.seen.get_mut(id) {
            *at = now;
            return;
        }
        if self.seen.len() >= MAX_REMEMBERED {
            self.seen
                .retain(|_, at| now.duration_since(*at) < BUSY_WINDOW);
            if self.seen.len() >= MAX_REMEMBERED {
                return;
            }
        }
        self.seen.insert(id.to_string(), now);
    }

    /// Whether tenant `id` was asked for within [`BUSY_WINDOW`] before `now`.
    fn busy(&self, id: &str, now: Instant) -> bool {
        self.seen
            .get(id)
            .is_some_and(|at| now.duration_since(*at) < BUSY_WINDOW)
    }
}

impl ClusterNode {
    /// Notes a request for tenant `id` sent on to its owner.
    pub(super) fn forwarded_for(&self, id: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(id, Instant::now());
    }

    fn was_busy(&self, id: &str) -> bool {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .busy(id, Instant::now())
    }

    /// A host tenant `id` answers on, and its record, from the mirrored directory.
    fn host_of(&self, id: &str) -> Option<(String, TenantInfo)> {
        self.directory
            .hosts()
            .into_iter()
            .find(|(_, record)| record.tenant == id)
            .and_then(|(host, record)| {
                serde::Deserialize::deserialize(&record.info)
                    .ok()
                    .map(|info| (host, info))
            })
    }

    /// Follows the tenants the directory reports freed, until the node leaves: each one this
    /// node forwarded requests for lately (owned by another membership) is routed at once, as
    /// its next request would be.
    pub async fn run_eager_failover(self: Arc<Self>) {
        let mut freed = self.directory.freed();
        let permits = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
        loop {
            let one = match freed.recv().await {
                Ok(one) => one,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "freed tenants came faster than they were looked at; the missed ones are claimed on their next request"
                    );
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            if self.member.lost() || self.left.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            if one.owner.lease == self.member.lease() || !self.was_busy(&one.tenant) {
                continue;
            }
            let Some((host, info)) = self.host_of(&one.tenant) else {
                continue;
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let node = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let Ok(request) = Request::builder()
                    .method(Method::GET)
                    .uri("/api/health")
                    .header(header::HOST, host)
                    .body(Body::empty())
                else {
                    return;
                };
                let started = Instant::now();
                let tenant = info.id.clone();
                let status = match node.route(info, request, false).await {
                    Route::Here(_) => axum::http::StatusCode::OK,
                    Route::Answered(answer) => answer.status(),
                };
                tracing::info!(
                    tenant,
                    from = %one.owner.node,
                    %status,
                    took = ?started.elapsed(),
                    "a busy tenant whose node left is claimed at once"
                );
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_busy_for_a_while_after_its_last_request() {
        let mut recent = Recent::default();
        let start = Instant::now();
        recent.note("t1", start);
        assert!(recent.busy("t1", start + Duration::from_secs(29)));
        assert!(!recent.busy("t1", start + BUSY_WINDOW));
        assert!(!recent.busy("t2", start));
        recent.note("t1", start + Duration::from_secs(20));
        assert!(recent.busy("t1", start + Duration::from_secs(45)));
    }

    #[test]
    fn what_is_remembered_is_bounded_and_old_entries_make_room() {
        let mut recent = Recent::default();
        let start = Instant::now();
        for t in 0..MAX_REMEMBERED {
            recent.note(&format!("t{t}"), start);
        }
        // Full of recent tenants: a new one is not remembered.
        recent.note("new", start + Duration::from_secs(1));
        assert!(!recent.busy("new", start + Duration::from_secs(1)));
        assert_eq!(recent.seen.len(), MAX_REMEMBERED);
        // Once those are old, they make room.
        let later = start + BUSY_WINDOW + Duration::from_secs(1);
        recent.note("new", later);
        assert!(recent.busy("new", later));
        assert_eq!(recent.seen.len(), 1);
    }
}
