//! Every route of the operator API, listed once: [`table`] gives both the router and the
//! OpenAPI document (each handler's `#[utoipa::path]` names its method and path), so a route
//! cannot be served undocumented or documented unserved.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use warren_control_plane::{ControlPlane, Error};

use crate::ApiError;
use crate::routes::{
    accounts, backup_status, backups, code, domains, health, metrics, openapi, outbox, plans,
    secrets, superuser, tenants, transfers,
};

/// The operator API's routes in three groups, by who may call them.
pub(crate) struct Table {
    /// Anyone: health and this document.
    pub public: OpenApiRouter<ControlPlane>,
    /// The operator, with the bearer token.
    pub operator: OpenApiRouter<ControlPlane>,
    /// The operator, and only while mail is kept in a local outbox.
    pub outbox: OpenApiRouter<ControlPlane>,
}

/// The one list of the operator API's routes.
pub(crate) fn table() -> Table {
    let public = OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(health::get_health))
        .routes(routes!(openapi::get_openapi));
    let operator = OpenApiRouter::new()
        .routes(routes!(tenants::list_tenants, tenants::create_tenant))
        .routes(routes!(
            tenants::get_tenant,
            tenants::update_tenant,
            tenants::delete_tenant
        ))
        .routes(routes!(tenants::suspend_tenant))
        .routes(routes!(tenants::resume_tenant))
        .routes(routes!(tenants::get_usage))
        .routes(routes!(domains::list_domains, domains::add_domain))
        .routes(routes!(domains::get_domain, domains::remove_domain))
        .routes(routes!(domains::verify_domain))
        .routes(routes!(domains::list_certificates))
        .routes(routes!(accounts::list_accounts))
        .routes(routes!(accounts::get_account, accounts::update_account))
        .routes(routes!(accounts::disable_account))
        .routes(routes!(accounts::enable_account))
        .routes(routes!(accounts::verify_account))
        // Uploaded zips are bounded by the plan's limit, checked as they stream in.
        .routes(
            routes!(transfers::get_import, transfers::import_tenant)
                .layer(DefaultBodyLimit::disable()),
        )
        .routes(routes!(transfers::export_tenant))
        // A deploy's archive is bounded by the plan's limit as it streams in.
        .routes(routes!(code::get_code, code::deploy_code).layer(DefaultBodyLimit::disable()))
        .routes(routes!(code::download_code))
        .routes(routes!(superuser::set_superuser))
        .routes(routes!(secrets::list_secrets))
        .routes(routes!(secrets::set_secret, secrets::unset_secret))
        .routes(routes!(plans::list_plans, plans::create_plan))
        .routes(routes!(plans::update_plan))
        .routes(routes!(metrics::get_metrics))
        .routes(routes!(backups::list_backups, backups::create_backup))
        .routes(routes!(backups::restore_backup))
        .routes(routes!(backups::verify_backup))
        .routes(routes!(backup_status::get_backup_status))
        .routes(routes!(backup_status::list_drills));
    let outbox = OpenApiRouter::new()
        .routes(routes!(outbox::list_outbox))
        .routes(routes!(outbox::get_outbox_message));
    Table {
        public,
        operator,
        outbox,
    }
}

/// The operator API's router; unknown paths answer the JSON 404.
pub fn router(state: ControlPlane) -> Router {
    let Table {
        public,
        operator,
        outbox,
    } = table();
    let operator = operator.route_layer(middleware::from_fn_with_state(
        state.clone(),
        require_operator,
    ));
    // Checked in this order: with a relay there is no outbox (404, token or not).
    let outbox = outbox
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_operator,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_outbox,
        ));
    let (router, _) = public.merge(operator).merge(outbox).split_for_parts();
    router
        .fallback(|| async { ApiError(Error::NotFound) })
        .with_state(state)
}

/// Lets a request through only with the operator's bearer token.
async fn require_operator(
    State(state): State<ControlPlane>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if request.extensions().get::<crate::Acting>().is_none()
        && !state.operator_token.accepts(header)
    {
        return ApiError(Error::Unauthorized).into_response();
    }
    next.run(request).await
}

