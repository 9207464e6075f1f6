//! Fixed-window attempt counters for brute-force protection: per tenant, per client IP and per
//! identity. Keys are built by callers and always start with the tenant id, so one tenant's
//! traffic never spends another's budget. Memory is bounded: when the table is full, expired
//! windows are dropped first and, failing that, the new key is refused (fails closed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most keys tracked at once.
const MAX_KEYS: usize = 200_000;

/// A set of fixed-window counters. Cheap to clone.
#[derive(Clone, Default)]
pub struct Limiter {
    windows: Arc<Mutex<HashMap<String, Window>>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    length: Duration,
    count: u32,
}

impl Limiter {
    /// Counts one attempt under `key`; `false` when `max` attempts were already counted in the
    /// current window of `length`.
    pub fn allow(&self, key: &str, max: u32, length: Duration) -> bool {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if !windows.contains_key(key) && windows.len() >= MAX_KEYS {
            windows.retain(|_, w| now.duration_since(w.started) < w.length);
            if windows.len() >= MAX_KEYS {
                return false;
            }
        }
        let window = windows.entry(key.to_string()).or_insert(Window {
            started: now,
            length,
            count: 0,
        });
        if now.duration_since(window.started) >= window.length {
            *window = Window {
                started: now,
                length,
                count: 0,
            };
        }
        if window.count >= max {
            return false;
        }
        window.count += 1;
        true
    }

    /// Whether `max` attempts were already counted under `key` in its current window (does not
    /// count one).
    pub fn blocked(&self, key: &str, max: u32) -> bool {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows
            .get(key)
            .is_some_and(|w| w.started.elapsed() < w.length && w.count >= max)
    }

    /// Forgets `key` (e.g. after a successful login).
    pub fn reset(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_attempts_in_a_window() {
        let limiter = Limiter::default();
        let minute = Duration::from_secs(60);
        assert!(limiter.allow("t1:ip", 2, minute));
        assert!(limiter.allow("t1:ip", 2, minute));
        assert!(!limiter.allow("t1:ip", 2, minute));
        assert!(
            limiter.allow("t2:ip", 2, minute),
            "other tenants keep their budget"
        );
        assert!(limiter.blocked("t1:ip", 2));
        assert!(!limiter.blocked("t2:ip", 2));
        limiter.reset("t1:ip");
        assert!(limiter.allow("t1:ip", 2, minute));
    }

    #[test]
    fn a_new_window_starts_after_the_old_one_ends() {
        let limiter = Limiter::default();
        let short = Duration::from_millis(1);
        assert!(limiter.allow("k", 1, short));
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.allow("k", 1, short));
    }
}
