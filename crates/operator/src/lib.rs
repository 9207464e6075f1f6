//! The operator API under `/v1/` (and `/metrics`): its routes and their OpenAPI 3.1 document,
//! both made from one list, the operator-token check, and the HTTP rendering of the control
//! plane's errors. Handlers parse and render only; the work is the control plane's
//! (`warren-control-plane`). It knows nothing of the console, which the binary mounts beside it.

mod error;
pub mod openapi;
mod router;
mod routes;

pub use error::{ApiError, Result};
pub use router::router;

/// A request extension a cluster node adds (never a client: extensions are not sent) when it
/// runs an action on a tenant's data that the platform's leader authorized and sent here
/// because this node serves the tenant: the operator token is not asked again, and the tenant
/// is this one (this node's control database is a copy that may not know it).
#[derive(Clone, Debug)]
pub struct Acting(pub warren_control_plane::TenantInfo);
