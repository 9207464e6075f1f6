//! The only crate that touches SQLite: opening files with Warren's pragmas, a small read pool,
//! the single group-committing writer of each database, and schema migrations.
//!
//! Everything above this crate (tenants, records, the control plane) gets a [`Database`] handle
//! and runs closures on it: reads on a pooled read-only connection, writes through the one writer.
//! It must not depend on HTTP crates or on any other Warren crate.

pub mod commits;
mod copy;
mod database;
mod migrate;
mod writer;

pub use commits::{Commit, CommitLog};
pub use copy::{scratch_copy, vacuum_into};
pub use database::{ChangeWatcher, Closed, Database, Options, create_file};
pub use migrate::Migration;
pub use rusqlite;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite returned an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The read pool could not hand out a connection.
    #[error("read pool: {0}")]
    Pool(String),
    /// The transaction holding a write could not be started or committed; nothing of it stands.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The writer task is gone (the database is closing).
    #[error("the database is closed")]
    Closed,
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// Reading or creating files failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;
