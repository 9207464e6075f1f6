//! PocketBase's own cron jobs, registered in every tenant when it opens, with PocketBase's ids
//! and schedules: database upkeep at midnight, hourly MFA and OTP cleanup, and log cleanup
//! every six hours. (The backups job, `__pbAutoBackup__`, follows the tenant's settings and is
//! added by the [`super::Scheduler`].)

use warren_store::sql::Connection;

use super::{Crons, job_fn};
use crate::Tenant;

/// Id of the automatic backups job (present while `backups.cron` is set).
pub const AUTO_BACKUP: &str = "__pbAutoBackup__";
/// Id of the job deleting logs older than `logs.maxDays`.
pub const LOGS_CLEANUP: &str = "__pbLogsCleanup__";
/// Id of the job checkpointing the WAL and running `PRAGMA optimize`.
pub const DB_OPTIMIZE: &str = "__pbDBOptimize__";
/// Id of the job deleting expired MFA sessions.
pub const MFA_CLEANUP: &str = "__pbMFACleanup__";
/// Id of the job deleting expired one-time passwords.
pub const OTP_CLEANUP: &str = "__pbOTPCleanup__";

/// Registers the system jobs in `crons`, in the order PocketBase 0.40 lists them.
pub fn register(crons: &Crons) {
    let jobs = [
        (DB_OPTIMIZE, "0 0 * * *", job_fn(optimize)),
        (MFA_CLEANUP, "0 * * * *", job_fn(mfa_cleanup)),
        (OTP_CLEANUP, "0 * * * *", job_fn(otp_cleanup)),
        (LOGS_CLEANUP, "0 */6 * * *", job_fn(logs_cleanup)),
    ];
    for (id, expression, run) in jobs {
        // Fixed, valid expressions and ids far below the cap: this cannot fail.
        let _ = crons.add(id, expression, run);
    }
}

async fn logs_cleanup(tenant: Tenant) -> Result<(), String> {
    tenant
        .logs()
        .prune()
        .await
        .map(drop)
        .map_err(|e| format!("Failed to delete old logs: {e}"))
}

async fn mfa_cleanup(tenant: Tenant) -> Result<(), String> {
    warren_auth::mfa::delete_expired(tenant.db(), &tenant.catalog())
        .await
        .map(drop)
        .map_err(|e| format!("Failed to delete expired MFA sessions: {e}"))
}

async fn otp_cleanup(tenant: Tenant) -> Result<(), String> {
    warren_auth::otp::delete_expired(tenant.db(), &tenant.catalog())
        .await
        .map(drop)
        .map_err(|e| format!("Failed to delete expired OTPs: {e}"))
}

/// Truncates the WAL of the main and (when open) auxiliary database and runs `PRAGMA
/// optimize` on the main one, between two group commits. A database whose WAL is shipped is
/// checkpointed by its shipper, never here.
async fn optimize(tenant: Tenant) -> Result<(), String> {
    let shipped = tenant.db().commit_log().is_some();
    tenant
        .db()
        .with_writer_idle(move |c| upkeep(c, !shipped, true))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("Failed to run periodic PRAGMA optimize: {e}"))?;
    if let Some(aux) = tenant.logs().open_database() {
        aux.with_writer_idle(|c| upkeep(c, true, false))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("Failed to run periodic PRAGMA wal_checkpoint: {e}"))?;
    }
    Ok(())
}

fn upkeep(c: &Connection, checkpoint: bool, optimize: bool) -> Result<(), String> {
    if checkpoint {
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| e.to_string())?;
    }
    if optimize {
        c.execute_batch("PRAGMA optimize")
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
