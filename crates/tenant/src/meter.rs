//! A tenant's usage counters and live limits: counted on the request path with relaxed atomics
//! (no lock, no allocation per request), read and persisted elsewhere by the control plane.
//!
//! Counters only ever grow; whoever persists them keeps its own watermark and stores the
//! difference, so a reader never races a reset. A meter outlives the tenant being open: the
//! registry hands the same meter to every opening of one tenant id.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Usage counters and current limits of one tenant.
#[derive(Debug)]
pub struct Meter {
    /// Requests that reached the tenant (refused ones included).
    pub requests: AtomicU64,
    /// Bytes of request bodies read by the tenant API.
    pub bytes_in: AtomicU64,
    /// Bytes of response bodies sent (streams included, as they are sent).
    pub bytes_out: AtomicU64,
    /// Records created, updated or deleted.
    pub records_written: AtomicU64,
    /// Bytes of the tenant's database and files as last measured (0 = never measured).
    pub storage_bytes: AtomicU64,
    /// Most realtime connections allowed at once (0 = unlimited); set by the control plane.
    pub realtime_limit: AtomicU64,
    /// CPU milliseconds one call into the tenant's code may take (0 = the engine's default); set
    /// by the control plane from the plan.
    pub code_cpu_ms: AtomicU64,
    /// Bytes one JavaScript runtime of the tenant may allocate (0 = the engine's default); set
    /// by the control plane from the plan.
    pub code_memory_bytes: AtomicU64,
    /// CPU milliseconds the tenant's code may use per hour (0 = no budget); set by the control
    /// plane from the plan.
    pub code_cpu_ms_per_hour: AtomicU64,
    /// Most backups the tenant keeps at once (0 = no limit); set by the control plane from the
    /// plan.
    pub backup_max_count: AtomicU64,
    /// Most bytes of all the tenant's kept backups together (0 = no limit); set by the control
    /// plane from the plan.
    pub backup_max_bytes: AtomicU64,
    /// CPU microseconds spent in the tenant's code (grows; see [`Meter::charge_code`]).
    pub code_cpu_micros: AtomicU64,
    /// The hour the code's hourly budget counts in, and its CPU microseconds so far.
    code_hour: Mutex<(u64, u64)>,
    /// Realtime connections open now (changed only under the `presence` lock).
    realtime_open: AtomicU64,
    /// Connection-time and peak bookkeeping (touched on connect and disconnect only).
    presence: Mutex<Presence>,
    /// Token bucket as a GCRA "theoretical arrival time", nanoseconds since `epoch`.
    bucket: AtomicU64,
    /// Mails and outbound HTTP requests of the tenant.
    pub outbound: crate::outbound::Outbound,
    /// Reference point of `bucket`.
    epoch: Instant,
}

#[derive(Debug)]
struct Presence {
    /// Connection-microseconds accumulated since the last [`Meter::take_presence`].
    area_micros: u128,
    /// When `area_micros` was last brought up to date.
    since: Instant,
    /// Most connections open at once since the last [`Meter::take_presence`].
    peak: u64,
}

impl Default for Meter {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            requests: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            records_written: AtomicU64::new(0),
            storage_bytes: AtomicU64::new(0),
            realtime_limit: AtomicU64::new(0),
            code_cpu_ms: AtomicU64::new(0),
            code_memory_bytes: AtomicU64::new(0),
            code_cpu_ms_per_hour: AtomicU64::new(0),
            backup_max_count: AtomicU64::new(0),
            backup_max_bytes: AtomicU64::new(0),
            code_cpu_micros: AtomicU64::new(0),
            code_hour: Mutex::new((0, 0)),
            realtime_open: AtomicU64::new(0),
            presence: Mutex::new(Presence {
                area_micros: 0,
                since: now,
                peak: 0,
            }),
            bucket: AtomicU64::new(0),
            outbound: crate::outbound::Outbound::default(),
            epoch: now,
        }
    }
}

/// Whether the tenant's code may run now, by its hourly CPU budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeBudget {
    /// Go ahead.
    Open,
    /// The hour's budget is spent: the next hour starts in this many seconds (at least 1).
    Spent(u64),
}

