//! Taking over a tenant whose data is not on this node (a cluster's failover or move): its
//! latest state is restored from the backup target into its directory, under the ownership
//! generation the node claimed it with.

use std::path::Path;

pub use warren_backup::latest::Handoff;
use warren_backup::{Error, Result, Target};

/// Restores tenant `tenant_id`'s latest shipped state from `target` into its directory under
/// `root` (the node's tenants directory), for a node that claimed the tenant under ownership
/// generation `generation`: the newest snapshot of the highest ownership generation in the
/// target plus every segment of its chain, replayed to the end, integrity-checked, put in
/// place atomically (a stale local copy is replaced), and a new snapshot stored under
/// `generation` so the previous owner's objects are never extended.
///
/// Call it after the claim and before the tenant is opened on this node; the registry opens
/// the restored directory at the tenant's next request, and its shipper continues the new
/// chain. Fails (changing nothing) when the target holds no backup of the tenant, holds one
/// of a higher generation than `generation` (the claim is stale), or the backup is damaged.
pub async fn restore_latest(
    root: &Path,
    tenant_id: &str,
    target: &Target,
    generation: u64,
) -> Result<Handoff> {
    let valid = (1..=64).contains(&tenant_id.len())
        && tenant_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid {
        return Err(Error::Invalid(format!("{tenant_id:?} is not a tenant id")));
    }
    tokio::fs::create_dir_all(root).await?;
    let dir = crate::tenant_dir(root, tenant_id);
    warren_backup::latest::restore_latest(target, tenant_id, &dir, generation).await
}
