//! Whether a tenant's data is served by this node, as the cluster says (one node: always).

use std::future::Future;
use std::pin::Pin;

/// An answer from the node that serves a tenant.
pub type Remote<'a, T> = Pin<Box<dyn Future<Output = crate::Result<T>> + Send + 'a>>;

/// What a cluster node installs into its registry so that platform actions on a tenant's data
/// (backups, restores, exports, imports, deploys, superusers) never act on a stale copy.
pub trait Locality: Send + Sync {
    /// Tenant `id` is served by another node right now, so this node's copy is not its data.
    fn elsewhere(&self, id: &str) -> bool;

    /// Creates the superuser `email` with `password` in tenant `id`, or sets the existing
    /// one's password, on the node that serves the tenant; the email as saved. Refused input
    /// is [`crate::Error::Invalid`]; [`crate::Error::Elsewhere`] when that node did not do it.
    fn set_superuser_there<'a>(
        &'a self,
        id: &'a str,
        email: &'a str,
        password: &'a str,
    ) -> Remote<'a, String>;
}
