//! The metering and quota gate in front of a tenant's API: counts requests and body bytes,
//! applies the plan's request rate, upload size and storage quota, and times responses.
//!
//! Everything here is atomics on the tenant's meter and on the process metrics: no lock and no
//! database access per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use warren_api::ApiError;
use warren_control_plane::TenantInfo;
use warren_control_plane::metering::Metering;
use warren_tenant::Tenant;
use warren_tenant::meter::Admission;

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
    let counter = meter.clone();
    let body = body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            counter.bytes_out.fetch_add(data.len() as u64, Relaxed);
        }
        frame
    });
    Response::from_parts(parts, Body::new(body))
}

/// Why the plan refuses a request, if it does: rate first, then size, then storage.
fn refuse(meter: &warren_tenant::Meter, info: &TenantInfo, request: &Request) -> Option<Response> {
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
fn count_request_body(request: Request, meter: &Arc<warren_tenant::Meter>, max: u64) -> Request {
    let (parts, body) = request.into_parts();
    let counter: Arc<warren_tenant::Meter> = meter.clone();
    let counted = body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            add(&counter.bytes_in, data.len());
        }
        frame
    });
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

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Relaxed);
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
