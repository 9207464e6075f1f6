//! Where a new tenant's data is made: here, or, in a cluster, on the node placement gives it.

use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;

/// Where a new tenant is provisioned, as a [`PlaceNew`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// On another node, which claimed it and stored its first snapshot.
    There,
    /// To be provisioned here under the id asked about: placement gives this node the tenant.
    Here,
    /// To be provisioned here under a fresh id: the placed node failed or was too slow (and
    /// may still claim the id it was asked about, which is never used again).
    Failed,
}

/// What a cluster node installs with [`crate::Tenants::set_placer`] so that a new tenant is
/// provisioned on the node placement gives it rather than on the node recording it.
pub trait PlaceNew: Send + Sync {
    /// Has new tenant `id` (to be recorded under `slug`) provisioned and first claimed on the
    /// node it is placed on, answering once that node stored its first snapshot in the backup
    /// target, or says it is to be provisioned here.
    fn provision_there<'a>(&'a self, id: &'a str, slug: &'a str) -> BoxFuture<'a, Provisioned>;

    /// New tenant `id`, provisioned [`Provisioned::There`] (`there`) or here after
    /// [`PlaceNew::provision_there`], was not recorded (its slug was taken meanwhile): it is
    /// no longer counted where it was going, and a claim there is given up.
    fn abandon<'a>(&'a self, id: &'a str, there: bool) -> BoxFuture<'a, ()>;
}

/// The placer of new tenants, once installed; shared by every clone of [`crate::Tenants`].
#[derive(Clone, Default)]
pub(crate) struct Placer(Arc<RwLock<Option<Arc<dyn PlaceNew>>>>);

impl std::fmt::Debug for Placer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.get().is_some() {
            "Placer(installed)"
        } else {
            "Placer(none)"
        })
    }
}

impl Placer {
    pub(crate) fn get(&self) -> Option<Arc<dyn PlaceNew>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, placer: Arc<dyn PlaceNew>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(placer);
    }
}
