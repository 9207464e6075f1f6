//! Collection changes: create, update, delete, truncate and import, each followed by what
//! the tenant must see of it (a reloaded catalog, removed files, demoted realtime clients).

use serde_json::Value;
use warren_records::collections;
use warren_schema::Collection;

use super::{Error, Services, storage};
use crate::Tenant;

/// One change to a tenant's collections, as a superuser submitted it.
pub enum CollectionChange {
    /// Creates a collection from its JSON.
    Create(Value),
    /// Updates collection `collection` (id or name) with a JSON patch.
    Update {
        /// The collection's id or name.
        collection: String,
        /// The submitted changes.
        patch: Value,
    },
    /// Deletes a collection (id or name), its table and its files.
    Delete(String),
    /// Deletes every record of a collection (id or name), without events.
    Truncate(String),
    /// Imports collections (`{collections, deleteMissing}`).
    Import(Value),
}

/// Applies a collection change and makes it visible to the tenant's next requests. Returns
/// the created or updated collection.
pub async fn change_collection(
    tenant: &Tenant,
    services: &Services,
    change: CollectionChange,
) -> Result<Option<Collection>, Error> {
    let db = tenant.db();
    let changed = match change {
        CollectionChange::Create(body) => Some(collections::create(db, body).await?),
        CollectionChange::Update { collection, patch } => {
            Some(collections::update(db, &collection, patch).await?)
        }
        CollectionChange::Delete(collection) => {
            let deleted_id = tenant
                .catalog()
                .get(&collection)
                .map(|e| e.collection.id.clone());
            collections::delete(db, &collection).await?;
            tenant.reload_catalog().await?;
            if let Some(id) = deleted_id {
                storage::remove_collection(&services.files, tenant, &id).await;
            }
            return Ok(None);
        }
        CollectionChange::Truncate(collection) => {
            truncate(tenant, &collection).await?;
            return Ok(None);
        }
        CollectionChange::Import(form) => {
            collections::import(db, form).await?;
            None
        }
    };
    tenant.reload_catalog().await?;
    Ok(changed)
}

/// Deletes every record of a collection; the realtime clients bound to its records (an auth
/// collection's) become guests, since no events tell them.
async fn truncate(tenant: &Tenant, collection: &str) -> Result<(), Error> {
    let auth_id = tenant
        .catalog()
        .get(collection)
        .filter(|e| e.collection.is_auth())
        .map(|e| e.collection.id.clone());
    collections::truncate(tenant.db(), collection).await?;
    if let Some(id) = auth_id {
        tenant.broker().revoke_collection(&id);
    }
    Ok(())
}
