//! A tenant's secrets as the operator manages them (set, unset, list names); the values are
//! only ever read by the tenant's own code (`$os.getenv`). The store is
//! [`warren_tenant::secrets`], in the tenant's directory: a running server's code sees a change
//! at its next read.

use serde::Serialize;
use warren_tenant::secrets;

use crate::tenants::Tenants;
use crate::{Error, Result};

/// The names of a tenant's secrets (never their values).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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

/// The names of the secrets of tenant `slug`.
pub async fn list(tenants: &Tenants, slug: &str) -> Result<SecretNames> {
    let dir = dir(tenants, slug).await?;
    blocking(move || {
        let names = secrets::read(&dir).map_err(refused)?.into_keys().collect();
        Ok(SecretNames { names })
    })
    .await
}

/// Sets secret `name` of tenant `slug`.
pub async fn set(tenants: &Tenants, slug: &str, name: &str, value: &str) -> Result<()> {
    let dir = dir(tenants, slug).await?;
    let (name, value) = (name.to_string(), value.to_string());
    blocking(move || secrets::set(&dir, &name, &value).map_err(refused)).await
}

/// Removes secret `name` of tenant `slug` ([`Error::NotFound`] when it is not set).
pub async fn unset(tenants: &Tenants, slug: &str, name: &str) -> Result<()> {
    let dir = dir(tenants, slug).await?;
    let name = name.to_string();
    blocking(
        move || match secrets::unset(&dir, &name).map_err(refused)? {
            true => Ok(()),
            false => Err(Error::NotFound),
        },
    )
    .await
}
