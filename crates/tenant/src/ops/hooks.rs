//! The tenant's record hooks (`onRecordCreate` ... in its `pb_hooks`) around the pipeline's
//! writes. A tenant whose code listens for nothing pays one look at a loaded cell.
//!
//! Before-write hooks see the record as it will be written (for an update, the stored record
//! with the submitted fields over it) and may change it or refuse; only the fields the caller
//! submitted or a hook changed are written. They run before uploads are staged, so a refusal
//! leaves nothing behind. After-success hooks see the record as written; their failures are
//! logged by the engine and do not undo the write.

use serde_json::{Map, Value};
use warren_records::{Caller, Entry, read};

use super::Error;
use crate::Tenant;
use crate::hooks::RecordEvent;

/// Runs the `Create` (no `id`) or `Update` hooks on `body`, leaving in it what is to be written.
pub(super) async fn before_save(
    tenant: &Tenant,
    entry: &Entry,
    id: Option<&str>,
    body: &mut Map<String, Value>,
) -> Result<(), Error> {
    let event = if id.is_some() {
        RecordEvent::Update
    } else {
        RecordEvent::Create
    };
    let name = entry.collection.name.as_str();
    let Some(code) = tenant.code().await.filter(|c| c.listens(event, name)) else {
        return Ok(());
    };
    let mut record = match id {
        Some(id) => stored(tenant, entry, id).await?,
        None => Map::new(),
    };
    for (key, value) in body.iter() {
        record.insert(key.clone(), value.clone());
    }
    record.insert("collectionName".into(), name.into());
    record.insert("collectionId".into(), entry.collection.id.as_str().into());
    let before = record.clone();
    let after = code.record_event(tenant, event, name, record).await?;
    for (key, value) in after {
        if key == "id" && id.is_some() {
            continue;
        }
        if body.contains_key(&key) || before.get(&key) != Some(&value) {
            body.insert(key, value);
        }
    }
    Ok(())
}

/// Runs the `Delete` hooks on the stored record `id`; their refusal stops the delete.
pub(super) async fn before_delete(tenant: &Tenant, entry: &Entry, id: &str) -> Result<(), Error> {
    let name = entry.collection.name.as_str();
    let Some(code) = tenant
        .code()
        .await
        .filter(|c| c.listens(RecordEvent::Delete, name))
    else {
        return Ok(());
    };
    let mut record = stored(tenant, entry, id).await?;
    record.insert("collectionName".into(), name.into());
    record.insert("collectionId".into(), entry.collection.id.as_str().into());
    code.record_event(tenant, RecordEvent::Delete, name, record)
        .await?;
    Ok(())
}

/// Runs the after-success hooks of `event` on the written `record`.
pub(super) async fn after(tenant: &Tenant, entry: &Entry, event: RecordEvent, record: &Value) {
    let name = entry.collection.name.as_str();
    let Some(code) = tenant.loaded_code().filter(|c| c.listens(event, name)) else {
        return;
    };
    let mut record = record.as_object().cloned().unwrap_or_default();
    record.remove("expand");
    // A failure is in the tenant's logs already; the write stands, as in PocketBase.
    let _ = code.record_event(tenant, event, name, record).await;
}

/// Whether record `id` exists (only asked when the tenant's code listens for updates or
/// creates of the collection).
pub(super) async fn exists(tenant: &Tenant, entry: &Entry, id: Option<&str>) -> bool {
    let name = entry.collection.name.as_str();
    let listening = tenant.code().await.is_some_and(|c| {
        c.listens(RecordEvent::Create, name) || c.listens(RecordEvent::Update, name)
    });
    match id {
        Some(id) if listening => stored(tenant, entry, id).await.is_ok(),
        // Without listeners the answer does not matter; with no id it is a create.
        _ => false,
    }
}

/// The stored record `id` as a superuser sees it.
async fn stored(tenant: &Tenant, entry: &Entry, id: &str) -> Result<Map<String, Value>, Error> {
    let caller = Caller::Superuser { record: Map::new() };
    let catalog = tenant.catalog();
    let entry = read::collection(&catalog, &entry.collection.id)?;
    let ctx = caller.context();
    let value = read::view(tenant.db(), catalog, entry, &caller, ctx, id, "").await?;
    Ok(value.as_object().cloned().unwrap_or_default())
}
