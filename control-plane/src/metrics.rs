//! Prometheus text for `/metrics`: process figures, tenants, request counts and latencies, and
//! per-tenant series for the busiest tenants only (so their number stays bounded however many
//! tenants exist).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Request figures of the whole process, counted with relaxed atomics.
#[derive(Debug)]
pub struct Metrics {
    /// Process start (for uptime).
    started: Instant,
    /// Tenant requests by status class: 1xx … 5xx.
    by_class: [AtomicU64; 5],
    /// Requests with a latency at most `BUCKETS[i]` (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    /// Total latency in microseconds.
    sum_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            by_class: Default::default(),
            buckets: Default::default(),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Records one tenant request: its status and the time to its response head.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
    }
}

/// One tenant's line in the per-tenant series.
#[derive(Debug, Clone)]
pub struct TenantFigures {
    /// The tenant's slug (or id when the slug is unknown).
    pub name: String,
    /// Requests since the process started.
    pub requests: u64,
    /// Response bytes since the process started.
    pub bytes_out: u64,
    /// Realtime connections open now.
    pub realtime_open: u64,
}

/// Everything `/metrics` shows besides the request figures.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Tenants known to the control plane.
    pub tenants: u64,
    /// Tenants open in this process.
    pub open_tenants: u64,
    /// Every metered tenant (only the busiest `top` are shown).
    pub per_tenant: Vec<TenantFigures>,
    /// How many tenants get series of their own.
    pub top: usize,
}

/// The Prometheus text exposition of `metrics` and `snapshot`.
pub fn render(metrics: &Metrics, mut snapshot: Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "warren_process_uptime_seconds",
        "Seconds since the process started.",
        metrics.started.elapsed().as_secs_f64(),
    );
    if let Some(rss) = warren_heap::resident_bytes() {
        gauge(
            "warren_process_resident_memory_bytes",
            "Resident memory of the process.",
            rss as f64,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            "warren_process_open_fds",
            "Open file descriptors of the process.",
            fds.count() as f64,
        );
    }
    gauge(
        "warren_tenants",
        "Tenants known to the control plane.",
        snapshot.tenants as f64,
    );
    gauge(
        "warren_open_tenants",
        "Tenants open in this process.",
        snapshot.open_tenants as f64,
    );

    out.push_str("# HELP warren_tenant_requests_total Tenant API requests by status class.\n");
    out.push_str("# TYPE warren_tenant_requests_total counter\n");
    for (i, count) in metrics.by_class.iter().enumerate() {
        let _ = writeln!(
            out,
            "warren_tenant_requests_total{{status=\"{}xx\"}} {}",
            i + 1,
            count.load(Relaxed)
        );
    }
    out.push_str(
        "# HELP warren_tenant_request_duration_seconds Time to the response head of tenant API requests.\n",
    );
    out.push_str("# TYPE warren_tenant_request_duration_seconds histogram\n");
    let mut cumulative = 0;
    for (bound, count) in BUCKETS.iter().zip(&metrics.buckets) {
        cumulative += count.load(Relaxed);
        let _ = writeln!(
            out,
            "warren_tenant_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let total: u64 = metrics.by_class.iter().map(|c| c.load(Relaxed)).sum();
    let _ = writeln!(
        out,
        "warren_tenant_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
    );
    let _ = writeln!(
        out,
        "warren_tenant_request_duration_seconds_sum {}",
        metrics.sum_micros.load(Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "warren_tenant_request_duration_seconds_count {total}");

    snapshot
        .per_tenant
        .sort_by(|a, b| b.requests.cmp(&a.requests).then(a.name.cmp(&b.name)));
    snapshot.per_tenant.truncate(snapshot.top);
    let series = [
        (
            "warren_tenant_requests",
            "counter",
            "Requests of the busiest tenants since the process started.",
        ),
        (
            "warren_tenant_response_bytes",
            "counter",
            "Response bytes of the busiest tenants since the process started.",
        ),
        (
            "warren_tenant_realtime_connections",
            "gauge",
            "Realtime connections open now, for the busiest tenants.",
        ),
    ];
    for (n, (name, kind, help)) in series.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for t in &snapshot.per_tenant {
            let value = [t.requests, t.bytes_out, t.realtime_open][n];
            let _ = writeln!(out, "{name}{{tenant=\"{}\"}} {value}", escape(&t.name));
        }
    }
    out
}

/// A label value with `\`, `"` and line breaks escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_busiest_tenants_get_series() {
        let metrics = Metrics::default();
        metrics.observe(200, Duration::from_micros(300));
        metrics.observe(429, Duration::from_millis(30));
        let per_tenant = (0..50)
            .map(|i| TenantFigures {
                name: format!("t{i}"),
                requests: i,
                bytes_out: 0,
                realtime_open: 0,
            })
            .collect();
        let text = render(
            &metrics,
            Snapshot {
                tenants: 50,
                open_tenants: 3,
                per_tenant,
                top: 5,
            },
        );
        assert!(text.contains("warren_tenant_requests_total{status=\"2xx\"} 1\n"));
        assert!(text.contains("warren_tenant_requests_total{status=\"4xx\"} 1\n"));
        assert!(text.contains("warren_tenant_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("warren_tenant_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("warren_tenant_requests{tenant=\"t49\"} 49\n"));
        assert!(!text.contains("tenant=\"t44\""));
        assert_eq!(text.matches("warren_tenant_requests{").count(), 5);
        assert!(text.contains("warren_open_tenants 3\n"));
    }
}