/// The current hour since the Unix epoch, and the seconds left in it.
fn hour_now() -> (u64, u64) {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (seconds / 3600, 3600 - seconds % 3600)
}

/// What a [`Meter::admit`] call decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Admitted,
    /// Over the rate: retry after this many whole seconds (at least 1).
    RetryAfter(u64),
}

impl Meter {
    /// The plan's bounds on the tenant's kept backups, as last set.
    pub fn backup_quota(&self) -> crate::backups::Quota {
        crate::backups::Quota {
            max_count: self.backup_max_count.load(Relaxed),
            max_bytes: self.backup_max_bytes.load(Relaxed),
        }
    }

    /// Records `n` written records.
    pub fn wrote_records(&self, n: usize) {
        self.records_written.fetch_add(n as u64, Relaxed);
    }

    /// Takes one token from a bucket refilled at `per_second` holding at most `burst` tokens
    /// (generic cell rate algorithm: one compare-and-swap, no lock). `per_second == 0` means
    /// unlimited.
    pub fn admit(&self, per_second: u64, burst: u64) -> Admission {
        if per_second == 0 {
            return Admission::Admitted;
        }
        let interval = 1_000_000_000 / per_second;
        let tolerance = interval.saturating_mul(burst.max(1));
        let now = self.epoch.elapsed().as_nanos() as u64;
        let mut tat = self.bucket.load(Relaxed);
        loop {
            // A request is admitted when, counting it, no more than `burst` intervals of
            // arrivals are ahead of the clock.
            let next = tat.max(now) + interval;
            if next - now > tolerance {
                let wait = next - now - tolerance;
                return Admission::RetryAfter(wait.div_ceil(1_000_000_000).max(1));
            }
            match self
                .bucket
                .compare_exchange_weak(tat, next, Relaxed, Relaxed)
            {
                Ok(_) => return Admission::Admitted,
                Err(current) => tat = current,
            }
        }
    }

    /// Adds `micros` of CPU time spent in the tenant's code to its usage and to this hour's
    /// budget.
    pub fn charge_code(&self, micros: u64) {
        self.code_cpu_micros.fetch_add(micros, Relaxed);
        let (hour, _) = hour_now();
        let mut spent = self.code_hour.lock().unwrap_or_else(|p| p.into_inner());
        if spent.0 != hour {
            *spent = (hour, 0);
        }
        spent.1 = spent.1.saturating_add(micros);
    }

    /// Whether this hour's CPU budget of the tenant's code (`code_cpu_ms_per_hour`) has room.
    pub fn code_budget(&self) -> CodeBudget {
        let budget = self.code_cpu_ms_per_hour.load(Relaxed);
        if budget == 0 {
            return CodeBudget::Open;
        }
        let (hour, left) = hour_now();
        let spent = *self.code_hour.lock().unwrap_or_else(|p| p.into_inner());
        if spent.0 == hour && spent.1 >= budget.saturating_mul(1000) {
            CodeBudget::Spent(left.max(1))
        } else {
            CodeBudget::Open
        }
    }

    /// CPU milliseconds the tenant's code used in the current hour.
    pub fn code_cpu_ms_this_hour(&self) -> u64 {
        let (hour, _) = hour_now();
        let spent = *self.code_hour.lock().unwrap_or_else(|p| p.into_inner());
        if spent.0 == hour { spent.1 / 1000 } else { 0 }
    }

    /// Opens a realtime connection if the limit allows; the guard closes it when dropped.
    pub fn connect_realtime(self: &Arc<Self>) -> Option<RealtimeGuard> {
        let limit = self.realtime_limit.load(Relaxed);
        // Connects and disconnects are rare next to requests: one short lock keeps the count,
        // the area and the peak consistent with each other.
        let mut presence = self.presence();
        let open = self.realtime_open.load(Relaxed);
        if limit > 0 && open >= limit {
            return None;
        }
        presence.accrue(open);
        self.realtime_open.store(open + 1, Relaxed);
        presence.peak = presence.peak.max(open + 1);
        drop(presence);
        Some(RealtimeGuard {
            meter: self.clone(),
        })
    }

