//! The SQLite driver's types under the store's names, for the closures run on a [`Database`].
//!
//! These are the driver's (rusqlite's) own types, re-exported so that no other crate depends on
//! the driver: changing the driver means changing this module and [`crate::Error`]'s
//! conversion, nothing above. A driver error ([`Error`]) turns into the store's typed
//! [`crate::Error`] with `?` or `.into()`; crates match that one, never driver codes.
//!
//! [`Database`]: crate::Database

pub use rusqlite::types::{ToSqlOutput, Type, Value, ValueRef};
pub use rusqlite::{
    Connection, Error, OpenFlags, OptionalExtension, Result, Row, Statement, ToSql, params,
    params_from_iter,
};
