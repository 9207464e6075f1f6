//! Console forms for moving a project's data: import a PocketBase zip (a zipped `pb_data` or
//! a PocketBase backup) into an empty project and follow its progress, and download the
//! project as a zip. Projects are looked up within the signed-in account only; every form
//! carries the CSRF token (the upload's as its first part, checked before the file is read).
//! In cluster mode a project served by another node imports there, its job read from there.

use askama::Template;
use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, select};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use crate::auth::{FormBody, failure, forbidden};
use crate::html::{Link, Notice, page, page_refreshing, redirect};
use crate::projects::{owned, project_page};
use crate::visitor::Visitor;
use warren_control_plane::Error;
use warren_control_plane::tenants::TenantInfo;
use warren_control_plane::transfers::{Export, Job, upload_limit};

use crate::Console;

/// Human-readable byte counts for the page.
pub(crate) fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The project page's import and export section: the plan's zip limit and the latest import
/// as (status, started).
pub(crate) struct TransfersView {
    pub(crate) limit: Option<String>,
    pub(crate) latest: Option<(String, String)>,
}

/// The project page's import and export section.
pub(crate) fn section(state: &Console, project: &TenantInfo) -> TransfersView {
    TransfersView {
        limit: upload_limit(project).map(size),
        latest: state
            .transfers
            .job(project)
            .map(|job| (job.status.clone(), job.started.clone())),
    }
}

/// What the console says when an import is refused, and with which status.
fn refusal(error: Error) -> Result<(StatusCode, String), Error> {
    match error {
        Error::TooLarge(reason) | Error::Tenant(warren_tenant::Error::TooLarge(reason)) => {
            Ok((StatusCode::PAYLOAD_TOO_LARGE, reason))
        }
        Error::Busy(reason) => Ok((StatusCode::CONFLICT, reason)),
        Error::Invalid(_, reason) => Ok((StatusCode::BAD_REQUEST, reason)),
        Error::Tenant(warren_tenant::Error::Invalid(reason)) => Ok((
            StatusCode::BAD_REQUEST,
            format!("The zip was refused: {reason}."),
        )),
        Error::Tenant(warren_tenant::Error::Draining) => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            "The project is busy; try again shortly.".into(),
        )),
        Error::Tenant(warren_tenant::Error::Elsewhere) => Ok((
            StatusCode::CONFLICT,
            warren_control_plane::error::ELSEWHERE.into(),
        )),
        other => Err(other),
    }
}

/// Why an upload form (`csrf` first, then `file`) brought no file to take.
pub(crate) enum NoUpload {
    /// The CSRF token was missing or wrong.
    Forbidden,
    /// The token was good but no file came.
    NoFile,
}

/// Reads an upload form's `csrf` field, checks it, and hands over its `file` field.
pub(crate) async fn csrf_then_file<'a>(
    form: &'a mut Multipart,
    visitor: &Visitor,
) -> Result<axum::extract::multipart::Field<'a>, NoUpload> {
    let csrf = match form.next_field().await {
        Ok(Some(field)) if field.name() == Some("csrf") => field.text().await.unwrap_or_default(),
        _ => String::new(),
    };
    if !visitor.accepts(&csrf) {
        return Err(NoUpload::Forbidden);
    }
    match form.next_field().await {
        Ok(Some(field)) if field.name() == Some("file") => Ok(field),
        _ => Err(NoUpload::NoFile),
    }
}

/// `POST /projects/{id}/import`: multipart with `csrf` first, then `file`. Starts the import
/// and shows its progress page.
pub async fn import_project(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    mut form: Multipart,
) -> Response {
    let (_, project, _, _) = match owned(&state, &visitor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let refuse = async |status, message: String| {
        project_page(&state, &visitor, &id, status, Notice::Error(message)).await
    };
    let field = match csrf_then_file(&mut form, &visitor).await {
        Ok(field) => field,
        Err(NoUpload::Forbidden) => return forbidden(&visitor),
        Err(NoUpload::NoFile) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Choose a zip file to import.".into(),
            )
            .await;
        }
    };
    if let Some(elsewhere) = crate::elsewhere::of(&state, &project) {
        return match import_there(&*elsewhere, &project, field).await {
            Ok(()) => {
                state.directory.forget(&project.slug);
                redirect(&visitor, &format!("/projects/{}/import", project.id), &[])
            }
            Err((status, message)) => refuse(status, message).await,
        };
    }
    let upload = match state
        .transfers
        .receive(Box::pin(field), upload_limit(&project))
        .await
    {
        Ok(upload) => upload,
        Err(error) => {
            return match refusal(error) {
                Ok((status, message)) => refuse(status, message).await,
                Err(other) => failure(&visitor, other),
            };
        }
    };
    if upload.bytes() == 0 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Choose a zip file to import.".into(),
        )
        .await;
    }
    match state.transfers.start_import(&project, upload).await {
        Ok(_) => {
            state.directory.forget(&project.slug);
            redirect(&visitor, &format!("/projects/{}/import", project.id), &[])
        }
        Err(error) => match refusal(error) {
            Ok((status, message)) => refuse(status, message).await,
            Err(other) => failure(&visitor, other),
        },
    }
}

