//! The `realtime` scenario: N SSE subscribers on `GET /api/realtime`, each subscribed to
//! `posts/*` as a user; a publisher creates public posts and every subscriber measures the
//! create→receive latency. Also reports server memory per open connection and the latency of
//! the creates themselves while the fan-out runs (printed as its own line). `realtime-1k`,
//! `realtime-10k` and `realtime-max` run it at fixed counts, the last at as many connections
//! as the open-files limit allows this process (and so the server, on the same machine).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::load::{Bounds, OpError, Stats};
use crate::seed::{Dataset, user_id};
use crate::sse::{SseStream, field};
use crate::target::{Target, client_with_pool, drain, loopback_endpoint, send_ok};

/// Time between two published posts (at least; see [`publish_interval`]).
const PUBLISH_INTERVAL: Duration = Duration::from_millis(20);
/// Publish spacing per subscriber: one event's fan-out (one write per subscriber) must finish
/// before the next starts, or the run measures a backlog instead of fan-out latency.
const SPACING_PER_SUBSCRIBER: Duration = Duration::from_micros(20);

/// The publish interval for `subscribers`: 20 ms up to 1,000 subscribers, 200 ms at 10,000.
pub fn publish_interval(subscribers: usize) -> Duration {
    PUBLISH_INTERVAL.max(SPACING_PER_SUBSCRIBER * subscribers as u32)
}
/// How long subscribers wait for stragglers after the last publish.
pub const GRACE: Duration = Duration::from_secs(3);
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
pub fn raise_open_files() -> u64 {
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

/// Where the subscribers' streams connect: the loopback socket address and the `Host` to send.
type Endpoint = Arc<(SocketAddr, String)>;

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
    check_route(target).await?;
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
    // Every stream is read by the same lean reader, whichever the target.
    let endpoint: Endpoint = Arc::new(loopback_endpoint(&target.base).map_err(|e| e.to_string())?);
    let subscribes = client_with_pool(SETUP_CONCURRENCY).map_err(|e| e.to_string())?;
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    // Tells every subscriber to stop reading (no per-read timer in thousands of readers).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(subscribers);
    let spawn = |k: usize| {
        let clients = (Arc::clone(&endpoint), subscribes.clone(), Arc::clone(&gate));
        let target = target.clone();
        let token = data.worker_user(k).1.to_string();
        let board = Arc::clone(&board);
        let stop = stop_rx.clone();
        tokio::spawn(async move { subscriber(target, clients, token, board, stop).await })
    };
    // A first quarter of the subscribers (at most two setup rounds) warms the server's
    // per-stream machinery up at full setup concurrency (threads, allocator caches), so
    // memory per connection is the cost of one more connection.
    let warm = (subscribers / 4).min(2 * SETUP_CONCURRENCY);
    tasks.extend((0..warm).map(spawn));
    let setup_deadline =
        Instant::now() + Duration::from_secs(60) + Duration::from_millis(10) * subscribers as u32;
    settle(&board, warm, setup_deadline).await;
    let warmed = board.ready.load(Ordering::Acquire);
    let rss_before = target.rss_kib();
    tasks.extend((warm..subscribers).map(spawn));
    drop((endpoint, subscribes));
    settle(&board, subscribers, setup_deadline).await;
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
    let measured = ready.saturating_sub(warmed).max(1) as u64;
    let bytes_per_conn = match (rss_before, target.rss_kib()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) * 1024 / measured),
        _ => None,
    };

    let (probe_stop, probe_stopped) = tokio::sync::oneshot::channel::<()>();
    let probing = tokio::spawn(probe_creates(
        target.clone(),
        probe_token.to_string(),
        async move {
            let _ = probe_stopped.await;
        },
    ));
    let Published {
        count: published,
        errors: publish_errors,
        first_error,
        creates,
        elapsed: publish_time,
    } = publish(target, &board, data, interval, max_events, bounds.duration).await;
    let _ = probe_stop.send(());
    let busy_creates = probing.await.unwrap_or_else(|_| Stats::new("req/s"));
    tokio::time::sleep(GRACE).await;
    let _ = stop_tx.send(true);

    let mut stats = merge_deliveries(tasks, "subscriber").await;
    let expected = (published as u64 - publish_errors) * ready as u64;
    let missing = expected.saturating_sub(stats.ok);
    stats.errors += missing + publish_errors;
    if stats.first_error.is_none() {
        stats.first_error = first_error.or_else(|| {
            (missing > 0).then(|| format!("{missing} of {expected} deliveries missing"))
        });
    }
    stats.elapsed = publish_time;
    print_summary(
        target,
        ready,
        &creates,
        &stats,
        bytes_per_conn,
        (&idle_creates, &busy_creates),
    );
    Ok((stats, bytes_per_conn))
}

