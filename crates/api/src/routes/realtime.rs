//! `/api/realtime`: the SSE stream (`GET`), subscription updates (`POST`) and the WebSocket
//! transport (`GET /api/realtime/ws`), over the tenant's realtime broker.

use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::{Instant, Sleep};
use warren_realtime::{
    MAX_CLIENT_ID_LEN, MAX_SUBSCRIPTION_LEN, MAX_SUBSCRIPTIONS, Message, Subscriber,
};
use warren_records::Caller;
use warren_tenant::Tenant;
use warren_tenant::meter::RealtimeGuard;

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody};

/// A client that receives nothing for this long is dropped (PocketBase: 5 minutes).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// A connection is ended after this long at the latest; clients reconnect (PocketBase).
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The `fields` option of a subscription, applied like the REST parameter.
pub(crate) fn project_fields(record: Value, fields: &str) -> Value {
    if fields.trim().is_empty() {
        return record;
    }
    crate::fields::project(record.clone(), fields).unwrap_or(record)
}

/// `GET /api/realtime`
pub async fn connect_realtime(CurrentTenant(tenant): CurrentTenant) -> Response {
    let Some(presence) = tenant.meter().connect_realtime() else {
        return too_many_connections().into_response();
    };
    let subscriber = tenant.broker().connect();
    drop(tenant);
    let stream = Stream::new(subscriber, presence);
    let stream = futures_util::stream::unfold(stream, |mut s| async move {
        let frame = s.next().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), s))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The plan's realtime connection limit is reached.
fn too_many_connections() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "The project has reached its plan's limit of realtime connections.",
    )
}

/// One SSE connection: the connect frame, then the client's messages until it idles out,
/// reaches its lifetime or is dropped by the broker.
struct Stream {
    subscriber: Subscriber,
    connected: bool,
    ends: Instant,
    /// When the last message went out; the idle deadline runs from it.
    last: Instant,
    /// Fires at the idle deadline as of its last arming; re-armed lazily, so a message costs
    /// no timer operation.
    idle: Pin<Box<Sleep>>,
    /// Counts the connection in the tenant's usage until the stream is dropped.
    _presence: RealtimeGuard,
}

impl Stream {
    fn new(subscriber: Subscriber, presence: RealtimeGuard) -> Self {
        let now = Instant::now();
        let ends = now + MAX_LIFETIME;
        Self {
            subscriber,
            connected: false,
            ends,
            last: now,
            idle: Box::pin(tokio::time::sleep_until((now + IDLE_TIMEOUT).min(ends))),
            _presence: presence,
        }
    }

