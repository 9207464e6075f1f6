//! The node-wide backup summary `/metrics` shows: how many tenants are backed up, failing or
//! stale, the oldest last success, and series for the few stalest tenants only, so the number
//! of series stays bounded however many tenants the node holds.

use std::collections::HashMap;
use std::fmt::Write;

use crate::Result;
use crate::backups::{Backups, Status, is_due, parse_sqlite_time};
use crate::tenants::TenantInfo;

/// How many of the stalest tenants get a series of their own.
pub const TOP_STALE: usize = 10;

/// One tenant's latest snapshot runs, as the summary reads them.
struct Row {
    id: String,
    last_status: String,
    last_success: String,
}

/// Backup figures of the node.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Whether a backup target is configured.
    pub enabled: bool,
    /// Tenants with at least one successful snapshot.
    pub backed_up: u64,
    /// Tenants never backed up successfully.
    pub never: u64,
    /// Tenants whose latest snapshot failed.
    pub failing: u64,
    /// Scheduled tenants without a success within twice their interval while their data
    /// changed (or never backed up); 0 without a schedule.
    pub stale: u64,
    /// Age in seconds of the oldest last success among backed-up tenants.
    pub oldest_success_age: f64,
    /// The stalest tenants (slug, seconds since the last success; never: since creation),
    /// stalest first, at most [`TOP_STALE`].
    pub stalest: Vec<(String, f64)>,
    /// Backups and restores running now.
    pub running: u64,
    /// Tenants whose latest restore drill failed.
    pub drills_failing: u64,
    /// Restore drills (scheduled and `verify`) passed since the process started.
    pub drills_ok: u64,
    /// Restore drills failed since the process started.
    pub drills_failed: u64,
}