/// `Err` when the target has no realtime route at all.
async fn check_route(target: &Target) -> Result<(), String> {
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
    Ok(())
}

/// What the publisher did.
struct Published {
    /// Creates sent.
    count: usize,
    /// Creates that failed.
    errors: u64,
    /// The first failure.
    first_error: Option<String>,
    /// Latencies of the creates.
    creates: Stats,
    /// Time spent publishing.
    elapsed: Duration,
}

/// Creates a watched `posts` record every `interval` for `duration` (at most `max_events`),
/// noting on the board when each was sent.
async fn publish(
    target: &Target,
    board: &Board,
    data: &Dataset,
    interval: Duration,
    max_events: usize,
    duration: Duration,
) -> Published {
    let started = Instant::now();
    let deadline = started + duration;
    let (owner, token) = data.worker_user(0);
    let mut published = 0usize;
    let mut publish_errors = 0u64;
    let mut first_error: Option<String> = None;
    let mut creates = Stats::new("req/s");
    let mut tick = tokio::time::interval(interval);
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
    Published {
        count: published,
        errors: publish_errors,
        first_error,
        creates,
        elapsed: started.elapsed(),
    }
}

/// The two summary lines: fan-out deliveries and create latency, then the probe creates
/// idle and busy.
fn print_summary(
    target: &Target,
    ready: usize,
    creates: &Stats,
    stats: &Stats,
    bytes_per_conn: Option<u64>,
    (idle_creates, busy_creates): (&Stats, &Stats),
) {
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
    (endpoint, subscribes, gate): (Endpoint, reqwest::Client, Arc<Semaphore>),
    token: String,
    board: Arc<Board>,
    stop: watch::Receiver<bool>,
) -> Result<Stats, OpError> {
    let setup = async {
        let _permit = gate.acquire().await;
        let (addr, authority) = endpoint.as_ref();
        let mut sse = SseStream::connect(*addr, authority, "/api/realtime").await?;
        let client_id = tokio::time::timeout(Duration::from_secs(30), pb_connect(&mut sse))
            .await
            .map_err(|_| OpError::other("no PB_CONNECT within 30 s"))??;
        let req = subscribes
            .post(target.url("/api/realtime"))
            .header("Authorization", token.as_str())
            .json(&json!({ "clientId": client_id, "subscriptions": ["posts/*"] }));
        drain(req.send().await?).await?;
        Ok::<_, OpError>(sse)
    };
    let outcome = setup.await;
    drop((endpoint, subscribes, gate));
    let mut sse = match outcome {
        Ok(sse) => sse,
        Err(err) => {
            board.failed.fetch_add(1, Ordering::AcqRel);
            return Err(err);
        }
    };
    board.ready.fetch_add(1, Ordering::AcqRel);
    time_deliveries(&mut sse, &board.sent, stop).await
}

/// Reads up to the first SSE event, which must be `PB_CONNECT`; returns its client id.
async fn pb_connect(sse: &mut SseStream) -> Result<String, OpError> {
    loop {
        while let Some(message) = sse.next_message() {
            if let Some(id) = connect_event(message) {
                return id;
            }
        }
        if !sse.fill().await? {
            return Err(OpError::other("stream ended before PB_CONNECT"));
        }
    }
}

