//! The tenant runtime: one directory and one SQLite database per tenant, opened lazily on first
//! use, closed when idle or pushed out by the LRU cap, and handed to request handlers as a
//! cheap [`Tenant`] handle; and the write pipeline ([`ops`]) every change to a tenant's records
//! and collections goes through.
//!
//! It knows tenants by id only; which hostname reaches which tenant is the control plane's
//! business. It must not depend on HTTP crates.

pub mod archive;
mod automigrate;
pub mod backups;
pub mod code;
pub mod cron;
mod dormant;
pub mod handoff;
pub mod hooks;
pub mod locality;
pub mod mail;
pub mod meter;
pub mod ops;
pub mod outbound;
pub mod public_url;
mod registry;
pub mod secrets;
mod snapshot;
pub mod superusers;
pub mod transfer;

use std::path::{Path, PathBuf};

pub use locality::Locality;
pub use meter::Meter;
pub use registry::{Drained, Registry, RegistryConfig, Shipper, Tenant};
use warren_store::sql::{Connection, params, params_from_iter};
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
    /// Password hashing failed.
    #[error(transparent)]
    Auth(#[from] warren_secrets::Error),
    /// Input was rejected; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// Input is larger than allowed; the message says what the limit is.
    #[error("{0}")]
    TooLarge(String),
    /// The tenant is closed for a moment (its data is being replaced); retry shortly.
    #[error("the tenant is closed while its files change")]
    Draining,
    /// The tenant is served by another node of the cluster; this node's copy is not its data.
    #[error("the tenant is served by another node")]
    Elsewhere,
    /// Files of the tenant could not be created or removed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for the tenant runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<warren_store::sql::Error> for Error {
    fn from(e: warren_store::sql::Error) -> Self {
        Error::Store(e.into())
    }
}

/// Migrations of tenant system tables created by earlier Warren versions. A new tenant's
/// schema is made by [`provision`] from the schema crate's system collections (their token
/// secrets are drawn per tenant, so they cannot live in a shared SQL file).
pub const MIGRATIONS: &[Migration] = &[];

/// File name of a tenant's database inside its directory.
pub const DATABASE_FILE: &str = "data.db";

/// Database options for a tenant: two readers, and a page cache of up to 4 MiB per connection,
/// filled only with pages the tenant reads, so a small or idle tenant holds little while a
/// scan of a 10,000-record collection stays in memory (1 MiB made every unindexed list read
/// the table again through the kernel: ×4.5 PocketBase instead of ×6.2).
///
/// The process that opens a tenant holds its `data.db` for itself until it closes the tenant
/// ([`Options::exclusive`]): a read then costs no `fcntl` lock (a view reads twice: the
/// token's record, then the record). Another program that needs the files of a served tenant
/// asks the server to hold the tenant closed first (`warren tenant hold`).
pub fn database_options() -> Options {
    Options {
        readers: 2,
        cache_kib: 4096,
        migrations: MIGRATIONS,
        durable: true,
        exclusive: true,
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
    let path = dir.join(DATABASE_FILE);
    let created = warren_store::create_file(path.clone(), |c| {
        initialize(c).map_err(|e| match e {
            Error::Store(e) => e,
            other => warren_store::Error::Task(other.to_string()),
        })?;
        // Read back as an opening reads them, in the transaction that wrote them.
        Ok(snapshot::Contents {
            collections: warren_records::Catalog::read_rows(c)
                .map_err(|e| warren_store::Error::Task(e.to_string()))?,
            settings: warren_records::settings::stored_in(c)
                .map_err(|e| warren_store::Error::Task(e.to_string()))?,
        })
    })
    .await;
    let contents = match created {
        Ok(contents) => contents,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e.into());
        }
    };
    // Without a snapshot the first opening reads the database instead: nothing is lost.
    let saved = tokio::task::spawn_blocking(move || {
        let files = dormant::FileState::of(&path)?;
        snapshot::write(&dir, files, contents)
    })
    .await;
    if let Ok(Err(e)) = saved {
        tracing::warn!(tenant = %id, error = %e, "catalog snapshot not written");
    }
    Ok(())
}

/// Creates PocketBase's system tables and system collections (with fresh secrets) in one
/// transaction.
fn initialize(conn: &Connection) -> Result<()> {
    let collections = warren_schema::system::system_collections();
    for statement in warren_schema::system::init_statements(&collections) {
        conn.execute_batch(&statement)?;
    }
    let columns = warren_schema::CollectionRow::COLUMNS
        .map(|c| format!("`{c}`"))
        .join(", ");
    let placeholders = vec!["?"; warren_schema::CollectionRow::COLUMNS.len()].join(", ");
    let insert = format!("INSERT INTO `_collections` ({columns}) VALUES ({placeholders})");
    for collection in &collections {
        let values: Vec<_> = collection
            .to_row()
            .values()
            .iter()
            .map(warren_records::sql::from_schema)
            .collect();
        conn.execute(&insert, params_from_iter(values))?;
    }
    let applied = now_micros();
    // Recording PocketBase's own migrations lets stock PocketBase open an exported tenant.
    for name in warren_schema::system::APPLIED_MIGRATIONS {
        conn.execute(
            "INSERT INTO `_migrations` (file, applied) VALUES (?1, ?2)",
            params![name, applied],
        )?;
    }
    Ok(())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Opens tenant `id`'s database directly (for CLI commands); the tenant must exist.
pub async fn open_database(root: &Path, id: &str) -> Result<Database> {
    let path = tenant_dir(root, id).join(DATABASE_FILE);
    if !tokio::fs::try_exists(&path).await? {
        return Err(Error::NotFound);
    }
    Ok(Database::open(path, database_options()).await?)
}
