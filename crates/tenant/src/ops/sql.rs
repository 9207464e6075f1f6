//! The superuser SQL console: a query run on the tenant's `data.db`, reads on the read pool,
//! anything that writes on the writer in a transaction of its own, then the caches reloaded.

use std::time::Duration;

use warren_store::{ConsoleError, ConsoleLimits, ConsoleOutput, run_console};

use crate::Tenant;

/// PocketBase's limits (1000 rows), Warren's time and size bounds.
pub const SQL_LIMITS: ConsoleLimits = ConsoleLimits {
    max_rows: 1000,
    max_bytes: 16 << 20,
    time: Duration::from_secs(5),
};

/// Why a console query failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The query was refused, stopped or failed in SQLite: the superuser's to fix.
    #[error(transparent)]
    Query(#[from] ConsoleError),
    /// The database itself failed (closed, busy past its timeout, ...).
    #[error(transparent)]
    Store(#[from] warren_store::Error),
    /// The tenant's caches could not be reloaded after a write.
    #[error(transparent)]
    Tenant(#[from] crate::Error),
}

/// Runs `query` within [`SQL_LIMITS`]. A text that writes anything runs whole on the writer,
/// in a transaction of its own that a failure (or the time limit) rolls back, apart from
/// other requests' writes; the catalog and settings are read again afterwards, since the
/// text may have changed either.
pub async fn run_sql(tenant: &Tenant, query: String) -> Result<ConsoleOutput, SqlError> {
    let text = query.clone();
    let read = tenant
        .db()
        .read(move |conn| Ok::<_, SqlError>(run_console(conn, &text, &SQL_LIMITS, false)))
        .await?;
    match read {
        Err(ConsoleError::NeedsWriter) => {}
        other => return Ok(other?),
    }
    let output = tenant
        .db()
        .write_alone(move |conn| Ok::<_, SqlError>(run_console(conn, &query, &SQL_LIMITS, true)?))
        .await?;
    tenant.reload_catalog().await?;
    tenant.forget_settings();
    Ok(output)
}
