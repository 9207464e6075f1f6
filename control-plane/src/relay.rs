//! Records a cluster node keeps for the leader's control database while it does not lead (the
//! usage it meters, the backup runs it finishes): queued in bounded, numbered batches, and
//! applied by the leader once per batch.
//!
//! A node's batches carry its origin (node id and a random number of this process) and a
//! sequence number that grows; the leader keeps the highest sequence applied per origin in the
//! same transaction as the records, so a batch sent again (its answer was lost, or the lead
//! changed meanwhile) is not counted twice, also by the next leader, which restores that table
//! with the rest of the control database. The queue holds at most [`MAX_QUEUED`] batches; past
//! that the oldest batch is dropped and the drop logged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use warren_store::Database;
use warren_store::sql::{OptionalExtension, params};

use crate::metering::Usage;
use crate::{Error, Result};

/// Most records in one batch.
pub const MAX_RECORDS: usize = 500;
/// Most batches waiting to be sent; the oldest goes first when one more comes.
pub const MAX_QUEUED: usize = 256;
/// Longest text field in a record (ids, hours, backup names, errors) once received.
const MAX_TEXT: usize = 4096;
/// How long the leader remembers an origin it has not heard from.
const FORGET_ORIGINS: &str = "-30 days";

/// One record for the leader's control database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Record {
    /// Usage of a tenant counted in one hour, added to that hour's row.
    Usage {
        tenant: String,
        /// `usage.hour` is the hour it was counted in.
        usage: Usage,
    },
    /// A finished backup, restore or drill run.
    BackupRun(BackupRun),
}

/// A finished run as `backup_runs` holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRun {
    pub tenant_id: String,
    pub slug: String,
    pub kind: String,
    pub backup: String,
    pub status: String,
    pub started: String,
    pub finished: String,
    pub bytes: u64,
    pub error: String,
}

/// Records of one node, numbered for the leader's deduplication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The sending node and process (`<node id>/<random hex>`).
    pub origin: String,
    /// Grows by one per batch of the origin.
    pub seq: u64,
    pub records: Vec<Record>,
}

impl Batch {
    /// Refuses what no node sends: too many records, or text fields past [`MAX_TEXT`].
    pub fn check(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::Invalid("batch", why.to_string()));
        if self.origin.is_empty() || self.origin.len() > 200 {
            return bad("The origin must be 1 to 200 characters.");
        }
        if self.records.len() > MAX_RECORDS {
            return bad("Too many records in one batch.");
        }
        for record in &self.records {
            let texts: Vec<&str> = match record {
                Record::Usage { tenant, usage } => vec![tenant, &usage.hour],
                Record::BackupRun(run) => vec![
                    &run.tenant_id,
                    &run.slug,
                    &run.kind,
                    &run.backup,
                    &run.status,
                    &run.started,
                    &run.finished,
                    &run.error,
                ],
            };
            if texts.iter().any(|t| t.len() > MAX_TEXT) {
                return bad("A record's field is too long.");
            }
        }
        Ok(())
    }
}

/// Whether this node's records go to another node's control database now (it does not lead).
pub type Elsewhere = Arc<dyn Fn() -> bool + Send + Sync>;

/// The queue of batches a node has not yet seen applied by the leader. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    origin: String,
    elsewhere: Elsewhere,
    next: AtomicU64,
    queue: Mutex<VecDeque<Batch>>,
    /// Wakes the sender when a batch is queued.
    queued: tokio::sync::Notify,
    /// Records dropped because the queue was full, since the start.
    dropped: AtomicU64,
}

impl Relay {
    /// The relay of node `node`; `elsewhere` says whether records go to the leader now.
    pub fn new(node: &str, elsewhere: Elsewhere) -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: format!("{node}/{:016x}", rand::random::<u64>()),
                elsewhere,
                next: AtomicU64::new(1),
                queue: Mutex::new(VecDeque::new()),
                queued: tokio::sync::Notify::new(),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Whether records made now go to another node's control database.
    pub fn elsewhere(&self) -> bool {
        (self.inner.elsewhere)()
    }

