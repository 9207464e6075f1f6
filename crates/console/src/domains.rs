//! Console forms for a project's custom domains: add one (and see the TXT record that proves
//! it), check its TXT record now, remove it; and the project page's section listing each
//! domain with its verification and certificate state. Projects are looked up within the
//! signed-in account only, and domains within that project only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::auth::{FormBody, failure, forbidden};
use crate::html::{Notice, page};
use crate::projects::{BackupView, owned, project_body};
use crate::visitor::Visitor;
use warren_control_plane::certificates::{self, CertificateRecord};
use warren_control_plane::domains::{self, DomainInfo};
use warren_control_plane::tenants::TenantInfo;
use warren_control_plane::{Error, Result};

use crate::Console;

/// Longest domain field accepted from a form (a DNS name is at most 253 characters).
const MAX_DOMAIN: usize = 253;

/// `YYYY-MM-DD` of Unix seconds, UTC.
fn day(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02}",
            at.year(),
            u8::from(at.month()),
            at.day()
        ),
        Err(_) => "?".into(),
    }
}

/// What the page says about a domain's certificate.
pub(crate) struct CertificateView {
    /// The state in words.
    pub(crate) text: String,
    /// Whether the text is a hint (no certificate yet).
    pub(crate) hint: bool,
    /// The last failed attempt's error, if any.
    pub(crate) error: Option<String>,
}

fn certificate_state(
    domain: &DomainInfo,
    certificate: Option<&CertificateRecord>,
) -> CertificateView {
    let hint = |text: &str| CertificateView {
        text: text.into(),
        hint: true,
        error: None,
    };
    match certificate {
        None if domain.status != "verified" => hint("After verification"),
        None => hint("Not issued yet"),
        Some(c) => CertificateView {
            text: if c.not_after > 0 {
                format!(
                    "Issued by {}, valid until {}",
                    if c.issuer.is_empty() { "?" } else { &c.issuer },
                    day(c.not_after)
                )
            } else {
                "Not issued yet".into()
            },
            hint: false,
            error: (!c.last_error.is_empty()).then(|| c.last_error.clone()),
        },
    }
}

/// A custom domain in the project page's section.
pub(crate) struct DomainView {
    pub(crate) domain: String,
    pub(crate) status: String,
    /// Why the last check failed, while the domain is not verified.
    pub(crate) error: Option<String>,
    pub(crate) txt_name: String,
    pub(crate) token: String,
    pub(crate) certificate: CertificateView,
}

fn domain_view(domain: &DomainInfo, certificate: Option<&CertificateRecord>) -> DomainView {
    DomainView {
        domain: domain.domain.clone(),
        status: domain.status.clone(),
        error: (!domain.last_error.is_empty() && domain.status != "verified")
            .then(|| domain.last_error.clone()),
        txt_name: domain.txt_name(),
        token: domain.token.clone(),
        certificate: certificate_state(domain, certificate),
    }
}

/// The project's custom domains with their TXT records and states, for the project page's
/// section (which also holds the form that adds one).
pub(crate) async fn section(state: &Console, project: &TenantInfo) -> Result<Vec<DomainView>> {
    let found = domains::list(&state.tenants, &project.slug).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let all = certificates::list(state.tenants.db()).await?;
    Ok(found
        .iter()
        .map(|d| domain_view(d, all.iter().find(|c| c.host == d.domain)))
        .collect())
}

/// Fields of the domain forms.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DomainForm {
    csrf: String,
    domain: String,
}

/// A project as its page shows it: the project, its usage and its backups.
type Shown = (
    TenantInfo,
    crate::projects::ProjectUsage,
    Option<BackupView>,
);

/// The project page with `notice`, answered with `status`.
async fn show(
    state: &Console,
    visitor: &Visitor,
    (project, used, backups): &Shown,
    status: StatusCode,
    notice: Notice,
) -> Response {
    match section(state, project).await {
        Ok(domains) => page(
            visitor,
            status,
            &project.slug,
            Some(notice),
            &project_body(state, visitor, project, used, backups, &domains),
        ),
        Err(e) => failure(visitor, e),
    }
}

/// The signed-in account's project `id` as its page shows it, once the CSRF token and the
/// form's domain field are checked; or the response that ends the request.
async fn prepare(
    state: &Console,
    visitor: &Visitor,
    id: &str,
    form: &DomainForm,
) -> std::result::Result<Shown, Response> {
    let (_, project, used, backups) = owned(state, visitor, id).await?;
    let shown = (project, used, backups);
    if !visitor.accepts(&form.csrf) {
        return Err(forbidden(visitor));
    }
    if form.domain.trim().is_empty() || form.domain.len() > MAX_DOMAIN {
        let notice = Notice::Error("Enter a domain of at most 253 characters.".into());
        return Err(show(state, visitor, &shown, StatusCode::BAD_REQUEST, notice).await);
    }
    Ok(shown)
}

