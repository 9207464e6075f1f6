//! Backups of tenants: consistent online snapshots of a tenant's databases and stored files,
//! compressed (zstd) and checksummed (sha256), kept in a target (an S3 bucket or a local
//! directory), listed, verified and restored.
//!
//! Layout in a target: `<tenant id>/<backup id>/` holds `data.db.zst`, `auxiliary.db.zst`,
//! `storage.tar.zst`, `s3files.tar.zst` (files the tenant keeps in S3, when it does) and,
//! written last, `manifest.json`. A backup without its manifest is an
//! unfinished upload and is never listed. Restores check every object against the manifest and
//! run `PRAGMA integrity_check` before anything is put in place.
//!
//! Continuous WAL shipping ([`ship`]) adds `wal/<tenant id>/<backup id>/<seq>.wal.zst`
//! segments (the transactions committed after that backup's snapshot, numbered from 0) and
//! `wal/<tenant id>/<backup id>/files/<path>` (stored files uploaded after it); a
//! point-in-time restore ([`pitr`]) replays them onto the snapshot up to a moment. A chain
//! also holds `wal/<tenant id>/<backup id>/state/<seq>.tar.zst` ([`state`]): the tenant's
//! secrets (never in a snapshot) and the code deployed after the snapshot, which a node taking
//! the tenant over applies on top of it.
//!
//! Ownership generations (fencing for a cluster): every snapshot id and segment name carries
//! the ownership generation of the node that wrote it (`-o<10 digits>`; nothing for 0, a single
//! node's layout), and so does the manifest. A restore of the latest state ([`latest`]) uses
//! only the newest chain of the highest generation and, within a chain, only segments shipped
//! under the chain's own generation, so a stale owner's late uploads are never replayed.
//!
//! What a node's death can lose: with asynchronous shipping, the acknowledged commits not yet
//! shipped (about one shipping interval plus one upload); with synchronous shipping (a plan's
//! `shipping: sync`, see `warren_store::CommitLog::set_sync`) no acknowledged commit, since a
//! write returns only once the segment holding its commit is stored — a write the target does
//! not take in time is refused while committed locally, as after a crash before the answer.
//!
//! It knows tenant directories and files; which slug names which tenant is the control plane's
//! business. It must not depend on HTTP crates.

mod archive;

/// The tenant's code folders a snapshot packs beside its data, one `<name>.tar.zst` each (the
/// names `warren_tenant::code` gives them; this crate does not depend on the tenant runtime).
pub const CODE_FOLDERS: [&str; 3] = ["pb_hooks", "pb_migrations", "pb_public"];
pub mod latest;
pub mod manifest;
pub mod pitr;
pub mod remote;
pub mod restore;
pub mod ship;
pub mod snapshot;
pub mod state;
pub mod target;
pub mod wal;

pub use manifest::{Manifest, ObjectEntry};
pub use target::{S3Settings, Target};

/// Errors of backups and restores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backup target (bucket or directory) failed or refused a request.
    #[error("backup target: {0}")]
    Target(String),
    /// No such backup (or object of a backup).
    #[error("backup not found: {0}")]
    NotFound(String),
    /// A backup's objects do not match its manifest, or cannot be read: it is refused.
    #[error("the backup is damaged: {0}")]
    Corrupt(String),
    /// A setting or argument was rejected; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// SQLite failed on a copy.
    #[error(transparent)]
    Store(#[from] warren_store::Error),
    /// Local files failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<warren_store::sql::Error> for Error {
    fn from(e: warren_store::sql::Error) -> Self {
        Error::Store(e.into())
    }
}

/// Progress of a long backup or restore: what is being done, and how far (bytes).
#[derive(Debug, Clone)]
pub struct Progress {
    /// What is being done, e.g. `upload data.db.zst`.
    pub step: String,
    /// Bytes done.
    pub done: u64,
    /// Bytes in all (0 when unknown).
    pub total: u64,
}

/// Receives progress reports; must be cheap (it runs on the copying task).
pub type Report<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// A report that goes nowhere.
pub fn quiet(_: Progress) {}

/// The current time as RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

pub(crate) fn format_time(t: time::OffsetDateTime) -> String {
    t.replace_nanosecond((t.nanosecond() / 1_000_000) * 1_000_000)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A moment in ms since the Unix epoch as RFC 3339 with milliseconds, UTC.
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(format_time)
        .unwrap_or_default()
}

/// Parses an RFC 3339 moment (e.g. `2026-11-25T18:30:00Z`).
pub fn parse_time(text: &str) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| Error::Invalid(format!("{text:?} is not an RFC 3339 time")))
}
