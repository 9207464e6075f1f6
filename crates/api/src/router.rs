//! Every route of the tenant API, in one place.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post, put};
use warren_secrets::Passwords;

use crate::routes::{
    auth, backups, batch, collections, crons, custom, files, health, logs, oauth2, probes,
    realtime, records, settings, sql, warren,
};

/// Largest request body by default (PocketBase's default).
const BODY_LIMIT: usize = 32 << 20;

/// What the tenant API's handlers share across tenants.
#[derive(Clone)]
pub struct ApiState {
    /// Bounded password hashing.
    pub passwords: Passwords,
    /// Tenants' outgoing mail (per-tenant SMTP, platform default).
    pub mailer: warren_mail::Mailer,
    /// Brute-force counters, keyed per tenant.
    pub limiter: warren_records::limits::Limiter,
    /// Counters of the tenants' own `settings.rateLimits` rules, keyed per tenant.
    pub rates: warren_records::limits::Limiter,
    /// Accept `http://127.0.0.1` OIDC endpoints (local test providers only).
    pub oauth_loopback: bool,
    /// OAuth2 providers' id token keys, cached per key-set URL.
    pub oauth_keys: warren_oauth::Keys,
    /// File storage and thumbnails (local disk, or S3 per tenant / platform default).
    pub files: warren_files::Files,
    /// Peers that may name the client in a tenant's `trustedProxy` headers.
    pub trusted_peers: crate::client::TrustedPeers,
    /// Auth attempts (sign-ins, OTP and verification requests) one client IP may make against
    /// one tenant per 10 seconds.
    pub auth_limit_ip: u32,
    /// The tenants' own backups (`/api/backups`) and the registry a restore drains.
    pub backups: warren_tenant::backups::Backups,
    /// The node's cron scheduler, which lists and runs a tenant's jobs (`/api/crons`).
    pub crons: warren_tenant::cron::Scheduler,
    /// The platform around the tenants (one-time dashboard links, usage); `None` in tests of
    /// the API alone, where `/api/warren/*` answers 404.
    pub platform: Option<std::sync::Arc<dyn crate::platform::Platform>>,
    /// Create the index the advisor proposes for a tenant's repeatedly slow list
    /// (`warren serve --auto-index`).
    pub auto_index: bool,
}

/// The state the router hands its layers and handlers: one shared [`ApiState`], so a request
/// clones a pointer, not every field, at each layer it passes.
pub(crate) type Shared = std::sync::Arc<ApiState>;

impl ApiState {
    /// State with `passwords` and an optional platform-default SMTP relay URL.
    pub fn new(passwords: Passwords, smtp_url: Option<String>) -> Self {
        Self {
            passwords,
            mailer: warren_mail::Mailer::new(smtp_url),
            limiter: warren_records::limits::Limiter::default(),
            rates: warren_records::limits::Limiter::default(),
            oauth_loopback: false,
            oauth_keys: warren_oauth::Keys::default(),
            files: warren_files::Files::new(warren_files::FilesConfig::default()),
            trusted_peers: crate::client::TrustedPeers::default(),
            auth_limit_ip: crate::routes::auth::AUTH_LIMIT_IP,
            backups: warren_tenant::backups::Backups::default(),
            crons: warren_tenant::cron::Scheduler::default(),
            platform: None,
            auto_index: false,
        }
    }
}

/// The tenant API router. Requests must carry the resolved `Tenant` as an extension.
pub fn router(state: ApiState) -> Router {
    let state: Shared = std::sync::Arc::new(state);
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
            "/api/collections/meta/oauth2-providers",
            get(collections::get_oauth2_providers),
        )
        .route(
            "/api/collections/meta/dry-run-view",
            post(collections::dry_run_view),
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
            "/api/collections/{collection}/auth-methods",
            get(auth::list_auth_methods),
        )
        .route(
            "/api/collections/{collection}/auth-refresh",
            post(auth::auth_refresh),
        )
        .route(
            "/api/collections/{collection}/impersonate/{id}",
            post(auth::impersonate),
        )
        .route(
            "/api/collections/{collection}/request-verification",
            post(auth::request_verification),
        )
        .route(
            "/api/collections/{collection}/confirm-verification",
            post(auth::confirm_verification),
        )
        .route(
            "/api/collections/{collection}/request-password-reset",
            post(auth::request_password_reset),
        )
        .route(
            "/api/collections/{collection}/confirm-password-reset",
            post(auth::confirm_password_reset),
        )
        .route(
            "/api/collections/{collection}/request-email-change",
            post(auth::request_email_change),
        )
        .route(
            "/api/collections/{collection}/confirm-email-change",
            post(auth::confirm_email_change),
        )
        .route(
            "/api/collections/{collection}/request-otp",
            post(auth::request_otp),
        )
        .route(
            "/api/collections/{collection}/auth-with-otp",
            post(auth::auth_with_otp),
        )
        .route(
            "/api/collections/{collection}/auth-with-oauth2",
            post(oauth2::auth_with_oauth2),
        )
        .route(
            "/api/oauth2-redirect",
            get(oauth2::oauth2_redirect_get).post(oauth2::oauth2_redirect_post),
        )
        .route(
            "/api/collections/{collection}/records",
            get(records::list_records)
                .post(records::create_record)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(records::view_record)
                .patch(records::update_record)
                .delete(records::delete_record)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/files/{collection}/{record}/{filename}",
            get(files::download_file),
        )
        .route("/api/files/token", post(files::create_file_token))
        // The batch body limit comes from the tenant's settings.
        .route(
            "/api/batch",
            post(batch::create_batch).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/realtime",
            get(realtime::connect_realtime).post(realtime::set_subscriptions),
        )
        .route("/api/realtime/ws", get(realtime::connect_realtime_ws))
        .route(
            "/api/settings",
            get(settings::get_settings).patch(settings::update_settings),
        )
        .route(
            "/api/settings/apple/generate-client-secret",
            post(settings::generate_apple_client_secret),
        )
        .route(
            "/api/backups",
            get(backups::list_backups).post(backups::create_backup),
        )
        .route(
            "/api/backups/upload",
            post(backups::upload_backup).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/backups/{key}",
            get(backups::download_backup).delete(backups::delete_backup),
        )
        .route("/api/backups/{key}/restore", post(backups::restore_backup))
        .route("/api/crons", get(crons::list_crons))
        .route("/api/crons/{id}", post(crons::run_cron))
        .route("/api/settings/test/email", post(probes::test_email))
        .route("/api/settings/test/s3", post(probes::test_s3))
        .route("/api/sql", post(sql::run_sql))
        .route("/api/logs", get(logs::list_logs).delete(logs::delete_logs))
        .route("/api/logs/stats", get(logs::log_stats))
        .route("/api/logs/{id}", get(logs::view_log))
        .route(
            "/api/warren/dashboard-link",
            post(warren::redeem_dashboard_link),
        )
        .route("/api/warren/usage", get(warren::get_usage))
        .route(
            "/api/warren/indexes/suggestions",
            get(warren::index_suggestions),
        )
        // Where no built-in route matched: the tenant's own routes (pb_hooks), then its
        // pb_public (GET and HEAD outside /api/), else PocketBase's 404.
        .fallback(custom::dispatch_custom_route)
        .method_not_allowed_fallback(custom::dispatch_custom_route)
        // One layer for all of Warren's steps (see `steps`): every layer costs a clone of its
        // service and a boxed future per request. The body limit, outermost, only marks the
        // request for the extractors that read a body (routes that take larger bodies disable
        // it).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::steps::around_route,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