    async fn next(&mut self) -> Option<Bytes> {
        if !self.connected {
            self.connected = true;
            let id = self.subscriber.id();
            let data = json!({ "clientId": id }).to_string();
            return Some(sse_frame(id, "PB_CONNECT", &data));
        }
        loop {
            tokio::select! {
                // A queued message goes out without touching the idle timer.
                biased;
                message = self.subscriber.recv() => {
                    let Message { topic, data } = message?;
                    self.last = Instant::now();
                    return Some(sse_frame(self.subscriber.id(), &topic, &data));
                }
                () = &mut self.idle => {
                    let deadline = (self.last + IDLE_TIMEOUT).min(self.ends);
                    if Instant::now() >= deadline {
                        return None;
                    }
                    self.idle.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// `id:<client>\nevent:<name>\ndata:<json>\n\n`, exactly as PocketBase frames it. Line breaks
/// in a client-chosen event name are dropped so it cannot forge fields.
fn sse_frame(id: &str, event: &str, data: &str) -> Bytes {
    let event: std::borrow::Cow<'_, str> = if event.contains(['\n', '\r']) {
        event.replace(['\n', '\r'], "").into()
    } else {
        event.into()
    };
    let mut frame = String::with_capacity(17 + id.len() + event.len() + data.len());
    for part in ["id:", id, "\nevent:", &event, "\ndata:", data, "\n\n"] {
        frame.push_str(part);
    }
    Bytes::from(frame)
}

/// `POST /api/realtime`
pub async fn set_subscriptions(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    form: FormBody,
) -> Result<StatusCode, ApiError> {
    let body = form.data;
    let client_id = match body.get("clientId") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::bad_request()),
    };
    let subscriptions = subscription_list(body.get("subscriptions"))?;
    if client_id.is_empty() {
        return Err(ApiError::bad_request().field(
            "clientId",
            "validation_required",
            "Cannot be blank.",
        ));
    }
    if client_id.chars().count() > MAX_CLIENT_ID_LEN {
        let mut error = ApiError::bad_request();
        error.data.insert(
            "clientId".into(),
            json!({
                "code": "validation_length_out_of_range",
                "message": format!("The length must be between 1 and {MAX_CLIENT_ID_LEN}."),
                "params": { "max": MAX_CLIENT_ID_LEN, "min": 1 },
            }),
        );
        return Err(error);
    }
    bind(&tenant, client_id, caller, &subscriptions).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A `subscriptions` value checked against PocketBase's limits (count, length of each).
fn subscription_list(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            if items.len() > MAX_SUBSCRIPTIONS {
                return Err(too_long(
                    ApiError::bad_request(),
                    "subscriptions",
                    None,
                    MAX_SUBSCRIPTIONS,
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Value::String(s) = item else {
                    return Err(ApiError::bad_request());
                };
                if s.chars().count() > MAX_SUBSCRIPTION_LEN {
                    return Err(too_long(
                        ApiError::bad_request(),
                        "subscriptions",
                        Some(i),
                        MAX_SUBSCRIPTION_LEN,
                    ));
                }
                out.push(s.clone());
            }
            Ok(out)
        }
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(_) => Err(ApiError::bad_request()),
    }
}

/// Sets client `client_id`'s subscriptions with `caller` as its auth (PocketBase's errors).
async fn bind(
    tenant: &Tenant,
    client_id: &str,
    caller: Caller,
    subscriptions: &[String],
) -> Result<(), ApiError> {
    let broker = tenant.broker();
    if !broker.has_client(client_id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            warren_realtime::Error::UnknownClient.to_string(),
        ));
    }
    let token_key = token_key(tenant, &caller).await?;
    broker
        .subscribe(
            client_id,
            caller,
            token_key,
            subscriptions,
            &tenant.catalog(),
        )
        .map_err(|e| {
            let status = match e {
                warren_realtime::Error::UnknownClient => StatusCode::NOT_FOUND,
                warren_realtime::Error::AuthMismatch => StatusCode::FORBIDDEN,
            };
            ApiError::new(status, e.to_string())
        })
}

/// PocketBase's `validation_length_too_long` on `field` (or its item `index`).
fn too_long(mut error: ApiError, field: &str, index: Option<usize>, max: usize) -> ApiError {
    let detail = json!({
        "code": "validation_length_too_long",
        "message": format!("The length must be no more than {max}."),
        "params": { "max": max, "min": 0 },
    });
    let value = match index {
        Some(i) => json!({ i.to_string(): detail }),
        None => detail,
    };
    error.data.insert(field.to_string(), value);
    error
}

/// The token key of the caller's auth record, to notice a later password or email change.
async fn token_key(tenant: &Tenant, caller: &Caller) -> Result<Option<String>, ApiError> {
    let (Some(id), Some(collection)) = (caller.id(), caller.collection_id()) else {
        return Ok(None);
    };
    let Some(entry) = tenant.catalog().get(collection).cloned() else {
        return Ok(None);
    };
    let id = id.to_string();
    let data = tenant
        .db()
        .read(move |c| warren_records::auth::load_data(c, &entry, &id))
        .await?;
    Ok(data.and_then(|d| {
        d.get("tokenKey")
            .and_then(Value::as_str)
            .map(str::to_string)
    }))
}

/// `GET /api/realtime/ws`: the same client as the SSE stream, over a WebSocket, with
/// subscriptions set in-band or with `POST /api/realtime`. See `crates/realtime/README.md`
/// for the message format.
pub async fn connect_realtime_ws(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(presence) = tenant.meter().connect_realtime() else {
        return too_many_connections().into_response();
    };
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| async move {
            // Like SSE streams, open sockets are served at delivery priority.
            let served =
                warren_realtime::delivery::spawn(serve_ws(tenant, caller, socket, presence));
            let _ = served.await;
        })
        .into_response()
}

/// Largest WebSocket message a client may send.
const MAX_WS_MESSAGE: usize = 64 << 10;

