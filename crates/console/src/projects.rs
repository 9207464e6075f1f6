//! Console pages for projects: list and create, show one, set its first superuser, delete it.
//! Every project id in a URL is looked up within the signed-in account only.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::auth::{FormBody, failure, forbidden};
use crate::html::{Notice, csrf_field, e, input, page, redirect};
use crate::visitor::Visitor;
use warren_control_plane::accounts::Account;
use warren_control_plane::metering::{Usage, totals};
use warren_control_plane::tenants::TenantInfo;
use warren_control_plane::{Error, Result};

use crate::Console;

fn status_badge(status: &str) -> String {
    let label = if status == "active" { "live" } else { status };
    format!(
        r#"<span class="badge {class}">{label}</span>"#,
        class = e(status),
        label = e(label)
    )
}

/// Whether `id` has the shape of a tenant id (anything else is not looked up).
fn plausible_id(id: &str) -> bool {
    id.len() == 15
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

async fn list_body(
    state: &Console,
    visitor: &Visitor,
    account: &Account,
    slug: &str,
) -> Result<String> {
    let projects = state.console.projects().list(&account.id).await?;
    let max = warren_control_plane::projects::max_projects(state.tenants.db(), &account.id).await?;
    let mut usage = Vec::with_capacity(projects.len());
    for p in &projects {
        usage.push(totals(&state.metering.usage(&p.id, None, None).await?));
    }
    let rows: String = projects
        .iter()
        .zip(&usage)
        .map(|(p, used)| {
            let url = state.urls.tenant_url(&p.slug);
            format!(
                r#"<tr><td><a href="/projects/{id}">{slug}</a></td><td><a href="{url}" rel="noopener">{url}</a></td><td>{status}</td><td class="num">{requests}</td><td class="num">{storage}</td><td>{created}</td></tr>"#,
                id = e(&p.id),
                slug = e(&p.slug),
                url = e(&url),
                status = status_badge(&p.status),
                requests = used.requests,
                storage = e(&bytes(used.storage_bytes)),
                created = e(&p.created),
            )
        })
        .collect();
    let table = if projects.is_empty() {
        r#"<p class="empty">No projects yet.</p>"#.to_string()
    } else {
        format!(
            r#"<table class="projects"><thead><tr><th>Project</th><th>URL</th><th>Status</th><th>Requests (31 days)</th><th>Storage</th><th>Created</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let verify = if account.verified {
        String::new()
    } else {
        format!(
            r#"<div class="notice warn"><p>Confirm your email to create projects: open the link we sent to {email}.</p>
<form method="post" action="/verify/resend" class="inline">{csrf}<button class="link">Send the link again</button></form></div>"#,
            email = e(&account.email),
            csrf = csrf_field(visitor),
        )
    };
    let disabled = if account.verified && (projects.len() as u64) < u64::from(max) {
        ""
    } else {
        "disabled"
    };
    let create = format!(
        r#"<form method="post" action="/projects" class="card" id="create">{csrf}
<h2>New project</h2>
{slug_input}
<p class="hint">Lowercase letters, digits and hyphens; it becomes <code>{example}</code>. {used} <span id="plan">Plan: <strong>{plan}</strong></span>.</p>
<button type="submit" {disabled}>Create project</button>
</form>"#,
        csrf = csrf_field(visitor),
        slug_input = input(
            "Name",
            "slug",
            "text",
            slug,
            r#"required minlength="3" maxlength="63" pattern="[a-z0-9]+(-[a-z0-9]+)*" autocomplete="off""#
        ),
        example = e(&state.urls.tenant_url("name")),
        used = if max == u32::MAX {
            format!("{} projects used.", projects.len())
        } else {
            format!("{} of {max} projects used.", projects.len())
        },
        plan = e(&account.plan),
    );
    Ok(format!("{verify}{table}{create}"))
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
fn bytes(n: u64) -> String {
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

fn usage_table(used: &Usage) -> String {
    format!(
        r#"<h2>Usage, last 31 days</h2>
<table class="projects usage" id="usage"><tbody>
<tr><th>Requests</th><td class="num">{requests}</td></tr>
<tr><th>Data in</th><td class="num">{bytes_in}</td></tr>
<tr><th>Data out</th><td class="num">{bytes_out}</td></tr>
<tr><th>Storage</th><td class="num">{storage}</td></tr>
<tr><th>Records written</th><td class="num">{records}</td></tr>
<tr><th>Realtime connection time</th><td class="num">{realtime} s</td></tr>
<tr><th>Realtime peak connections</th><td class="num">{peak}</td></tr>
</tbody></table>
<p class="hint">Counted as requests arrive and saved every few seconds.</p>"#,
        requests = used.requests,
        bytes_in = e(&bytes(used.bytes_in)),
        bytes_out = e(&bytes(used.bytes_out)),
        storage = e(&bytes(used.storage_bytes)),
        records = used.records_written,
        realtime = used.realtime_seconds,
        peak = used.realtime_peak,
    )
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

fn run_badge(status: &str) -> String {
    let (class, label) = match status {
        "complete" => ("active", "ok"),
        "failed" => ("suspended", "failed"),
        "running" => ("", "running"),
        _ => ("", "none"),
    };
    format!(r#"<span class="badge {class}">{label}</span>"#)
}

fn backup_table(status: &warren_control_plane::backups::Status) -> String {
    let or_never = |t: &str| {
        if t.is_empty() {
            "never".to_string()
        } else {
            e(t)
        }
    };
    let failure = if status.last_failure.is_empty() {
        "none".to_string()
    } else {
        format!(
            "{} ({})",
            e(&status.last_failure),
            public_reason(&status.last_failure_error)
        )
    };
    let drill = if status.last_drill.is_empty() {
        "never".to_string()
    } else {
        format!(
            "{} {}{}",
            e(&status.last_drill),
            run_badge(&status.last_drill_status),
            if status.last_drill_status == "failed" {
                format!(" ({})", public_reason(&status.last_drill_error))
            } else {
                String::new()
            }
        )
    };
    format!(
        r#"<h2>Backups</h2>
<table class="projects usage" id="backups"><tbody>
<tr><th>Latest backup</th><td id="backup-latest">{latest} {badge}</td></tr>
<tr><th>Last success</th><td id="backup-success">{success}</td></tr>
<tr><th>Last failure</th><td id="backup-failure">{failure}</td></tr>
<tr><th>Latest restore check</th><td id="backup-drill">{drill}</td></tr>
</tbody></table>"#,
        latest = or_never(&status.last_started),
        badge = if status.last_started.is_empty() {
            String::new()
        } else {
            run_badge(&status.last_status)
        },
        success = or_never(&status.last_success),
    )
}

/// The project page's content; `backups` and `domains` are its backups and custom-domains
/// sections (HTML).
pub(crate) fn project_body(
    state: &Console,
    visitor: &Visitor,
    project: &TenantInfo,
    used: &Usage,
    backups: &str,
    domains: &str,
) -> String {
    let url = state.urls.tenant_url(&project.slug);
    format!(
        r#"<dl class="facts">
<dt>URL</dt><dd><a href="{url}" rel="noopener" id="project-url">{url}</a></dd>
<dt>API</dt><dd><code>{url}/api/</code></dd>
<dt>Status</dt><dd>{status}</dd>
<dt>Created</dt><dd>{created}</dd>
</dl>
{usage}
{backups}
{domains}
{transfers}
<form method="post" action="/projects/{id}/superuser" class="card" id="superuser">{csrf}
<h2>Superuser</h2>
<p class="hint">Creates the project's superuser, or sets a new password for an existing one. The console does not keep or show the password.</p>
{email}
{password}
<button type="submit">Save superuser</button>
</form>
<form method="post" action="/projects/{id}/delete" class="card danger" id="delete">{csrf}
<h2>Delete project</h2>
<p class="hint">Deletes the project and all its data at once. Type <strong>{slug}</strong> to confirm.</p>
{confirm}
<button type="submit" class="danger">Delete project</button>
</form>
<p><a href="/projects">All projects</a></p>"#,
        url = e(&url),
        status = status_badge(&project.status),
        created = e(&project.created),
        usage = usage_table(used),
        backups = backups,
        transfers = crate::transfers::section(state, visitor, project),
        id = e(&project.id),
        slug = e(&project.slug),
        csrf = csrf_field(visitor),
        email = input(
            "Email",
            "email",
            "email",
            "",
            r#"required maxlength="254" autocomplete="off""#
        ),
        password = input(
            "Password (8 to 71 characters)",
            "password",
            "password",
            "",
            r#"required minlength="8" maxlength="71" autocomplete="new-password""#
        ),
        confirm = input(
            "Project name",
            "confirm",
            "text",
            "",
            r#"required autocomplete="off""#
        ),
    )
}

pub(crate) fn not_found(visitor: &Visitor) -> Response {
    page(
        visitor,
        StatusCode::NOT_FOUND,
        "Not found",
        Some(Notice::Error("There is no such project.".into())),
        r#"<p><a href="/projects">All projects</a></p>"#,
    )
}

/// The signed-in account and its project `id`, or the response that ends the request.
pub(crate) async fn owned(
    state: &Console,
    visitor: &Visitor,
    id: &str,
) -> Result<(Account, TenantInfo, Usage, String), Response> {
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
        Ok(rows) => totals(&rows),
        Err(e) => return Err(failure(visitor, e)),
    };
    let backups = if state.backups.enabled() {
        match state.backups.status(&project.slug).await {
            Ok(status) => backup_table(&status),
            Err(e) => return Err(failure(visitor, e)),
        }
    } else {
        r#"<h2>Backups</h2><p class="hint" id="backups">Backups are not configured on this server.</p>"#.into()
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
    let domains = match crate::domains::section(&state, &visitor, &project).await {
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
    let domains = match crate::domains::section(&state, &visitor, &project).await {
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
    let tenant = match state.registry.get(&project.id).await {
        Ok(tenant) => tenant,
        Err(e) => return failure(&visitor, e.into()),
    };
    let passwords = &state.inner.passwords;
    match warren_tenant::superusers::upsert(tenant.db(), passwords, &form.email, &form.password)
        .await
    {
        Ok(superuser) => {
            tracing::info!(slug = %project.slug, "project superuser set from the console");
            show(
                StatusCode::OK,
                Notice::Ok(format!(
                    "Superuser {} saved. Sign in through the API at {}/api/.",
                    superuser.email,
                    state.urls.tenant_url(&project.slug)
                )),
            )
        }
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
        let domains = match crate::domains::section(&state, &visitor, &project).await {
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
        .console
        .projects()
        .delete(&account.id, &project.id)
        .await
    {
        Ok(deleted) => {
            state.directory.forget(&deleted.slug);
            state.registry.close(&deleted.id);
            tracing::info!(account = %account.id, slug = %deleted.slug, "project deleted");
            redirect(&visitor, "/projects", &[])
        }
        Err(Error::NotFound) => not_found(&visitor),
        Err(e) => failure(&visitor, e),
    }
}
