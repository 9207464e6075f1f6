//! Console pages for projects: list and create, show one, set its first superuser, delete it.
//! Every project id in a URL is looked up within the signed-in account only.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::auth::{FormBody, failure, forbidden};
use crate::html::{Link, Notice, page, redirect};
use crate::visitor::Visitor;
use warren_control_plane::TenantStatus;
use warren_control_plane::accounts::Account;
use warren_control_plane::metering::{Usage, totals};
use warren_control_plane::tenants::TenantInfo;
use warren_control_plane::{Error, Result};

use crate::Console;

/// What a project's status badge says: `live` for an active project, else the status.
fn status_label(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::Active => "live",
        other => other.as_str(),
    }
}

/// Whether `id` has the shape of a tenant id (anything else is not looked up).
fn plausible_id(id: &str) -> bool {
    id.len() == 15
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The projects page: the account's projects and the form that creates one.
#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectList<'a> {
    csrf: String,
    /// Whether the account's email is verified (else the page asks for it).
    verified: bool,
    /// The account's email.
    email: &'a str,
    rows: Vec<ProjectRow>,
    /// The name typed so far in the new-project form.
    slug: &'a str,
    /// A tenant URL with `name` as its slug.
    example: String,
    /// How many projects of how many the plan allows are used.
    used: String,
    /// The account's plan.
    plan: &'a str,
    /// Whether the account may create another project.
    can_create: bool,
}

/// One project in the list.
struct ProjectRow {
    id: String,
    slug: String,
    url: String,
    status: String,
    label: String,
    requests: u64,
    storage: String,
    created: String,
}

async fn list_body<'a>(
    state: &Console,
    visitor: &Visitor,
    account: &'a Account,
    slug: &'a str,
) -> Result<ProjectList<'a>> {
    let projects = state.projects().list(&account.id).await?;
    let max = warren_control_plane::projects::max_projects(state.tenants.db(), &account.id).await?;
    let mut rows = Vec::with_capacity(projects.len());
    for p in &projects {
        let used = totals(&state.metering.usage(&p.id, None, None).await?);
        rows.push(ProjectRow {
            id: p.id.clone(),
            slug: p.slug.clone(),
            url: state.urls.tenant_url(&p.slug),
            status: p.status.as_str().to_string(),
            label: status_label(p.status).to_string(),
            requests: used.requests,
            storage: bytes(used.storage_bytes),
            created: p.created.clone(),
        });
    }
    let used = if max == u32::MAX {
        format!("{} projects used.", projects.len())
    } else {
        format!("{} of {max} projects used.", projects.len())
    };
    Ok(ProjectList {
        csrf: visitor.csrf(),
        verified: account.verified,
        email: &account.email,
        can_create: account.verified && (projects.len() as u64) < u64::from(max),
        rows,
        slug,
        example: state.urls.tenant_url("name"),
        used,
        plan: &account.plan,
    })
}

async fn list_page(
    state: &Console,
    visitor: &Visitor,
    account: &Account,
    status: StatusCode,
    notice: Option<Notice>,
    slug: &str,
) -> Response {
    match list_body(state, visitor, account, slug).await {
        Ok(body) => page(visitor, status, "Projects", notice, &body),
        Err(e) => failure(visitor, e),
    }
}

/// `GET /projects`
pub async fn list_projects(State(state): State<Console>, visitor: Visitor) -> Response {
    let Some(account) = visitor.account.clone() else {
        return redirect(&visitor, "/login", &[]);
    };
    list_page(&state, &visitor, &account, StatusCode::OK, None, "").await
}

/// Fields of the new-project form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewProject {
    csrf: String,
    slug: String,
}

