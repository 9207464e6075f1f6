//! What a tenant sends out of the node: mails and its code's HTTP requests, counted per
//! tenant, and the rate its mails may leave at.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Mails a tenant may send per minute, sustained (system mails and its code's alike).
pub const MAILS_PER_MINUTE: u64 = 60;
/// Mails a tenant may send at once after a quiet spell.
pub const MAIL_BURST: u64 = 30;

/// A tenant's outbound counters (they only grow) and its mail rate.
#[derive(Debug)]
pub struct Outbound {
    /// Mails handed to a relay or kept in the outbox.
    pub mails: AtomicU64,
    /// Mails refused by the rate or by a hook.
    pub mails_refused: AtomicU64,
    /// `$http.send` requests made.
    pub http_requests: AtomicU64,
    /// Bytes of `$http.send` request bodies sent.
    pub http_bytes_out: AtomicU64,
    /// Bytes of `$http.send` response bodies received.
    pub http_bytes_in: AtomicU64,
    /// The mail bucket as a GCRA "theoretical arrival time", nanoseconds since `epoch`.
    mail_bucket: AtomicU64,
    epoch: Instant,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            mails: AtomicU64::new(0),
            mails_refused: AtomicU64::new(0),
            http_requests: AtomicU64::new(0),
            http_bytes_out: AtomicU64::new(0),
            http_bytes_in: AtomicU64::new(0),
            mail_bucket: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Outbound {
    /// Takes one mail from the tenant's bucket ([`MAILS_PER_MINUTE`], [`MAIL_BURST`]);
    /// `false` when the tenant is over its rate.
    pub fn admit_mail(&self) -> bool {
        let interval = 60_000_000_000 / MAILS_PER_MINUTE;
        let tolerance = interval * MAIL_BURST;
        let now = self.epoch.elapsed().as_nanos() as u64;
        let mut tat = self.mail_bucket.load(Relaxed);
        loop {
            let next = tat.max(now) + interval;
            if next - now > tolerance {
                self.mails_refused.fetch_add(1, Relaxed);
                return false;
            }
            match self
                .mail_bucket
                .compare_exchange_weak(tat, next, Relaxed, Relaxed)
            {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mails_past_the_burst_are_refused() {
        let outbound = Outbound::default();
        for _ in 0..MAIL_BURST {
            assert!(outbound.admit_mail());
        }
        assert!(!outbound.admit_mail());
        assert_eq!(outbound.mails_refused.load(Relaxed), 1);
    }
}
