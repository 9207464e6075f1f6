//! Warren's collections and field types as a pure domain crate: the PocketBase-compatible
//! collection and field model with its exact JSON shapes, the system collections every tenant
//! starts with, collection validation, the DDL and schema migrations of a tenant database, the
//! fields a view's SELECT yields, and record values (normalisation, validation, SQL conversion,
//! record JSON).
//!
//! It produces SQL text and typed values only; the `store` crate executes them. It must not
//! depend on axum, the SQLite driver or any other Warren crate (its tests run the DDL through
//! `store`).

pub mod collection;
pub mod datetime;
pub mod ddl;
pub mod error;
pub mod field;
pub mod id;
pub mod index;
pub mod json_out;
pub mod record;
pub mod select;
pub mod system;
pub mod text;
pub mod upgrade;
pub mod validate;
pub mod value;
pub mod view;

pub use collection::{
    AuthOptions, Collection, CollectionOptions, CollectionRow, CollectionType, EmailTemplate,
    TokenConfig,
};
pub use error::{Error, FieldError, Result, ValidationErrors, ValidationNode};
pub use field::{Field, FieldKind, Fields};
pub use index::Index;
pub use record::{
    PrepareOptions, PreparedRecord, RecordData, RecordJson, RelationChecker, Visibility,
    prepare_record, record_from_row, resolve_modifiers,
};
pub use system::system_collections;
pub use text::SharedText;
pub use validate::{RuleChecker, validate_collection};
pub use value::{SqlRef, SqlValue};
