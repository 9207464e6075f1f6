//! Schema changes of a tenant: create, update, delete, truncate and import collections, and
//! list them for the collections API.
//!
//! Every change is one closure on the tenant's single writer. It loads the catalog inside that
//! closure (so it validates against exactly the schema it changes), validates the candidate
//! collection, runs the schema crate's DDL and writes the `_collections` row(s). The writer runs
//! the closure in a savepoint of its own: when any statement fails (a unique index over
//! duplicate data, a view query SQLite rejects), the old schema and data stay as they were.
//! Callers reload the tenant's cached catalog after a successful change.

mod ddl;
mod delete;
mod import;
mod list;
mod rules;
mod save;
#[cfg(test)]
mod tests;
mod view;

pub use delete::{delete, delete_in, truncate, truncate_in};
pub use import::{import, import_in};
pub use list::{CollectionPage, ListParams, list, list_in, scaffolds};
pub use rules::FilterRuleChecker;
pub use save::{create, create_in, update, update_in};
pub use view::{DryRun, dry_run_view, infer_view_fields};

use warren_schema::{Collection, CollectionRow, FieldError, ValidationErrors};
use warren_store::sql::{Connection, params_from_iter};

use crate::catalog::Catalog;
use crate::sql;

/// Envelope message of a failed create.
pub const CREATE_FAILED: &str = "Failed to create collection.";
/// Envelope message of a failed update.
pub const UPDATE_FAILED: &str = "Failed to update collection.";
/// Envelope message of a failed import.
pub const IMPORT_FAILED: &str = "Failed to import collections.";
/// Envelope message of a malformed request body.
pub const INVALID_DATA: &str = "An error occurred while validating the submitted data.";

/// Most `perPage` a list request may ask for.
pub const MAX_PER_PAGE: i64 = 1000;
/// `perPage` when the request names none.
pub const DEFAULT_PER_PAGE: i64 = 30;

/// Auth-related system tables whose rows point at a collection through `collectionRef`.
pub(crate) const AUTH_REF_TABLES: [&str; 4] = ["_externalAuths", "_mfas", "_otps", "_authOrigins"];

/// Why a schema change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    /// 404: no collection with that id or name.
    #[error("collection not found")]
    NotFound,
    /// 400 with per-field errors under the envelope's `data`.
    #[error("{message}")]
    Invalid {
        /// The envelope's message, e.g. [`CREATE_FAILED`].
        message: &'static str,
        /// The field errors.
        errors: ValidationErrors,
    },
    /// 400 with a message and no field details.
    #[error("{0}")]
    Rejected(String),
    /// The database failed.
    #[error(transparent)]
    Records(#[from] crate::Error),
}

impl From<warren_store::Error> for CollectionError {
    fn from(e: warren_store::Error) -> Self {
        Self::Records(e.into())
    }
}

impl From<warren_store::sql::Error> for CollectionError {
    fn from(e: warren_store::sql::Error) -> Self {
        Self::Records(e.into())
    }
}

/// Result alias of schema changes.
pub type Result<T, E = CollectionError> = std::result::Result<T, E>;

pub(super) fn invalid(message: &'static str, key: &str, error: FieldError) -> CollectionError {
    let mut errors = ValidationErrors::new();
    errors.add(key, error);
    CollectionError::Invalid { message, errors }
}

/// `all` with `new` added, or replacing the collection with its id.
pub(super) fn with_candidate(all: &[Collection], new: &Collection) -> Vec<Collection> {
    let mut out: Vec<Collection> = all.iter().filter(|c| c.id != new.id).cloned().collect();
    out.push(new.clone());
    out
}

pub(super) fn load_all(conn: &Connection) -> Result<Vec<Collection>> {
    Ok(Catalog::load(conn)?
        .entries()
        .iter()
        .map(|e| e.collection.clone())
        .collect())
}

pub(super) fn find<'a>(all: &'a [Collection], id_or_name: &str) -> Option<&'a Collection> {
    all.iter()
        .find(|c| c.id == id_or_name)
        .or_else(|| all.iter().find(|c| c.name.eq_ignore_ascii_case(id_or_name)))
}

pub(super) fn write_row(conn: &Connection, c: &Collection, insert: bool) -> Result<()> {
    let row = c.to_row();
    let mut values: Vec<_> = row.values().iter().map(sql::from_schema).collect();
    let columns = CollectionRow::COLUMNS;
    let statement = if insert {
        format!(
            "INSERT INTO `_collections` ({}) VALUES ({})",
            columns.map(|c| format!("`{c}`")).join(", "),
            vec!["?"; columns.len()].join(", ")
        )
    } else {
        values.push(warren_store::sql::Value::Text(c.id.clone()));
        format!(
            "UPDATE `_collections` SET {} WHERE `id` = ?",
            columns.map(|c| format!("`{c}` = ?")).join(", ")
        )
    };
    conn.execute(&statement, params_from_iter(values))?;
    Ok(())
}
