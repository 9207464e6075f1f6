//! Every route of the tenant API, in one place.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post, put};
use warren_auth::Passwords;

use crate::error::ApiError;
use crate::headers::pocketbase_headers;
use crate::routes::{auth, batch, collections, health, records, settings};

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
            "/api/collections",
            get(collections::list_collections).post(collections::create_collection),
        )
        .route(
            "/api/collections/import",
            put(collections::import_collections),
        )
        .route(
            "/api/collections/meta/scaffolds",
            get(collections::get_scaffolds),
        )
        .route(
            "/api/collections/{collection}",
            get(collections::view_collection)
                .patch(collections::update_collection)
                .delete(collections::delete_collection),
        )
        .route(
            "/api/collections/{collection}/truncate",
            delete(collections::truncate_collection),
        )
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
        .route("/api/batch", post(batch::create_batch))
        .route(
            "/api/settings",
            get(settings::get_settings).patch(settings::update_settings),
        )
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::not_found() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(pocketbase_headers))
        .with_state(state)
}
