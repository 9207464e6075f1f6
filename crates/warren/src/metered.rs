//! The metering and quota gate in front of a tenant's API: counts requests and body bytes,
//! applies the plan's request rate, upload size and storage quota, and times responses.
//!
//! Everything here is atomics on the tenant's meter and on the process metrics: no lock and no
//! database access per request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;
use warren_api::ApiError;
use warren_control_plane::TenantInfo;
use warren_control_plane::metering::Metering;
use warren_tenant::meter::Admission;
use warren_tenant::{Meter, Tenant};

/// Serves `request` on `tenant` through the gate.
pub async fn serve(
    metering: &Metering,
    api: Router,
    info: &TenantInfo,
    tenant: Tenant,
    request: Request,
) -> Response {
    let started = Instant::now();
    let meter = tenant.meter().clone();
    meter.requests.fetch_add(1, Relaxed);
    let limits = info.limits;
    if meter.realtime_limit.load(Relaxed) != limits.max_realtime_connections {
        meter
            .realtime_limit
            .store(limits.max_realtime_connections, Relaxed);
    }
    let response = match refuse(&meter, info, &request) {
        Some(refusal) => refusal.into_response(),
        None => {
            let request = count_request_body(request, &meter, limits.max_upload_bytes);
            let mut request = request;
            request.extensions_mut().insert(tenant);
            crate::app::forward(api, request).await
        }
    };
    metering
        .metrics()
        .observe(response.status().as_u16(), started.elapsed());
    let (parts, body) = response.into_parts();
    let body = Counted {
        inner: body,
        meter,
        direction: Direction::Out,
    };
    Response::from_parts(parts, Body::new(body))
}

/// Hands the plan's limits of the tenant's own code and of its kept backups to its meter,
/// where every call into the code and every backup reads them: a plan change reaches loaded
/// code at its next call, without a reload.
pub fn apply_limits(meter: &Meter, limits: &warren_control_plane::plans::Limits) {
    for (cell, value) in [
        (&meter.code_cpu_ms, limits.hook_cpu_ms),
        (&meter.code_memory_bytes, limits.hook_memory_bytes),
        (&meter.code_cpu_ms_per_hour, limits.hook_cpu_ms_per_hour),
        (&meter.backup_max_count, limits.max_backups),
        (&meter.backup_max_bytes, limits.max_backup_bytes),
    ] {
        if cell.load(Relaxed) != value {
            cell.store(value, Relaxed);
        }
    }
}

/// How long a write of a tenant on a plan with synchronous shipping waits for the WAL segment
/// holding its commit to be stored in the backup target before it is answered 503.
pub const SYNC_SHIP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands the plan's shipping mode to the tenant's database (shipped databases only): with
/// `sync`, its writes return once their commit is in the backup target. Read at each request,
/// so a plan change applies at the tenant's next request.
pub fn apply_shipping(tenant: &Tenant, limits: &warren_control_plane::plans::Limits) {
    if let Some(log) = tenant.db().commit_log() {
        let wait = match limits.shipping {
            warren_control_plane::plans::Shipping::Sync => Some(SYNC_SHIP_WAIT),
            warren_control_plane::plans::Shipping::Async => None,
        };
        log.set_sync(wait);
    }
}

/// Why the plan refuses a request, if it does: rate first, then size, then storage.
fn refuse(meter: &Meter, info: &TenantInfo, request: &Request) -> Option<Response> {
    let limits = info.limits;
    if let Admission::RetryAfter(seconds) =
        meter.admit(limits.requests_per_second, limits.request_burst)
    {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests for this project's plan; retry later.",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Some(response);
    }
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if limits.max_upload_bytes > 0 && length > limits.max_upload_bytes {
        return Some(
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "The request body is larger than this project's plan allows ({} bytes).",
                    limits.max_upload_bytes
                ),
            )
            .into_response(),
        );
    }
    if limits.storage_bytes > 0
        && grows_storage(request.method(), request.uri().path())
        && meter.storage_bytes.load(Relaxed).saturating_add(length) > limits.storage_bytes
    {
        return Some(
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "The project has used its plan's storage ({} bytes); delete data or change \
                     the plan to write again.",
                    limits.storage_bytes
                ),
            )
            .into_response(),
        );
    }
    None
}

/// Whether a request may store data: record and collection writes, batches, imports and
/// settings. Reads, deletions, logins and realtime subscriptions never count as writes.
fn grows_storage(method: &Method, path: &str) -> bool {
    if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        return false;
    }
    if path == "/api/batch" || path == "/api/settings" || path == "/api/collections" {
        return true;
    }
    let Some(rest) = path.strip_prefix("/api/collections/") else {
        return false;
    };
    let mut segments = rest.split('/');
    // `/api/collections/{name}` (update, import) and `/api/collections/{name}/records[/{id}]`.
    matches!(
        (segments.next(), segments.next()),
        (Some(_), None) | (Some(_), Some("records"))
    )
}

/// Counts the request body's bytes as the API reads them, and cuts it off past `max` (0 = no
/// cut) when no `Content-Length` announced it.
fn count_request_body(request: Request, meter: &Arc<Meter>, max: u64) -> Request {
    let (parts, body) = request.into_parts();
    let counted = Counted {
        inner: body,
        meter: meter.clone(),
        direction: Direction::In,
    };
    let body = if max > 0 {
        Body::new(Limited::new(
            counted,
            usize::try_from(max).unwrap_or(usize::MAX),
        ))
    } else {
        Body::new(counted)
    };
    Request::from_parts(parts, body)
}

/// Which counter a [`Counted`] body adds to.
#[derive(Clone, Copy)]
enum Direction {
    In,
    Out,
}

/// A body that adds the bytes of its data frames to the tenant's meter as they pass, and
/// keeps the inner body's size hint (so responses keep their `Content-Length`).
struct Counted {
    inner: Body,
    meter: Arc<Meter>,
    direction: Direction,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let counter = match self.direction {
                Direction::In => &self.meter.bytes_in,
                Direction::Out => &self.meter.bytes_out,
            };
            counter.fetch_add(data.len() as u64, Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_that_store_data_count_against_storage() {
        let post = Method::POST;
        for path in [
            "/api/collections/posts/records",
            "/api/collections/posts/records/abc",
            "/api/batch",
            "/api/collections",
            "/api/collections/posts",
            "/api/collections/import",
            "/api/settings",
        ] {
            assert!(grows_storage(&post, path), "{path}");
        }
        for path in [
            "/api/collections/users/auth-with-password",
            "/api/collections/users/auth-refresh",
            "/api/realtime",
            "/api/files/token",
        ] {
            assert!(!grows_storage(&post, path), "{path}");
        }
        assert!(!grows_storage(
            &Method::GET,
            "/api/collections/posts/records"
        ));
        assert!(!grows_storage(
            &Method::DELETE,
            "/api/collections/posts/records/a"
        ));
    }
}
