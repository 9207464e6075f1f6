//! The `realtime` scenario: N SSE subscribers on `GET /api/realtime`, each subscribed to
//! `posts/*` as a user; a publisher creates public posts and every subscriber measures the
//! create→receive latency. Also reports server memory per open connection and the latency of
//! the creates themselves while the fan-out runs (printed as its own line). `realtime-1k`,
//! `realtime-10k` and `realtime-max` run it at fixed counts, the last at as many connections
//! as the open-files limit allows this process (and so the server, on the same machine).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::load::{Bounds, OpError, Stats};
use crate::seed::{Dataset, user_id};
use crate::target::{Target, client_with_pool, drain, send_ok, streaming_client};

/// Time between two published posts (at least; see [`publish_interval`]).
const PUBLISH_INTERVAL: Duration = Duration::from_millis(20);
/// Publish spacing per subscriber: one event's fan-out (one write per subscriber) must finish
/// before the next starts, or the run measures a backlog instead of fan-out latency.
const SPACING_PER_SUBSCRIBER: Duration = Duration::from_micros(20);

/// The publish interval for `subscribers`: 20 ms up to 1,000 subscribers, 200 ms at 10,000.
fn publish_interval(subscribers: usize) -> Duration {
    PUBLISH_INTERVAL.max(SPACING_PER_SUBSCRIBER * subscribers as u32)
}
/// How long subscribers wait for stragglers after the last publish.
const GRACE: Duration = Duration::from_secs(3);
/// Subscribers connecting and subscribing at once (and the subscribe client's pool size, so
/// idle keep-alive connections do not inflate the server's memory per SSE connection).
const SETUP_CONCURRENCY: usize = 128;
/// Descriptors this process keeps for everything but subscriber streams.
const RESERVED_FILES: u64 = 1_500;
/// Upper bound of `realtime-max`, whatever the open-files limit.
const MAX_SUBSCRIBERS: usize = 100_000;
/// Time between two probe creates (in `docs`, which no subscriber watches).
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long the probe runs on the idle server before subscribers connect.
const IDLE_PROBE: Duration = Duration::from_secs(2);

/// Raises this process's soft open-files limit to the hard limit; returns the soft limit.
fn raise_open_files() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            },
        );
    }
    getrlimit(Resource::Nofile)
        .current
        .unwrap_or(MAX_SUBSCRIBERS as u64)
}

/// Subscribers of `realtime-max`: the open-files limit (raised to the hard limit) less a
/// reserve; the server on the same machine has the same limit and one socket per subscriber.
pub fn max_subscribers() -> usize {
    let files = raise_open_files().saturating_sub(RESERVED_FILES);
    usize::try_from(files)
        .unwrap_or(MAX_SUBSCRIBERS)
        .clamp(1, MAX_SUBSCRIBERS)
}

/// Shared between the publisher and the subscribers.
struct Board {
    /// When post `n` was sent, indexed by `n`.
    sent: Vec<OnceLock<Instant>>,
    /// Subscribers whose subscription is in place.
    ready: AtomicUsize,
    /// Subscribers that failed to connect or subscribe.
    failed: AtomicUsize,
}