fn no_such_domain() -> (StatusCode, Notice) {
    (
        StatusCode::NOT_FOUND,
        Notice::Error("This project has no such domain.".into()),
    )
}

/// `POST /projects/{id}/domains`: adds a pending domain with a fresh verification token.
pub async fn add_domain(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<DomainForm>,
) -> Response {
    let shown = match prepare(&state, &visitor, &id, &form).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let project = &shown.0;
    let (status, notice) = match domains::add_domain(&state, &project.slug, &form.domain).await {
        Ok(added) => {
            tracing::info!(slug = %project.slug, domain = %added.domain, "custom domain added from the console");
            (
                StatusCode::OK,
                Notice::Ok(format!(
                    "Added {}. Create the TXT record {} with the value shown, then check it.",
                    added.domain,
                    added.txt_name()
                )),
            )
        }
        Err(Error::Invalid(_, reason)) => (StatusCode::BAD_REQUEST, Notice::Error(reason)),
        Err(Error::DomainTaken) => (
            StatusCode::CONFLICT,
            Notice::Error("That domain is already claimed by a project.".into()),
        ),
        Err(e) => return failure(&visitor, e),
    };
    show(&state, &visitor, &shown, status, notice).await
}

/// `POST /projects/{id}/domains/check`: looks the TXT record up now; a verified domain routes
/// to the project at once.
pub async fn check_domain(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<DomainForm>,
) -> Response {
    let shown = match prepare(&state, &visitor, &id, &form).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let project = &shown.0;
    let (status, notice) = match domains::check_domain(&state, &project.slug, &form.domain).await {
        Ok(checked) if checked.status == "verified" => (
            StatusCode::OK,
            Notice::Ok(format!(
                "{} is verified and reaches {}.",
                checked.domain, project.slug
            )),
        ),
        Ok(checked) => (
            StatusCode::OK,
            Notice::Error(format!(
                "{} is not verified yet: {}",
                checked.domain, checked.last_error
            )),
        ),
        Err(Error::NotFound) => no_such_domain(),
        Err(e) => return failure(&visitor, e),
    };
    show(&state, &visitor, &shown, status, notice).await
}

/// `POST /projects/{id}/domains/remove`: the domain stops reaching the project at once.
pub async fn remove_domain(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<DomainForm>,
) -> Response {
    let shown = match prepare(&state, &visitor, &id, &form).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let project = &shown.0;
    let (status, notice) = match domains::remove_domain(&state, &project.slug, &form.domain).await {
        Ok(removed) => {
            tracing::info!(slug = %project.slug, domain = %removed.domain, "custom domain removed from the console");
            (
                StatusCode::OK,
                Notice::Ok(format!(
                    "Removed {}; it no longer reaches the project.",
                    removed.domain
                )),
            )
        }
        Err(Error::NotFound) => no_such_domain(),
        Err(e) => return failure(&visitor, e),
    };
    show(&state, &visitor, &shown, status, notice).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The certificate cell of a domain's row.
    #[derive(askama::Template)]
    #[template(path = "project/certificate.html")]
    struct CertificateCell<'a> {
        d: &'a DomainView,
    }

    fn domain(status: &str) -> DomainInfo {
        DomainInfo {
            domain: "app.example.com".into(),
            tenant_id: "t".into(),
            token: "tok".into(),
            status: status.into(),
            last_error: String::new(),
            verified: String::new(),
            created: String::new(),
        }
    }

    #[test]
    fn certificate_states_read_plainly_and_are_escaped() {
        let shown = |certificate| {
            let d = domain("verified");
            crate::html::render(&CertificateCell {
                d: &domain_view(&d, certificate),
            })
        };
        let pending = domain_view(&domain("pending"), None);
        assert!(
            crate::html::render(&CertificateCell { d: &pending }).contains("After verification")
        );
        assert!(shown(None).contains("Not issued yet"));
        let issued = CertificateRecord {
            host: "app.example.com".into(),
            issuer: "<CA>".into(),
            not_after: 1_800_000_000,
            last_error: "rate <limited>".into(),
            ..Default::default()
        };
        let text = shown(Some(&issued));
        assert!(text.contains("valid until 2027-01-15"), "{text}");
        assert!(text.contains("&#60;CA&#62;") && text.contains("rate &#60;limited&#62;"));
    }
}