/// `POST /projects`: provisions the project; it is live when the answer arrives.
pub async fn create_project(
    State(state): State<Console>,
    visitor: Visitor,
    FormBody(form): FormBody<NewProject>,
) -> Response {
    let Some(account) = visitor.account.clone() else {
        return redirect(&visitor, "/login", &[]);
    };
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    let refuse = |status, message: String| {
        let (state, visitor, account, slug) = (&state, &visitor, &account, form.slug.trim());
        async move {
            list_page(
                state,
                visitor,
                account,
                status,
                Some(Notice::Error(message)),
                slug,
            )
            .await
        }
    };
    if !account.verified {
        return refuse(
            StatusCode::FORBIDDEN,
            "Confirm your email before creating projects.".into(),
        )
        .await;
    }
    let max =
        match warren_control_plane::projects::max_projects(state.tenants.db(), &account.id).await {
            Ok(max) => max,
            Err(e) => return failure(&visitor, e),
        };
    let slug = form.slug.trim();
    match state
        .console
        .projects()
        .create(&account.id, slug, max)
        .await
    {
        Ok(project) => {
            tracing::info!(account = %account.id, slug = %project.slug, "project created");
            redirect(
                &visitor,
                &format!("/projects/{}?created=1", project.id),
                &[],
            )
        }
        Err(Error::Invalid(_, reason)) => refuse(StatusCode::BAD_REQUEST, reason).await,
        Err(Error::SlugTaken) => {
            refuse(
                StatusCode::CONFLICT,
                "That name is taken. Choose another.".into(),
            )
            .await
        }
        Err(Error::ProjectLimit(0)) => {
            refuse(
                StatusCode::FORBIDDEN,
                "Your plan allows no projects.".into(),
            )
            .await
        }
        Err(Error::ProjectLimit(max)) => {
            refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "Your plan allows {max} project{}. Delete one to create another.",
                    if max == 1 { "" } else { "s" }
                ),
            )
            .await
        }
        Err(e) => failure(&visitor, e),
    }
}

/// Human-readable byte counts (binary units).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The usage table of a project's page.
struct UsageView {
    requests: u64,
    bytes_in: String,
    bytes_out: String,
    storage: String,
    records: u64,
    realtime: u64,
    peak: u64,
    /// CPU time of the project's own code (`pb_hooks`), e.g. `1.250 s`.
    hook_cpu: String,
}

impl UsageView {
    fn of(used: &Usage) -> Self {
        Self {
            requests: used.requests,
            bytes_in: bytes(used.bytes_in),
            bytes_out: bytes(used.bytes_out),
            storage: bytes(used.storage_bytes),
            records: used.records_written,
            realtime: used.realtime_seconds,
            peak: used.realtime_peak,
            hook_cpu: format!(
                "{}.{:03} s",
                used.hook_cpu_ms / 1000,
                used.hook_cpu_ms % 1000
            ),
        }
    }
}

/// What the console tells a project's owner about a failed run: the kind of failure, never the
/// operator's target, bucket or paths.
fn public_reason(error: &str) -> &'static str {
    if error.starts_with("backup target") {
        "the backup storage could not be reached"
    } else if error.starts_with("the backup is damaged") {
        "the backup did not pass its checks"
    } else if error.starts_with("record counts differ") {
        "record counts did not match"
    } else {
        "an internal error"
    }
}

/// A run's badge: (class, label).
fn run_badge(status: &str) -> (&'static str, &'static str) {
    match status {
        "complete" => ("active", "ok"),
        "failed" => ("suspended", "failed"),
        "running" => ("", "running"),
        _ => ("", "none"),
    }
}

/// The backups table of a project's page (when backups are configured).
pub(crate) struct BackupView {
    latest: String,
    latest_badge: Option<(&'static str, &'static str)>,
    success: String,
    failure: String,
    drill: String,
    drill_badge: Option<(&'static str, &'static str)>,
    drill_reason: Option<&'static str>,
}

impl BackupView {
    fn of(status: &warren_control_plane::backups::Status) -> Self {
        let or_never = |t: &str| {
            if t.is_empty() {
                "never".to_string()
            } else {
                t.to_string()
            }
        };
        let failure = if status.last_failure.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{} ({})",
                status.last_failure,
                public_reason(&status.last_failure_error)
            )
        };
        let drilled = !status.last_drill.is_empty();
        Self {
            latest: or_never(&status.last_started),
            latest_badge: (!status.last_started.is_empty()).then(|| run_badge(&status.last_status)),
            success: or_never(&status.last_success),
            failure,
            drill: or_never(&status.last_drill),
            drill_badge: drilled.then(|| run_badge(&status.last_drill_status)),
            drill_reason: (drilled && status.last_drill_status == "failed")
                .then(|| public_reason(&status.last_drill_error)),
        }
    }
}

/// A project's page.
#[derive(Template)]
#[template(path = "project.html")]
pub(crate) struct ProjectPage<'a> {
    csrf: String,
    id: &'a str,
    slug: &'a str,
    /// The project's URL.
    url: String,
    status: &'a str,
    status_label: &'a str,
    created: &'a str,
    usage: UsageView,
    /// The usage charts per hour and per day.
    charts: crate::usage::UsageCharts,
    /// `None` when backups are not configured on this server.
    backups: Option<&'a BackupView>,
    domains: &'a [crate::domains::DomainView],
    transfers: crate::transfers::TransfersView,
    /// The project's code folders.
    code: Vec<crate::code::FolderView>,
    /// The names of the project's secrets.
    secrets: &'a [String],
}

