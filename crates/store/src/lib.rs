//! The only crate that touches SQLite: opening files with Warren's pragmas, a small read pool,
//! the single group-committing writer of each database, and schema migrations.
//!
//! Everything above this crate (tenants, records, the control plane) gets a [`Database`] handle
//! and runs closures on it: reads on a pooled read-only connection, writes through the one writer.
//! It must not depend on HTTP crates or on any other Warren crate. No other crate names the
//! driver: closures use the driver's types under [`sql`], and failures arrive as the typed
//! [`Error`] (a unique violation, a busy database, no rows, ...), never as driver codes.

pub mod commits;
mod console;
mod copy;
mod database;
mod error;
mod migrate;
pub mod sql;
mod transaction;
mod version;
mod writer;

pub use commits::{Commit, CommitLog};
pub use console::{ConsoleColumn, ConsoleError, ConsoleLimits, ConsoleOutput, Fence, run_console};
pub use copy::{scratch_copy, vacuum_into};
pub use database::{
    ChangeWatcher, Closed, Connected, Database, EXCLUSIVE_VFS, Options, connect, create_file,
};
pub use error::{Error, Result};
pub use migrate::Migration;
pub use transaction::Transaction;
pub use version::Versions;