/// Runs the scenario and returns the deliveries and the server memory per connection (bytes);
/// `Err` when the target has no realtime route.
pub async fn run(
    target: &Target,
    data: &Dataset,
    bounds: Bounds,
    subscribers: usize,
) -> Result<(Stats, Option<u64>), String> {
    // Probe: does the route exist at all?
    let probe = target
        .client
        .get(target.url("/api/realtime"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if matches!(probe.status().as_u16(), 404 | 405 | 501) {
        return Err(format!(
            "GET /api/realtime answered {}",
            probe.status().as_u16()
        ));
    }
    drop(probe);

    let files = raise_open_files();
    if subscribers as u64 + 64 > files {
        return Err(format!(
            "{subscribers} subscribers need more than the open-files limit of {files}"
        ));
    }
    let interval = publish_interval(subscribers);
    let max_events = (bounds.duration.as_millis() / interval.as_millis()) as usize + 2;
    let board = Arc::new(Board {
        sent: (0..max_events).map(|_| OnceLock::new()).collect(),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
    });
    // Create latency on the idle server: the baseline for creates during fan-out.
    let (_, probe_token) = data.worker_user(1);
    let idle_creates = probe_creates(target.clone(), probe_token.to_string(), async {
        tokio::time::sleep(IDLE_PROBE).await;
    })
    .await;
    let streams = streaming_client(0).map_err(|e| e.to_string())?;
    let subscribes = client_with_pool(SETUP_CONCURRENCY).map_err(|e| e.to_string())?;
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let rss_before = target.rss_kib();
    // Tells every subscriber to stop reading (no per-read timer in thousands of readers).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(subscribers);
    for k in 0..subscribers {
        let clients = (streams.clone(), subscribes.clone(), Arc::clone(&gate));
        let target = target.clone();
        let token = data.worker_user(k).1.to_string();
        let board = Arc::clone(&board);
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            subscriber(target, clients, token, board, stop).await
        }));
    }
    drop((streams, subscribes));

    // Wait (bounded) until every subscriber is in place or failed.
    let setup_deadline =
        Instant::now() + Duration::from_secs(60) + Duration::from_millis(10) * subscribers as u32;
    while board.ready.load(Ordering::Acquire) + board.failed.load(Ordering::Acquire) < subscribers
        && Instant::now() < setup_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = board.ready.load(Ordering::Acquire);
    if ready == 0 {
        let _ = stop_tx.send(true);
        let mut first = String::from("no subscriber could subscribe");
        for task in tasks {
            if let Ok(Err(err)) = task.await {
                first = err.message;
                break;
            }
        }
        return Err(first);
    }
    // The subscribe client's keep-alive connections close with it; let the server see that.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let bytes_per_conn = match (rss_before, target.rss_kib()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) * 1024 / ready as u64),
        _ => None,
    };

    // Publish.
    let started = Instant::now();
    let deadline = started + bounds.duration;
    let (owner, token) = data.worker_user(0);
    let mut published = 0usize;
    let mut publish_errors = 0u64;
    let mut first_error: Option<String> = None;
    let mut creates = Stats::new("req/s");
    let mut tick = tokio::time::interval(interval);
    let (probe_stop, probe_stopped) = tokio::sync::oneshot::channel::<()>();
    let probing = tokio::spawn(probe_creates(
        target.clone(),
        probe_token.to_string(),
        async move {
            let _ = probe_stopped.await;
        },
    ));
    while published < max_events && Instant::now() < deadline {
        tick.tick().await;
        let body = json!({
            "owner": user_id(owner),
            "title": format!("rt {published}"),
            "public": true,
            "number": 1,
        });
        let sent = Instant::now();
        let _ = board.sent[published].set(sent);
        let req = target
            .client
            .post(target.url("/api/collections/posts/records"))
            .query(&[("fields", "id")])
            .header("Authorization", token)
            .json(&body);
        match send_ok(req).await {
            Ok(resp) => {
                let _ = resp.bytes().await;
                creates.record(sent.elapsed());
            }
            Err(err) => {
                publish_errors += 1;
                first_error.get_or_insert(err.message);
            }
        }
        published += 1;
    }
    let publish_time = started.elapsed();
    let _ = probe_stop.send(());
    let busy_creates = probing.await.unwrap_or_else(|_| Stats::new("req/s"));
    tokio::time::sleep(GRACE).await;
    let _ = stop_tx.send(true);

    let mut stats = Stats::new("msg/s");
    for task in tasks {
        match task.await {
            Ok(Ok(sub)) => stats.merge(&sub),
            Ok(Err(err)) => stats.record_error(&err),
            Err(err) => stats.record_error(&OpError::other(format!("subscriber panicked: {err}"))),
        }
    }
    let expected = (published as u64 - publish_errors) * ready as u64;
    let missing = expected.saturating_sub(stats.ok);
    stats.errors += missing + publish_errors;
    if stats.first_error.is_none() {
        stats.first_error = first_error.or_else(|| {
            (missing > 0).then(|| format!("{missing} of {expected} deliveries missing"))
        });
    }
    stats.elapsed = publish_time;
    println!(
        "realtime {}: {ready} subscribers, create p50 {:.2} ms p99 {:.2} ms during fan-out; \
         delivery p50 {:.2} ms p99 {:.2} ms; {} B/conn",
        target.base,
        creates.quantile_ms(0.5),
        creates.quantile_ms(0.99),
        stats.quantile_ms(0.5),
        stats.quantile_ms(0.99),
        bytes_per_conn.map_or("?".to_string(), |b| b.to_string()),
    );
    println!(
        "realtime {}: {ready} subscribers, probe creates every {} ms in docs: idle p50 {:.2} ms \
         p99 {:.2} ms ({} ok, {} errors); while fanning out p50 {:.2} ms p99 {:.2} ms ({} ok, \
         {} errors)",
        target.base,
        PROBE_INTERVAL.as_millis(),
        idle_creates.quantile_ms(0.5),
        idle_creates.quantile_ms(0.99),
        idle_creates.ok,
        idle_creates.errors,
        busy_creates.quantile_ms(0.5),
        busy_creates.quantile_ms(0.99),
        busy_creates.ok,
        busy_creates.errors,
    );
    Ok((stats, bytes_per_conn))
}

/// Creates a `docs` record (no subscriber watches `docs`) every [`PROBE_INTERVAL`], one at a
/// time, until `until` completes; the latencies of those creates.
async fn probe_creates(
    target: Target,
    token: String,
    until: impl std::future::Future<Output = ()>,
) -> Stats {
    let mut stats = Stats::new("req/s");
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(until);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = &mut until => break,
            _ = tick.tick() => {}
        }
        let sent = Instant::now();
        let req = target
            .client
            .post(target.url("/api/collections/docs/records"))
            .query(&[("fields", "id")])
            .header("Authorization", token.as_str())
            .json(&json!({ "title": format!("probe {n}") }));
        n += 1;
        match send_ok(req).await {
            Ok(resp) => {
                let _ = resp.bytes().await;
                stats.record(sent.elapsed());
            }
            Err(err) => stats.record_error(&err),
        }
    }
    stats
}

