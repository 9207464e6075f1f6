//! The tenant lifecycle: the one place that deletes, suspends and resumes tenants, closing a
//! tenant in the registry before its hostnames stop answering and before its files go.
//!
//! Every change runs in the same order: drain the tenant in the registry (new requests are
//! refused, realtime clients disconnected, requests in flight and the writer finish, pending
//! WAL is shipped, every database handle closes), change its record in the control database,
//! forget its hostnames in the directory, and only then touch its files. Handlers and the CLI
//! call one function here and never sequence these steps themselves.

use std::path::Path;
use std::time::Duration;

use warren_tenant::{Drained, Registry, RegistryConfig};

use crate::backups::{Backups, RestoreOutcome, RestoreRequest};
use crate::projects::Projects;
use crate::tenants::{TenantInfo, TenantStatus, Tenants};
use crate::{Directory, Error, Result};

/// How long a change waits for requests in flight on the tenant to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Deletes, suspends and resumes tenants. Cheap to clone.
#[derive(Clone)]
pub struct Lifecycle {
    /// Tenant bookkeeping (control database) and the directory tenants live in.
    tenants: Tenants,
    /// This process's open tenants. A CLI process has its own, with nothing open; a server
    /// running beside it closes the tenant when its directory watcher sees the change.
    registry: Registry,
    /// This process's hostname cache, when it serves.
    directory: Option<Directory>,
    /// How long a change waits for requests in flight on the tenant.
    drain_limit: Duration,
}

impl Lifecycle {
    /// The lifecycle of a serving process: `registry` holds its open tenants, `directory`
    /// routes its hostnames.
    pub fn new(tenants: Tenants, registry: Registry, directory: Directory) -> Self {
        Self {
            tenants,
            registry,
            directory: Some(directory),
            drain_limit: DRAIN_LIMIT,
        }
    }

    /// The lifecycle of a process that serves no tenant (the CLI). Needs a Tokio runtime.
    pub fn offline(tenants: Tenants) -> Self {
        let registry = offline_registry(tenants.root());
        Self {
            tenants,
            registry,
            directory: None,
            drain_limit: DRAIN_LIMIT,
        }
    }

    /// Deletes tenant `slug` once no request uses it: its record and custom domains, its
    /// hostnames, then its directory. Returns the deleted tenant.
    pub async fn delete(&self, slug: &str) -> Result<TenantInfo> {
        let tenant = self.tenants.find(slug).await?.ok_or(Error::NotFound)?;
        self.remove(&tenant).await
    }

    /// Deletes `account`'s project `id` like [`Lifecycle::delete`]; `NotFound` when it is
    /// another account's or absent.
    pub async fn delete_project(&self, account: &str, id: &str) -> Result<TenantInfo> {
        let tenant = Projects::new(self.tenants.clone()).get(account, id).await?;
        self.remove(&tenant).await
    }

    /// Suspends tenant `slug`: it is closed (realtime clients disconnected, requests in flight
    /// finished), then every request gets 503 until it is resumed.
    pub async fn suspend(&self, slug: &str) -> Result<TenantInfo> {
        let tenant = self.tenants.find(slug).await?.ok_or(Error::NotFound)?;
        let _closed = self.drain(&tenant).await?;
        let suspended = self
            .tenants
            .set_status(slug, TenantStatus::Suspended)
            .await?;
        self.forget(&suspended);
        Ok(suspended)
    }

    /// Resumes tenant `slug`: its next request opens it again.
    pub async fn resume(&self, slug: &str) -> Result<TenantInfo> {
        let resumed = self.tenants.set_status(slug, TenantStatus::Active).await?;
        self.forget(&resumed);
        Ok(resumed)
    }

    /// Suspends or resumes tenant `slug`.
    pub async fn set_status(&self, slug: &str, status: TenantStatus) -> Result<TenantInfo> {
        match status {
            TenantStatus::Active => self.resume(slug).await,
            TenantStatus::Suspended => self.suspend(slug).await,
        }
    }

    /// Moves tenant `slug` to plan `plan`; its new limits apply from its next request.
    pub async fn set_plan(&self, slug: &str, plan: &str) -> Result<TenantInfo> {
        let moved = self.tenants.set_plan(slug, plan).await?;
        self.forget(&moved);
        Ok(moved)
    }

    /// Sets tenant `slug`'s own shipping mode over its plan's (`None`: the plan's again); it
    /// applies at the tenant's next request.
    pub async fn set_shipping(
        &self,
        slug: &str,
        shipping: Option<crate::plans::Shipping>,
    ) -> Result<TenantInfo> {
        let changed = self.tenants.set_shipping(slug, shipping).await?;
        self.forget(&changed);
        Ok(changed)
    }

    /// Restores tenant `slug` from `backups` as `request` asks: in place (the tenant is
    /// drained while its files are replaced) or into a new tenant; either then answers
    /// through its hostnames from its next request.
    pub async fn restore(
        &self,
        backups: &Backups,
        slug: &str,
        request: &RestoreRequest,
        report: warren_backup::Report<'_>,
    ) -> Result<RestoreOutcome> {
        let outcome = backups.restore(slug, request, report).await?;
        self.forget(&outcome.tenant);
        Ok(outcome)
    }

    /// [`Lifecycle::restore`] of `tenant`, passed whole (a cluster node acting for the leader,
    /// whose control database may not know the tenant).
    pub async fn restore_tenant(
        &self,
        backups: &Backups,
        tenant: TenantInfo,
        request: &RestoreRequest,
        report: warren_backup::Report<'_>,
    ) -> Result<RestoreOutcome> {
        let outcome = backups.restore_tenant(tenant, request, report).await?;
        self.forget(&outcome.tenant);
        Ok(outcome)
    }

