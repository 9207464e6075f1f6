//! Metering: persists the tenants' in-memory usage counters (see `warren_tenant::meter`) to the
//! control database as hourly rows, at a fixed interval and at shutdown, measures tenants'
//! storage, and answers usage queries.
//!
//! A flush stores what was counted since the previous flush, so a crash loses at most the
//! usage of one interval. Usage counted in one hour but flushed in the next is booked to the
//! hour of the flush.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use warren_store::Database;
use warren_store::sql::{self, params};
use warren_tenant::{Meter, Registry};

use crate::metrics::Metrics;
use crate::relay::{Record, Relay};
use crate::{Error, Result};

/// Metering of every tenant of this process. Cheap to clone.
#[derive(Clone)]
pub struct Metering {
    inner: Arc<Inner>,
}

struct Inner {
    /// The control database (usage rows).
    db: Database,
    /// Where the meters live.
    registry: Registry,
    /// Whether metering and quotas run on the request path.
    enabled: bool,
    /// Request counts and latencies of the whole process.
    metrics: Metrics,
    /// Tenant id → counters as of the last flush. The lock also keeps flushes one at a time.
    flushed: tokio::sync::Mutex<HashMap<String, Counts>>,
    /// In a cluster: where a flush's usage goes too while this node does not lead.
    relay: std::sync::OnceLock<Relay>,
}

/// The growing counters of one meter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
    records_written: u64,
    /// Whole CPU milliseconds spent in the tenant's code (the remainder carries over).
    hook_cpu_ms: u64,
}

impl Counts {
    fn of(meter: &Meter) -> Self {
        Self {
            requests: meter.requests.load(Relaxed),
            bytes_in: meter.bytes_in.load(Relaxed),
            bytes_out: meter.bytes_out.load(Relaxed),
            records_written: meter.records_written.load(Relaxed),
            hook_cpu_ms: meter.code_cpu_micros.load(Relaxed) / 1000,
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            requests: self.requests.saturating_sub(before.requests),
            bytes_in: self.bytes_in.saturating_sub(before.bytes_in),
            bytes_out: self.bytes_out.saturating_sub(before.bytes_out),
            records_written: self.records_written.saturating_sub(before.records_written),
            hook_cpu_ms: self.hook_cpu_ms.saturating_sub(before.hook_cpu_ms),
        }
    }
}

/// One tenant's usage in one hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Start of the hour, UTC (`YYYY-MM-DD HH:00:00Z`); empty in totals.
    pub hour: String,
    /// Requests that reached the tenant.
    pub requests: u64,
    /// Bytes of request bodies.
    pub bytes_in: u64,
    /// Bytes of response bodies.
    pub bytes_out: u64,
    /// Largest measured size of database and files, in bytes.
    pub storage_bytes: u64,
    /// Realtime connection-seconds.
    pub realtime_seconds: u64,
    /// Most realtime connections open at once.
    pub realtime_peak: u64,
    /// Records created, updated or deleted.
    pub records_written: u64,
    /// CPU milliseconds spent in the tenant's own code (`pb_hooks`).
    pub hook_cpu_ms: u64,
}

