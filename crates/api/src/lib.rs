//! The per-tenant HTTP API: PocketBase's routes, its error envelope, response headers and
//! request extractors. The tenant a request is for arrives as a request extension, put there
//! by the host dispatcher; nothing here can reach another tenant.

mod advice;
mod client;
mod error;
mod extract;
mod fields;
mod headers;
mod logger;
mod mails;
mod platform;
mod query;
mod rates;
mod router;
mod routes;
mod steps;
mod uploads;

pub use client::TrustedPeers;
pub use error::ApiError;
pub use platform::Platform;
pub use router::{ApiState, router};
pub use routes::auth::AUTH_LIMIT_IP;
pub use uploads::services;
