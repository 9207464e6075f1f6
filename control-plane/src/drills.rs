//! Scheduled restore drills: every interval the server samples a few backed-up tenants (never
//! drilled first, then the longest since their last drill), restores each one's latest backup
//! into scratch space and checks integrity and record counts — the same check as
//! `warren backup verify` — one tenant at a time, so a drill never takes more than one of the
//! node's backup slots. Outcomes are runs of kind `drill` in `backup_runs`, logged, listed by
//! `/v1/backups/drills` and counted in `/metrics`.

use std::time::Duration;

use serde::Serialize;
use warren_store::sql::params;

use crate::Result;
use crate::backups::Backups;

/// Most drills listed at once.
pub const MAX_LISTED: u32 = 500;

/// One drill (scheduled or a `verify`), as listed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillRun {
    /// The tenant's id.
    pub tenant_id: String,
    /// Its slug at the time.
    pub slug: String,
    /// `drill` (scheduled) or `verify` (asked for).
    pub kind: String,
    /// The backup checked.
    pub backup: String,
    /// `running`, `complete` or `failed`.
    pub status: String,
    /// When it started.
    pub started: String,
    /// When it finished (empty while running).
    pub finished: String,
    /// Why it failed.
    pub error: String,
}

impl Backups {
    /// Runs drills until the returned task is aborted: every `every` (the first after one
    /// interval), `sample` tenants one after another.
    pub fn start_drills(
        &self,
        every: Duration,
        sample: usize,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.enabled() || sample == 0 {
            return None;
        }
        let backups = self.clone();
        Some(tokio::spawn(async move {
            let start = tokio::time::Instant::now() + every;
            let mut tick = tokio::time::interval_at(start, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = backups.run_drills(sample).await {
                    tracing::warn!(error = %e, "restore drill pass failed");
                }
            }
        }))
    }

    /// One pass: drills `sample` tenants that have a successful backup; returns the runs.
    pub async fn run_drills(&self, sample: usize) -> Result<Vec<DrillRun>> {
        let tenants = self.tenants_any()?;
        let limit = sample.min(MAX_LISTED as usize) as i64;
        let chosen: Vec<String> = tenants
            .db()
            .read(move |c| {
                let rows = c
                    .prepare_cached(
                        "SELECT t.slug FROM tenants t
                         WHERE EXISTS (SELECT 1 FROM backup_runs r WHERE r.tenant_id = t.id
                           AND r.kind = 'snapshot' AND r.status = 'complete')
                         ORDER BY (SELECT max(d.id) FROM backup_runs d WHERE d.tenant_id = t.id
                           AND d.kind IN ('drill', 'verify')), random()
                         LIMIT ?1",
                    )?
                    .query_map([limit], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok::<_, crate::Error>(rows)
            })
            .await?;
        let mut runs = Vec::with_capacity(chosen.len());
        for slug in chosen {
            let Some(tenant) = tenants.find(&slug).await? else {
                continue;
            };
            let started = std::time::Instant::now();
            match self
                .drill_run(&tenant, None, "drill", &warren_backup::quiet)
                .await
            {
                Ok(drill) if drill.mismatches.is_empty() => tracing::info!(
                    slug = %slug,
                    backup = %drill.manifest.id,
                    records = drill.manifest.counts.values().sum::<i64>(),
                    millis = started.elapsed().as_millis() as u64,
                    "restore drill passed"
                ),
                Ok(drill) => tracing::error!(
                    slug = %slug,
                    backup = %drill.manifest.id,
                    mismatches = ?drill.mismatches,
                    "restore drill failed: record counts differ"
                ),
                Err(e) => tracing::error!(slug = %slug, error = %e, "restore drill failed"),
            }
            if let Some(run) = self.drills(Some(&tenant.id), 1).await?.into_iter().next() {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    /// The latest `limit` drills (scheduled and `verify`), newest first; of one tenant only
    /// when `tenant_id` is given.
    pub async fn drills(&self, tenant_id: Option<&str>, limit: u32) -> Result<Vec<DrillRun>> {
        let tenants = self.tenants_any()?;
        let tenant_id = tenant_id.unwrap_or_default().to_string();
        let limit = i64::from(limit.clamp(1, MAX_LISTED));
        tenants
            .db()
            .read(move |c| {
                let rows = c
                    .prepare_cached(
                        "SELECT tenant_id, slug, kind, backup, status, started,
                           coalesce(finished, ''), error
                         FROM backup_runs WHERE kind IN ('drill', 'verify')
                           AND (?1 = '' OR tenant_id = ?1)
                         ORDER BY id DESC LIMIT ?2",
                    )?
                    .query_map(params![tenant_id, limit], |r| {
                        Ok(DrillRun {
                            tenant_id: r.get(0)?,
                            slug: r.get(1)?,
                            kind: r.get(2)?,
                            backup: r.get(3)?,
                            status: r.get(4)?,
                            started: r.get(5)?,
                            finished: r.get(6)?,
                            error: r.get(7)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, crate::Error>(rows)
            })
            .await
    }
}
