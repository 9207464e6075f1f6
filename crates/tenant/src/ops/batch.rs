//! A batch: several record writes in one transaction, their uploads staged first and kept or
//! taken back together.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use warren_files::Upload;
use warren_filter::RequestContext;
use warren_records::batch::{self, Action, Admit, Item, Outcome};
use warren_records::{Caller, Entry};

use super::storage::{self, Pending};
use super::{Error, Services, publish};
use super::{hooks, requests};
use crate::Tenant;
use crate::hooks::{HookRequest, RecordEvent};

/// One write of a batch, as submitted.
pub struct BatchItem {
    /// The collection it writes to.
    pub entry: Arc<Entry>,
    /// What it does.
    pub action: Action,
    /// Its body (ignored by deletes).
    pub body: Map<String, Value>,
    /// Its request context.
    pub ctx: RequestContext,
    /// Its `expand` parameter.
    pub expand: String,
    /// Its uploaded files, by body key.
    pub uploads: Vec<Upload>,
    /// What its request hooks see of the request (the body is filled in here).
    pub request: HookRequest,
}

/// A batch as the caller submitted it.
pub struct Batch<'a> {
    /// Who writes.
    pub caller: &'a Caller,
    /// The writes, in order.
    pub items: Vec<BatchItem>,
    /// Past this instant the batch fails and rolls back.
    pub deadline: Instant,
    /// Decides whether each item may run (rate limits).
    pub admit: Admit<'a>,
}

/// A failed batch. Nothing of it was written and its uploads were taken back.
#[derive(Debug)]
pub enum BatchError {
    /// Item `index` failed with `error`.
    Item {
        /// Index of the failing item.
        index: usize,
        /// Its error.
        error: Error,
    },
    /// The batch did not finish before its deadline.
    TimedOut,
}

/// Runs a batch: stages every item's uploads, runs the items in one transaction, keeps or
/// takes back the files, publishes and meters the changes. Returns each item's outcome.
pub async fn run_batch(
    tenant: &Tenant,
    services: &Services,
    request: Batch<'_>,
) -> Result<Vec<Outcome>, BatchError> {
    let Batch {
        caller,
        items,
        deadline,
        admit,
    } = request;
    let (items, pendings) = stage_items(tenant, services, items).await?;
    let catalog = tenant.catalog();
    let bounds = batch::Bounds { deadline, admit };
    let ran = batch::run(
        tenant.db(),
        catalog.clone(),
        caller,
        items,
        &services.passwords,
        bounds,
    )
    .await;
    let (outcomes, changes) = match ran {
        Ok(done) => done,
        Err(failure) => {
            storage::rollback_all(pendings).await;
            return Err(match failure {
                batch::Failure::Item { index, error } => BatchError::Item {
                    index,
                    error: error.into(),
                },
                batch::Failure::TimedOut => BatchError::TimedOut,
            });
        }
    };
    let files = &services.files;
    for pending in pendings {
        pending.commit(files, tenant, &changes).await;
    }
    storage::remove_deleted(files, tenant, &changes).await;
    publish(tenant, services, catalog, changes);
    Ok(outcomes)
}

/// Stages every item's uploads, in order; on the first refusal takes back what was staged.
async fn stage_items(
    tenant: &Tenant,
    services: &Services,
    items: Vec<BatchItem>,
) -> Result<(Vec<Item>, Vec<Pending>), BatchError> {
    let mut staged = Vec::with_capacity(items.len());
    let mut pendings = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let BatchItem {
            entry,
            action,
            mut body,
            ctx,
            expand,
            uploads,
            request,
        } = item;
        let existing = match &action {
            Action::Update(id) => Some(id.clone()),
            Action::Upsert => body
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_string),
            _ => None,
        };
        // The tenant's request hooks, then its before-write hooks, before anything of this
        // item is staged.
        let upsert_creates = matches!(action, Action::Upsert)
            && !hooks::exists(tenant, &entry, existing.as_deref()).await;
        let event = match &action {
            Action::Delete(id) => (RecordEvent::DeleteRequest, Some(id.as_str())),
            Action::Create => (RecordEvent::CreateRequest, None),
            _ if upsert_creates => (RecordEvent::CreateRequest, None),
            _ => (RecordEvent::UpdateRequest, existing.as_deref()),
        };
        let requested = requests::batch_item(tenant, &entry, event, &mut body, &request).await;
        if let Err(error) = requested {
            storage::rollback_all(pendings).await;
            return Err(BatchError::Item { index, error });
        }
        let hooked = match &action {
            Action::Delete(id) => hooks::before_delete(tenant, &entry, id).await,
            Action::Upsert if upsert_creates => {
                hooks::before_save(tenant, &entry, None, &mut body).await
            }
            _ => hooks::before_save(tenant, &entry, existing.as_deref(), &mut body).await,
        };
        if let Err(error) = hooked {
            storage::rollback_all(pendings).await;
            return Err(BatchError::Item { index, error });
        }
        let files = &services.files;
        let result = storage::stage(
            files,
            tenant,
            &entry,
            &mut body,
            uploads,
            existing.as_deref(),
        );
        let pending = match result.await {
            Ok(pending) => pending,
            Err(error) => {
                storage::rollback_all(pendings).await;
                return Err(BatchError::Item { index, error });
            }
        };
        staged.push(Item {
            entry,
            action,
            body,
            ctx,
            expand,
            uploads: pending.names.clone(),
        });
        pendings.push(pending);
    }
    Ok((staged, pendings))
}
