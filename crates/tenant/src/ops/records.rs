//! Creating, updating and deleting one record.

use std::sync::Arc;

use serde_json::{Map, Value};
use warren_files::Upload;
use warren_filter::RequestContext;
use warren_records::{Caller, Entry, write};

use super::hooks;
use super::storage::{self, Pending};
use super::{Error, Services, publish};
use crate::Tenant;
use crate::hooks::RecordEvent;

/// A record create or update as the caller submitted it.
pub struct SaveRecord<'a> {
    /// The collection written to.
    pub entry: Arc<Entry>,
    /// The record to update; `None` creates one.
    pub id: Option<String>,
    /// Who writes.
    pub caller: &'a Caller,
    /// The request as the rules see it.
    pub ctx: RequestContext,
    /// The submitted fields.
    pub body: Map<String, Value>,
    /// The uploaded files, by body key.
    pub uploads: Vec<Upload>,
    /// The `expand` parameter of the answer.
    pub expand: &'a str,
}

/// Creates or updates a record: stages its uploads, writes, keeps or takes back the files,
/// publishes and meters the change. Returns the record as the caller sees it.
pub async fn save_record(
    tenant: &Tenant,
    services: &Services,
    request: SaveRecord<'_>,
) -> Result<Value, Error> {
    let SaveRecord {
        entry,
        id,
        caller,
        ctx,
        body,
        uploads,
        expand,
    } = request;
    let failed = match id {
        Some(_) => RecordEvent::AfterUpdateError,
        None => RecordEvent::AfterCreateError,
    };
    let record = hooks::error_record(tenant, &entry, failed, id.as_deref(), &body).await;
    // The hooks' last `e.next()` runs this write; code after it sees the saved record.
    let write = |mut body: Map<String, Value>| {
        let entry = entry.clone();
        let id = id.clone();
        async move {
            let files = &services.files;
            let pending =
                storage::stage(files, tenant, &entry, &mut body, uploads, id.as_deref()).await?;
            let save = Staged {
                entry,
                caller,
                ctx,
                body,
                expand,
            };
            write_only(tenant, services, pending, save, id.as_deref()).await
        }
    };
    let written = hooks::save_through_hooks(tenant, &entry, id.as_deref(), body, write).await;
    match &written {
        Ok(record) => {
            let event = match id {
                None => RecordEvent::AfterCreate,
                Some(_) => RecordEvent::AfterUpdate,
            };
            hooks::after(tenant, &entry, event, record).await;
        }
        Err(error) => {
            if let Some(record) = record {
                hooks::after_error(tenant, &entry, failed, record, error).await;
            }
        }
    }
    written
}

/// A record write whose uploads are in storage.
pub(super) struct Staged<'a> {
    /// The collection written to.
    pub(super) entry: Arc<Entry>,
    /// Who writes.
    pub(super) caller: &'a Caller,
    /// The request as the rules see it.
    pub(super) ctx: RequestContext,
    /// The submitted fields.
    pub(super) body: Map<String, Value>,
    /// The `expand` parameter of the answer.
    pub(super) expand: &'a str,
}

/// Creates (no `id`) or updates a record whose uploads are `pending`: writes, keeps or takes
/// back the files, publishes and meters the change.
pub(super) async fn write_staged(
    tenant: &Tenant,
    services: &Services,
    pending: Pending,
    staged: Staged<'_>,
    id: Option<&str>,
) -> Result<Value, Error> {
    let entry = staged.entry.clone();
    let record = write_only(tenant, services, pending, staged, id).await?;
    let event = match id {
        None => RecordEvent::AfterCreate,
        Some(_) => RecordEvent::AfterUpdate,
    };
    hooks::after(tenant, &entry, event, &record).await;
    Ok(record)
}

/// [`write_staged`] without the after-success hooks (the caller runs them once the hooks that
/// asked for the write have returned).
async fn write_only(
    tenant: &Tenant,
    services: &Services,
    pending: Pending,
    staged: Staged<'_>,
    id: Option<&str>,
) -> Result<Value, Error> {
    let catalog = tenant.catalog();
    let save = write::Save {
        db: tenant.db(),
        catalog: catalog.clone(),
        entry: staged.entry,
        caller: staged.caller,
        ctx: staged.ctx,
        body: staged.body,
        uploads: pending.names.clone(),
        passwords: &services.passwords,
        expand: staged.expand,
    };
    let written = match id {
        None => write::create(save).await,
        Some(id) => write::update(save, id).await,
    };
    let (record, changes) = match written {
        Ok(done) => done,
        Err(e) => {
            pending.rollback().await;
            return Err(e.into());
        }
    };
    let files = &services.files;
    pending.commit(files, tenant, &changes).await;
    storage::remove_deleted(files, tenant, &changes).await;
    publish(tenant, services, catalog, changes);
    Ok(record)
}

/// A record delete as the caller asked for it.
pub struct DeleteRecord<'a> {
    /// The record's collection.
    pub entry: Arc<Entry>,
    /// The record.
    pub id: &'a str,
    /// Who deletes.
    pub caller: &'a Caller,
    /// The request as the rules see it.
    pub ctx: RequestContext,
}

/// Deletes a record (cascading through relations), removes the files of every deleted record,
/// publishes and meters the changes.
pub async fn delete_record(
    tenant: &Tenant,
    services: &Services,
    request: DeleteRecord<'_>,
) -> Result<(), Error> {
    let DeleteRecord {
        entry,
        id,
        caller,
        ctx,
    } = request;
    let failed = RecordEvent::AfterDeleteError;
    let record = match hooks::error_record(tenant, &entry, failed, None, &Map::new()).await {
        Some(_) => hooks::stored(tenant, &entry, id).await.ok(),
        None => None,
    };
    // The hooks' last `e.next()` runs this delete.
    let write = |_: Map<String, Value>| {
        let entry = entry.clone();
        async move {
            let catalog = tenant.catalog();
            let changes =
                write::delete(tenant.db(), catalog.clone(), entry.clone(), caller, ctx, id).await?;
            storage::remove_deleted(&services.files, tenant, &changes).await;
            publish(tenant, services, catalog, changes);
            Ok(serde_json::json!({ "id": id, "collectionName": entry.collection.name }))
        }
    };
    match hooks::delete_through_hooks(tenant, &entry, id, write).await {
        Ok(gone) => {
            hooks::after(tenant, &entry, RecordEvent::AfterDelete, &gone).await;
            Ok(())
        }
        Err(error) => {
            if let Some(record) = record {
                hooks::after_error(tenant, &entry, failed, record, &error).await;
            }
            Err(error)
        }
    }
}
