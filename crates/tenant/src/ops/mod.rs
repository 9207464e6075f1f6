//! The tenant write pipeline: the one path every change to a tenant's records and collections
//! takes, whoever asks for it (HTTP handlers, OAuth2 sign-up, the dashboard, imports).
//!
//! Each operation takes one request struct and always does the same steps in the same order:
//! stage the uploads, write through `warren_records`, commit or roll back the staged files,
//! remove the files of deleted records, publish the realtime events, meter, and reload the
//! catalog after a collection change. Nothing else repeats those steps, so this is where record
//! hooks and cluster fencing plug in.

mod batch;
mod collections;
mod hooks;
mod oauth2;
mod records;
mod requests;
mod sql;
pub mod storage;
mod transaction;

use std::sync::Arc;

use warren_records::collections::CollectionError;
use warren_records::{Catalog, Change};

use crate::Tenant;

pub use batch::{Batch, BatchError, BatchItem, run_batch};
pub use collections::{CollectionChange, change_collection};
pub use oauth2::{LinkExternal, OAuth2SignUp, link_external, sign_up_oauth2};
pub use records::{DeleteRecord, SaveRecord, delete_record, save_record};
pub use requests::{
    Handled, auth_request, delete_record_request, list_request, listens, save_record_request,
    view_request,
};
pub use sql::{SQL_LIMITS, SqlError, run_sql};
pub use transaction::{Committed, after_transaction};

/// What the pipeline needs besides the tenant: the node's file service, its password hasher
/// and how subscribers' `fields` projections apply. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// File storage (local disk, or S3 per tenant / platform default).
    pub files: warren_files::Files,
    /// Bounded password hashing.
    pub passwords: warren_secrets::Passwords,
    /// The `fields` projection of realtime subscriptions (the HTTP layer owns that syntax).
    pub project: warren_realtime::Project,
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The record engine refused or failed the write.
    #[error(transparent)]
    Records(#[from] warren_records::Error),
    /// A collection change was refused or failed.
    #[error(transparent)]
    Collection(#[from] CollectionError),
    /// The tenant (its settings, its catalog) failed.
    #[error(transparent)]
    Tenant(#[from] crate::Error),
    /// File storage failed.
    #[error("storage: {0}")]
    Storage(#[from] warren_files::Error),
    /// The tenant's hooks refused the write (or failed).
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
}

/// Hands committed changes to the tenant's broker and meter (returns at once).
fn publish(tenant: &Tenant, services: &Services, catalog: Arc<Catalog>, changes: Vec<Change>) {
    tenant.meter().wrote_records(changes.len());
    tenant
        .broker()
        .publish(tenant.db(), catalog, changes, services.project);
}
