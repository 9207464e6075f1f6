//! Every route of the tenant API, in one place.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use warren_auth::Passwords;

use crate::error::ApiError;
use crate::headers::pocketbase_headers;
use crate::routes::{auth, health, records};

/// Largest request body by default (PocketBase's default).
const BODY_LIMIT: usize = 32 << 20;

/// What the tenant API's handlers share across tenants.
#[derive(Clone)]
pub struct ApiState {
    /// Bounded password hashing.
    pub passwords: Passwords,
}

/// The tenant API router. Requests must carry the resolved `Tenant` as an extension.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/health", get(health::get_health))
        .route(
            "/api/collections/{collection}/auth-with-password",
            post(auth::auth_with_password),
        )
        .route(
            "/api/collections/{collection}/records",
            get(records::list_records).post(records::create_record),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(records::view_record)
                .patch(records::update_record)
                .delete(records::delete_record),
        )
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::not_found() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(pocketbase_headers))
        .with_state(state)
}
