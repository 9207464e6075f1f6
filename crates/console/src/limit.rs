//! Fixed-window rate limits kept in memory, keyed by client IP or email address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked before expired windows are swept out (bounds memory under a flood of keys).
const SWEEP_AT: usize = 10_000;

/// At most `max` hits per key per `window`.
pub struct RateLimit {
    /// Hits allowed per window.
    max: u32,
    /// The window's length.
    window: Duration,
    /// key → (window start, hits in it).
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimit {
    /// A limit of `max` per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit for `key`; false when the key is over its limit (the hit is not counted).
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() >= SWEEP_AT {
            let window = self.window;
            hits.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = hits.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.max {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_limited_within_its_window_only() {
        let limit = RateLimit::new(2, Duration::from_secs(3600));
        assert!(limit.allow("a") && limit.allow("a"));
        assert!(!limit.allow("a"));
        assert!(limit.allow("b"));
        let short = RateLimit::new(1, Duration::ZERO);
        assert!(short.allow("a") && short.allow("a"));
    }
}