/// The client id of a `PB_CONNECT` message; `None` for a message without data (a comment such
/// as a keep-alive, which is no event), an error for any other event.
fn connect_event(message: &[u8]) -> Option<Result<String, OpError>> {
    let data = field(message, b"data")?;
    if field(message, b"event") != Some(&b"PB_CONNECT"[..]) {
        return Some(Err(OpError::other("first SSE event is not PB_CONNECT")));
    }
    let id = serde_json::from_slice::<Value>(data)
        .map_err(|e| OpError::other(format!("PB_CONNECT data is not JSON: {e}")))
        .and_then(|data| {
            data.get("clientId")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| OpError::other("PB_CONNECT without a clientId"))
        });
    Some(id)
}

/// Times every event on `sse` whose post number has a send time in `sent`, until `stop`
/// turns true, the body ends, or one hour has passed at worst. No per-read timer: thousands
/// of readers share the machine with the server.
pub async fn time_deliveries(
    sse: &mut SseStream,
    sent: &[OnceLock<Instant>],
    mut stop: watch::Receiver<bool>,
) -> Result<Stats, OpError> {
    let mut stats = Stats::new("msg/s");
    let hard_stop = tokio::time::sleep(Duration::from_secs(3600));
    let stopped = stop.wait_for(|s| *s);
    tokio::pin!(hard_stop, stopped);
    loop {
        let received = Instant::now();
        while let Some(message) = sse.next_message() {
            if let Some(at) = sequence(message)
                .and_then(|n| sent.get(n))
                .and_then(OnceLock::get)
            {
                stats.record(received.saturating_duration_since(*at));
            }
        }
        let more = tokio::select! {
            biased;
            more = sse.fill() => more?,
            _ = &mut stopped => break,
            () = &mut hard_stop => break,
        };
        if !more {
            break;
        }
    }
    Ok(stats)
}

/// The post number in an SSE message's title (`"title":"rt <n>"`), found without parsing the
/// JSON (thousands of subscribers share the load generator's cores with the server).
pub fn sequence(message: &[u8]) -> Option<usize> {
    const MARK: &[u8] = b"\"title\":\"rt ";
    let at = message.windows(MARK.len()).position(|w| w == MARK)?;
    let digits = &message[at + MARK.len()..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 18 {
        return None;
    }
    Some(
        digits[..len]
            .iter()
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')),
    )
}

/// Waits (until `deadline`) for `count` subscribers to be in place or failed.
async fn settle(board: &Board, count: usize, deadline: Instant) {
    while board.ready.load(Ordering::Acquire) + board.failed.load(Ordering::Acquire) < count
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The deliveries timed by every reader task, merged; a failed task counts as an error.
pub(crate) async fn merge_deliveries(
    tasks: Vec<tokio::task::JoinHandle<Result<Stats, OpError>>>,
    reader: &str,
) -> Stats {
    let mut stats = Stats::new("msg/s");
    for task in tasks {
        match task.await {
            Ok(Ok(sub)) => stats.merge(&sub),
            Ok(Err(err)) => stats.record_error(&err),
            Err(err) => stats.record_error(&OpError::other(format!("{reader} panicked: {err}"))),
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_read_without_parsing_json() {
        let event = b"id:a\nevent:posts/*\ndata:{\"record\":{\"title\":\"rt 42\"}}";
        assert_eq!(sequence(event), Some(42));
        assert_eq!(sequence(b"id:a\nevent:x\ndata:{}"), None);
        assert_eq!(sequence(b"data:{\"title\":\"rt x\"}"), None);
    }

    #[test]
    fn the_client_id_comes_from_pb_connect_and_comments_are_skipped() {
        let id = connect_event(b"id:abc\nevent:PB_CONNECT\ndata:{\"clientId\":\"abc\"}\n");
        assert_eq!(id.unwrap().unwrap(), "abc");
        assert!(connect_event(b": keep-alive\n").is_none());
        assert!(connect_event(b"event:posts/*\ndata:{}\n").unwrap().is_err());
        assert!(
            connect_event(b"event:PB_CONNECT\ndata:{}\n")
                .unwrap()
                .is_err()
        );
        assert!(
            connect_event(b"event:PB_CONNECT\ndata:{\n")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn publishing_is_spaced_by_subscriber_count() {
        assert_eq!(publish_interval(200), Duration::from_millis(20));
        assert_eq!(publish_interval(10_000), Duration::from_millis(200));
    }
}
