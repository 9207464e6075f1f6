//! The control plane's domain: tenants and their lifecycle in the control database, accounts,
//! plans, usage and metering, custom domains and certificates, the hostname directory, backups
//! and their policy, restore drills, imports and exports, the mail outbox, and the operator token.
//!
//! It provisions tenants and sets their superusers through the tenant runtime, and never reads
//! or writes a tenant's data itself. Tenants are deleted, suspended, resumed and have their
//! files replaced only through [`lifecycle`], which drains them in the tenant registry
//! (`warren_tenant::Registry`) first. It serves no HTTP: the operator API is `warren-operator`
//! and the console is `warren-console`.

pub mod accounts;
pub mod backup_status;
pub mod backups;
pub mod certificates;
pub mod code;
pub mod dashboard_links;
pub mod developers;
pub mod directory;
pub mod dns;
pub mod domains;
pub mod drills;
pub mod error;
pub mod lifecycle;
pub mod metering;
pub mod metrics;
pub mod new_tenants;
pub mod operator;
pub mod outbox;
pub mod plans;
pub mod projects;
pub mod relay;
pub mod secrets;
pub mod slug;
pub mod status;
pub mod tenants;
pub mod transfers;
pub mod usage_series;

use std::path::{Path, PathBuf};

pub use directory::Directory;
pub use error::{Error, Result};
pub use lifecycle::Lifecycle;
pub use status::TenantStatus;
pub use tenants::{TenantInfo, Tenants};
use warren_store::{Database, Migration, Options};

/// The control database's schema migrations.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/control/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/control/0002_console.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/control/0003_plans_usage.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../migrations/control/0004_domains_certificates.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/control/0005_backups.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../../migrations/control/0008_account_plans.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../../migrations/control/0009_plan_backups.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../../migrations/control/0010_plan_code_limits.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../../migrations/control/0011_plan_shipping.sql"),
    },
    Migration {
        version: 12,
        sql: include_str!("../../migrations/control/0012_relay_batches.sql"),
    },
];

/// Opens (creating and migrating if needed) the control database of `data_dir`: `control.db`,
/// or, on a node of a cluster that ships it ([`cluster_control_dir`] holds it), that one.
pub async fn open_control_db(data_dir: &Path) -> Result<Database> {
    tokio::fs::create_dir_all(data_dir)
        .await
        .map_err(Error::Io)?;
    let shipped = cluster_control_dir(data_dir).join("data.db");
    let path = if shipped.is_file() {
        shipped
    } else {
        data_dir.join("control.db")
    };
    open_control_db_file(&path, false).await
}

/// Opens (creating and migrating if needed) the control database file at `path`; `shipped`
/// opens it for WAL shipping (see `warren_store::Database::open_shipped`).
pub async fn open_control_db_file(path: &Path, shipped: bool) -> Result<Database> {
    let options = Options {
        readers: 4,
        cache_kib: 8192,
        migrations: MIGRATIONS,
        durable: true,
        // CLI commands write it while a server runs.
        exclusive: false,
    };
    Ok(if shipped {
        Database::open_shipped(path, options).await?
    } else {
        Database::open(path, options).await?
    })
}

/// Where a cluster node keeps the control database it ships to the backup target
/// (`<data dir>/cluster/control/data.db`, laid out like a tenant's directory).
pub fn cluster_control_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cluster").join("control")
}

/// Where tenants' directories live inside the data directory.
pub fn tenants_root(data_dir: &Path) -> PathBuf {
    data_dir.join("tenants")
}

/// The control plane's parts, shared by the operator API's handlers and the console's pages.
#[derive(Clone)]
pub struct ControlPlane {
    /// Tenant bookkeeping (control database) and provisioning.
    pub tenants: Tenants,
    /// The registry of open tenants, closed when a tenant is deleted.
    pub registry: warren_tenant::Registry,
    /// Hostname → tenant cache.
    pub directory: Directory,
    /// The operator's bearer token.
    pub operator_token: operator::OperatorToken,
    /// Public base of tenant URLs: scheme, platform domain and port.
    pub urls: tenants::UrlScheme,
    /// Developers' accounts, sessions, their projects and the platform's mail (the console's
    /// pages are in `warren-console`).
    pub console: developers::Developers,
    /// Usage counters, their persistence, and process metrics.
    pub metering: metering::Metering,
    /// Backups and restores of tenants (disabled without a backup target).
    pub backups: backups::Backups,
    /// Imports of uploaded PocketBase zips and exports as zips.
    pub transfers: transfers::Transfers,
}

impl ControlPlane {
    /// Deletes, suspends and resumes this server's tenants.
    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle::new(
            self.tenants.clone(),
            self.registry.clone(),
            self.directory.clone(),
        )
    }
}
