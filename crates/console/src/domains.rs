//! Console forms for a project's custom domains: add one (and see the TXT record that proves
//! it), check its TXT record now, remove it; and the project page's section listing each
//! domain with its verification and certificate state. Projects are looked up within the
//! signed-in account only, and domains within that project only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::auth::{FormBody, failure, forbidden};
use crate::html::{Notice, csrf_field, e, input, page};
use crate::projects::{owned, project_body};
use crate::visitor::Visitor;
use warren_control_plane::certificates::{self, CertificateRecord};
use warren_control_plane::domains::{self, DomainInfo};
use warren_control_plane::metering::Usage;
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
fn certificate_state(domain: &DomainInfo, certificate: Option<&CertificateRecord>) -> String {
    match certificate {
        None if domain.status != "verified" => {
            r#"<span class="hint">After verification</span>"#.into()
        }
        None => r#"<span class="hint">Not issued yet</span>"#.into(),
        Some(c) => {
            let mut text = if c.not_after > 0 {
                format!(
                    "Issued by {}, valid until {}",
                    e(if c.issuer.is_empty() { "?" } else { &c.issuer }),
                    day(c.not_after)
                )
            } else {
                "Not issued yet".into()
            };
            if !c.last_error.is_empty() {
                text.push_str(&format!(
                    r#"<span class="domain-error">Last attempt failed: {}</span>"#,
                    e(&c.last_error)
                ));
            }
            text
        }
    }
}

fn domain_row(
    visitor: &Visitor,
    project: &TenantInfo,
    domain: &DomainInfo,
    certificate: Option<&CertificateRecord>,
) -> String {
    let error = if domain.last_error.is_empty() || domain.status == "verified" {
        String::new()
    } else {
        format!(
            r#"<span class="domain-error">{}</span>"#,
            e(&domain.last_error)
        )
    };
    let hidden = format!(
        r#"{csrf}<input type="hidden" name="domain" value="{domain}">"#,
        csrf = csrf_field(visitor),
        domain = e(&domain.domain),
    );
    format!(
        r#"<div class="domain" data-domain="{domain}">
<h3><a href="http://{domain}" rel="noopener">{domain}</a> <span class="badge {status}">{status}</span></h3>
{error}<dl class="facts">
<dt>TXT name</dt><dd><code class="txt-name">{txt_name}</code></dd>
<dt>TXT value</dt><dd><code class="txt-value">{token}</code></dd>
<dt>Certificate</dt><dd class="certificate">{certificate}</dd>
</dl>
<form method="post" action="/projects/{id}/domains/check" class="inline check">{hidden}<button type="submit">Check</button></form>
<form method="post" action="/projects/{id}/domains/remove" class="inline remove">{hidden}<button type="submit" class="danger">Remove</button></form>
</div>"#,
        domain = e(&domain.domain),
        status = e(&domain.status),
        txt_name = e(&domain.txt_name()),
        token = e(&domain.token),
        certificate = certificate_state(domain, certificate),
        id = e(&project.id),
    )
}

/// The project page's custom-domains section: the domains with their TXT records, states and
/// forms, and the form that adds one.
pub(crate) async fn section(
    state: &Console,
    visitor: &Visitor,
    project: &TenantInfo,
) -> Result<String> {
    let found = domains::list(&state.tenants, &project.slug).await?;
    let table = if found.is_empty() {
        r#"<p class="empty">No custom domains yet.</p>"#.to_string()
    } else {
        let all = certificates::list(state.tenants.db()).await?;
        let items: String = found
            .iter()
            .map(|d| {
                let certificate = all.iter().find(|c| c.host == d.domain);
                domain_row(visitor, project, d, certificate)
            })
            .collect();
        format!(r#"<div class="domains">{items}</div>"#)
    };
    Ok(format!(
        r#"<section class="card wide" id="domains">
<h2>Custom domains</h2>
<p class="hint">Add a domain you own, create the TXT record shown for it at your DNS provider (type <code>TXT</code>), point the domain at the platform, then check it. Once verified, the domain reaches this project like <code>{url}</code>.</p>
{table}
<form method="post" action="/projects/{id}/domains" id="add-domain">{csrf}
{field}
<button type="submit">Add domain</button>
</form>
</section>"#,
        url = e(&state.urls.tenant_url(&project.slug)),
        id = e(&project.id),
        csrf = csrf_field(visitor),
        field = input(
            "Domain",
            "domain",
            "text",
            "",
            r#"required maxlength="253" placeholder="app.example.com" autocomplete="off""#
        ),
    ))
}

/// Fields of the domain forms.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DomainForm {
    csrf: String,
    domain: String,
}

/// A project as its page shows it: the project, its usage and its backups section (HTML).
type Shown = (TenantInfo, Usage, String);

/// The project page with `notice`, answered with `status`.
async fn show(
    state: &Console,
    visitor: &Visitor,
    (project, used, backups): &Shown,
    status: StatusCode,
    notice: Notice,
) -> Response {
    match section(state, visitor, project).await {
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
        assert!(certificate_state(&domain("pending"), None).contains("After verification"));
        assert!(certificate_state(&domain("verified"), None).contains("Not issued yet"));
        let issued = CertificateRecord {
            host: "app.example.com".into(),
            issuer: "<CA>".into(),
            not_after: 1_800_000_000,
            last_error: "rate <limited>".into(),
            ..Default::default()
        };
        let text = certificate_state(&domain("verified"), Some(&issued));
        assert!(text.contains("valid until 2027-01-15"), "{text}");
        assert!(text.contains("&lt;CA&gt;") && text.contains("rate &lt;limited&gt;"));
    }
}
