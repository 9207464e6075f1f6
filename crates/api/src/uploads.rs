//! Uploads and record writes on the HTTP side: the body limit of a record write, the tenant
//! write pipeline's services as the API state holds them, and its errors as API errors. The
//! files themselves are staged and committed by `warren_tenant::ops`.

use warren_files::Backend;
use warren_records::Entry;
use warren_schema::FieldKind;
use warren_schema::field::DEFAULT_FILE_MAX_SIZE;
use warren_tenant::Tenant;
use warren_tenant::ops;

use crate::error::ApiError;
use crate::router::ApiState;

/// PocketBase's default request body limit.
const BASE_LIMIT: usize = 32 << 20;

/// The body limit of a record create/update on `entry`: the default plus room for every file
/// field at its `maxSize` × `maxSelect`.
pub fn body_limit(entry: &Entry) -> usize {
    let mut limit = BASE_LIMIT as u64;
    for field in &entry.collection.fields {
        if let FieldKind::File(o) = &field.kind {
            let size = if o.max_size > 0 {
                o.max_size as u64
            } else {
                DEFAULT_FILE_MAX_SIZE as u64
            };
            limit = limit.saturating_add(size.saturating_mul(o.max_select.max(1) as u64));
        }
    }
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// The tenant's storage backend.
pub async fn backend(files: &warren_files::Files, tenant: &Tenant) -> Result<Backend, ApiError> {
    Ok(ops::storage::backend(files, tenant).await?)
}

/// The write pipeline's services from the API state (subscribers' `fields` projected as the
/// REST parameter is).
pub fn services(state: &ApiState) -> ops::Services {
    ops::Services {
        files: state.files.clone(),
        passwords: state.passwords.clone(),
        project: crate::routes::realtime::project_fields,
    }
}

impl From<ops::Error> for ApiError {
    fn from(e: ops::Error) -> Self {
        match e {
            ops::Error::Records(e) => e.into(),
            ops::Error::Collection(e) => e.into(),
            ops::Error::Tenant(e) => e.into(),
            ops::Error::Storage(e) => ApiError::internal(e),
            ops::Error::Hook(e) => e.into(),
        }
    }
}
