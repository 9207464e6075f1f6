//! A tenant's secrets as the operator manages them (set, unset, list names); the values are
//! only ever read by the tenant's own code (`$os.getenv`). The store is
//! [`warren_tenant::secrets`], in the tenant's directory: a running server's code sees a change
//! at its next read. A shipped tenant's secrets also go to the backup target with its chain
//! (never in a snapshot), so a node taking it over has them.

use serde::{Deserialize, Serialize};
use warren_tenant::secrets;

use crate::tenants::{TenantInfo, Tenants};
use crate::{ControlPlane, Error, Result};

/// The names of a tenant's secrets (never their values).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretNames {
    /// In name order.
    pub names: Vec<String>,
}

fn refused(e: secrets::Error) -> Error {
    match e {
        secrets::Error::Io(e) => Error::Io(e),
        secrets::Error::Name => Error::Invalid("name", e.to_string()),
        secrets::Error::Value => Error::Invalid("value", e.to_string()),
        secrets::Error::Count => Error::Invalid("name", e.to_string()),
    }
}

async fn dir(tenants: &Tenants, slug: &str) -> Result<std::path::PathBuf> {
    let tenant = tenants.find(slug).await?.ok_or(Error::NotFound)?;
    Ok(warren_tenant::tenant_dir(tenants.root(), &tenant.id))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
}

async fn names(dir: std::path::PathBuf) -> Result<SecretNames> {
    blocking(move || {
        let names = secrets::read(&dir).map_err(refused)?.into_keys().collect();
        Ok(SecretNames { names })
    })
    .await
}

async fn write(dir: std::path::PathBuf, name: &str, value: &str) -> Result<()> {
    let (name, value) = (name.to_string(), value.to_string());
    blocking(move || secrets::set(&dir, &name, &value).map_err(refused)).await
}

async fn remove(dir: std::path::PathBuf, name: &str) -> Result<()> {
    let name = name.to_string();
    blocking(
        move || match secrets::unset(&dir, &name).map_err(refused)? {
            true => Ok(()),
            false => Err(Error::NotFound),
        },
    )
    .await
}

/// The names of the secrets of tenant `slug`, in a data directory no server serves (the CLI).
pub async fn list(tenants: &Tenants, slug: &str) -> Result<SecretNames> {
    names(dir(tenants, slug).await?).await
}

/// Sets secret `name` of tenant `slug`, in a data directory no server serves (the CLI).
pub async fn set(tenants: &Tenants, slug: &str, name: &str, value: &str) -> Result<()> {
    write(dir(tenants, slug).await?, name, value).await
}

/// Removes secret `name` of tenant `slug` ([`Error::NotFound`] when it is not set), in a data
/// directory no server serves (the CLI).
pub async fn unset(tenants: &Tenants, slug: &str, name: &str) -> Result<()> {
    remove(dir(tenants, slug).await?, name).await
}

/// The directory of `tenant`, served by this node (refused when another node of the cluster
/// serves it: this copy is stale).
fn served_dir(control: &ControlPlane, tenant: &TenantInfo) -> Result<std::path::PathBuf> {
    control.registry.check_here(&tenant.id)?;
    Ok(warren_tenant::tenant_dir(
        control.tenants.root(),
        &tenant.id,
    ))
}

/// The names of `tenant`'s secrets, on the server that serves it.
pub async fn list_for(control: &ControlPlane, tenant: &TenantInfo) -> Result<SecretNames> {
    names(served_dir(control, tenant)?).await
}

/// Sets secret `name` of `tenant` on the server that serves it; returns once the secrets are
/// stored in the backup target too when the tenant is shipped (see
/// [`crate::backups::Backups::keep_state`]).
pub async fn set_for(
    control: &ControlPlane,
    tenant: &TenantInfo,
    name: &str,
    value: &str,
) -> Result<()> {
    write(served_dir(control, tenant)?, name, value).await?;
    control
        .backups
        .keep_state(tenant, warren_backup::state::Items::secrets())
        .await
}

/// Removes secret `name` of `tenant` on the server that serves it ([`Error::NotFound`] when it
/// is not set), durably like [`set_for`].
pub async fn unset_for(control: &ControlPlane, tenant: &TenantInfo, name: &str) -> Result<()> {
    remove(served_dir(control, tenant)?, name).await?;
    control
        .backups
        .keep_state(tenant, warren_backup::state::Items::secrets())
        .await
}
