//! What the tenant API asks of the platform it runs in: redeeming the console's one-time
//! dashboard links and reading the tenant's metered usage. The binary answers these from the
//! control plane; without a platform (`ApiState::platform` unset) the `/api/warren/*` routes
//! answer 404.

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::error::ApiError;

/// The platform's side of the `/api/warren/*` routes.
pub trait Platform: Send + Sync + 'static {
    /// The email the one-time dashboard `code` signs in as on tenant `tenant_id`, using the
    /// code up; a 400 when it is unknown, used, expired or another tenant's.
    fn redeem_dashboard_link<'a>(
        &'a self,
        tenant_id: &'a str,
        code: &'a str,
    ) -> BoxFuture<'a, Result<String, ApiError>>;

    /// Tenant `tenant_id`'s hourly usage from the hour of `from` through the hour of `to`
    /// (dates or date-times; default the last 31 days): `{"items": […], "totals": {…}}`.
    fn usage<'a>(
        &'a self,
        tenant_id: &'a str,
        from: Option<String>,
        to: Option<String>,
    ) -> BoxFuture<'a, Result<Value, ApiError>>;
}
