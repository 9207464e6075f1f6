//! Handlers of the operator API, one module per resource.

pub mod accounts;
pub mod backup_status;
pub mod backups;
pub mod code;
pub mod domains;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod plans;
pub mod secrets;
pub mod superuser;
pub mod tenants;
pub mod transfers;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use warren_control_plane::{ControlPlane, Error, TenantInfo};

/// Tenant `slug`: the one a cluster node acts on for the leader ([`crate::Acting`]), else as
/// this node's control database knows it.
pub(crate) async fn tenant(
    state: &ControlPlane,
    slug: &str,
    acting: Option<axum::Extension<crate::Acting>>,
) -> Result<TenantInfo, Error> {
    match acting {
        Some(axum::Extension(crate::Acting(info))) if info.slug == slug => Ok(info),
        _ => state.tenants.find(slug).await?.ok_or(Error::NotFound),
    }
}

/// The error envelope every route answers failures with.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Per-field details: `{"<field>": {"code": "…", "message": "…"}}`.
    #[schema(value_type = Object)]
    data: serde_json::Value,
    /// What went wrong, as a sentence.
    message: String,
    /// The HTTP status.
    status: u16,
}

/// A list's `page` and `perPage` (defaults 1 and 30), or the API's refusal: `query` is the
/// parsed query string, `max` the largest page size the list allows.
pub(crate) fn paging<T: Copy + PartialOrd + From<u8> + std::fmt::Display, Q>(
    query: Result<axum::extract::Query<Q>, axum::extract::rejection::QueryRejection>,
    fields: impl FnOnce(&Q) -> (Option<T>, Option<T>),
    max: T,
) -> Result<(T, T, Q), Error> {
    let axum::extract::Query(query) = query.map_err(|_| {
        Error::Invalid(
            "page",
            "page and perPage must be positive whole numbers.".into(),
        )
    })?;
    let (page, per_page) = fields(&query);
    let page = page.unwrap_or(T::from(1));
    let per_page = per_page.unwrap_or(T::from(30));
    if page < T::from(1) || per_page < T::from(1) || per_page > max {
        return Err(Error::Invalid(
            "perPage",
            format!("page must be 1 or more and perPage 1 to {max}."),
        ));
    }
    Ok((page, per_page, query))
}

/// A JSON body whose rejections (bad JSON, wrong content type) come out in the API's envelope.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = crate::error::ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(Error::Invalid("body", rejection_reason(&rejection)).into()),
        }
    }
}

fn rejection_reason(rejection: &JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "The body must be JSON (Content-Type: application/json).".into()
        }
        JsonRejection::JsonSyntaxError(_) => "The body is not valid JSON.".into(),
        JsonRejection::JsonDataError(e) => format!(
            "The body does not have the expected shape: {}.",
            e.body_text()
        ),
        _ => "The body could not be read.".into(),
    }
}
