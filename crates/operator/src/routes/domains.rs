//! `/v1/tenants/{slug}/domains`: add, list, check and remove a tenant's custom domains, and
//! `/v1/certificates`: the status of every certificate.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ErrorBody, JsonBody};
use crate::Result;
use warren_control_plane::ControlPlane;
use warren_control_plane::certificates::{self, CertificateRecord};
use warren_control_plane::domains::{self, DomainInfo};

/// Body of `POST /v1/tenants/{slug}/domains`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// The host name, e.g. `app.example.com`.
    domain: String,
}

fn render(domain: &DomainInfo, certificate: Option<&CertificateRecord>) -> Value {
    json!({
        "domain": domain.domain,
        "status": domain.status,
        "verification": {
            "type": "dns-txt",
            "name": domain.txt_name(),
            "value": domain.token,
        },
        "lastError": domain.last_error,
        "verified": domain.verified,
        "created": domain.created,
        "certificate": certificate.map(render_certificate),
    })
}

fn render_certificate(c: &CertificateRecord) -> Value {
    json!({
        "host": c.host,
        "issuer": c.issuer,
        "notAfter": c.not_after,
        "nextRenewal": c.next_renewal,
        "lastError": c.last_error,
        "challenge": c.challenge,
        "orders": c.orders,
        "failures": c.failures,
        "renewals": c.renewals,
        "updated": c.updated,
    })
}

/// `POST /v1/tenants/{slug}/domains`
#[utoipa::path(post, path = "/v1/tenants/{slug}/domains", tag = "domains",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")), request_body = NewDomain,
    responses(
        (status = 201, description = "The pending domain and the TXT record that proves it", body = Object),
        (status = 400, description = "Invalid host name", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn add_domain(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody<NewDomain>,
) -> Result<impl IntoResponse> {
    let domain = domains::add_domain(&state, &slug, &body.domain).await?;
    tracing::info!(slug = %slug, domain = %domain.domain, "custom domain added");
    Ok((StatusCode::CREATED, Json(render(&domain, None))))
}

/// `GET /v1/tenants/{slug}/domains`
#[utoipa::path(get, path = "/v1/tenants/{slug}/domains", tag = "domains",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "The tenant's domains with their certificates", body = Object),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn list_domains(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let found = domains::list(&state.tenants, &slug).await?;
    let certificates = certificates::list(state.tenants.db()).await?;
    let items: Vec<Value> = found
        .iter()
        .map(|d| render(d, certificates.iter().find(|c| c.host == d.domain)))
        .collect();
    Ok(Json(json!({ "items": items, "totalItems": items.len() })))
}

/// `GET /v1/tenants/{slug}/domains/{domain}`
#[utoipa::path(get, path = "/v1/tenants/{slug}/domains/{domain}", tag = "domains",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug"), ("domain" = String, Path, description = "The custom host name")),
    responses(
        (status = 200, description = "The domain and its certificate", body = Object),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant or domain", body = ErrorBody),
    ))]
pub async fn get_domain(
    State(state): State<ControlPlane>,
    Path((slug, domain)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let found = domains::get(&state.tenants, &slug, &domain).await?;
    let certificates = certificates::list(state.tenants.db()).await?;
    let certificate = certificates.iter().find(|c| c.host == found.domain);
    Ok(Json(render(&found, certificate)))
}

/// `POST /v1/tenants/{slug}/domains/{domain}/verify`: looks the TXT record up now.
#[utoipa::path(post, path = "/v1/tenants/{slug}/domains/{domain}/verify", tag = "domains",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug"), ("domain" = String, Path, description = "The custom host name")),
    responses(
        (status = 200, description = "The domain after the check", body = Object),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant or domain", body = ErrorBody),
    ))]
pub async fn verify_domain(
    State(state): State<ControlPlane>,
    Path((slug, domain)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let checked = domains::check_domain(&state, &slug, &domain).await?;
    tracing::info!(slug = %slug, domain = %checked.domain, status = %checked.status, "custom domain checked");
    Ok(Json(render(&checked, None)))
}

/// `DELETE /v1/tenants/{slug}/domains/{domain}`: stops routing and handshaking at once.
#[utoipa::path(delete, path = "/v1/tenants/{slug}/domains/{domain}", tag = "domains",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug"), ("domain" = String, Path, description = "The custom host name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant or domain", body = ErrorBody),
    ))]
pub async fn remove_domain(
    State(state): State<ControlPlane>,
    Path((slug, domain)): Path<(String, String)>,
) -> Result<StatusCode> {
    let removed = domains::remove_domain(&state, &slug, &domain).await?;
    tracing::info!(slug = %slug, domain = %removed.domain, "custom domain removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/certificates`
#[utoipa::path(get, path = "/v1/certificates", tag = "domains", security(("operator" = [])),
    responses(
        (status = 200, description = "Every certificate's status, and totals", body = Object),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
    ))]
pub async fn list_certificates(State(state): State<ControlPlane>) -> Result<Json<Value>> {
    let all = certificates::list(state.tenants.db()).await?;
    let sum = |f: fn(&CertificateRecord) -> i64| all.iter().map(f).sum::<i64>();
    let totals = json!({
        "orders": sum(|c| c.orders),
        "failures": sum(|c| c.failures),
        "renewals": sum(|c| c.renewals),
    });
    let items: Vec<Value> = all.iter().map(render_certificate).collect();
    Ok(Json(
        json!({ "items": items, "totalItems": items.len(), "totals": totals }),
    ))
}