/// A project's usage of the last 31 days: its hourly rows and their totals.
pub(crate) struct ProjectUsage {
    /// Sums of `rows`.
    totals: Usage,
    /// Hourly rows, oldest first.
    rows: Vec<Usage>,
    /// The code it holds (its deployed folders' files and bytes).
    code: warren_control_plane::code::Code,
    /// The names of its secrets.
    secrets: Vec<String>,
}

/// The project page's content; `backups` and `domains` are its backups and custom-domains
/// sections.
pub(crate) fn project_body<'a>(
    state: &Console,
    visitor: &Visitor,
    project: &'a TenantInfo,
    used: &'a ProjectUsage,
    backups: &'a Option<BackupView>,
    domains: &'a [crate::domains::DomainView],
) -> ProjectPage<'a> {
    ProjectPage {
        csrf: visitor.csrf(),
        id: &project.id,
        slug: &project.slug,
        url: state.urls.tenant_url(&project.slug),
        status: project.status.as_str(),
        status_label: status_label(project.status),
        created: &project.created,
        usage: UsageView::of(&used.totals),
        charts: crate::usage::charts(&used.rows, time::OffsetDateTime::now_utc()),
        backups: backups.as_ref(),
        domains,
        transfers: crate::transfers::section(state, project),
        code: crate::code::view(&used.code),
        secrets: &used.secrets,
    }
}