/// Lets a request through only when mail is kept in a local outbox (no SMTP relay).
async fn require_outbox(
    State(state): State<ControlPlane>,
    request: Request,
    next: Next,
) -> Response {
    if !warren_control_plane::outbox::enabled(&state) {
        return ApiError(Error::NotFound).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Method, Request};
    use serde_json::Value;
    use tower::ServiceExt;
    use warren_control_plane::operator::OperatorToken;
    use warren_control_plane::tenants::UrlScheme;
    use warren_control_plane::{Directory, Tenants, open_control_db, tenants_root};

    use super::*;
    use crate::openapi::document;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// (method, path) of every operation in the document.
    fn documented() -> BTreeSet<(String, String)> {
        let doc: Value = serde_json::from_str(&document()).unwrap();
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                if item.get(method).is_some() {
                    found.insert((method.to_string(), path.clone()));
                }
            }
        }
        found
    }

    /// A control plane over an empty data directory, mail kept in an outbox.
    async fn control_plane(dir: &std::path::Path) -> ControlPlane {
        let db = open_control_db(dir).await.unwrap();
        let tenants = Tenants::new(db.clone(), tenants_root(dir));
        let registry = warren_tenant::Registry::new(warren_tenant::RegistryConfig {
            root: tenants_root(dir),
            max_open: 4,
            idle_timeout: Duration::from_secs(60),
        });
        let directory = Directory::start(tenants.clone(), Duration::from_secs(60), |_| {})
            .await
            .unwrap();
        ControlPlane {
            tenants: tenants.clone(),
            registry: registry.clone(),
            directory,
            operator_token: OperatorToken::new("secret"),
            urls: UrlScheme {
                scheme: "http".into(),
                domain: "localhost".into(),
                port: None,
            },
            transfers: warren_control_plane::transfers::Transfers::new(
                tenants.clone(),
                registry.clone(),
            ),
            metering: warren_control_plane::metering::Metering::new(db.clone(), registry, true),
            backups: warren_control_plane::backups::Backups::disabled(),
            console: warren_control_plane::developers::Developers::new(
                db,
                tenants.clone(),
                warren_mail::Mailer::new(None)
                    .keeping(warren_mail::Outbox::new(dir.join("outbox"))),
            ),
        }
    }

    /// The status `router` answers `method path` with, with or without the operator token.
    async fn status(router: &Router, method: &str, path: &str, token: bool) -> u16 {
        let uri = path
            .replace("{slug}", "nosuch")
            .replace("{name}", "nosuch")
            .replace("{id}", "nosuch")
            .replace("{domain}", "nosuch.example.com");
        let mut request = Request::builder()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            .uri(&uri);
        if token {
            request = request.header("authorization", "Bearer secret");
        }
        let request = request.body(Body::empty()).unwrap();
        router
            .clone()
            .oneshot(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Every documented operation is served: without a token the protected ones answer 401
    /// (the operator check runs only on matched paths), the public ones 200. Every other method
    /// on a documented path answers 405 to the operator, so the router serves nothing more.
    #[tokio::test]
    async fn the_router_serves_exactly_the_documented_operations() {
        let dir = tempfile::tempdir().unwrap();
        let router = router(control_plane(dir.path()).await);
        let doc: Value = serde_json::from_str(&document()).unwrap();
        let documented = documented();
        assert!(documented.len() >= 37, "{documented:?}");
        for (method, path) in &documented {
            let public = doc["paths"][path][method].get("security").is_none();
            let expected = if public { 200 } else { 401 };
            assert_eq!(
                status(&router, method, path, false).await,
                expected,
                "{method} {path}"
            );
        }
        let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
        for path in paths {
            for method in METHODS {
                if !documented.contains(&(method.to_string(), path.clone())) {
                    assert_eq!(
                        status(&router, method, path, true).await,
                        405,
                        "{method} {path}"
                    );
                }
            }
        }
    }

    /// Routes reach the router only through the table's `routes!` (which documents them): a
    /// plain `.route(…)` would be served without documentation.
    #[test]
    fn every_route_goes_through_the_documented_table() {
        let source = include_str!("router.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap()];
        for plain in [".route(", ".nest(", ".route_service(", ".nest_service("] {
            assert!(!code.contains(plain), "router.rs calls {plain}");
        }
    }
}
