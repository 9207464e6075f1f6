//! A small client for etcd's v3 API through its JSON gateway (`/v3/...`): keys, leases,
//! transactions and watches, with failover across the cluster's endpoints.
//!
//! etcd serves the same v3 API as JSON over HTTP beside gRPC; speaking it keeps the build free
//! of a protobuf compiler, so `cargo build` on a fresh machine still needs nothing else. Byte
//! fields travel base64-encoded and 64-bit integers as decimal strings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Error, Result};

/// Largest body read from etcd in one answer (a range over every owner record fits well).
const MAX_ANSWER: usize = 64 << 20;

/// One key and its value, as etcd stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the key's last change.
    pub mod_revision: i64,
    /// Number of changes since the key was created (0: absent).
    pub version: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(KeyValue),
    Delete { key: String, mod_revision: i64 },
}

/// A condition of a transaction.
#[derive(Debug, Clone)]
pub enum Compare {
    /// The key's version equals this (0: the key is absent).
    Version(String, i64),
    /// The key's value equals these bytes.
    Value(String, Vec<u8>),
    /// The key's last change was at this revision (0: the key is absent).
    ModRevision(String, i64),
}

/// An operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    /// Put a value, attached to a lease when not 0.
    Put {
        key: String,
        value: Vec<u8>,
        lease: i64,
    },
    Delete(String),
    Get(String),
}

/// What a transaction did: which branch ran, and the keys its `Get`s read.
#[derive(Debug, Clone, Default)]
pub struct TxnResult {
    pub succeeded: bool,
    pub revision: i64,
    pub read: Vec<KeyValue>,
}

/// A lease granted by etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    pub ttl: i64,
}

