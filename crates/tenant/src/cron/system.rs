//! PocketBase's own cron jobs, registered in every tenant when it opens, with PocketBase's ids
//! and schedules: database upkeep at midnight, hourly MFA and OTP cleanup, and log cleanup
//! every six hours. (The backups job, `__pbAutoBackup__`, follows the tenant's settings and is
//! added by the [`super::Scheduler`].)

use warren_store::sql::Connection;

use std::sync::{Arc, LazyLock};

use super::{Crons, JobFn, Schedule, job_fn};
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

/// The system jobs, parsed once: id, schedule, what runs.
static JOBS: LazyLock<Vec<(&str, Arc<Schedule>, JobFn)>> = LazyLock::new(|| {
    let jobs = [
        (DB_OPTIMIZE, "0 0 * * *", job_fn(optimize)),
        (MFA_CLEANUP, "0 * * * *", job_fn(mfa_cleanup)),
        (OTP_CLEANUP, "0 * * * *", job_fn(otp_cleanup)),
        (LOGS_CLEANUP, "0 */6 * * *", job_fn(logs_cleanup)),
    ];
    // Fixed, valid expressions: every one parses.
    jobs.into_iter()
        .filter_map(|(id, expression, run)| {
            let schedule = Schedule::parse(expression).ok()?;
            Some((id, Arc::new(schedule), run))
        })
        .collect()
});

/// Registers the system jobs in `crons`, in the order PocketBase 0.40 lists them.
pub fn register(crons: &Crons) {
    for (id, schedule, run) in JOBS.iter() {
        // Ids far below the cap, in a new tenant's list: this cannot fail.
        let _ = crons.add_parsed(id, schedule.clone(), run.clone());
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Registry, RegistryConfig, provision};

    /// Runs the registered job `id` of `tenant` and returns its outcome.
    async fn run(tenant: &Tenant, id: &str) -> Result<(), String> {
        let job = tenant
            .crons()
            .jobs()
            .into_iter()
            .find(|j| j.id == id)
            .unwrap();
        (job.run)(tenant.clone()).await
    }

    /// The ids left in `table`, comma-separated.
    fn left(tenant: &Tenant, table: &'static str) -> impl Future<Output = String> {
        let db = tenant.db().clone();
        async move {
            db.read(move |c| {
                Ok::<_, crate::Error>(c.query_row(
                    &format!("SELECT group_concat(id) FROM `{table}`"),
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap()
        }
    }

    #[tokio::test]
    async fn the_cleanups_delete_only_expired_otps_and_mfa_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(RegistryConfig {
            root: dir.path().to_path_buf(),
            max_open: 10,
            idle_timeout: Duration::from_secs(600),
        });
        provision(dir.path(), "a").await.unwrap();
        let tenant = registry.get("a").await.unwrap();
        let users = tenant.catalog().get("users").unwrap().collection.id.clone();
        tenant
            .db()
            .write(move |c| {
                // One row from long ago and one from now in each table (OTPs live 180 s by
                // default, MFA sessions 600 s).
                for (table, extra) in [("_otps", ", password, sentTo"), ("_mfas", ", method")] {
                    let values = if table == "_otps" { ", 'h', ''" } else { ", 'password'" };
                    for (id, created) in [
                        ("old", "'2001-01-01 00:00:00.000Z'"),
                        ("new", "strftime('%Y-%m-%d %H:%M:%fZ')"),
                    ] {
                        c.execute(
                            &format!(
                                "INSERT INTO `{table}` (id, collectionRef, recordRef{extra}, created, updated)
                                 VALUES (?1, ?2, 'r'{values}, {created}, {created})"
                            ),
                            [format!("{table}{id}"), users.clone()],
                        )?;
                    }
                }
                Ok::<_, crate::Error>(())
            })
            .await
            .unwrap();
        run(&tenant, OTP_CLEANUP).await.unwrap();
        run(&tenant, MFA_CLEANUP).await.unwrap();
        assert_eq!(left(&tenant, "_otps").await, "_otpsnew");
        assert_eq!(left(&tenant, "_mfas").await, "_mfasnew");
        run(&tenant, DB_OPTIMIZE).await.unwrap();
        run(&tenant, LOGS_CLEANUP).await.unwrap();
    }
}