    /// Queues `records` for the leader, in batches of at most [`MAX_RECORDS`].
    pub fn push(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let mut queue = self.queue();
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let batch = Batch {
                origin: self.inner.origin.clone(),
                seq: self.inner.next.fetch_add(1, Ordering::Relaxed),
                records: records.by_ref().take(MAX_RECORDS).collect(),
            };
            queue.push_back(batch);
            if queue.len() > MAX_QUEUED
                && let Some(oldest) = queue.pop_front()
            {
                let dropped = self
                    .inner
                    .dropped
                    .fetch_add(oldest.records.len() as u64, Ordering::Relaxed)
                    + oldest.records.len() as u64;
                tracing::warn!(
                    seq = oldest.seq,
                    records = oldest.records.len(),
                    dropped_since_start = dropped,
                    "the leader has not taken this node's usage and backup runs for a while: the oldest batch is dropped"
                );
            }
        }
        drop(queue);
        self.inner.queued.notify_one();
    }

    /// The oldest batch not yet applied.
    pub fn next(&self) -> Option<Batch> {
        self.queue().front().cloned()
    }

    /// Batch `seq` was applied (or found applied) by the leader: it leaves the queue.
    pub fn applied(&self, seq: u64) {
        let mut queue = self.queue();
        if queue.front().is_some_and(|b| b.seq == seq) {
            queue.pop_front();
        }
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        self.queue().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when a batch was queued since the last call (or at once if one was).
    pub async fn queued(&self) {
        self.inner.queued.notified().await
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Batch>> {
        self.inner.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Applies `batch` to the control database `db` in one transaction, unless a batch of its
/// origin with this sequence or a later one was applied already. Whether it was applied now.
pub async fn apply(db: &Database, batch: Batch) -> Result<bool> {
    batch.check()?;
    db.write(move |c| {
        let done: Option<i64> = c
            .prepare_cached("SELECT seq FROM relay_batches WHERE origin = ?1")?
            .query_row([&batch.origin], |r| r.get(0))
            .optional()?;
        if done.is_some_and(|d| d >= batch.seq as i64) {
            return Ok(false);
        }
        for record in &batch.records {
            match record {
                Record::Usage { tenant, usage } => crate::metering::add_usage(c, tenant, usage)?,
                Record::BackupRun(run) => {
                    // Content-keyed too: a run a node recorded just as it took the lead may
                    // already be in this database.
                    c.prepare_cached(
                        "INSERT INTO backup_runs (tenant_id, slug, kind, backup, status, started,
                           finished, bytes, error)
                         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
                         WHERE NOT EXISTS (SELECT 1 FROM backup_runs
                           WHERE tenant_id = ?1 AND kind = ?3 AND started = ?6)",
                    )?
                    .execute(params![
                        run.tenant_id,
                        run.slug,
                        run.kind,
                        run.backup,
                        run.status,
                        run.started,
                        (!run.finished.is_empty()).then_some(&run.finished),
                        run.bytes as i64,
                        run.error,
                    ])?;
                }
            }
        }
        c.prepare_cached(
            "INSERT INTO relay_batches (origin, seq) VALUES (?1, ?2)
             ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq,
               at = strftime('%Y-%m-%d %H:%M:%fZ')",
        )?
        .execute(params![batch.origin, batch.seq as i64])?;
        c.prepare_cached(
            "DELETE FROM relay_batches WHERE at < strftime('%Y-%m-%d %H:%M:%fZ', 'now', ?1)",
        )?
        .execute([FORGET_ORIGINS])?;
        Ok::<_, Error>(true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open_control_db;

    fn usage(hour: &str, requests: u64) -> Record {
        Record::Usage {
            tenant: "t1".into(),
            usage: Usage {
                hour: hour.into(),
                requests,
                bytes_in: 10,
                storage_bytes: 5000,
                ..Usage::default()
            },
        }
    }

    #[tokio::test]
    async fn a_batch_counts_once_however_often_it_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_control_db(dir.path()).await.unwrap();
        let relay = Relay::new("n2", Arc::new(|| true));
        let hour = "2026-01-02 03:00:00Z";
        relay.push(vec![
            usage(hour, 3),
            Record::BackupRun(BackupRun {
                tenant_id: "t1".into(),
                slug: "one".into(),
                kind: "snapshot".into(),
                backup: "b1".into(),
                status: "complete".into(),
                started: "2026-01-02 03:04:05.000Z".into(),
                finished: "2026-01-02 03:04:06.000Z".into(),
                bytes: 123,
                error: String::new(),
            }),
        ]);
        relay.push(vec![usage(hour, 4)]);
        let first = relay.next().unwrap();
        assert!(apply(&db, first.clone()).await.unwrap());
        assert!(!apply(&db, first.clone()).await.unwrap(), "sent again");
        relay.applied(first.seq);
        let second = relay.next().unwrap();
        assert_eq!(second.seq, first.seq + 1);
        assert!(apply(&db, second.clone()).await.unwrap());
        relay.applied(second.seq);
        assert!(relay.is_empty());
        // An older batch arriving late is not applied either.
        assert!(!apply(&db, first).await.unwrap());
        let rows = crate::metering::usage(&db, "t1", Some(hour.into()), Some(hour.into()))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].requests, rows[0].bytes_in), (7, 20));
        assert_eq!(rows[0].storage_bytes, 5000);
        let runs: i64 = db
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM backup_runs WHERE backup = 'b1'",
                    [],
                    |r| r.get(0),
                )
                .map_err(warren_store::Error::from)
            })
            .await
            .unwrap();
        assert_eq!(runs, 1);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_batch() {
        let relay = Relay::new("n2", Arc::new(|| true));
        for i in 0..(MAX_QUEUED as u64 + 3) {
            relay.push(vec![usage("2026-01-02 03:00:00Z", i)]);
        }
        assert_eq!(relay.len(), MAX_QUEUED);
        assert_eq!(relay.next().unwrap().seq, 4, "batches 1 to 3 were dropped");
        relay.push((0..MAX_RECORDS as u64 + 1).map(|i| usage("h", i)).collect());
        assert_eq!(relay.len(), MAX_QUEUED, "two batches in, two out");
    }

    #[test]
    fn oversized_batches_are_refused() {
        let mut batch = Batch {
            origin: "n2/1".into(),
            seq: 1,
            records: vec![usage(&"x".repeat(MAX_TEXT + 1), 1)],
        };
        assert!(batch.check().is_err());
        batch.records = (0..MAX_RECORDS + 1).map(|_| usage("h", 1)).collect();
        assert!(batch.check().is_err());
        batch.records.truncate(MAX_RECORDS);
        assert!(batch.check().is_ok());
    }
}