/// Why the console stopped an upload it was streaming on.
type Stopped = std::sync::Mutex<Option<(StatusCode, String)>>;

/// Starts the import of the upload in `field` on the node serving `project`, the zip streamed
/// to it as it comes (counted against the plan's limit here too); the job then runs there.
/// The refusal's status and notice otherwise, worded as on one node.
async fn import_there(
    elsewhere: &dyn crate::Elsewhere,
    project: &TenantInfo,
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<(), (StatusCode, String)> {
    let no_file = || {
        (
            StatusCode::BAD_REQUEST,
            "Choose a zip file to import.".to_string(),
        )
    };
    let interrupted = |e: axum::extract::multipart::MultipartError| {
        (
            StatusCode::BAD_REQUEST,
            format!("The upload was interrupted: {e}."),
        )
    };
    // Its first bytes, so that an empty upload is refused here as on one node.
    let first = loop {
        match field.chunk().await {
            Ok(Some(chunk)) if chunk.is_empty() => continue,
            Ok(Some(chunk)) => break chunk,
            Ok(None) => return Err(no_file()),
            Err(e) => return Err(interrupted(e)),
        }
    };
    let limit = upload_limit(project);
    let stopped = Stopped::default();
    let stop = |why: (StatusCode, String)| {
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<axum::body::Bytes>>(4);
    let pump = async move {
        let mut bytes = 0u64;
        let mut next = Some(first);
        loop {
            let chunk = match next.take() {
                Some(chunk) => chunk,
                None => match field.chunk().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => return,
                    Err(e) => {
                        stop(interrupted(e));
                        let _ = tx.send(Err(std::io::Error::other("interrupted"))).await;
                        return;
                    }
                },
            };
            bytes += chunk.len() as u64;
            if let Some(limit) = limit.filter(|&limit| bytes > limit) {
                stop((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    warren_control_plane::transfers::too_large(limit).to_string(),
                ));
                let _ = tx.send(Err(std::io::Error::other("too large"))).await;
                return;
            }
            if tx.send(Ok(chunk)).await.is_err() {
                // The node serving the project answered already.
                return;
            }
        }
    };
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let send = crate::elsewhere::run(
        elsewhere,
        project,
        axum::http::Method::POST,
        "import?background=true",
        Some("application/zip"),
        body,
    );
    // The owner may answer before it took the whole upload (a refusal): then no more is sent.
    let answer = match select(std::pin::pin!(send), std::pin::pin!(pump)).await {
        Either::Left((answer, _)) => answer,
        Either::Right(((), send)) => send.await,
    };
    if let Some(why) = stopped.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(why);
    }
    match crate::elsewhere::answer::<Job>(answer).await {
        Ok(job) => {
            tracing::info!(slug = %project.slug, bytes = job.upload_bytes, "import started from the console on the node serving the project");
            Ok(())
        }
        Err(refusal) => Err(match refusal.field {
            Some(message) => (refusal.status, message),
            None if refusal.status == StatusCode::BAD_REQUEST => (
                refusal.status,
                format!(
                    "The zip was refused: {}.",
                    lower_first(refusal.message.trim_end_matches('.'))
                ),
            ),
            None => (refusal.status, refusal.message),
        }),
    }
}

/// `text` with its first letter in lower case, as a reason reads inside a sentence.
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The import page: the latest import's facts, and its progress while it runs.
#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage<'a> {
    id: &'a str,
    slug: &'a str,
    status: &'a str,
    bytes: String,
    started: &'a str,
    progress: Option<Progress>,
}

/// A running import's step and, once its size is known, how far it is.
struct Progress {
    step: &'static str,
    bar: Option<Bar>,
}

/// (done, total) of a step, in `unit`.
struct Bar {
    done: u64,
    total: u64,
    unit: &'static str,
}