impl Backups {
    /// The node's backup figures (one read of the control database per tenant, by index).
    pub async fn summary(&self) -> Result<Summary> {
        if !self.enabled() {
            return Ok(Summary::default());
        }
        let tenants = self.tenants_any()?;
        let (rows, drills) = tenants
            .db()
            .read(|c| {
                let rows = c
                    .prepare_cached(
                        "SELECT t.id,
                           (SELECT r.status FROM backup_runs r WHERE r.tenant_id = t.id
                              AND r.kind = 'snapshot' ORDER BY r.id DESC LIMIT 1),
                           (SELECT r.started FROM backup_runs r WHERE r.tenant_id = t.id
                              AND r.kind = 'snapshot' AND r.status = 'complete'
                              ORDER BY r.id DESC LIMIT 1)
                         FROM tenants t",
                    )?
                    .query_map([], |r| {
                        Ok(Row {
                            id: r.get(0)?,
                            last_status: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                            last_success: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                // By index per tenant: no scan of every run ever recorded.
                let drills: i64 = c
                    .prepare_cached(
                        "SELECT count(*) FROM tenants t WHERE (SELECT r.status FROM backup_runs r
                           WHERE r.tenant_id = t.id AND r.kind IN ('drill', 'verify')
                           ORDER BY r.id DESC LIMIT 1) = 'failed'",
                    )?
                    .query_row([], |r| r.get(0))?;
                Ok::<_, crate::Error>((rows, drills))
            })
            .await?;
        let infos: HashMap<String, TenantInfo> = match self.policy() {
            Some(_) => tenants
                .list()
                .await?
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            None => HashMap::new(),
        };
        let now = time::OffsetDateTime::now_utc();
        let policy = self.policy();
        let (drills_ok, drills_failed) = self.drill_counts();
        let mut summary = Summary {
            enabled: true,
            running: self.running() as u64,
            drills_ok,
            drills_failed,
            drills_failing: drills as u64,
            ..Summary::default()
        };
        let mut stalest = Vec::new();
        for row in rows {
            let success = parse_sqlite_time(&row.last_success).ok();
            let age = |t: time::OffsetDateTime| (now - t).as_seconds_f64().max(0.0);
            match success {
                Some(at) => {
                    summary.backed_up += 1;
                    summary.oldest_success_age = summary.oldest_success_age.max(age(at));
                }
                None => summary.never += 1,
            }
            if row.last_status == "failed" {
                summary.failing += 1;
            }
            let (Some(policy), Some(info)) = (&policy, infos.get(&row.id)) else {
                continue;
            };
            let Some(every) = policy.interval(info) else {
                continue;
            };
            let status = Status {
                last_success: row.last_success.clone(),
                ..Status::default()
            };
            let grace = every.saturating_mul(2);
            let dir = warren_tenant::tenant_dir(tenants.root(), &row.id);
            let since = success.or_else(|| parse_sqlite_time(&info.created).ok());
            let overdue = since.is_none_or(|t| age(t) > grace.as_secs_f64());
            if overdue && is_due(&status, grace, &dir) {
                summary.stale += 1;
                stalest.push((info.slug.clone(), since.map_or(0.0, age)));
            }
        }
        stalest.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        stalest.truncate(TOP_STALE);
        summary.stalest = stalest;
        Ok(summary)
    }
}

/// The Prometheus text of `summary` (appended to `/metrics`).
pub fn render(summary: &Summary) -> String {
    let mut out = String::with_capacity(1024);
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "warren_backup_enabled",
        "Whether a backup target is configured (1) or not (0).",
        if summary.enabled { 1.0 } else { 0.0 },
    );
    gauge(
        "warren_backup_tenants_backed_up",
        "Tenants with at least one successful backup.",
        summary.backed_up as f64,
    );
    gauge(
        "warren_backup_tenants_never_backed_up",
        "Tenants without any successful backup.",
        summary.never as f64,
    );
    gauge(
        "warren_backup_tenants_failing",
        "Tenants whose latest backup failed.",
        summary.failing as f64,
    );
    gauge(
        "warren_backup_tenants_stale",
        "Scheduled tenants whose data changed but whose last successful backup is older than twice their interval.",
        summary.stale as f64,
    );
    gauge(
        "warren_backup_oldest_success_age_seconds",
        "Age of the oldest last successful backup among backed-up tenants.",
        summary.oldest_success_age.round(),
    );
    gauge(
        "warren_backup_running",
        "Backups and restores running now.",
        summary.running as f64,
    );
    gauge(
        "warren_backup_drill_tenants_failing",
        "Tenants whose latest restore drill failed.",
        summary.drills_failing as f64,
    );
    out.push_str(
        "# HELP warren_backup_drills Restore drills run since the process started, by result.\n",
    );
    out.push_str("# TYPE warren_backup_drills counter\n");
    let _ = writeln!(
        out,
        "warren_backup_drills{{result=\"ok\"}} {}\nwarren_backup_drills{{result=\"failed\"}} {}",
        summary.drills_ok, summary.drills_failed
    );
    out.push_str(
        "# HELP warren_backup_stale_seconds Seconds since the last successful backup of the stalest tenants.\n",
    );
    out.push_str("# TYPE warren_backup_stale_seconds gauge\n");
    for (slug, age) in &summary.stalest {
        let _ = writeln!(
            out,
            "warren_backup_stale_seconds{{tenant=\"{}\"}} {}",
            slug.replace('\\', "\\\\").replace('"', "\\\""),
            age.round()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stalest_tenants_get_series() {
        let summary = Summary {
            enabled: true,
            backed_up: 3,
            stale: 40,
            stalest: (0..TOP_STALE)
                .map(|i| (format!("t{i}"), 100.0 - i as f64))
                .collect(),
            ..Summary::default()
        };
        let text = render(&summary);
        assert!(text.contains("warren_backup_enabled 1\n"));
        assert!(text.contains("warren_backup_tenants_stale 40\n"));
        assert!(text.contains("warren_backup_stale_seconds{tenant=\"t0\"} 100\n"));
        assert_eq!(
            text.matches("warren_backup_stale_seconds{").count(),
            TOP_STALE
        );
    }
}
