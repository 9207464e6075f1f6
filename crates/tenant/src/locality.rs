//! Whether a tenant's data is served by this node, as the cluster says (one node: always).

/// What a cluster node installs into its registry so that platform actions on a tenant's data
/// (backups, restores, exports, imports, deploys, superusers) never act on a stale copy.
pub trait Locality: Send + Sync {
    /// Tenant `id` is served by another node right now, so this node's copy is not its data.
    fn elsewhere(&self, id: &str) -> bool;
}