    /// Drains `tenant`, deletes its record, forgets its hostnames, then removes its files.
    async fn remove(&self, tenant: &TenantInfo) -> Result<TenantInfo> {
        let drained = self.drain(tenant).await?;
        let deleted = self.tenants.delete_record(&tenant.id).await?;
        self.forget(&deleted);
        drained.remove_files().await?;
        Ok(deleted)
    }

    /// Closes `tenant` in this process and keeps it closed while the guard lives.
    async fn drain(&self, tenant: &TenantInfo) -> Result<Drained> {
        Ok(self.registry.drain(&tenant.id, self.drain_limit).await?)
    }

    /// Makes this process's hostname cache read `tenant` afresh at its next request.
    fn forget(&self, tenant: &TenantInfo) {
        if let Some(directory) = &self.directory {
            directory.forget(&tenant.slug);
        }
    }
}

/// The registry of a process that serves no tenant (the CLI): nothing is open in it, so
/// draining a tenant returns at once, and its guard still orders the file changes.
pub(crate) fn offline_registry(root: &Path) -> Registry {
    Registry::new(RegistryConfig {
        root: root.to_path_buf(),
        max_open: 1,
        idle_timeout: Duration::from_secs(60),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open_control_db, tenants_root};

    /// A control plane's lifecycle over a fresh data directory, with its registry.
    async fn serving() -> (tempfile::TempDir, Lifecycle, Registry, Directory) {
        let dir = tempfile::tempdir().unwrap();
        let db = open_control_db(dir.path()).await.unwrap();
        let tenants = Tenants::new(db, tenants_root(dir.path()));
        let registry = Registry::new(RegistryConfig {
            root: tenants_root(dir.path()),
            max_open: 10,
            idle_timeout: Duration::from_secs(60),
        });
        let closer = registry.clone();
        let directory = Directory::start(tenants.clone(), Duration::from_secs(60), move |id| {
            closer.close(id)
        })
        .await
        .unwrap();
        let lifecycle = Lifecycle::new(tenants, registry.clone(), directory.clone());
        (dir, lifecycle, registry, directory)
    }

    #[tokio::test]
    async fn deleting_waits_for_requests_in_flight_and_closes_realtime_clients() {
        let (_dir, lifecycle, registry, directory) = serving().await;
        let info = lifecycle.tenants.create("alpha").await.unwrap();
        assert!(directory.resolve("alpha").await.unwrap().is_some());
        let in_flight = registry.get(&info.id).await.unwrap();
        let mut subscriber = in_flight.broker().connect();
        let deleting = {
            let lifecycle = lifecycle.clone();
            tokio::spawn(async move { lifecycle.delete("alpha").await })
        };
        // The realtime client is disconnected at once; the request in flight is waited for.
        assert!(subscriber.recv().await.is_none());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!deleting.is_finished());
        let data = in_flight.dir().to_path_buf();
        assert!(data.join(warren_tenant::DATABASE_FILE).exists());
        assert!(matches!(
            registry.get(&info.id).await,
            Err(warren_tenant::Error::Draining)
        ));
        drop(subscriber);
        drop(in_flight);
        let deleted = deleting.await.unwrap().unwrap();
        assert_eq!(deleted.id, info.id);
        assert!(!data.exists());
        // A later request finds no tenant: the hostname is unknown and nothing reopens.
        assert!(directory.resolve("alpha").await.unwrap().is_none());
        assert!(matches!(
            registry.get(&info.id).await,
            Err(warren_tenant::Error::NotFound)
        ));
        assert!(!data.exists());
    }

    #[tokio::test]
    async fn a_tenant_in_use_past_the_limit_is_not_deleted() {
        let (_dir, mut lifecycle, registry, directory) = serving().await;
        lifecycle.drain_limit = Duration::from_millis(20);
        let info = lifecycle.tenants.create("alpha").await.unwrap();
        let in_flight = registry.get(&info.id).await.unwrap();
        assert!(lifecycle.delete("alpha").await.is_err());
        assert!(lifecycle.suspend("alpha").await.is_err());
        drop(in_flight);
        // Nothing changed: the tenant still answers, active, with its data.
        let still = directory.resolve("alpha").await.unwrap().unwrap();
        assert_eq!(still.status, TenantStatus::Active);
        let tenant = registry.get(&info.id).await.unwrap();
        assert!(tenant.dir().join(warren_tenant::DATABASE_FILE).exists());
    }

    #[tokio::test]
    async fn suspending_closes_the_tenant_and_resuming_serves_it_again() {
        let (_dir, lifecycle, registry, directory) = serving().await;
        let info = lifecycle.tenants.create("alpha").await.unwrap();
        let status = async |slug| directory.resolve(slug).await.unwrap().unwrap().status;
        assert_eq!(status("alpha").await, TenantStatus::Active);
        let open = registry.get(&info.id).await.unwrap();
        let mut subscriber = open.broker().connect();
        drop(open);
        let suspended = lifecycle.suspend("alpha").await.unwrap();
        assert_eq!(suspended.status, TenantStatus::Suspended);
        assert!(subscriber.recv().await.is_none());
        assert_eq!(registry.open_count(), 0);
        assert_eq!(status("alpha").await, TenantStatus::Suspended);
        let resumed = lifecycle.resume("alpha").await.unwrap();
        assert_eq!(resumed.status, TenantStatus::Active);
        assert_eq!(status("alpha").await, TenantStatus::Active);
        registry.get(&info.id).await.unwrap();
        assert!(matches!(
            lifecycle.suspend("nosuch").await,
            Err(Error::NotFound)
        ));
    }
}
