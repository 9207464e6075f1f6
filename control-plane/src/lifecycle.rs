//! The tenant lifecycle: the one place that deletes, suspends and resumes tenants, closing a
//! tenant in the registry before its hostnames stop answering and before its files go.
//!
//! Every change runs in the same order: drain the tenant in the registry (new requests are
//! refused, realtime clients disconnected, requests in flight and the writer finish, pending
//! WAL is shipped, every database handle closes), change its record in the control database,
//! forget its hostnames in the directory, and only then touch its files. Handlers and the CLI
//! call one function here and never sequence these steps themselves.

use std::time::Duration;

use warren_tenant::{Drained, Registry, RegistryConfig};

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
}

impl Lifecycle {
    /// The lifecycle of a serving process: `registry` holds its open tenants, `directory`
    /// routes its hostnames.
    pub fn new(tenants: Tenants, registry: Registry, directory: Directory) -> Self {
        Self {
            tenants,
            registry,
            directory: Some(directory),
        }
    }

    /// The lifecycle of a process that serves no tenant (the CLI). Needs a Tokio runtime.
    pub fn offline(tenants: Tenants) -> Self {
        let registry = Registry::new(RegistryConfig {
            root: tenants.root().to_path_buf(),
            max_open: 1,
            idle_timeout: Duration::from_secs(60),
        });
        Self {
            tenants,
            registry,
            directory: None,
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
        Ok(self.registry.drain(&tenant.id, DRAIN_LIMIT).await?)
    }

    /// Makes this process's hostname cache read `tenant` afresh at its next request.
    fn forget(&self, tenant: &TenantInfo) {
        if let Some(directory) = &self.directory {
            directory.forget(&tenant.slug);
        }
    }
}
