//! `/v1/tenants/{slug}/code`: deploying a tenant's `pb_hooks`, `pb_migrations` and `pb_public`
//! from a tar.gz, what is deployed, and the code as a tar.gz.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ErrorBody;
use crate::Result;
use crate::routes::transfers::receive_upload;
use warren_control_plane::ControlPlane;
use warren_control_plane::code::{self, Code, Deployed};

/// `PUT /v1/tenants/{slug}/code`: the body is a tar.gz whose top-level folders replace the
/// tenant's.
#[utoipa::path(put, path = "/v1/tenants/{slug}/code", tag = "code",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    request_body(content = Vec<u8>, content_type = "application/gzip",
        description = "A gzip-compressed tar holding any of pb_hooks/, pb_migrations/ and pb_public/ at its top; each folder present replaces the tenant's whole, the others stay"),
    responses(
        (status = 200, description = "Deployed: the folders replaced and the code now", body = Deployed),
        (status = 400, description = "The archive is damaged, holds something else at its top, an absolute or `..` path, a link or a special file, the hooks were refused, or a new migration failed (its file and error in the message); nothing changed and no migration stands", body = ErrorBody),
        (status = 409, description = "Cluster mode: the node serving the tenant changed meanwhile; nothing was done, try again", body = ErrorBody),
        (status = 503, description = "Cluster mode: the tenant is moving between servers (or being restored on the one that claimed it); try again shortly", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 413, description = "Larger than the plan's maxUploadBytes, or more files or bytes than a deploy may hold", body = ErrorBody),
    ))]
pub async fn deploy_code(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    request: Request,
) -> Result<Json<Deployed>> {
    let (tenant, upload) = receive_upload(&state, &slug, request).await?;
    Ok(Json(
        code::deploy(
            &state.tenants,
            &state.registry,
            &state.backups,
            &tenant,
            &upload,
        )
        .await?,
    ))
}

/// `GET /v1/tenants/{slug}/code`: the code folders the tenant has.
#[utoipa::path(get, path = "/v1/tenants/{slug}/code", tag = "code",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "The tenant's code folders: files, bytes, last deploy", body = Code),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn get_code(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    acting: Option<axum::Extension<crate::Acting>>,
) -> Result<Json<Code>> {
    let tenant = super::tenant(&state, &slug, acting).await?;
    Ok(Json(code::summary(&state.tenants, &tenant).await?))
}

/// `GET /v1/tenants/{slug}/code/archive`: the tenant's code as a tar.gz.
#[utoipa::path(get, path = "/v1/tenants/{slug}/code/archive", tag = "code",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "A tar.gz of pb_hooks/, pb_migrations/ and pb_public/ (those the tenant has), the shape a deploy takes", content_type = "application/gzip", body = Vec<u8>),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn download_code(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    acting: Option<axum::Extension<crate::Acting>>,
) -> Result<Response> {
    let tenant = super::tenant(&state, &slug, acting).await?;
    let export = code::download(&state.tenants, &tenant).await?;
    Ok(archive_response(&tenant.slug, export))
}

/// A download of the tar.gz `export`, streamed from its file.
pub(crate) fn archive_response(
    slug: &str,
    export: warren_control_plane::transfers::Export,
) -> Response {
    use tokio::io::AsyncReadExt;
    let stream = futures_util::stream::unfold(export.file, |mut file| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(export.bytes));
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{slug}-code.tar.gz\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
