//! The control plane's answers to the tenant API's `/api/warren/*` routes: one-time dashboard
//! links minted by the console, and the tenant's metered usage.

use axum::http::StatusCode;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use warren_api::ApiError;
use warren_control_plane::ControlPlane;
use warren_control_plane::metering::totals;

/// [`warren_api::Platform`] over the control plane.
pub struct ControlPlatform {
    /// Accounts' dashboard links and the metering.
    pub control: ControlPlane,
}

/// A control-plane error as the tenant API shows it: its envelope, with a refused field's
/// reason as the message (the dashboard shows the message).
fn api_error(e: warren_control_plane::Error) -> ApiError {
    let envelope = e.envelope();
    if envelope.status >= 500 {
        return ApiError::internal(e);
    }
    let status = StatusCode::from_u16(envelope.status).unwrap_or(StatusCode::BAD_REQUEST);
    let message = match &e {
        warren_control_plane::Error::Invalid(_, reason) => reason.clone(),
        _ => envelope.message,
    };
    let mut error = ApiError::new(status, message);
    if let Value::Object(data) = envelope.data {
        error.data = data;
    }
    error
}

impl warren_api::Platform for ControlPlatform {
    fn redeem_dashboard_link<'a>(
        &'a self,
        tenant_id: &'a str,
        code: &'a str,
    ) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(async move {
            self.control
                .console
                .dashboard_links()
                .redeem(tenant_id, code)
                .map_err(api_error)
        })
    }

    fn usage<'a>(
        &'a self,
        tenant_id: &'a str,
        from: Option<String>,
        to: Option<String>,
    ) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            let items = self
                .control
                .metering
                .usage(tenant_id, from, to)
                .await
                .map_err(api_error)?;
            Ok(json!({ "totals": totals(&items), "items": items }))
        })
    }
}