/// One SSE subscriber: connect, read `PB_CONNECT`, subscribe (at most [`SETUP_CONCURRENCY`]
/// at once), then time every event.
async fn subscriber(
    target: Target,
    (streams, subscribes, gate): (reqwest::Client, reqwest::Client, Arc<Semaphore>),
    token: String,
    board: Arc<Board>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Stats, OpError> {
    let setup = async {
        let _permit = gate.acquire().await;
        let mut resp = send_ok(streams.get(target.url("/api/realtime"))).await?;
        let mut buf = String::new();
        let client_id = loop {
            let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), resp.chunk())
                .await
                .map_err(|_| OpError::other("no PB_CONNECT within 30 s"))??
            else {
                return Err(OpError::other("stream ended before PB_CONNECT"));
            };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(event) = take_event(&mut buf) {
                let id = event
                    .data
                    .get("clientId")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match id {
                    Some(id) if event.name == "PB_CONNECT" => break id,
                    _ => return Err(OpError::other("first SSE event is not PB_CONNECT")),
                }
            }
        };
        let req = subscribes
            .post(target.url("/api/realtime"))
            .header("Authorization", token.as_str())
            .json(&json!({ "clientId": client_id, "subscriptions": ["posts/*"] }));
        drain(req.send().await?).await?;
        Ok::<_, OpError>((resp, buf.into_bytes()))
    };
    let outcome = setup.await;
    drop((streams, subscribes, gate));
    let (mut resp, mut buf) = match outcome {
        Ok(ok) => ok,
        Err(err) => {
            board.failed.fetch_add(1, Ordering::AcqRel);
            return Err(err);
        }
    };
    board.ready.fetch_add(1, Ordering::AcqRel);

    let mut stats = Stats::new("msg/s");
    // Bounded: ends when the publisher says stop, or after one hour at worst.
    let hard_stop = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(hard_stop);
    loop {
        let chunk = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            () = &mut hard_stop => break,
            chunk = resp.chunk() => match chunk {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(err) => return Err(err.into()),
            },
        };
        buf.extend_from_slice(&chunk);
        let received = Instant::now();
        while let Some(seq) = take_sequence(&mut buf) {
            if let Some(sent) = seq.and_then(|n| board.sent.get(n)).and_then(OnceLock::get) {
                stats.record(received.saturating_duration_since(*sent));
            }
        }
    }
    Ok(stats)
}

/// Removes the first complete SSE message from `buf` and returns the post number in its
/// title (`"title":"rt <n>"`), without parsing the JSON (thousands of subscribers share the
/// load generator's cores with the server).
fn take_sequence(buf: &mut Vec<u8>) -> Option<Option<usize>> {
    let end = buf.windows(2).position(|w| w == b"\n\n")?;
    const MARK: &[u8] = b"\"title\":\"rt ";
    let seq = buf[..end]
        .windows(MARK.len())
        .position(|w| w == MARK)
        .and_then(|at| {
            let digits = &buf[at + MARK.len()..end];
            let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            std::str::from_utf8(&digits[..len]).ok()?.parse().ok()
        });
    buf.drain(..end + 2);
    Some(seq)
}

/// One parsed SSE message.
struct Event {
    name: String,
    data: Value,
}

/// Removes the first complete SSE message (ended by a blank line) from `buf`.
fn take_event(buf: &mut String) -> Option<Event> {
    let normalized_end = buf.find("\n\n")?;
    let block: String = buf.drain(..normalized_end + 2).collect();
    let mut name = String::from("message");
    let mut data = String::new();
    for line in block.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim_start().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    Some(Event {
        name,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_messages_are_split_on_blank_lines() {
        let mut buf = String::from(
            "id:abc\nevent:PB_CONNECT\ndata:{\"clientId\":\"abc\"}\n\nid:abc\nevent:posts/*\ndata:{\"record\":{\"title\":\"rt 3\"}}\n\nid:ab",
        );
        let first = take_event(&mut buf).unwrap();
        assert_eq!(first.name, "PB_CONNECT");
        assert_eq!(first.data["clientId"], "abc");
        let second = take_event(&mut buf).unwrap();
        assert_eq!(second.data.pointer("/record/title").unwrap(), "rt 3");
        assert!(take_event(&mut buf).is_none());
        assert_eq!(buf, "id:ab");
    }

    #[test]
    fn sequences_are_read_without_parsing_json() {
        let mut buf = b"id:a\nevent:posts/*\ndata:{\"record\":{\"title\":\"rt 42\"}}\n\nid:a\nevent:x\ndata:{}\n\nid".to_vec();
        assert_eq!(take_sequence(&mut buf), Some(Some(42)));
        assert_eq!(take_sequence(&mut buf), Some(None));
        assert_eq!(take_sequence(&mut buf), None);
        assert_eq!(buf, b"id");
    }
}
