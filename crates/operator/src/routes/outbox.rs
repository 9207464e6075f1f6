//! `/v1/outbox`: the operator reads mail kept locally when the platform has no SMTP relay.
//! With a relay configured these routes answer 404.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ErrorBody;
use crate::Result;
use warren_control_plane::ControlPlane;
use warren_control_plane::outbox::{MAX_PER_PAGE, Message};

/// Query of `GET /v1/outbox`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// 1-based page number.
    page: Option<usize>,
    /// Messages per page (1–200, default 30).
    per_page: Option<usize>,
}

/// A message as the API shows it; `html` only when `full`.
fn render(message: &Message, full: bool) -> Value {
    let kept = &message.kept;
    let mut body = json!({
        "id": kept.id,
        "created": kept.created,
        "label": message.label(),
        "tenant": message.slug,
        "tenantId": kept.tenant,
        "from": kept.from,
        "to": kept.to,
        "subject": kept.subject,
        "links": kept.links,
        "code": kept.code,
    });
    if full {
        body["html"] = json!(kept.html);
    }
    body
}

/// `GET /v1/outbox?page=&perPage=`
#[utoipa::path(get, path = "/v1/outbox", tag = "outbox", security(("operator" = [])),
    params(Paging),
    responses(
        (status = 200, description = "A page of kept messages, newest first (without bodies)", body = Object),
        (status = 400, description = "Invalid paging", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "Mail goes to an SMTP relay: there is no outbox", body = ErrorBody),
    ))]
pub async fn list_outbox(
    State(state): State<ControlPlane>,
    query: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<Value>> {
    let (page, per_page, _) =
        super::paging(query, |p: &Paging| (p.page, p.per_page), MAX_PER_PAGE)?;
    let (items, total) = warren_control_plane::outbox::page(&state, page, per_page).await?;
    Ok(Json(json!({
        "page": page,
        "perPage": per_page,
        "totalItems": total,
        "totalPages": total.div_ceil(per_page),
        "items": items.iter().map(|m| render(m, false)).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/outbox/{id}`: one kept message with its HTML body.
#[utoipa::path(get, path = "/v1/outbox/{id}", tag = "outbox", security(("operator" = [])),
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The message with its HTML body", body = Object),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such message, or mail goes to an SMTP relay", body = ErrorBody),
    ))]
pub async fn get_outbox_message(
    State(state): State<ControlPlane>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let message = warren_control_plane::outbox::one(&state, &id).await?;
    Ok(Json(render(&message, true)))
}
