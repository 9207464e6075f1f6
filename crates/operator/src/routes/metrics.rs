//! `GET /metrics`: Prometheus text (operator token required).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use warren_control_plane::ControlPlane;
use warren_control_plane::metrics::{Snapshot, TenantFigures, render};

/// How many of the busiest tenants get series of their own.
pub const TOP_TENANTS: usize = 20;

/// `GET /metrics`
#[utoipa::path(get, path = "/metrics", tag = "metrics", security(("operator" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or wrong operator token", body = super::ErrorBody),
    ))]
pub async fn get_metrics(State(state): State<ControlPlane>) -> impl IntoResponse {
    let names = state.directory.slugs_by_id();
    let per_tenant = state
        .registry
        .meters()
        .into_iter()
        .map(|(id, meter)| TenantFigures {
            name: names.get(&id).cloned().unwrap_or(id),
            requests: meter.requests.load(std::sync::atomic::Ordering::Relaxed),
            bytes_out: meter.bytes_out.load(std::sync::atomic::Ordering::Relaxed),
            realtime_open: meter.realtime_open(),
        })
        .collect();
    let snapshot = Snapshot {
        tenants: names.len() as u64,
        open_tenants: state.registry.open_count() as u64,
        per_tenant,
        top: TOP_TENANTS,
    };
    let mut text = render(state.metering.metrics(), snapshot);
    match state.backups.summary().await {
        Ok(summary) => text.push_str(&warren_control_plane::backup_status::render(&summary)),
        Err(e) => tracing::warn!(error = %e, "backup figures for /metrics failed"),
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}
