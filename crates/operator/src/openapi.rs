//! The operator API's OpenAPI 3.1 document: the description, tags and security scheme here,
//! the operations from the route table in `router.rs` (each handler's `#[utoipa::path]`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's description, tags and security scheme; the route table adds the paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warren operator API",
        description = "Tenants, plans, usage and metrics of a Warren platform. Every route but \
                       /v1/health and /v1/openapi.json takes the operator token as \
                       `Authorization: Bearer <token>`. Errors come as {data, message, status}."
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
        (name = "code", description = "A tenant's pb_hooks, pb_migrations and pb_public: deploys and downloads"),
        (name = "secrets", description = "A tenant's secrets, read by its code with $os.getenv: set, removed, names listed"),
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

/// The document as JSON, made from the route table.
pub fn document() -> String {
    let crate::router::Table {
        public,
        operator,
        outbox,
    } = crate::router::table();
    public
        .merge(operator)
        .merge(outbox)
        .into_openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_the_operator_scheme() {
        let doc: Value = serde_json::from_str(&document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["operator"]["scheme"],
            "bearer"
        );
    }
}
