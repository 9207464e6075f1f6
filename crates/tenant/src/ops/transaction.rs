//! What follows a transaction the tenant's code held and committed (`$app.runInTransaction`,
//! migrations): the steps the pipeline takes after any write, once, after the commit — the
//! catalog and settings read again when collections or SQL changed, the files of deleted
//! records and collections removed, realtime events published and the writes metered.

use warren_records::Change;

use super::{Error, Services, publish, storage};
use crate::Tenant;

/// What a committed transaction did, as its holder collected it step by step.
#[derive(Default)]
pub struct Committed {
    /// Every record change, in order.
    pub changes: Vec<Change>,
    /// Whether collections, settings or raw SQL changed the schema (the caches are stale).
    pub schema_changed: bool,
    /// Ids of the collections deleted (their files go).
    pub deleted_collections: Vec<String>,
}

/// Makes a committed transaction visible: reloads the caches it made stale, removes the files
/// it orphaned, publishes and meters its record changes.
pub async fn after_transaction(
    tenant: &Tenant,
    services: &Services,
    committed: Committed,
) -> Result<(), Error> {
    let Committed {
        changes,
        schema_changed,
        deleted_collections,
    } = committed;
    if schema_changed {
        tenant.reload_catalog().await?;
        tenant.forget_settings();
    }
    for id in &deleted_collections {
        storage::remove_collection(&services.files, tenant, id).await;
    }
    storage::remove_deleted(&services.files, tenant, &changes).await;
    if !changes.is_empty() {
        publish(tenant, services, tenant.catalog(), changes);
    }
    Ok(())
}
