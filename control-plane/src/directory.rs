//! The directory: hostname slug → tenant, cached in memory and kept in step with the control
//! database, including changes made by other processes (the CLI).
//!
//! A miss reads the database at once, so a tenant created anywhere is served on its first
//! request. A background task watches the database's change counter and reloads the cache when
//! anything committed, which is how deletions and suspensions made elsewhere take effect.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use crate::Result;
use crate::tenants::{TenantInfo, Tenants};

/// The hostname cache. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

struct Inner {
    /// Source of truth.
    tenants: Tenants,
    /// slug → tenant, for every tenant seen since the last reload. Shared, so a request
    /// resolving its host copies a pointer, not the tenant's strings.
    by_slug: RwLock<HashMap<String, Arc<TenantInfo>>>,
    /// Verified custom domain → tenant, complete after every reload.
    by_domain: RwLock<HashMap<String, Arc<TenantInfo>>>,
    /// Tenant id → its public custom domain (the first verified one in name order), rebuilt
    /// whenever `by_domain` changes, so a request never scans the domains.
    domain_of: RwLock<HashMap<String, String>>,
}

impl Directory {
    /// A directory over `tenants`, loaded now and refreshed every `every` when the control
    /// database changes. `on_removed` is told the id of each tenant that disappeared.
    pub async fn start(
        tenants: Tenants,
        every: Duration,
        on_removed: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Self> {
        let inner = Arc::new(Inner {
            tenants,
            by_slug: RwLock::new(HashMap::new()),
            by_domain: RwLock::new(HashMap::new()),
            domain_of: RwLock::new(HashMap::new()),
        });
        inner.reload().await?;
        let watcher = inner.tenants.db().watch().await?;
        tokio::spawn(watch(Arc::downgrade(&inner), watcher, every, on_removed));
        Ok(Self { inner })
    }

    /// The tenant reached by `slug`, if any.
    pub async fn resolve(&self, slug: &str) -> Result<Option<Arc<TenantInfo>>> {
        if let Some(found) = self.read().get(slug) {
            return Ok(Some(Arc::clone(found)));
        }
        let Some(found) = self.inner.tenants.find(slug).await? else {
            return Ok(None);
        };
        let found = Arc::new(found);
        self.write().insert(found.slug.clone(), Arc::clone(&found));
        Ok(Some(found))
    }

    /// Reloads every tenant from the database now (after a change that touches many tenants,
    /// such as a plan's quotas).
    pub async fn refresh(&self) -> Result<()> {
        self.inner.reload().await.map(|_| ())
    }

    /// Tenant id → slug of every tenant in the cache.
    pub fn slugs_by_id(&self) -> HashMap<String, String> {
        self.read()
            .values()
            .map(|t| (t.id.clone(), t.slug.clone()))
            .collect()
    }

    /// Every tenant in the cache (all of them after each reload). Memory only.
    pub fn tenants(&self) -> Vec<TenantInfo> {
        self.read().values().map(|t| TenantInfo::clone(t)).collect()
    }

    /// Forgets `slug` at once (used after an in-process deletion), with its custom domains.
    pub fn forget(&self, slug: &str) {
        self.write().remove(slug);
        self.domains_mut().retain(|_, tenant| tenant.slug != slug);
        self.inner.reindex();
    }

    /// The custom domain tenant `id` is publicly reached at: its first verified domain in name
    /// order, if it has any. Memory only.
    pub fn domain_of(&self, id: &str) -> Option<String> {
        self.inner
            .domain_of
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The tenant a verified custom domain (lowercase, no port) reaches. Memory only: a flood
    /// of unknown names never reaches the database.
    pub fn custom_domain(&self, domain: &str) -> Option<Arc<TenantInfo>> {
        self.inner
            .by_domain
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(domain)
            .cloned()
    }

    /// Routes `domain` to `tenant` at once (after an in-process verification).
    pub fn learn_domain(&self, domain: &str, tenant: TenantInfo) {
        self.domains_mut()
            .insert(domain.to_string(), Arc::new(tenant));
        self.inner.reindex();
    }

    /// Stops routing `domain` at once (after an in-process removal).
    pub fn forget_domain(&self, domain: &str) {
        self.domains_mut().remove(domain);
        self.inner.reindex();
    }

    fn domains_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<TenantInfo>>> {
        self.inner
            .by_domain
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<TenantInfo>>> {
        self.inner.by_slug.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<TenantInfo>>> {
        self.inner
            .by_slug
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Rebuilds `domain_of` from `by_domain`.
    fn reindex(&self) {
        let mut index: HashMap<String, String> = HashMap::new();
        for (domain, tenant) in self
            .by_domain
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let first = index
                .entry(tenant.id.clone())
                .or_insert_with(|| domain.clone());
            if domain < first {
                first.clone_from(domain);
            }
        }
        *self.domain_of.write().unwrap_or_else(|p| p.into_inner()) = index;
    }

    /// Replaces the cache with the database's tenants; returns the ids that disappeared.
    async fn reload(&self) -> Result<Vec<String>> {
        let fresh: HashMap<String, Arc<TenantInfo>> = self
            .tenants
            .list()
            .await?
            .into_iter()
            .map(|t| (t.slug.clone(), Arc::new(t)))
            .collect();
        let domains: HashMap<String, Arc<TenantInfo>> = crate::domains::verified(self.tenants.db())
            .await?
            .into_iter()
            .map(|(domain, t)| (domain, Arc::new(t)))
            .collect();
        *self.by_domain.write().unwrap_or_else(|p| p.into_inner()) = domains;
        self.reindex();
        let mut cache = self.by_slug.write().unwrap_or_else(|p| p.into_inner());
        let removed = cache
            .values()
            .filter(|old| fresh.get(&old.slug).is_none_or(|new| new.id != old.id))
            .map(|old| old.id.clone())
            .collect();
        *cache = fresh;
        Ok(removed)
    }
}

async fn watch(
    inner: Weak<Inner>,
    mut watcher: warren_store::ChangeWatcher,
    every: Duration,
    on_removed: impl Fn(&str),
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        match watcher.changed().await {
            Ok(false) => {}
            Ok(true) => match inner.reload().await {
                Ok(removed) => removed.iter().for_each(|id| on_removed(id)),
                Err(e) => tracing::warn!(error = %e, "reloading the tenant directory failed"),
            },
            Err(e) => tracing::warn!(error = %e, "watching the control database failed"),
        }
    }
}