impl Metering {
    /// Metering over the meters of `registry`, persisted to the control database `db`.
    /// With `enabled` false the request path skips metering and quotas altogether.
    pub fn new(db: Database, registry: Registry, enabled: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                registry,
                enabled,
                metrics: Metrics::default(),
                flushed: tokio::sync::Mutex::new(HashMap::new()),
                relay: std::sync::OnceLock::new(),
            }),
        }
    }

    /// In a cluster: every flush made while this node does not lead also queues its usage for
    /// the leader's control database (the copy here is replaced when the node takes the lead).
    pub fn set_relay(&self, relay: Relay) {
        let _ = self.inner.relay.set(relay);
    }

    /// Whether metering and quotas run on the request path.
    pub fn enabled(&self) -> bool {
        self.inner.enabled
    }

    /// Process-wide request figures.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Flushes every `every` until the last clone of this handle is dropped.
    pub fn start(&self, every: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = (Metering { inner }).flush().await {
                    tracing::warn!(error = %e, "flushing usage failed");
                }
            }
        });
    }

    /// Stores the usage counted since the last flush (one transaction) and re-measures the
    /// storage of tenants that received writes. Returns how many tenants had usage.
    pub async fn flush(&self) -> Result<usize> {
        let mut flushed = self.inner.flushed.lock().await;
        let root = self.inner.registry.root().to_path_buf();
        let mut rows = Vec::new();
        let mut marks = Vec::new();
        for (id, meter) in self.inner.registry.meters() {
            let now = Counts::of(&meter);
            let before = flushed.get(&id).copied().unwrap_or_default();
            let delta = now.since(before);
            let (realtime_seconds, realtime_peak) = meter.take_presence();
            let wrote = delta.bytes_in > 0 || delta.records_written > 0;
            if wrote || meter.storage_bytes.load(Relaxed) == 0 {
                let dir = warren_tenant::tenant_dir(&root, &id);
                let size = tokio::task::spawn_blocking(move || storage_of(&dir))
                    .await
                    .unwrap_or(0);
                meter.storage_bytes.store(size.max(1), Relaxed);
            }
            if delta == Counts::default() && realtime_seconds == 0 && realtime_peak == 0 {
                continue;
            }
            rows.push((
                id.clone(),
                Usage {
                    hour: String::new(),
                    requests: delta.requests,
                    bytes_in: delta.bytes_in,
                    bytes_out: delta.bytes_out,
                    storage_bytes: meter.storage_bytes.load(Relaxed),
                    realtime_seconds,
                    realtime_peak,
                    records_written: delta.records_written,
                    hook_cpu_ms: delta.hook_cpu_ms,
                },
            ));
            marks.push((id, now));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let count = rows.len();
        let hour = current_hour();
        for (_, usage) in &mut rows {
            usage.hour = hour.clone();
        }
        let relayed = self
            .inner
            .relay
            .get()
            .filter(|r| r.elsewhere())
            .map(|relay| {
                let records = rows
                    .iter()
                    .map(|(id, usage)| Record::Usage {
                        tenant: id.clone(),
                        usage: usage.clone(),
                    })
                    .collect::<Vec<_>>();
                (relay, records)
            });
        self.inner
            .db
            .write(move |c| {
                for (id, u) in &rows {
                    add_usage(c, id, u)?;
                }
                Ok::<_, Error>(())
            })
            .await?;
        // Queued once stored here: a failed write is counted again by the next flush.
        if let Some((relay, records)) = relayed {
            relay.push(records);
        }
        flushed.extend(marks);
        Ok(count)
    }

    /// Tenant `tenant_id`'s hourly usage from the hour holding `from` through the hour holding
    /// `to` (any SQLite date-time, e.g. `2026-11-25` or `2026-11-25T18:00:00Z`); without
    /// bounds, the last 31 days. At most 10,000 rows, oldest first.
    pub async fn usage(
        &self,
        tenant_id: &str,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Vec<Usage>> {
        usage(&self.inner.db, tenant_id, from, to).await
    }
}

/// The hour usage counted now is booked to (`YYYY-MM-DD HH:00:00Z`, UTC).
fn current_hour() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:00:00Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour()
    )
}

/// Adds `u` to tenant `tenant`'s usage row of hour `u.hour` (sums, and the largest storage
/// and realtime peak).
pub(crate) fn add_usage(c: &warren_store::sql::Connection, tenant: &str, u: &Usage) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO usage (tenant_id, hour, requests, bytes_in, bytes_out,
           storage_bytes, realtime_seconds, realtime_peak, records_written, hook_cpu_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (tenant_id, hour) DO UPDATE SET
           requests = requests + excluded.requests,
           bytes_in = bytes_in + excluded.bytes_in,
           bytes_out = bytes_out + excluded.bytes_out,
           storage_bytes = max(storage_bytes, excluded.storage_bytes),
           realtime_seconds = realtime_seconds + excluded.realtime_seconds,
           realtime_peak = max(realtime_peak, excluded.realtime_peak),
           records_written = records_written + excluded.records_written,
           hook_cpu_ms = hook_cpu_ms + excluded.hook_cpu_ms",
    )?
    .execute(params![
        tenant,
        u.hour,
        u.requests as i64,
        u.bytes_in as i64,
        u.bytes_out as i64,
        u.storage_bytes as i64,
        u.realtime_seconds as i64,
        u.realtime_peak as i64,
        u.records_written as i64,
        u.hook_cpu_ms as i64,
    ])?;
    Ok(())
}

