//! The operator API's OpenAPI 3.1 document, generated from the handlers' annotations.
//!
//! Every route in `router.rs` must be listed in `paths(...)` below with a `#[utoipa::path]` on
//! its handler; `tests` checks both directions (each route documented, each documented route
//! served), so a route added without documentation fails the build's tests.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    accounts, backups, domains, health, metrics, openapi, outbox, plans, tenants, transfers,
};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warren operator API",
        description = "Tenants, plans, usage and metrics of a Warren platform. Every route but \
                       /v1/health and /v1/openapi.json takes the operator token as \
                       `Authorization: Bearer <token>`. Errors come as {data, message, status}."
    ),
    paths(
        health::get_health,
        openapi::get_openapi,
        tenants::list_tenants,
        tenants::create_tenant,
        tenants::get_tenant,
        tenants::update_tenant,
        tenants::delete_tenant,
        tenants::suspend_tenant,
        tenants::resume_tenant,
        tenants::get_usage,
        plans::list_plans,
        plans::create_plan,
        plans::update_plan,
        metrics::get_metrics,
        domains::add_domain,
        domains::list_domains,
        domains::get_domain,
        domains::verify_domain,
        domains::remove_domain,
        domains::list_certificates,
        accounts::list_accounts,
        accounts::get_account,
        accounts::disable_account,
        accounts::enable_account,
        accounts::verify_account,
        accounts::update_account,
        backups::list_backups,
        backups::create_backup,
        backups::restore_backup,
        backups::verify_backup,
        crate::routes::backup_status::get_backup_status,
        crate::routes::backup_status::list_drills,
        outbox::list_outbox,
        outbox::get_outbox_message,
        transfers::import_tenant,
        transfers::get_import,
        transfers::export_tenant,
    ),
    modifiers(&OperatorToken),
    tags(
        (name = "health", description = "Liveness"),
        (name = "tenants", description = "Tenants: create, list, change, suspend, delete"),
        (name = "plans", description = "Plans and their quotas"),
        (name = "usage", description = "Metered usage per tenant and hour"),
        (name = "metrics", description = "Prometheus metrics"),
        (name = "domains", description = "Custom domains and certificates"),
        (name = "accounts", description = "Console accounts"),
        (name = "backups", description = "Backups, restores and restore drills"),
        (name = "outbox", description = "Mail kept on the server when no SMTP relay is configured"),
        (name = "transfers", description = "Imports of PocketBase zips and exports as zips"),
    )
)]
pub struct ApiDoc;

/// Declares the `operator` bearer security scheme the paths refer to.
struct OperatorToken;

impl Modify for OperatorToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Method, Request};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::operator::OperatorToken;
    use crate::tenants::UrlScheme;
    use crate::{ControlPlane, Directory, Tenants, open_control_db, tenants_root};

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// Whether a path belongs to the documented API (the console's pages do not).
    fn in_scope(path: &str) -> bool {
        path.starts_with("/v1/") || path == "/metrics"
    }

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

    /// (method, path) of every route in `router.rs`, read from its source: each `.route(` call
    /// with its path literal and the method functions (`get(`, `post(`, …) up to the next call.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("router.rs");
        let mut found = BTreeSet::new();
        for call in source.split(".route(").skip(1) {
            let call = call.split(".route_layer(").next().unwrap_or(call);
            let call = call.split(".merge(").next().unwrap_or(call);
            let Some(path) = call.split('"').nth(1) else {
                continue;
            };
            for method in METHODS {
                let needle = format!("{method}(");
                let mut rest = call;
                while let Some(at) = rest.find(&needle) {
                    let before = rest[..at].chars().next_back();
                    if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        found.insert((method.to_string(), path.to_string()));
                    }
                    rest = &rest[at + needle.len()..];
                }
            }
        }
        found.into_iter().filter(|(_, p)| in_scope(p)).collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_is_routed() {
        let routed = routed();
        let documented = documented();
        assert!(routed.len() >= 14, "{routed:?}");
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "add these routes to the OpenAPI document (openapi.rs): {undocumented:?}"
        );
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_operator_scheme() {
        let doc: Value = serde_json::from_str(&document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["operator"]["scheme"],
            "bearer"
        );
    }

    /// Every documented operation is served by the router: without a token the protected ones
    /// answer 401 (the operator check runs only on matched routes; an unrouted path gets 404
    /// and an unrouted method 405), the public ones 200.
    #[tokio::test]
    async fn every_documented_route_answers_on_the_router() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_control_db(dir.path()).await.unwrap();
        let tenants = Tenants::new(db.clone(), tenants_root(dir.path()));
        let registry = warren_tenant::Registry::new(warren_tenant::RegistryConfig {
            root: tenants_root(dir.path()),
            max_open: 4,
            idle_timeout: Duration::from_secs(60),
        });
        let directory = Directory::start(tenants.clone(), Duration::from_secs(60), |_| {})
            .await
            .unwrap();
        let state = ControlPlane {
            tenants: tenants.clone(),
            registry: registry.clone(),
            directory,
            operator_token: OperatorToken::new("secret"),
            urls: UrlScheme {
                scheme: "http".into(),
                domain: "localhost".into(),
                port: None,
            },
            transfers: crate::transfers::Transfers::new(tenants.clone(), registry.clone()),
            metering: crate::metering::Metering::new(db.clone(), registry, true),
            backups: crate::backups::Backups::disabled(),
            console: crate::developers::Developers::new(
                db,
                tenants.clone(),
                warren_mail::Mailer::new(None)
                    .keeping(warren_mail::Outbox::new(dir.path().join("outbox"))),
            ),
        };
        let doc: Value = serde_json::from_str(&document()).unwrap();
        let router = crate::router(state);
        for (method, path) in documented() {
            let operation = &doc["paths"][&path][&method];
            let public = operation.get("security").is_none();
            let uri = path
                .replace("{slug}", "nosuch")
                .replace("{name}", "nosuch")
                .replace("{id}", "nosuch")
                .replace("{domain}", "nosuch.example.com");
            let request = Request::builder()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let status = router.clone().oneshot(request).await.unwrap().status();
            let expected = if public { 200 } else { 401 };
            assert_eq!(status.as_u16(), expected, "{method} {path}");
        }
    }
}
