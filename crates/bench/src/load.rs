//! The load loop: fixed concurrency, bounded by time and by count, latencies in an HDR histogram.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, up to one minute, three significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Why one operation failed: the HTTP status when there was one, and a short message.
#[derive(Debug, Clone)]
pub struct OpError {
    /// The response status, `None` for transport errors and unreadable bodies.
    pub status: Option<u16>,
    /// A short human-readable description (status line and the start of the body).
    pub message: String,
}

impl OpError {
    /// An error with no HTTP status (connection refused, timeout, bad JSON...).
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            status: None,
            message: message.into(),
        }
    }

    /// Whether the failure says the route or feature does not exist on the target.
    pub fn is_unsupported(&self) -> bool {
        matches!(self.status, Some(404 | 405 | 501))
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<reqwest::Error> for OpError {
    fn from(err: reqwest::Error) -> Self {
        Self::other(format!("transport: {err}"))
    }
}

/// What one operation returns.
pub type OpResult = Result<(), OpError>;

/// Counters and latencies of one measured run (or several merged runs).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Successful operations.
    pub ok: u64,
    /// Failed operations.
    pub errors: u64,
    /// Failed operations the server refused with 429 (counted in `errors` too).
    pub throttled: u64,
    /// Wall time spent measuring (summed over merged runs).
    pub elapsed: Duration,
    /// Latency of successful operations, in microseconds.
    pub hist: Histogram<u64>,
    /// The first error seen, to show why a run failed.
    pub first_error: Option<String>,
    /// Items per successful operation (e.g. records per seed batch), for throughput.
    pub items_per_op: f64,
    /// Unit of the throughput figure.
    pub unit: &'static str,
}

impl Stats {
    /// Empty statistics with the given throughput unit.
    pub fn new(unit: &'static str) -> Self {
        Self {
            ok: 0,
            errors: 0,
            throttled: 0,
            elapsed: Duration::ZERO,
            hist: new_histogram(),
            first_error: None,
            items_per_op: 1.0,
            unit,
        }
    }

    /// Records one successful operation.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US);
        self.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
        self.ok += 1;
    }

    /// Records one failed operation.
    pub fn record_error(&mut self, err: &OpError) {
        self.errors += 1;
        if err.status == Some(429) {
            self.throttled += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(err.message.clone());
        }
    }

    /// Adds another run's figures to these.
    pub fn merge(&mut self, other: &Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.throttled += other.throttled;
        self.elapsed += other.elapsed;
        // Both histograms share bounds, so `add` cannot fail.
        let _ = self.hist.add(&other.hist);
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.items_per_op = other.items_per_op;
    }

    /// Items per second over the measured wall time.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.ok as f64 * self.items_per_op / secs
    }

    /// Latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// A serializable summary.
    pub fn summary(&self) -> Summary {
        Summary {
            ok: self.ok,
            errors: self.errors,
            throttled: self.throttled,
            seconds: self.elapsed.as_secs_f64(),
            throughput: self.throughput(),
            unit: self.unit,
            p50_ms: self.quantile_ms(0.50),
            p99_ms: self.quantile_ms(0.99),
            max_ms: self.hist.max() as f64 / 1000.0,
            first_error: self.first_error.clone(),
        }
    }
}

/// The JSON form of [`Stats`].
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub ok: u64,
    pub errors: u64,
    pub throttled: u64,
    pub seconds: f64,
    pub throughput: f64,
    pub unit: &'static str,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub first_error: Option<String>,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// How long and how often a load run goes.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Concurrent workers.
    pub concurrency: usize,
    /// Stop starting operations after this long.
    pub duration: Duration,
    /// Stop after this many operations in total.
    pub max_ops: u64,
}

/// Runs `op(worker, seq)` from `bounds.concurrency` workers until the time or the count runs out.
///
/// `seq` is unique across workers and counts from 0, so an operation can derive its input from
/// it (the n-th record to create, the n-th tenant to provision).
pub async fn run<F, Fut>(bounds: Bounds, unit: &'static str, op: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = OpResult> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + bounds.duration;
    let mut workers = Vec::with_capacity(bounds.concurrency);
    for worker in 0..bounds.concurrency.max(1) {
        let op = Arc::clone(&op);
        let next = Arc::clone(&next);
        let max_ops = bounds.max_ops;
        workers.push(tokio::spawn(async move {
            let mut stats = Stats::new(unit);
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= max_ops {
                    break;
                }
                let begun = Instant::now();
                match op(worker, seq).await {
                    Ok(()) => stats.record(begun.elapsed()),
                    Err(err) => stats.record_error(&err),
                }
            }
            stats
        }));
    }
    let mut total = Stats::new(unit);
    for worker in workers {
        match worker.await {
            Ok(stats) => total.merge(&stats),
            Err(err) => total.record_error(&OpError::other(format!("worker panicked: {err}"))),
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// A cheap deterministic mix of two numbers, for picking "random" records without shared state.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b ^ 0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The order two sides run in within round `round` of a paired comparison: A B B A, then B A A
/// B, so each side runs early and late in every round, and first in every other round.
pub fn paired_order(round: usize) -> [usize; 4] {
    if round.is_multiple_of(2) {
        [0, 1, 1, 0]
    } else {
        [1, 0, 0, 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_rounds_run_each_side_twice_and_alternate_which_goes_first() {
        for round in 0..4 {
            let order = paired_order(round);
            assert_eq!(order.iter().filter(|&&k| k == 0).count(), 2);
            assert_eq!(order[0], round % 2);
            assert_eq!(order[3], order[0]);
        }
    }

    #[tokio::test]
    async fn run_stops_at_the_count_bound() {
        let bounds = Bounds {
            concurrency: 4,
            duration: Duration::from_secs(30),
            max_ops: 100,
        };
        let stats = run(bounds, "op/s", |_, seq| async move {
            if seq % 10 == 0 {
                Err(OpError::other("every tenth fails"))
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(stats.ok + stats.errors, 100);
        assert_eq!(stats.errors, 10);
        assert_eq!(stats.throttled, 0);
        assert!(stats.first_error.is_some());
    }

    #[test]
    fn refusals_with_429_are_counted_apart() {
        let mut stats = Stats::new("req/s");
        let refused = OpError {
            status: Some(429),
            message: "429 Too Many Requests.".into(),
        };
        stats.record_error(&refused);
        stats.record_error(&OpError::other("transport"));
        let mut other = Stats::new("req/s");
        other.record_error(&refused);
        stats.merge(&other);
        assert_eq!((stats.errors, stats.throttled), (3, 2));
        assert_eq!(stats.summary().throttled, 2);
    }

    #[test]
    fn merged_stats_add_up() {
        let mut a = Stats::new("req/s");
        a.record(Duration::from_millis(2));
        a.elapsed = Duration::from_secs(1);
        let mut b = Stats::new("req/s");
        b.record(Duration::from_millis(4));
        b.elapsed = Duration::from_secs(1);
        a.merge(&b);
        assert_eq!(a.ok, 2);
        assert!((a.throughput() - 1.0).abs() < 1e-9);
        assert!(a.quantile_ms(0.99) >= 3.9);
    }
}
