//! The record engine's errors, each mapping to one PocketBase API outcome.

use warren_schema::ValidationErrors;

/// Errors of the record engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404: the collection, or the record (also when a view/update/delete rule hides it).
    #[error("{0}")]
    NotFound(&'static str),
    /// 403 with PocketBase's message for the situation.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 400 with a message and no field details (bad filter, failed create rule, ...).
    #[error("{0}")]
    BadRequest(&'static str),
    /// 401 with a message (an endpoint that requires an auth record).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 with a message built from names (e.g. the collection a token must belong to).
    #[error("{0}")]
    ForbiddenOwned(String),
    /// 429 with a message (brute-force limits, OTP attempts).
    #[error("{0}")]
    TooManyRequests(&'static str),
    /// 401 `{"mfaId":…}`: the login succeeded but a second method is required.
    #[error("multi-factor authentication required")]
    MfaRequired(String),
    /// 400 with per-field validation errors.
    #[error("{message}")]
    Validation {
        /// The envelope's message, e.g. "Failed to create record.".
        message: &'static str,
        /// The field errors.
        errors: ValidationErrors,
    },
    /// The tenant database failed.
    #[error(transparent)]
    Store(#[from] warren_store::Error),
    /// A stored collection could not be read.
    #[error("schema: {0}")]
    Schema(String),
}

impl From<warren_store::sql::Error> for Error {
    fn from(e: warren_store::sql::Error) -> Self {
        Error::Store(e.into())
    }
}

impl From<warren_filter::Error> for Error {
    fn from(e: warren_filter::Error) -> Self {
        match e {
            warren_filter::Error::SuperuserOnly("@collection.") => {
                Error::Forbidden("Only superusers can filter by @collection.")
            }
            warren_filter::Error::SuperuserOnly(_) => {
                Error::Forbidden("Only superusers can filter by @request.")
            }
            other => {
                tracing::debug!(error = %other, "filter rejected");
                Error::BadRequest("Something went wrong while processing your request.")
            }
        }
    }
}

/// Result alias of the record engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;
