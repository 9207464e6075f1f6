//! The control plane's leader duties of a cluster node: taking the lead when it is free,
//! restoring the shipped control database when it does, and while leading, keeping the
//! hostname mirror in etcd and the first claims of new tenants in step with it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use warren_cluster::hosts::{self, Change};
use warren_cluster::ownership;
use warren_cluster::{HostRecord, Leader, leader};
use warren_control_plane::TenantInfo;

use super::ClusterNode;

/// How often the leader loop looks at the lead and the control database.
const TICK: Duration = Duration::from_millis(100);
/// How long a new leader waits before it tries again to restore the control database.
const RETRY: Duration = Duration::from_secs(1);
/// How often the leader rewrites the whole mirror even when nothing seemed to change.
const FULL_RESYNC: Duration = Duration::from_secs(30);

/// What the leader remembers between syncs.
#[derive(Default)]
pub(super) struct SyncState {
    /// Tenants already offered a first claim during this lead.
    offered: HashSet<String>,
    /// The lead this state belongs to.
    leading: bool,
}

impl ClusterNode {
    /// Keeps the lead of the control plane when free and, while leading, the hostname mirror
    /// and first claims in step with the control database. Runs until the process ends.
    pub async fn run_leader(self: Arc<Self>, control: warren_control_plane::ControlPlane) {
        let mut watcher = match control.tenants.db().watch().await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "watching the control database failed; the mirror follows it every 30 s");
                None
            }
        };
        let mut last_full = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(TICK).await;
            if self.member.lost() {
                tracing::error!("this node's cluster lease expired: it stops");
                return;
            }
            if !self.member.can_write() {
                self.syncing.lock().await.leading = false;
                continue;
            }
            let leads = match self.directory.leader() {
                Some(l) => l.lease == self.member.lease(),
                None => match leader::try_lead(&self.member, &self.advertise).await {
                    Ok(leads) => leads,
                    Err(e) => {
                        tracing::warn!(error = %e, "taking the control plane's lead failed");
                        false
                    }
                },
            };
            let shipped = self.shipped_control();
            if !leads {
                self.syncing.lock().await.leading = false;
                if let Some(shipped) = &shipped {
                    shipped.upkeep().await;
                }
                continue;
            }
            if let Some(shipped) = &shipped
                && !shipped.ready()
            {
                // A new lead: the latest control database first, then the mirror from it.
                self.syncing.lock().await.leading = false;
                if let Err(e) = self.take_over_control(shipped, &control).await {
                    tracing::warn!(error = %e, "restoring the control database failed; trying again");
                    // The platform answers 503 meanwhile; the target may need a moment.
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
            let changed = match &mut watcher {
                Some(w) => w.changed().await.unwrap_or(true),
                None => false,
            };
            let full = last_full.elapsed() >= FULL_RESYNC;
            let fresh_lead = !self.syncing.lock().await.leading;
            if changed || full || fresh_lead {
                if full || fresh_lead {
                    last_full = tokio::time::Instant::now();
                }
                if let Err(e) = self.sync(&control).await {
                    tracing::warn!(error = %e, "mirroring the hostname directory failed");
                }
            }
        }
    }

    /// Restores the control database for the lead this node holds (under its term) and starts
    /// shipping it; the control plane's caches are read again from it.
    async fn take_over_control(
        &self,
        shipped: &super::ShippedControl,
        control: &warren_control_plane::ControlPlane,
    ) -> anyhow::Result<()> {
        let Some(term) = leader::term(&self.member, &self.advertise).await? else {
            anyhow::bail!("this node no longer leads the control plane");
        };
        shipped.take_over(term).await?;
        control.directory.refresh().await?;
        Ok(())
    }

    /// After a platform write on the leader: the mirror and first claims brought up to date
    /// before the answer goes out, so the next request anywhere finds a new tenant.
    pub async fn after_platform_write(&self, control: &warren_control_plane::ControlPlane) {
        let leads = self
            .directory
            .leader()
            .is_some_and(|l| l.lease == self.member.lease());
        if !leads {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(3), self.sync(control)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "mirroring the hostname directory failed"),
            Err(_) => tracing::warn!("mirroring the hostname directory timed out"),
        }
    }

    /// One pass of the leader's duties: claim tenants provisioned here that never had an
    /// owner, release tenants this node owns that no longer exist, and make `hosts/` say what
    /// the control database says. Without a shipped control database, records written by
    /// another node's are left alone: that node's database is not here to say them wrong.
    async fn sync(&self, control: &warren_control_plane::ControlPlane) -> anyhow::Result<()> {
        let mut state = self.syncing.lock().await;
        if !state.leading {
            state.offered.clear();
        }
        control.directory.refresh().await?;
        let me = Leader::of(&self.member, &self.advertise);
        let tenants = control.directory.tenants();
        let domains = warren_control_plane::domains::verified(control.tenants.db()).await?;
        let domain = control
            .urls
            .domain
            .trim_end_matches('.')
            .to_ascii_lowercase();

        // First claims, before the hosts appear, so a node that sees a host sees its owner.
        for tenant in &tenants {
            if state.offered.contains(&tenant.id) || self.directory.owner(&tenant.id).is_some() {
                continue;
            }
            if !self.has_data(&tenant.id) {
                continue;
            }
            // Provisioned here; it lives where placement puts it (queued before its claim is
            // seen anywhere, so placement never counts it on this node).
            self.placed_later(&tenant.id);
            match ownership::claim_new(&self.member, &tenant.id).await {
                Ok(Some(owner)) => self.record_generation(&tenant.id, owner.generation).await,
                Ok(None) => self.not_placed(&tenant.id),
                Err(e) => {
                    self.not_placed(&tenant.id);
                    return Err(e.into());
                }
            }
            state.offered.insert(tenant.id.clone());
        }
        let ids: HashSet<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
        // A shipped control database is the cluster's one: what it does not hold is gone,
        // whichever leader wrote it. Without one, each leader speaks for its own records.
        let shared = self.shipped_control().is_some();
        let current = self.directory.hosts();
        for gone in self.directory.owned_by(self.node()) {
            if ids.contains(gone.as_str()) {
                continue;
            }
            // A tenant another node's control database provisioned (this node took it over
            // when that node died) is not gone because this database never had it.
            if !shared
                && current
                    .values()
                    .any(|r| r.tenant == gone && r.control != self.node())
            {
                continue;
            }
            if let Some((owner, _)) = self.directory.owner(&gone)
                && owner.lease == self.member.lease()
            {
                ownership::release(&self.member, &gone, &owner).await?;
            }
        }

        let mut wanted: HashMap<String, HostRecord> = HashMap::new();
        for tenant in &tenants {
            wanted.insert(
                format!("{}.{domain}", tenant.slug),
                self.host_record(tenant)?,
            );
        }
        for (name, tenant) in &domains {
            wanted.insert(name.to_ascii_lowercase(), self.host_record(tenant)?);
        }
        let mut changes = Vec::new();
        for (name, record) in &wanted {
            if !hosts::valid_host(name) {
                continue;
            }
            if current.get(name).map(|r| r.as_ref()) != Some(record) {
                changes.push(Change::Put(name.clone(), record.clone()));
            }
        }
        for (name, record) in &current {
            if (shared || record.control == self.node()) && !wanted.contains_key(name) {
                changes.push(Change::Delete(name.clone()));
            }
        }
        if !changes.is_empty() {
            let Some(revision) = hosts::apply(&self.member, &me, &changes).await? else {
                state.leading = false;
                anyhow::bail!("this node no longer leads the control plane");
            };
            // The answer waits until this node's own view has the change.
            let _ = self
                .directory
                .caught_up(revision, Duration::from_secs(2))
                .await;
            tracing::info!(changes = changes.len(), "hostname directory mirrored");
        }
        state.leading = true;
        Ok(())
    }

    /// The mirror's record of `tenant`, naming this node's control database as its source.
    fn host_record(&self, tenant: &TenantInfo) -> anyhow::Result<HostRecord> {
        Ok(HostRecord {
            tenant: tenant.id.clone(),
            info: serde_json::to_value(tenant)?,
            control: self.node().to_string(),
        })
    }
}