/// [`Metering::usage`] read straight from the control database `db`.
pub async fn usage(
    db: &Database,
    tenant_id: &str,
    from: Option<String>,
    to: Option<String>,
) -> Result<Vec<Usage>> {
    let id = tenant_id.to_string();
    {
        db.read(move |c| {
            let hour = |field: &'static str, value: Option<String>, default: &str| {
                let text: Option<String> = match value {
                    Some(value) => c.query_row(
                        "SELECT strftime('%Y-%m-%d %H:00:00Z', ?1)",
                        [value.trim()],
                        |r| r.get(0),
                    )?,
                    None => c.query_row(
                        "SELECT strftime('%Y-%m-%d %H:00:00Z', 'now', ?1)",
                        [default],
                        |r| r.get(0),
                    )?,
                };
                text.ok_or_else(|| {
                    Error::Invalid(
                        field,
                        "Use a date or date-time such as 2026-11-25 or 2026-11-25T18:00:00Z."
                            .into(),
                    )
                })
            };
            let from = hour("from", from, "-31 days")?;
            let to = hour("to", to, "+0 seconds")?;
            let mut stmt = c.prepare_cached(
                "SELECT hour, requests, bytes_in, bytes_out, storage_bytes, realtime_seconds,
                       realtime_peak, records_written, hook_cpu_ms
                     FROM usage WHERE tenant_id = ?1 AND hour >= ?2 AND hour <= ?3
                     ORDER BY hour LIMIT 10000",
            )?;
            let rows = stmt.query_map(params![id, from, to], |r| {
                let n = |i: usize| -> sql::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
                Ok(Usage {
                    hour: r.get(0)?,
                    requests: n(1)?,
                    bytes_in: n(2)?,
                    bytes_out: n(3)?,
                    storage_bytes: n(4)?,
                    realtime_seconds: n(5)?,
                    realtime_peak: n(6)?,
                    records_written: n(7)?,
                    hook_cpu_ms: n(8)?,
                })
            })?;
            Ok(rows.collect::<sql::Result<Vec<_>>>()?)
        })
        .await
    }
}

/// Sums of `rows` (largest storage and peak).
pub fn totals(rows: &[Usage]) -> Usage {
    rows.iter().fold(Usage::default(), |t, u| Usage {
        hour: String::new(),
        requests: t.requests + u.requests,
        bytes_in: t.bytes_in + u.bytes_in,
        bytes_out: t.bytes_out + u.bytes_out,
        storage_bytes: t.storage_bytes.max(u.storage_bytes),
        realtime_seconds: t.realtime_seconds + u.realtime_seconds,
        realtime_peak: t.realtime_peak.max(u.realtime_peak),
        records_written: t.records_written + u.records_written,
        hook_cpu_ms: t.hook_cpu_ms + u.hook_cpu_ms,
    })
}

/// Bytes of a tenant directory's database and files. Request logs (`auxiliary.db`) are not
/// counted: they are pruned by their own retention, not by the tenant.
pub fn storage_of(dir: &Path) -> u64 {
    let mut total = 0;
    // The tenant's own backups (`/api/backups`) have their plan bounds of their own.
    let backups = dir.join(warren_tenant::backups::BACKUPS_DIR);
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && entry.path() != backups {
                pending.push(entry.path());
            } else if kind.is_file()
                && !entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("auxiliary.db")
            {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tenants, open_control_db, tenants_root};

    #[test]
    fn storage_counts_data_and_files_but_not_logs_or_kept_backups() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("data.db"), [0u8; 100]).unwrap();
        std::fs::write(root.join("auxiliary.db"), [0u8; 1000]).unwrap();
        std::fs::create_dir_all(root.join("storage/c/r")).unwrap();
        std::fs::write(root.join("storage/c/r/f.txt"), [0u8; 10]).unwrap();
        std::fs::create_dir(root.join("backups")).unwrap();
        std::fs::write(root.join("backups/a.zip"), [0u8; 5000]).unwrap();
        assert_eq!(storage_of(root), 110);
    }

    #[tokio::test]
    async fn a_flush_stores_the_counts_since_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_control_db(dir.path()).await.unwrap();
        let tenants = Tenants::new(db.clone(), tenants_root(dir.path()));
        let alpha = tenants.create("alpha").await.unwrap();
        let registry = Registry::new(warren_tenant::RegistryConfig {
            root: tenants_root(dir.path()),
            max_open: 4,
            idle_timeout: Duration::from_secs(60),
        });
        let metering = Metering::new(db, registry.clone(), true);
        let meter = registry.meter(&alpha.id);
        meter.requests.fetch_add(3, Relaxed);
        meter.bytes_out.fetch_add(300, Relaxed);
        assert_eq!(metering.flush().await.unwrap(), 1);
        assert_eq!(metering.flush().await.unwrap(), 0);
        meter.requests.fetch_add(2, Relaxed);
        meter.wrote_records(4);
        meter.charge_code(2_600);
        assert_eq!(metering.flush().await.unwrap(), 1);
        // Half a millisecond more is carried to a later flush, not rounded away.
        meter.charge_code(500);
        assert_eq!(metering.flush().await.unwrap(), 1);
        let rows = metering.usage(&alpha.id, None, None).await.unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(
            (row.requests, row.bytes_out, row.records_written),
            (5, 300, 4)
        );
        assert_eq!(row.hook_cpu_ms, 3);
        assert!(row.storage_bytes > 4096, "{}", row.storage_bytes);
        assert!(
            metering
                .usage(
                    &alpha.id,
                    Some("2000-01-01".into()),
                    Some("2000-01-02".into())
                )
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            metering
                .usage(&alpha.id, Some("yesterday".into()), None)
                .await,
            Err(Error::Invalid("from", _))
        ));
    }
}
