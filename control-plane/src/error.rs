//! The control plane's error type, and the JSON envelope (`{data, message, status}`, the same
//! shape as the tenant API's) each error is shown to callers as.

use serde_json::{Value, json};

/// Errors of the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input was rejected: (field, reason).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// The thing asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A tenant with that slug exists.
    #[error("the slug is already taken")]
    SlugTaken,
    /// Another tenant has claimed that domain.
    #[error("the domain is already claimed")]
    DomainTaken,
    /// Missing or wrong operator token.
    #[error("unauthorized")]
    Unauthorized,
    /// The control database failed.
    #[error(transparent)]
    Store(#[from] warren_store::Error),
    /// The tenant runtime failed.
    #[error(transparent)]
    Tenant(#[from] warren_tenant::Error),
    /// Files could not be read or written.
    #[error("io: {0}")]
    Io(std::io::Error),
    /// An account with that email exists.
    #[error("the email is already registered")]
    EmailTaken,
    /// The account already owns as many projects as its plan allows.
    #[error("the plan allows at most {0} projects")]
    ProjectLimit(u32),
    /// Password hashing failed or is saturated.
    #[error(transparent)]
    Auth(#[from] warren_secrets::Error),
    /// The request is larger than the plan allows; says what the limit is.
    #[error("{0}")]
    TooLarge(String),
    /// The request conflicts with the resource's state; says why.
    #[error("{0}")]
    Busy(String),
    /// A backup or restore failed.
    #[error(transparent)]
    Backup(#[from] warren_backup::Error),
}

/// What refuses an action on the data of a tenant another node of the cluster serves.
pub const ELSEWHERE: &str = "This project is served by another server of the cluster right now, so this action cannot run here; try again in a moment.";

/// `reason` as a sentence: first letter up, a full stop at the end.
fn upper_first(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len() + 1);
    let mut chars = reason.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
    }
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Result alias for the control plane.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<warren_store::sql::Error> for Error {
    fn from(e: warren_store::sql::Error) -> Self {
        Error::Store(e.into())
    }
}

/// An error as callers see it: the HTTP status, a sentence, and per-field details.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Envelope {
    /// Per-field details: `{"<field>": {"code": "…", "message": "…"}}`, or `{}`.
    pub data: Value,
    /// What went wrong, as a sentence.
    pub message: String,
    /// The HTTP status.
    pub status: u16,
}

impl Error {
    /// The envelope this error is shown as. Errors with no meaning for the caller (storage,
    /// files, hashing) become a 500 with a generic sentence; the caller logs those.
    pub fn envelope(&self) -> Envelope {
        let (status, message, data) = match self {
            Error::Invalid(field, reason) => (
                400,
                "Failed to validate the request.".to_string(),
                json!({ *field: { "code": "validation_invalid", "message": reason } }),
            ),
            Error::NotFound => (
                404,
                "The requested resource wasn't found.".into(),
                json!({}),
            ),
            Error::SlugTaken => (
                409,
                "The slug is already taken.".into(),
                json!({ "slug": { "code": "validation_not_unique", "message": "The slug is already taken." } }),
            ),
            Error::DomainTaken => (
                409,
                "The domain is already claimed.".into(),
                json!({ "domain": { "code": "validation_not_unique", "message": "The domain is already claimed." } }),
            ),
            Error::Backup(warren_backup::Error::Corrupt(reason)) => (
                422,
                format!("The backup is damaged and was not restored: {reason}"),
                json!({}),
            ),
            Error::Backup(warren_backup::Error::NotFound(what)) => {
                (404, format!("Not found: {what}."), json!({}))
            }
            Error::Backup(warren_backup::Error::Invalid(reason)) => (
                400,
                "Failed to validate the request.".to_string(),
                json!({ "backup": { "code": "validation_invalid", "message": reason } }),
            ),
            Error::Backup(warren_backup::Error::Target(reason)) => (
                502,
                format!("The backup target failed: {reason}"),
                json!({}),
            ),
            Error::Tenant(warren_tenant::Error::Draining) => (
                503,
                "The tenant is being restored; try again shortly.".into(),
                json!({}),
            ),
            Error::Tenant(warren_tenant::Error::Elsewhere) => (409, ELSEWHERE.into(), json!({})),
            Error::TooLarge(reason) | Error::Tenant(warren_tenant::Error::TooLarge(reason)) => {
                (413, reason.clone(), json!({}))
            }
            Error::Busy(reason) => (409, reason.clone(), json!({})),
            Error::Tenant(warren_tenant::Error::Invalid(reason)) => {
                (400, upper_first(reason), json!({}))
            }
            Error::Unauthorized => (401, "Missing or invalid operator token.".into(), json!({})),
            Error::EmailTaken => (
                409,
                "The email is already registered.".into(),
                json!({ "email": { "code": "validation_not_unique", "message": "The email is already registered." } }),
            ),
            Error::ProjectLimit(max) => (
                403,
                format!("The plan allows at most {max} projects."),
                json!({}),
            ),
            _ => (
                500,
                "Something went wrong while processing your request.".into(),
                json!({}),
            ),
        };
        Envelope {
            data,
            message,
            status,
        }
    }
}