fn progress(job: &Job) -> Progress {
    let step = match job.step.as_str() {
        "unpack" => "Unpacking the zip",
        "database" => "Copying the database",
        "files" => "Copying files",
        "swap" => "Putting the data in place",
        "done" => "Done",
        _ => "Starting",
    };
    let bar = (job.total > 0).then(|| Bar {
        total: job.total,
        done: job.done.min(job.total),
        unit: if job.step == "unpack" { " bytes" } else { "" },
    });
    Progress { step, bar }
}

/// `GET /projects/{id}/import`: the latest import's progress, refreshed every second while it
/// runs; its outcome once it ended.
pub async fn show_import(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Response {
    let (_, project, _, _) = match owned(&state, &visitor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let back = format!("/projects/{}", project.id);
    let back_text = format!("Back to {}", project.slug);
    let title = format!("Import into {}", project.slug);
    let job = match crate::elsewhere::of(&state, &project) {
        // The job runs on the node serving the project.
        Some(elsewhere) => {
            let answer = crate::elsewhere::run(
                &*elsewhere,
                &project,
                axum::http::Method::GET,
                "import",
                None,
                Body::empty(),
            )
            .await;
            match crate::elsewhere::json::<Job>(answer).await {
                Ok(job) => Some(job),
                Err((StatusCode::NOT_FOUND, _)) => None,
                Err((status, message)) => {
                    return page(
                        &visitor,
                        status,
                        &title,
                        Some(Notice::Error(message)),
                        &Link::to(&back, &back_text),
                    );
                }
            }
        }
        None => state.transfers.job(&project),
    };
    let Some(job) = job else {
        return page(
            &visitor,
            StatusCode::NOT_FOUND,
            &title,
            Some(Notice::Error("No import has run for this project.".into())),
            &Link::to(&back, &back_text),
        );
    };
    let mut shown = ImportPage {
        id: &project.id,
        slug: &project.slug,
        status: &job.status,
        bytes: size(job.upload_bytes),
        started: &job.started,
        progress: None,
    };
    match job.status.as_str() {
        "running" => {
            shown.progress = Some(progress(&job));
            page_refreshing(&visitor, &title, 1, &shown)
        }
        "done" => page(
            &visitor,
            StatusCode::OK,
            &title,
            Some(Notice::Ok(format!(
                "Imported {} collections and {} files. {} serves them now.",
                job.collections,
                job.files,
                state.urls.tenant_url(&project.slug)
            ))),
            &shown,
        ),
        _ => page(
            &visitor,
            StatusCode::OK,
            &title,
            Some(Notice::Error(format!(
                "The import failed and nothing was changed: {}.",
                job.error.trim_end_matches('.')
            ))),
            &shown,
        ),
    }
}

/// Fields of the export form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ExportForm {
    csrf: String,
}

/// `POST /projects/{id}/export`: the project as a zip download.
pub async fn export_project(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<ExportForm>,
) -> Response {
    let (_, project, _, _) = match owned(&state, &visitor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    if let Some(elsewhere) = crate::elsewhere::of(&state, &project) {
        let answer = crate::elsewhere::run(
            &*elsewhere,
            &project,
            axum::http::Method::GET,
            "export",
            None,
            Body::empty(),
        )
        .await;
        if answer.status().is_success() {
            tracing::info!(slug = %project.slug, "project exported from the console by the node serving it");
            return answer;
        }
        let (status, message) = crate::elsewhere::refused(answer).await;
        return project_page(&state, &visitor, &id, status, Notice::Error(message)).await;
    }
    match state.transfers.export(&project).await {
        Ok(export) => {
            tracing::info!(slug = %project.slug, bytes = export.bytes, "project exported from the console");
            zip_response(&project.slug, export)
        }
        Err(e) => match refusal(e) {
            Ok((status, message)) => {
                project_page(&state, &visitor, &id, status, Notice::Error(message)).await
            }
            Err(other) => failure(&visitor, other),
        },
    }
}

/// A download of `export`, streamed from its file. Slugs are lowercase letters, digits and
/// hyphens, so the file name is always a valid header value.
fn zip_response(slug: &str, export: Export) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "application/zip".to_string()),
        (header::CONTENT_LENGTH, export.bytes.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{slug}-pb_data.zip\""),
        ),
    ];
    let body = Body::from_stream(ReaderStream::with_capacity(export.file, 256 * 1024));
    (headers, body).into_response()
}
