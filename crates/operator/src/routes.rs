//! Handlers of the operator API, one module per resource.

pub mod accounts;
pub mod backup_status;
pub mod backups;
pub mod domains;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod plans;
pub mod tenants;
pub mod transfers;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use warren_control_plane::Error;

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