async fn serve_ws(tenant: Tenant, caller: Caller, mut socket: WebSocket, _presence: RealtimeGuard) {
    let mut subscriber = tenant.broker().connect();
    let id = subscriber.id().to_string();
    let hello = ws_frame("PB_CONNECT", &json!({ "clientId": id }).to_string());
    if socket.send(hello).await.is_err() {
        return;
    }
    let ends = Instant::now() + MAX_LIFETIME;
    loop {
        let deadline = (Instant::now() + IDLE_TIMEOUT).min(ends);
        tokio::select! {
            message = tokio::time::timeout_at(deadline, subscriber.recv()) => {
                let Ok(Some(Message { topic, data })) = message else { break };
                if socket.send(ws_frame(&topic, &data)).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    let reply = ws_command(&tenant, &id, &caller, text.as_str()).await;
                    if socket.send(reply).await.is_err() {
                        break;
                    }
                }
                // Pings are answered by the library; binary frames are not commands.
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}

/// Runs one in-band command (`subscribe`, `unsubscribe` or `set`) for WebSocket client `id`
/// and returns its reply: `PB_SUBSCRIPTIONS` with the client's subscriptions, or `PB_ERROR`
/// with the error envelope `POST /api/realtime` would answer.
async fn ws_command(tenant: &Tenant, id: &str, connection: &Caller, text: &str) -> WsMessage {
    let command = serde_json::from_str::<Value>(text).ok();
    let request_id = command
        .as_ref()
        .and_then(|c| c.get("id"))
        .filter(|v| v.is_string() || v.is_number())
        .cloned()
        .unwrap_or(Value::Null);
    let outcome = match command {
        Some(Value::Object(command)) => run_ws_command(tenant, id, connection, &command).await,
        _ => Err(ApiError::bad_request()),
    };
    match outcome {
        Ok(subscriptions) => ws_frame(
            "PB_SUBSCRIPTIONS",
            &json!({ "id": request_id, "subscriptions": subscriptions }).to_string(),
        ),
        Err(e) => ws_frame(
            "PB_ERROR",
            &json!({
                "id": request_id,
                "status": e.status.as_u16(),
                "message": e.message,
                "data": e.data,
            })
            .to_string(),
        ),
    }
}

async fn run_ws_command(
    tenant: &Tenant,
    id: &str,
    connection: &Caller,
    command: &serde_json::Map<String, Value>,
) -> Result<Vec<String>, ApiError> {
    let caller = match command.get("authorization") {
        None | Some(Value::Null) => connection.clone(),
        Some(Value::String(token)) => {
            let token = crate::extract::strip_bearer(token);
            if token.is_empty() {
                Caller::Guest
            } else {
                warren_records::auth::authenticate(tenant.db(), &tenant.catalog(), token).await?
            }
        }
        Some(_) => return Err(ApiError::bad_request()),
    };
    let given = subscription_list(command.get("subscriptions"))?;
    let current = tenant.broker().subscriptions(id).unwrap_or_default();
    let next: Vec<String> = match command.get("type").and_then(Value::as_str) {
        Some("set") => given,
        Some("subscribe") => {
            let mut next = current;
            for topic in given {
                if !next.contains(&topic) {
                    next.push(topic);
                }
            }
            if next.len() > MAX_SUBSCRIPTIONS {
                return Err(too_long(
                    ApiError::bad_request(),
                    "subscriptions",
                    None,
                    MAX_SUBSCRIPTIONS,
                ));
            }
            next
        }
        // Without topics, everything is unsubscribed (as the SDKs' `unsubscribe()`).
        Some("unsubscribe") if given.is_empty() => Vec::new(),
        Some("unsubscribe") => current.into_iter().filter(|t| !given.contains(t)).collect(),
        _ => {
            return Err(ApiError::bad_request().field(
                "type",
                "validation_in_invalid",
                "Must be one of subscribe, unsubscribe or set.",
            ));
        }
    };
    bind(tenant, id, caller, &next).await?;
    Ok(next)
}

/// A text frame `{"event":"<name>","data":<json>}`.
fn ws_frame(event: &str, data: &str) -> WsMessage {
    let name = serde_json::to_string(event).unwrap_or_else(|_| "\"\"".into());
    WsMessage::Text(format!("{{\"event\":{name},\"data\":{data}}}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_match_pocketbase() {
        let frame = sse_frame("abc", "posts/*", "{\"a\":1}");
        assert_eq!(&frame[..], b"id:abc\nevent:posts/*\ndata:{\"a\":1}\n\n");
        let forged = sse_frame("abc", "x\ndata:evil\r", "{}");
        assert_eq!(&forged[..], b"id:abc\nevent:xdata:evil\ndata:{}\n\n");
    }

    #[test]
    fn projection_applies_only_when_asked() {
        let record = json!({"id": "a", "title": "t"});
        assert_eq!(project_fields(record.clone(), ""), record);
        assert_eq!(project_fields(record, "id"), json!({"id": "a"}));
    }
}
