//! Every route of the platform host.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::routes::accounts;
use crate::routes::{
    backups, domains, health, metrics, openapi, outbox, plans, tenants, transfers,
};
use crate::{ControlPlane, Error};

/// The platform host's router: the operator API under `/v1/` (the console's pages are merged in
/// by the binary).
pub fn router(state: ControlPlane) -> Router {
    let operator = Router::new()
        .route(
            "/v1/tenants",
            get(tenants::list_tenants).post(tenants::create_tenant),
        )
        .route(
            "/v1/tenants/{slug}",
            get(tenants::get_tenant)
                .patch(tenants::update_tenant)
                .delete(tenants::delete_tenant),
        )
        .route(
            "/v1/tenants/{slug}/domains",
            get(domains::list_domains).post(domains::add_domain),
        )
        .route(
            "/v1/tenants/{slug}/domains/{domain}",
            get(domains::get_domain).delete(domains::remove_domain),
        )
        .route(
            "/v1/tenants/{slug}/domains/{domain}/verify",
            axum::routing::post(domains::verify_domain),
        )
        .route("/v1/certificates", get(domains::list_certificates))
        .route("/v1/accounts", get(accounts::list_accounts))
        .route("/v1/accounts/{id}", get(accounts::get_account))
        .route("/v1/accounts/{id}/disable", post(accounts::disable_account))
        .route("/v1/accounts/{id}/enable", post(accounts::enable_account))
        .route("/v1/accounts/{id}/verify", post(accounts::verify_account))
        .route(
            "/v1/accounts/{id}",
            axum::routing::patch(accounts::update_account),
        )
        .route("/v1/tenants/{slug}/suspend", post(tenants::suspend_tenant))
        .route("/v1/tenants/{slug}/resume", post(tenants::resume_tenant))
        .route("/v1/tenants/{slug}/usage", get(tenants::get_usage))
        .route(
            "/v1/tenants/{slug}/import",
            get(transfers::get_import)
                .post(transfers::import_tenant)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/tenants/{slug}/export", get(transfers::export_tenant))
        .route("/v1/plans", get(plans::list_plans).post(plans::create_plan))
        .route("/v1/plans/{name}", axum::routing::patch(plans::update_plan))
        .route("/metrics", get(metrics::get_metrics))
        .route(
            "/v1/tenants/{slug}/backups",
            get(backups::list_backups).post(backups::create_backup),
        )
        .route(
            "/v1/tenants/{slug}/backups/restore",
            post(backups::restore_backup),
        )
        .route(
            "/v1/tenants/{slug}/backups/verify",
            post(backups::verify_backup),
        )
        .route(
            "/v1/tenants/{slug}/backups/status",
            get(crate::routes::backup_status::get_backup_status),
        )
        .route(
            "/v1/backups/drills",
            get(crate::routes::backup_status::list_drills),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_operator,
        ));
    // Checked in this order: with a relay there is no outbox (404, token or not).
    let outbox = Router::new()
        .route("/v1/outbox", get(outbox::list_outbox))
        .route("/v1/outbox/{id}", get(outbox::get_outbox_message))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_operator,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_outbox,
        ));
    Router::new()
        .route("/v1/health", get(health::get_health))
        .route("/v1/openapi.json", get(openapi::get_openapi))
        .merge(operator)
        .merge(outbox)
        .fallback(|| async { Error::NotFound })
        .with_state(state)
}

/// Lets a request through only with the operator's bearer token.
async fn require_operator(
    State(state): State<ControlPlane>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !state.operator_token.accepts(header) {
        return Error::Unauthorized.into_response();
    }
    next.run(request).await
}

/// Lets a request through only when mail is kept in a local outbox (no SMTP relay).
async fn require_outbox(
    State(state): State<ControlPlane>,
    request: Request,
    next: Next,
) -> Response {
    if !crate::outbox::enabled(&state) {
        return Error::NotFound.into_response();
    }
    next.run(request).await
}
