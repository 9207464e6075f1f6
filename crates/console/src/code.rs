//! The project page's "Code" section: deploy a tar.gz of `pb_hooks`, `pb_migrations` and
//! `pb_public`, see what is deployed, download it. Projects are looked up within the signed-in
//! account only; the upload's CSRF token is its first part, checked before the file is read.

use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use crate::Console;
use crate::auth::{FormBody, failure, forbidden};
use crate::html::Notice;
use crate::projects::{owned, project_page};
use crate::transfers::{NoUpload, csrf_then_file};
use crate::visitor::Visitor;
use warren_control_plane::Error;
use warren_control_plane::code::{Code, CodeFolder, Deployed};
use warren_control_plane::transfers::upload_limit;

/// One code folder as the page shows it.
pub(crate) struct FolderView {
    pub(crate) name: String,
    pub(crate) files: u64,
    pub(crate) size: String,
    pub(crate) deployed: String,
}

/// The rows of the section's table.
pub(crate) fn view(code: &Code) -> Vec<FolderView> {
    code.folders.iter().map(row).collect()
}

fn row(folder: &CodeFolder) -> FolderView {
    FolderView {
        name: folder.name.clone(),
        files: folder.files,
        size: crate::transfers::size(folder.bytes),
        deployed: folder
            .deployed
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_string()
            + " UTC",
    }
}

/// What the console says when a deploy is refused, and with which status.
fn refusal(error: Error) -> Result<(StatusCode, String), Error> {
    match error {
        Error::TooLarge(reason) | Error::Tenant(warren_tenant::Error::TooLarge(reason)) => {
            Ok((StatusCode::PAYLOAD_TOO_LARGE, reason))
        }
        Error::Invalid(_, reason) => Ok((StatusCode::BAD_REQUEST, reason)),
        Error::Tenant(warren_tenant::Error::Invalid(reason)) => Ok((
            StatusCode::BAD_REQUEST,
            format!(
                "The archive was refused and nothing changed: {}.",
                reason.trim_end_matches('.')
            ),
        )),
        Error::Tenant(warren_tenant::Error::Elsewhere) => Ok((
            StatusCode::CONFLICT,
            warren_control_plane::error::ELSEWHERE.into(),
        )),
        other => Err(other),
    }
}

/// `POST /projects/{id}/code`: multipart with `csrf` first, then `file` (a tar.gz). Deploys
/// it and shows the project page with what was deployed.
pub async fn deploy_code(
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
                "Choose a .tar.gz file to deploy.".into(),
            )
            .await;
        }
    };
    let deployed = match state
        .transfers
        .receive(Box::pin(field), upload_limit(&project))
        .await
    {
        Ok(upload) if upload.bytes() == 0 => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Choose a .tar.gz file to deploy.".into(),
            )
            .await;
        }
        Ok(upload) => match crate::elsewhere::of(&state, &project) {
            // Deployed by the node serving the project, the archive streamed to it.
            Some(elsewhere) => {
                let body = match tokio::fs::File::open(upload.path()).await {
                    Ok(file) => Body::from_stream(ReaderStream::with_capacity(file, 64 * 1024)),
                    Err(e) => return failure(&visitor, Error::Io(e)),
                };
                let answer = crate::elsewhere::run(
                    &*elsewhere,
                    &project,
                    Method::PUT,
                    "code",
                    Some("application/gzip"),
                    body,
                )
                .await;
                match crate::elsewhere::json::<Deployed>(answer).await {
                    Ok(deployed) => Ok(deployed),
                    Err((status, message)) => return refuse(status, message).await,
                }
            }
            None => {
                warren_control_plane::code::deploy(
                    &state.tenants,
                    &state.registry,
                    &state.backups,
                    &project,
                    &upload,
                )
                .await
            }
        },
        Err(e) => Err(e),
    };
    match deployed {
        Ok(deployed) => {
            let folders = deployed
                .deployed
                .iter()
                .map(|f| format!("{} ({} files)", f.name, f.files))
                .collect::<Vec<_>>()
                .join(", ");
            project_page(
                &state,
                &visitor,
                &id,
                StatusCode::OK,
                Notice::Ok(format!("Deployed {folders}.")),
            )
            .await
        }
        Err(error) => match refusal(error) {
            Ok((status, message)) => refuse(status, message).await,
            Err(other) => failure(&visitor, other),
        },
    }
}

/// Fields of the download form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DownloadForm {
    csrf: String,
}

/// `POST /projects/{id}/code/download`: the project's code as a tar.gz.
pub async fn download_code(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<DownloadForm>,
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
            Method::GET,
            "code/archive",
            None,
            Body::empty(),
        )
        .await;
        if answer.status().is_success() {
            return answer;
        }
        let (status, message) = crate::elsewhere::refused(answer).await;
        return project_page(&state, &visitor, &id, status, Notice::Error(message)).await;
    }
    match warren_control_plane::code::download(&state.tenants, &project).await {
        Ok(export) => {
            // Slugs are lowercase letters, digits and hyphens: always a valid header value.
            let headers = [
                (header::CONTENT_TYPE, "application/gzip".to_string()),
                (header::CONTENT_LENGTH, export.bytes.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}-code.tar.gz\"", project.slug),
                ),
            ];
            let body = Body::from_stream(ReaderStream::with_capacity(export.file, 64 * 1024));
            (headers, body).into_response()
        }
        Err(e) => failure(&visitor, e),
    }
}