/// The signed-in account's project `id` as its page shows it, with `notice`, answered with
/// `status` (after a form on the page did something).
pub(crate) async fn project_page(
    state: &Console,
    visitor: &Visitor,
    id: &str,
    status: StatusCode,
    notice: Notice,
) -> Response {
    let (_, project, used, backups) = match owned(state, visitor, id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let domains = match crate::domains::section(state, &project).await {
        Ok(html) => html,
        Err(e) => return failure(visitor, e),
    };
    let body = project_body(state, visitor, &project, &used, &backups, &domains);
    page(visitor, status, &project.slug, Some(notice), &body)
}

pub(crate) fn not_found(visitor: &Visitor) -> Response {
    page(
        visitor,
        StatusCode::NOT_FOUND,
        "Not found",
        Some(Notice::Error("There is no such project.".into())),
        &Link::to("/projects", "All projects"),
    )
}

/// The signed-in account and its project `id`, or the response that ends the request.
pub(crate) async fn owned(
    state: &Console,
    visitor: &Visitor,
    id: &str,
) -> Result<(Account, TenantInfo, ProjectUsage, Option<BackupView>), Response> {
    let Some(account) = visitor.account.clone() else {
        return Err(redirect(visitor, "/login", &[]));
    };
    if !plausible_id(id) {
        return Err(not_found(visitor));
    }
    let project = match state.console.projects().get(&account.id, id).await {
        Ok(project) => project,
        Err(Error::NotFound) => return Err(not_found(visitor)),
        Err(e) => return Err(failure(visitor, e)),
    };
    let used = match state.metering.usage(&project.id, None, None).await {
        Ok(rows) => ProjectUsage {
            totals: totals(&rows),
            rows,
            code: match crate::elsewhere::of(state, &project) {
                // Read where the project is served; while it moves, the page shows none.
                Some(elsewhere) => {
                    let answer = crate::elsewhere::run(
                        &*elsewhere,
                        &project,
                        axum::http::Method::GET,
                        "code",
                        None,
                        axum::body::Body::empty(),
                    )
                    .await;
                    crate::elsewhere::json(answer).await.unwrap_or(
                        warren_control_plane::code::Code {
                            folders: Vec::new(),
                        },
                    )
                }
                None => match warren_control_plane::code::summary(&state.tenants, &project).await {
                    Ok(code) => code,
                    Err(e) => return Err(failure(visitor, e)),
                },
            },
            secrets: match crate::elsewhere::of(state, &project) {
                Some(elsewhere) => {
                    let answer = crate::elsewhere::run(
                        &*elsewhere,
                        &project,
                        axum::http::Method::GET,
                        "secrets",
                        None,
                        axum::body::Body::empty(),
                    )
                    .await;
                    crate::elsewhere::json::<warren_control_plane::secrets::SecretNames>(answer)
                        .await
                        .map(|found| found.names)
                        .unwrap_or_default()
                }
                None => match warren_control_plane::secrets::list_for(state, &project).await {
                    Ok(found) => found.names,
                    Err(e) => return Err(failure(visitor, e)),
                },
            },
        },
        Err(e) => return Err(failure(visitor, e)),
    };
    let backups = if state.backups.enabled() {
        match state.backups.status(&project.slug).await {
            Ok(status) => Some(BackupView::of(&status)),
            Err(e) => return Err(failure(visitor, e)),
        }
    } else {
        None
    };
    Ok((account, project, used, backups))
}

/// `GET /projects/{id}`
pub async fn show_project(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (_, project, used, backups) = match owned(&state, &visitor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let notice = query.contains_key("created").then(|| {
        Notice::Ok(format!(
            "{} is live at {}.",
            project.slug,
            state.urls.tenant_url(&project.slug)
        ))
    });
    let domains = match crate::domains::section(&state, &project).await {
        Ok(html) => html,
        Err(e) => return failure(&visitor, e),
    };
    let body = project_body(&state, &visitor, &project, &used, &backups, &domains);
    page(&visitor, StatusCode::OK, &project.slug, notice, &body)
}

/// Fields of the superuser form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewSuperuser {
    csrf: String,
    email: String,
    password: String,
}

/// `POST /projects/{id}/superuser`
pub async fn set_superuser(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<NewSuperuser>,
) -> Response {
    let (_, project, used, backups) = match owned(&state, &visitor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    let domains = match crate::domains::section(&state, &project).await {
        Ok(html) => html,
        Err(e) => return failure(&visitor, e),
    };
    let show = |status, notice| {
        page(
            &visitor,
            status,
            &project.slug,
            Some(notice),
            &project_body(&state, &visitor, &project, &used, &backups, &domains),
        )
    };
    if form.email.len() > 254 || form.password.chars().count() > 71 {
        return show(
            StatusCode::BAD_REQUEST,
            Notice::Error("The email or password is too long.".into()),
        );
    }
    // A project another server of the cluster serves gets its superuser there: the copy here
    // is stale.
    let saved = match state
        .registry
        .locality()
        .filter(|locality| locality.elsewhere(&project.id))
    {
        Some(locality) => {
            locality
                .set_superuser_there(&project.id, &form.email, &form.password)
                .await
        }
        None => match state.registry.get(&project.id).await {
            Ok(tenant) => tenant
                .set_superuser(&state.inner.passwords, &form.email, &form.password)
                .await
                .map(|superuser| superuser.email),
            Err(e) => Err(e),
        },
    };
    match saved {
        Ok(email) => {
            tracing::info!(slug = %project.slug, "project superuser set from the console");
            show(
                StatusCode::OK,
                Notice::Ok(format!(
                    "Superuser {email} saved. Sign in through the API at {}/api/.",
                    state.urls.tenant_url(&project.slug)
                )),
            )
        }
        Err(warren_tenant::Error::Elsewhere) => show(
            StatusCode::CONFLICT,
            Notice::Error(warren_control_plane::error::ELSEWHERE.into()),
        ),
        Err(warren_tenant::Error::Invalid(reason)) => {
            let mut reason = reason;
            if let Some(first) = reason.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            show(StatusCode::BAD_REQUEST, Notice::Error(format!("{reason}.")))
        }
        Err(e) => failure(&visitor, e.into()),
    }
}

/// Fields of the delete form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeleteProject {
    csrf: String,
    confirm: String,
}

/// `POST /projects/{id}/delete`: only when the project's name is typed to confirm.
pub async fn delete_project(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<DeleteProject>,
) -> Response {
    let (account, project, used, backups) = match owned(&state, &visitor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    if form.confirm.trim() != project.slug {
        let domains = match crate::domains::section(&state, &project).await {
            Ok(html) => html,
            Err(e) => return failure(&visitor, e),
        };
        return page(
            &visitor,
            StatusCode::BAD_REQUEST,
            &project.slug,
            Some(Notice::Error(format!(
                "Type {} exactly to delete the project.",
                project.slug
            ))),
            &project_body(&state, &visitor, &project, &used, &backups, &domains),
        );
    }
    match state
        .lifecycle()
        .delete_project(&account.id, &project.id)
        .await
    {
        Ok(deleted) => {
            tracing::info!(account = %account.id, slug = %deleted.slug, "project deleted");
            redirect(&visitor, "/projects", &[])
        }
        Err(Error::NotFound) => not_found(&visitor),
        Err(e) => failure(&visitor, e),
    }
}