/// The client: cheap to clone, one connection pool for all endpoints.
#[derive(Clone)]
pub struct Etcd {
    http: reqwest::Client,
    endpoints: std::sync::Arc<Vec<String>>,
    /// The endpoint tried first; moves on when one fails.
    current: std::sync::Arc<AtomicUsize>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl Etcd {
    /// A client for the etcd members at `endpoints` (`http://host:port`), each request bounded
    /// by `timeout`.
    pub fn new(endpoints: &[String], timeout: Duration) -> Result<Self> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(Error::Config("no etcd endpoint given".into()));
        }
        for e in &endpoints {
            let url = reqwest::Url::parse(e)
                .map_err(|err| Error::Config(format!("etcd endpoint {e:?}: {err}")))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(Error::Config(format!(
                    "etcd endpoint {e:?} must start with http:// or https://"
                )));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Config(format!("etcd client: {e}")))?;
        Ok(Self {
            http,
            endpoints: std::sync::Arc::new(endpoints),
            current: std::sync::Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The endpoints this client talks to.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Posts `body` to `path` on the current endpoint, moving on to the next ones when one
    /// cannot be reached; an answer from etcd itself (even an error) is final.
    async fn call(&self, path: &str, body: &Value) -> Result<Value> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let k = (start + i) % n;
            let url = format!("{}{path}", self.endpoints[k]);
            match self.http.post(&url).json(body).send().await {
                Ok(response) => {
                    if k != start {
                        self.current.store(k, Ordering::Relaxed);
                    }
                    let status = response.status();
                    let bytes = read_bounded(response).await?;
                    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
                        Error::Etcd(format!("unreadable answer from {url} ({status}): {e}"))
                    })?;
                    if !status.is_success() || value.get("error").is_some() {
                        return Err(Error::Etcd(error_message(&value, status)));
                    }
                    return Ok(value);
                }
                Err(e) => last = Some(format!("{url}: {e}")),
            }
        }
        Err(Error::Unavailable(last.unwrap_or_default()))
    }

    /// The key's current value, if any.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let answer = self
            .call("/v3/kv/range", &json!({ "key": b64(key) }))
            .await?;
        Ok(kvs(&answer).into_iter().next())
    }

    /// Every key under `prefix`, and the revision they were read at.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let answer = self
            .call(
                "/v3/kv/range",
                &json!({ "key": b64(prefix), "range_end": B64.encode(prefix_end(prefix)) }),
            )
            .await?;
        Ok((kvs(&answer), header_revision(&answer)))
    }

    /// Sets a key (attached to `lease` unless 0); returns the revision of the change.
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<i64> {
        let mut body = json!({ "key": b64(key), "value": B64.encode(value) });
        if lease != 0 {
            body["lease"] = json!(lease.to_string());
        }
        let answer = self.call("/v3/kv/put", &body).await?;
        Ok(header_revision(&answer))
    }

    /// Removes a key; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let answer = self
            .call("/v3/kv/deleterange", &json!({ "key": b64(key) }))
            .await?;
        Ok(int(answer.get("deleted")) > 0)
    }

    /// Runs `success` when every comparison holds, else `failure`, atomically.
    pub async fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> Result<TxnResult> {
        let body = json!({
            "compare": compare.iter().map(compare_json).collect::<Vec<_>>(),
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(op_json).collect::<Vec<_>>(),
        });
        let answer = self.call("/v3/kv/txn", &body).await?;
        let mut read = Vec::new();
        if let Some(responses) = answer.get("responses").and_then(Value::as_array) {
            for r in responses {
                if let Some(range) = r.get("response_range") {
                    read.extend(kvs(range));
                }
            }
        }
        Ok(TxnResult {
            succeeded: answer
                .get("succeeded")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            revision: header_revision(&answer),
            read,
        })
    }

    /// A new lease of `ttl` seconds.
    pub async fn grant(&self, ttl: i64) -> Result<Lease> {
        let answer = self
            .call("/v3/lease/grant", &json!({ "TTL": ttl.to_string() }))
            .await?;
        let lease = Lease {
            id: int(answer.get("ID")),
            ttl: int(answer.get("TTL")),
        };
        if lease.id == 0 || lease.ttl <= 0 {
            return Err(Error::Etcd(format!("lease not granted: {answer}")));
        }
        Ok(lease)
    }

    /// Renews a lease; its remaining TTL in seconds, 0 when it has already expired.
    pub async fn keep_alive(&self, id: i64) -> Result<i64> {
        let answer = self
            .call("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))
            .await?;
        let result = answer.get("result").unwrap_or(&answer);
        Ok(int(result.get("TTL")))
    }

    /// Ends a lease now, removing the keys attached to it.
    pub async fn revoke(&self, id: i64) -> Result<()> {
        self.call("/v3/lease/revoke", &json!({ "ID": id.to_string() }))
            .await?;
        Ok(())
    }

    /// Watches every key under `prefix` from revision `from` on.
    pub async fn watch(&self, prefix: &str, from: i64) -> Result<Watch> {
        let body = json!({ "create_request": {
            "key": b64(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
            "start_revision": from.to_string(),
        }});
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let k = (start + i) % n;
            let url = format!("{}/v3/watch", self.endpoints[k]);
            // A watch lives as long as the stream: no overall timeout, only the connect one.
            let request = self
                .http
                .post(&url)
                .json(&body)
                .timeout(Duration::from_secs(365 * 24 * 3600));
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    return Ok(Watch {
                        response,
                        buffer: Vec::new(),
                    });
                }
                Ok(response) => last = Some(format!("{url}: {}", response.status())),
                Err(e) => last = Some(format!("{url}: {e}")),
            }
        }
        Err(Error::Unavailable(last.unwrap_or_default()))
    }
}

