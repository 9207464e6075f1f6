//! The record engine: a tenant's collections as a cached [`Catalog`], and record list, view,
//! create, update and delete with PocketBase's API rules, expand and projections.
//!
//! It runs SQL on a tenant's [`warren_store::Database`], compiles rules and filters with
//! `warren-filter`, validates values with `warren-schema`, and hashes passwords and checks
//! tokens with `warren-secrets`. The auth flows (login, OTP, MFA, account emails) live above it
//! in `warren-auth`. It must not depend on HTTP, mail or `warren-auth`.

pub mod advisor;
pub mod auth;
pub mod batch;
pub mod caller;
pub mod catalog;
pub mod change;
pub mod collections;
mod compiled;
mod counts;
mod error;
mod expand;
mod form;
pub mod limits;
pub(crate) mod parsed;
pub mod policy;
pub mod rates;
pub mod read;
mod secrets;
pub mod settings;
pub mod sql;
#[cfg(test)]
mod testing;
mod topk;
mod verified;
pub mod write;

pub use caller::Caller;
pub use catalog::{Catalog, Entry, Rules};
pub use change::{Change, ChangeAction};
pub use error::{Error, Result};
