//! A node's membership: its etcd lease, renewed in the background, its `nodes/<id>` record, and
//! the write fence that closes before the lease can expire.
//!
//! etcd drops a lease `ttl` after the last renewal it received, and a renewal is received after
//! it was sent, so the lease lives at least until `sent + ttl`. A node counts from the send time
//! of its last renewal that etcd acknowledged and refuses writes once `ttl / 2` has passed
//! without another: by then it has not yet lost its tenants, whatever the network did, and a
//! write that passed the check has the other half of the TTL to commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::etcd::Etcd;
use crate::{Error, Keys, Result, valid_id};

/// How a node joins.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// This node's id, unique in the cluster.
    pub node: String,
    /// Where other nodes reach this one (`host:port` of its HTTP listener).
    pub advertise: String,
    /// The lease's time to live: how long a dead node holds its tenants.
    pub ttl: Duration,
}

/// The record other nodes read under `nodes/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub advertise: String,
    /// Unix milliseconds when the node joined.
    pub joined: u64,
}

/// This node's membership. Dropping it stops the renewals without giving the lease back, as a
/// crash would; [`Member::leave`] gives it back at once.
pub struct Member {
    inner: Arc<Inner>,
    renewals: tokio::task::JoinHandle<()>,
}

struct Inner {
    etcd: Etcd,
    keys: Keys,
    node: String,
    lease: i64,
    ttl: Duration,
    /// Writes stop this long after the last acknowledged renewal was sent.
    fence: Duration,
    epoch: Instant,
    /// Milliseconds after `epoch` when the last acknowledged renewal (or the grant) was sent.
    renewed: AtomicU64,
    /// etcd said the lease is gone: this membership is over.
    lost: AtomicBool,
}

impl Member {
    /// Takes a lease, writes this node's record under it and starts renewing it.
    pub async fn join(etcd: Etcd, keys: Keys, config: MemberConfig) -> Result<Self> {
        if !valid_id(&config.node) {
            return Err(Error::Config(format!(
                "node id {:?}: use letters, digits, '-', '_' or '.'",
                config.node
            )));
        }
        let ttl_secs = config.ttl.as_secs();
        if !(2..=300).contains(&ttl_secs) {
            return Err(Error::Config(format!(
                "lease ttl {ttl_secs} s: use 2 to 300 seconds"
            )));
        }
        let epoch = Instant::now();
        let lease = etcd.grant(ttl_secs as i64).await?;
        let record = NodeRecord {
            advertise: config.advertise.clone(),
            joined: unix_ms(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| Error::Etcd(e.to_string()))?;
        etcd.put(&keys.node(&config.node), &value, lease.id).await?;
        let ttl = Duration::from_secs(lease.ttl as u64);
        let inner = Arc::new(Inner {
            etcd,
            keys,
            node: config.node,
            lease: lease.id,
            ttl,
            fence: ttl / 2,
            epoch,
            renewed: AtomicU64::new(0),
            lost: AtomicBool::new(false),
        });
        let renewals = tokio::spawn(renew(inner.clone()));
        tracing::info!(node = %inner.node, lease = inner.lease, ttl_s = ttl.as_secs(), "joined the cluster");
        Ok(Self { inner, renewals })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// This node's lease.
    pub fn lease(&self) -> i64 {
        self.inner.lease
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The etcd client.
    pub fn etcd(&self) -> &Etcd {
        &self.inner.etcd
    }

    /// The cluster's keys.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// How long this node may still write without another renewal; `None` once fenced.
    pub fn write_window(&self) -> Option<Duration> {
        if self.inner.lost.load(Ordering::Acquire) {
            return None;
        }
        let renewed = Duration::from_millis(self.inner.renewed.load(Ordering::Acquire));
        let until = renewed + self.inner.fence;
        until.checked_sub(self.inner.epoch.elapsed())
    }

    /// Whether this node may write now (its lease is certainly alive for a while yet).
    pub fn can_write(&self) -> bool {
        self.write_window().is_some()
    }

    /// `Ok` while this node may write, else [`Error::Fenced`].
    pub fn check(&self) -> Result<()> {
        if self.can_write() {
            Ok(())
        } else {
            Err(Error::Fenced)
        }
    }

    /// Whether etcd said this node's lease is gone (it can never write again).
    pub fn lost(&self) -> bool {
        self.inner.lost.load(Ordering::Acquire)
    }

    /// Resolves once this node may no longer write.
    pub async fn fenced(&self) {
        while let Some(left) = self.write_window() {
            tokio::time::sleep(left + Duration::from_millis(1)).await;
        }
    }

    /// Leaves the cluster now: the lease is revoked, so this node's record and every tenant it
    /// owned are free at once.
    pub async fn leave(&self) -> Result<()> {
        self.renewals.abort();
        self.inner.lost.store(true, Ordering::Release);
        match self.inner.etcd.revoke(self.inner.lease).await {
            // Already expired: nothing to give back.
            Err(Error::Etcd(m)) if m.contains("lease not found") => {}
            other => other?,
        }
        tracing::info!(node = %self.inner.node, "left the cluster");
        Ok(())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.renewals.abort();
    }
}

/// Renews the lease four times per TTL until etcd says it is gone.
async fn renew(inner: Arc<Inner>) {
    let every = inner.ttl / 4;
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(every).await;
        let sent = inner.epoch.elapsed();
        match tokio::time::timeout(every, inner.etcd.keep_alive(inner.lease)).await {
            Ok(Ok(ttl)) if ttl > 0 => {
                inner
                    .renewed
                    .fetch_max(sent.as_millis() as u64, Ordering::AcqRel);
                if failures > 0 {
                    tracing::info!(node = %inner.node, failures, "cluster lease renewed again");
                }
                failures = 0;
            }
            Ok(Ok(_)) => {
                inner.lost.store(true, Ordering::Release);
                tracing::error!(node = %inner.node, lease = inner.lease, "the cluster lease expired: this node stops writing");
                return;
            }
            Ok(Err(e)) => {
                failures += 1;
                tracing::warn!(node = %inner.node, failures, error = %e, "cluster lease not renewed");
            }
            Err(_) => {
                failures += 1;
                tracing::warn!(node = %inner.node, failures, "cluster lease renewal timed out");
            }
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
