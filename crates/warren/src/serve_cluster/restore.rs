//! The restore a cluster node runs when it takes over a tenant whose data is not here (its
//! owner died or moved it): the tenant's latest state from the shared backup target.

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use warren_backup::Target;
use warren_tenant::Registry;

use super::Restorer;

/// Restores tenants from the backup target every node of the cluster ships to.
pub struct FromTarget {
    /// `<data dir>/tenants`.
    pub tenants_root: PathBuf,
    pub target: Target,
    /// This node's open tenants: a tenant is closed before its directory is replaced, and
    /// when it is claimed anew, so its shipper starts a chain under the new generation.
    pub registry: Registry,
    /// This node's backups, which record the snapshot a restore stores to start the tenant's
    /// chain under the new claim.
    pub backups: warren_control_plane::backups::Backups,
}

impl Restorer for FromTarget {
    fn restore<'a>(
        &'a self,
        tenant: &'a str,
        generation: u64,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            if warren_backup::latest::newest_chain(&self.target, tenant)
                .await?
                .is_none()
            {
                return Ok(false);
            }
            // A stale copy of the tenant open here (from an earlier ownership) lets go of its
            // files before they are replaced.
            self.registry.close(tenant);
            let done = warren_tenant::handoff::restore_latest(
                &self.tenants_root,
                tenant,
                &self.target,
                generation,
            )
            .await?;
            tracing::info!(
                tenant,
                generation,
                transactions = done.transactions,
                last_commit_ms = done.last_commit_ms,
                "restored the tenant's latest shipped state"
            );
            if let Err(e) = self.backups.record_snapshot(&done.chain).await {
                tracing::warn!(tenant, error = %e, "recording the snapshot that starts the tenant's chain failed");
            }
            Ok(true)
        })
    }

    fn claimed_anew(&self, tenant: &str) {
        self.registry.close(tenant);
    }
}