/// A running watch: a stream of change batches, in revision order.
pub struct Watch {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Watch {
    /// The next batch of changes. An error ends the watch: the caller lists again and watches
    /// from the revision it read at (changes in between are in that listing).
    pub async fn next(&mut self) -> Result<Vec<Event>> {
        loop {
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_slice(line)
                    .map_err(|e| Error::Etcd(format!("unreadable watch message: {e}")))?;
                if value.get("error").is_some() {
                    return Err(Error::Etcd(error_message(&value, reqwest::StatusCode::OK)));
                }
                let result = value.get("result").unwrap_or(&value);
                if result.get("canceled").and_then(Value::as_bool) == Some(true) {
                    return Err(Error::Etcd(format!(
                        "watch canceled (compacted at {})",
                        int(result.get("compact_revision"))
                    )));
                }
                let events = events(result);
                if !events.is_empty() {
                    return Ok(events);
                }
            }
            if self.buffer.len() > MAX_ANSWER {
                return Err(Error::Etcd("watch message too large".into()));
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Err(Error::Unavailable("watch stream ended".into())),
                Err(e) => return Err(Error::Unavailable(format!("watch stream: {e}"))),
            }
        }
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::Unavailable(format!("reading etcd's answer: {e}")))?
    {
        if out.len() + chunk.len() > MAX_ANSWER {
            return Err(Error::Etcd("etcd's answer is too large".into()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn error_message(value: &Value, status: reqwest::StatusCode) -> String {
    let message = value
        .get("message")
        .or_else(|| value.get("error").and_then(|e| e.get("message")))
        .or_else(|| value.get("error"))
        .and_then(Value::as_str)
        .unwrap_or("no message");
    format!("etcd refused ({status}): {message}")
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

/// The end of the key range holding every key that starts with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    // Every key: etcd reads "\0" as "to the end".
    vec![0]
}

/// A 64-bit integer that the gateway may write as a string or a number (absent: 0).
fn int(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn header_revision(answer: &Value) -> i64 {
    int(answer.get("header").and_then(|h| h.get("revision")))
}

#[derive(Deserialize)]
struct RawKv {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    mod_revision: Option<Value>,
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    lease: Option<Value>,
}

fn key_value(raw: &Value) -> Option<KeyValue> {
    let raw: RawKv = serde_json::from_value(raw.clone()).ok()?;
    let key = String::from_utf8(B64.decode(raw.key).ok()?).ok()?;
    Some(KeyValue {
        key,
        value: B64.decode(raw.value).ok()?,
        mod_revision: int(raw.mod_revision.as_ref()),
        version: int(raw.version.as_ref()),
        lease: int(raw.lease.as_ref()),
    })
}

fn kvs(answer: &Value) -> Vec<KeyValue> {
    answer
        .get("kvs")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(key_value).collect())
        .unwrap_or_default()
}

fn events(result: &Value) -> Vec<Event> {
    let Some(list) = result.get("events").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let kv = e.get("kv")?;
            let is_delete = e.get("type").and_then(Value::as_str) == Some("DELETE");
            if is_delete {
                let key =
                    String::from_utf8(B64.decode(kv.get("key").and_then(Value::as_str)?).ok()?)
                        .ok()?;
                Some(Event::Delete {
                    key,
                    mod_revision: int(kv.get("mod_revision")),
                })
            } else {
                key_value(kv).map(Event::Put)
            }
        })
        .collect()
}

fn compare_json(c: &Compare) -> Value {
    match c {
        Compare::Version(key, v) => json!({
            "key": b64(key), "target": "VERSION", "result": "EQUAL", "version": v.to_string()
        }),
        Compare::Value(key, v) => json!({
            "key": b64(key), "target": "VALUE", "result": "EQUAL", "value": B64.encode(v)
        }),
        Compare::ModRevision(key, r) => json!({
            "key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": r.to_string()
        }),
    }
}

fn op_json(op: &Op) -> Value {
    match op {
        Op::Put { key, value, lease } => {
            let mut put = json!({ "key": b64(key), "value": B64.encode(value) });
            if *lease != 0 {
                put["lease"] = json!(lease.to_string());
            }
            json!({ "request_put": put })
        }
        Op::Delete(key) => json!({ "request_delete_range": { "key": b64(key) } }),
        Op::Get(key) => json!({ "request_range": { "key": b64(key) } }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_after_its_last_key() {
        assert_eq!(prefix_end("/w/owners/"), b"/w/owners0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn integers_come_as_strings_or_numbers() {
        assert_eq!(
            int(Some(&json!("4111120440644721157"))),
            4111120440644721157
        );
        assert_eq!(int(Some(&json!(5))), 5);
        assert_eq!(int(None), 0);
        assert_eq!(int(Some(&json!("x"))), 0);
    }

    #[test]
    fn watch_events_decode_puts_and_deletes() {
        let result = json!({ "events": [
            { "kv": { "key": b64("/a"), "value": B64.encode("1"), "mod_revision": "7",
                      "version": "2", "lease": "9" } },
            { "type": "DELETE", "kv": { "key": b64("/b"), "mod_revision": "8" } },
        ]});
        assert_eq!(
            events(&result),
            vec![
                Event::Put(KeyValue {
                    key: "/a".into(),
                    value: b"1".to_vec(),
                    mod_revision: 7,
                    version: 2,
                    lease: 9,
                }),
                Event::Delete {
                    key: "/b".into(),
                    mod_revision: 8
                },
            ]
        );
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        let t = Duration::from_secs(1);
        assert!(Etcd::new(&[], t).is_err());
        assert!(Etcd::new(&["127.0.0.1:2379".into()], t).is_err());
        assert!(Etcd::new(&["ftp://127.0.0.1:2379".into()], t).is_err());
        assert!(Etcd::new(&["http://127.0.0.1:2379/".into()], t).is_ok());
    }
}