    /// Realtime connections open now.
    pub fn realtime_open(&self) -> u64 {
        self.realtime_open.load(Relaxed)
    }

    /// Connection-seconds since the last call (rounded down; the remainder carries over) and
    /// the peak of open connections in that time; starts the next period with the connections
    /// open now.
    pub fn take_presence(&self) -> (u64, u64) {
        let mut presence = self.presence();
        let open = self.realtime_open.load(Relaxed);
        presence.accrue(open);
        let seconds = (presence.area_micros / 1_000_000) as u64;
        presence.area_micros %= 1_000_000;
        let peak = std::mem::replace(&mut presence.peak, open);
        (seconds, peak.max(open))
    }

    fn presence(&self) -> std::sync::MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Presence {
    /// Adds the time since `since` with `open` connections to the area.
    fn accrue(&mut self, open: u64) {
        let now = Instant::now();
        self.area_micros += now.duration_since(self.since).as_micros() * u128::from(open);
        self.since = now;
    }
}

/// One open realtime connection; dropping it records the disconnect.
#[derive(Debug)]
pub struct RealtimeGuard {
    meter: Arc<Meter>,
}

impl Drop for RealtimeGuard {
    fn drop(&mut self) {
        let mut presence = self.meter.presence();
        let open = self.meter.realtime_open.load(Relaxed);
        presence.accrue(open);
        self.meter
            .realtime_open
            .store(open.saturating_sub(1), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_refuses_with_a_wait() {
        let meter = Meter::default();
        for _ in 0..5 {
            assert_eq!(meter.admit(1, 5), Admission::Admitted);
        }
        assert_eq!(meter.admit(1, 5), Admission::RetryAfter(1));
        assert_eq!(meter.admit(0, 0), Admission::Admitted);
    }

    #[test]
    fn the_bucket_refills_at_its_rate() {
        let meter = Meter::default();
        for _ in 0..2 {
            assert_eq!(meter.admit(100, 2), Admission::Admitted);
        }
        assert!(matches!(meter.admit(100, 2), Admission::RetryAfter(_)));
        std::thread::sleep(std::time::Duration::from_millis(25));
        assert_eq!(meter.admit(100, 2), Admission::Admitted);
    }

    #[test]
    fn code_cpu_counts_and_the_hourly_budget_closes_and_reopens() {
        let meter = Meter::default();
        assert_eq!(meter.code_budget(), CodeBudget::Open);
        meter.code_cpu_ms_per_hour.store(5, Relaxed);
        meter.charge_code(4_000);
        assert_eq!(meter.code_budget(), CodeBudget::Open);
        meter.charge_code(1_500);
        assert!(matches!(meter.code_budget(), CodeBudget::Spent(s) if (1..=3600).contains(&s)));
        assert_eq!(meter.code_cpu_micros.load(Relaxed), 5_500);
        assert_eq!(meter.code_cpu_ms_this_hour(), 5);
        // A raised budget applies at once; so does the next hour.
        meter.code_cpu_ms_per_hour.store(10, Relaxed);
        assert_eq!(meter.code_budget(), CodeBudget::Open);
        meter.code_cpu_ms_per_hour.store(5, Relaxed);
        meter.code_hour.lock().unwrap().0 -= 1;
        assert_eq!(meter.code_budget(), CodeBudget::Open);
        assert_eq!(meter.code_cpu_ms_this_hour(), 0);
    }

    #[test]
    fn realtime_connections_respect_the_limit_and_count_time() {
        let meter = Arc::new(Meter::default());
        meter.realtime_limit.store(2, Relaxed);
        let a = meter.connect_realtime().unwrap();
        let b = meter.connect_realtime().unwrap();
        assert!(meter.connect_realtime().is_none());
        assert_eq!(meter.realtime_open(), 2);
        drop(a);
        let c = meter.connect_realtime().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop((b, c));
        assert_eq!(meter.realtime_open(), 0);
        assert!(meter.presence().area_micros >= 40_000);
        let (seconds, peak) = meter.take_presence();
        assert_eq!((seconds, peak), (0, 2));
        assert_eq!(meter.presence().peak, 0);
    }
}
