//! The record writes of an OAuth2 sign-in: signing a new user up (with the provider's avatar
//! when the field takes it) and linking the provider's account to a record.

use std::sync::Arc;

use serde_json::{Map, Value};
use warren_auth::external;
use warren_files::Upload;
use warren_filter::RequestContext;
use warren_records::{Caller, Entry};

use super::records::{Staged, write_staged};
use super::{Error, Services, storage};
use crate::Tenant;

/// A new user signing up through an OAuth2 provider.
pub struct OAuth2SignUp {
    /// The auth collection.
    pub entry: Arc<Entry>,
    /// The request as the create rule sees it (a guest's).
    pub ctx: RequestContext,
    /// The new record's fields (`createData` and the provider's mapped fields).
    pub body: Map<String, Value>,
    /// The provider's avatar picture, for the mapped file field.
    pub avatar: Option<Upload>,
}

/// Creates the user of an OAuth2 sign-up as a guest would: stages the avatar (a picture the
/// field refuses, by type or size, is left out rather than failing the sign-up), writes,
/// keeps or takes back the file, publishes and meters the change. Returns the new record's id.
pub async fn sign_up_oauth2(
    tenant: &Tenant,
    services: &Services,
    request: OAuth2SignUp,
) -> Result<String, Error> {
    let OAuth2SignUp {
        entry,
        ctx,
        mut body,
        avatar,
    } = request;
    let files = &services.files;
    let uploads: Vec<Upload> = avatar.into_iter().collect();
    let pending = match storage::stage(files, tenant, &entry, &mut body, uploads, None).await {
        Ok(pending) => pending,
        Err(e) => {
            tracing::warn!(error = %e, "OAuth2 avatar refused by its field");
            storage::stage(files, tenant, &entry, &mut body, Vec::new(), None).await?
        }
    };
    let staged = Staged {
        entry,
        caller: &Caller::Guest,
        ctx,
        body,
        expand: "",
    };
    let created = write_staged(tenant, services, pending, staged, None).await?;
    Ok(created
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// A provider account to link to an auth record.
pub struct LinkExternal<'a> {
    /// The auth collection.
    pub entry: &'a Arc<Entry>,
    /// The record's id.
    pub id: &'a str,
    /// The provider's name.
    pub provider: &'a str,
    /// The user's id at the provider.
    pub provider_id: &'a str,
    /// Whether the provider vouched for the record's email (marks the record verified).
    pub verify: bool,
}

/// Links a provider account to a record (`_externalAuths`), verifying it when asked.
pub async fn link_external(tenant: &Tenant, request: LinkExternal<'_>) -> Result<(), Error> {
    let LinkExternal {
        entry,
        id,
        provider,
        provider_id,
        verify,
    } = request;
    external::link(tenant.db(), entry, id, provider, provider_id, verify).await?;
    Ok(())
}
