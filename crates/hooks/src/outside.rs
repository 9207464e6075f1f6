//! What tenants' code reaches outside its sandbox: mail (`$app.newMailClient().send`),
//! `$http.send` and `$os.getenv` (the tenant's own secrets). Each waits with the call's CPU
//! deadline paused (see [`crate::sandbox::waiting`]) and is counted in the tenant's usage.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rquickjs::{Ctx, Function, Object};
use serde_json::{Map, Value, json};
use warren_tenant::Tenant;

use crate::native::Shared;
use crate::sandbox;

/// What the node lets tenants' code reach: the mailer and whether private networks are
/// reachable by `$http.send`.
#[derive(Clone, Default)]
pub struct Outside {
    /// The node's mailer (the platform relay or the outbox); none: the code cannot mail.
    pub mailer: Option<warren_mail::Mailer>,
    /// Whether `$http.send` may reach loopback and private addresses (`--hooks-allow-private-network`).
    pub allow_private_network: bool,
}

/// Longest a mail from the code may take to hand over.
const MAIL_WAIT: Duration = Duration::from_secs(20);

/// Adds `mailSend`, `httpSend` and `getenv` to the `__native` object.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    shared: Arc<Shared>,
) -> rquickjs::Result<()> {
    let s = shared.clone();
    native.set(
        "mailSend",
        Function::new(ctx.clone(), move |message: String| {
            answer(mail_send(&s, &message))
        })?,
    )?;
    let s = shared.clone();
    native.set(
        "httpSend",
        Function::new(ctx.clone(), move |request: String| {
            answer(http_send(&s, &request))
        })?,
    )?;
    let s = shared;
    native.set(
        "getenv",
        Function::new(ctx.clone(), move |name: String| -> String {
            match s.tenant() {
                Some(tenant) => {
                    warren_tenant::secrets::get(tenant.dir(), &name).unwrap_or_default()
                }
                None => String::new(),
            }
        })?,
    )?;
    Ok(())
}

fn answer(result: Result<Value, String>) -> String {
    match result {
        Ok(value) => json!({ "value": value }).to_string(),
        Err(message) => json!({ "error": message }).to_string(),
    }
}

fn tenant(shared: &Shared) -> Result<Tenant, String> {
    shared
        .tenant()
        .ok_or_else(|| "this is not available while the hooks are checked".to_string())
}

/// Sends a message the code built (its `onMailerSend` hooks ran already in the sandbox).
fn mail_send(shared: &Shared, message: &str) -> Result<Value, String> {
    let tenant = tenant(shared)?;
    let mailer = shared
        .outside
        .mailer
        .clone()
        .ok_or("this node sends no mail from hooks")?;
    let message: warren_mail::Message =
        serde_json::from_str(message).map_err(|e| format!("invalid MailerMessage: {e}"))?;
    message.check().map_err(|e| e.to_string())?;
    let sent = sandbox::waiting(|left| {
        shared.handle.block_on(async {
            let settings = tenant.settings().await.map_err(|e| e.to_string())?;
            let sending = warren_tenant::mail::send(&tenant, &mailer, &settings, &message, None);
            match tokio::time::timeout(left.min(MAIL_WAIT), sending).await {
                Ok(outcome) => outcome.map_err(|e| e.to_string()),
                Err(_) => Err("sending the mail timed out".to_string()),
            }
        })
    })??;
    Ok(json!(matches!(sent, warren_mail::Delivery::Sent)))
}

/// `$http.send(config)`: the answer as `{statusCode, headers, raw, base64?}`.
fn http_send(shared: &Shared, request: &str) -> Result<Value, String> {
    let tenant = tenant(shared)?;
    let request: crate::http::Request =
        serde_json::from_str(request).map_err(|e| format!("invalid $http.send config: {e}"))?;
    let allow = shared.outside.allow_private_network;
    let meter = tenant.meter();
    meter.outbound.http_requests.fetch_add(1, Relaxed);
    meter.requests.fetch_add(1, Relaxed);
    let sent = request.body.len() as u64;
    meter.outbound.http_bytes_out.fetch_add(sent, Relaxed);
    meter.bytes_out.fetch_add(sent, Relaxed);
    let response = sandbox::waiting(|left| {
        shared
            .handle
            .block_on(crate::http::send(&request, allow, left))
    })??;
    let received = response.body.len() as u64;
    meter.outbound.http_bytes_in.fetch_add(received, Relaxed);
    meter.bytes_in.fetch_add(received, Relaxed);
    let mut headers = Map::new();
    for (name, value) in &response.headers {
        let key = canonical(name);
        match headers.get_mut(&key) {
            Some(Value::Array(list)) => list.push(value.clone().into()),
            _ => {
                headers.insert(key, json!([value]));
            }
        }
    }
    // Text crosses as it is; other bytes as base64 (the prelude decodes either on demand).
    Ok(match String::from_utf8(response.body) {
        Ok(raw) => json!({ "statusCode": response.status, "headers": headers, "raw": raw }),
        Err(binary) => {
            use base64::Engine as _;
            let bytes = binary.into_bytes();
            json!({
                "statusCode": response.status,
                "headers": headers,
                "raw": String::from_utf8_lossy(&bytes),
                "base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
            })
        }
    })
}

/// `content-type` → `Content-Type`, as PocketBase's answers name headers.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-request-id"), "X-Request-Id");
        assert_eq!(canonical("etag"), "Etag");
    }
}
