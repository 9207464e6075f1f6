//! The tenant runtime: one directory and one SQLite database per tenant, opened lazily on first
//! use, closed when idle or pushed out by the LRU cap, and handed to request handlers as a
//! cheap [`Tenant`] handle.
//!
//! It knows tenants by id only; which hostname reaches which tenant is the control plane's
//! business. It must not depend on HTTP crates.

mod registry;
pub mod superusers;

use std::path::{Path, PathBuf};

pub use registry::{Registry, RegistryConfig, Tenant};
use warren_store::{Database, Migration, Options};

/// Errors from the tenant runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No tenant with that id exists on this node.
    #[error("tenant not found")]
    NotFound,
    /// The tenant's database failed.
    #[error(transparent)]
    Store(#[from] warren_store::Error),
    /// SQLite failed inside a tenant operation.
    #[error("sqlite: {0}")]
    Sqlite(#[from] warren_store::rusqlite::Error),
    /// Password hashing failed.
    #[error(transparent)]
    Auth(#[from] warren_auth::Error),
    /// Input was rejected; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// Files of the tenant could not be created or removed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for the tenant runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The tenant database's schema migrations (PocketBase's system tables first).
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: include_str!("../../../migrations/tenant/0001_init.sql"),
}];

/// File name of a tenant's database inside its directory.
pub const DATABASE_FILE: &str = "data.db";

/// Database options for a tenant: two readers, a small page cache (a node holds thousands).
pub fn database_options() -> Options {
    Options {
        readers: 2,
        cache_kib: 1024,
        migrations: MIGRATIONS,
    }
}

/// The directory of tenant `id` under `root`.
pub fn tenant_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Creates tenant `id`'s directory and database with its system tables. Fails if it exists.
pub async fn provision(root: &Path, id: &str) -> Result<()> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(Error::Invalid(
            "tenant ids are lowercase letters and digits".into(),
        ));
    }
    let dir = tenant_dir(root, id);
    tokio::fs::create_dir_all(root).await?;
    tokio::fs::create_dir(&dir).await?;
    let db = Database::open(dir.join(DATABASE_FILE), database_options()).await?;
    drop(db);
    Ok(())
}

/// Opens tenant `id`'s database directly (for CLI commands); the tenant must exist.
pub async fn open_database(root: &Path, id: &str) -> Result<Database> {
    let path = tenant_dir(root, id).join(DATABASE_FILE);
    if !tokio::fs::try_exists(&path).await? {
        return Err(Error::NotFound);
    }
    Ok(Database::open(path, database_options()).await?)
}
