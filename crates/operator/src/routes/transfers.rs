//! `/v1/tenants/{slug}/import` and `/export`: a PocketBase zip into an empty tenant, its
//! progress, and a tenant as a zip.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ErrorBody;
use crate::Result;
use warren_control_plane::tenants::TenantInfo;
use warren_control_plane::transfers::{Export, Job, Upload, too_large, upload_limit};
use warren_control_plane::{ControlPlane, Error};

/// The declared body size, when the client sent one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Finds tenant `slug` and receives the request's body as its upload, within the plan's
/// `maxUploadBytes` (refused at once when the declared length is larger).
pub(crate) async fn receive_upload(
    state: &ControlPlane,
    slug: &str,
    request: Request,
) -> Result<(TenantInfo, Upload)> {
    let acting = request
        .extensions()
        .get::<crate::Acting>()
        .cloned()
        .map(axum::Extension);
    let tenant = super::tenant(state, slug, acting).await?;
    let limit = upload_limit(&tenant);
    if let (Some(limit), Some(length)) = (limit, content_length(request.headers()))
        && length > limit
    {
        return Err(too_large(limit).into());
    }
    let body = request.into_body().into_data_stream();
    let upload = state.transfers.receive(body, limit).await?;
    Ok((tenant, upload))
}

/// Query of `POST /v1/tenants/{slug}/import`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `true`: answer 202 with the running job once the zip is received and checked, and
    /// import in the background (follow it with `GET .../import`).
    background: Option<bool>,
}

/// `POST /v1/tenants/{slug}/import`: the body is the zip. Answers when the import is done, or
/// (`?background=true`) once it started.
#[utoipa::path(post, path = "/v1/tenants/{slug}/import", tag = "transfers",
    security(("operator" = [])),
    params(("slug" = String, Path, description = "The tenant's slug"), ImportQuery),
    request_body(content = Vec<u8>, content_type = "application/zip",
        description = "A zip of a PocketBase data directory (pb_data, at the top or in one folder), or a PocketBase backup zip"),
    responses(
        (status = 200, description = "Imported: the finished job", body = Job),
        (status = 202, description = "With `background=true`: the zip was received and checked, and the import runs (the job as it started)", body = Job),
        (status = 400, description = "The zip is damaged, unsafe (absolute or `..` paths, links) or holds no PocketBase data; nothing changed", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is not empty, or an import into it runs already, or (cluster mode) the node serving it changed meanwhile", body = ErrorBody),
        (status = 413, description = "Larger than the plan's maxUploadBytes, or unpacks to more than allowed", body = ErrorBody),
    ))]
pub async fn import_tenant(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    query: std::result::Result<Query<ImportQuery>, QueryRejection>,
    request: Request,
) -> Result<Response> {
    let Ok(Query(query)) = query else {
        return Err(
            Error::Invalid("background", "background must be true or false.".into()).into(),
        );
    };
    let (tenant, upload) = receive_upload(&state, &slug, request).await?;
    let (first, done) = state.transfers.start_import(&tenant, upload).await?;
    if query.background == Some(true) {
        state.directory.forget(&tenant.slug);
        return Ok((StatusCode::ACCEPTED, Json(first)).into_response());
    }
    let job = done
        .await
        .map_err(|_| Error::Io(std::io::Error::other("the import stopped")))??;
    state.directory.forget(&tenant.slug);
    Ok(Json(job).into_response())
}

/// `GET /v1/tenants/{slug}/import`: the latest import's progress or outcome.
#[utoipa::path(get, path = "/v1/tenants/{slug}/import", tag = "transfers",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "The latest import since the server started", body = Job),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant, or no import since the server started", body = ErrorBody),
    ))]
pub async fn get_import(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    acting: Option<axum::Extension<crate::Acting>>,
) -> Result<Json<Job>> {
    let tenant = super::tenant(&state, &slug, acting).await?;
    state
        .transfers
        .job(&tenant)
        .map(Json)
        .ok_or(Error::NotFound.into())
}

/// `GET /v1/tenants/{slug}/export`: the tenant as a zip of a PocketBase data directory.
#[utoipa::path(get, path = "/v1/tenants/{slug}/export", tag = "transfers",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "A zip of data.db, auxiliary.db and storage/; unzipped, stock PocketBase 0.40 serves it as pb_data", content_type = "application/zip", body = Vec<u8>),
        (status = 409, description = "Cluster mode: the node serving the tenant changed meanwhile; nothing was done, try again", body = ErrorBody),
        (status = 503, description = "Cluster mode: the tenant is moving between servers (or being restored on the one that claimed it); try again shortly", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn export_tenant(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    acting: Option<axum::Extension<crate::Acting>>,
) -> Result<Response> {
    let tenant = super::tenant(&state, &slug, acting).await?;
    let export = state.transfers.export(&tenant).await?;
    Ok(zip_response(&tenant.slug, export))
}

/// A download of `export`, streamed from its file.
pub(crate) fn zip_response(slug: &str, export: Export) -> Response {
    use tokio::io::AsyncReadExt;
    let stream = futures_util::stream::unfold(export.file, |mut file| async move {
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let disposition = format!("attachment; filename=\"{slug}-pb_data.zip\"");
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(export.bytes));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
