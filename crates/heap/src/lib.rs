//! Gives back to the system the memory the C allocator keeps after tenants' databases closed.
//!
//! SQLite allocates through the C library's `malloc`, not Rust's allocator. glibc keeps what
//! is freed in the arena of the thread that freed it and returns pages only from the top of a
//! heap, so after a server has closed thousands of tenants (their connections closed on the
//! blocking pool's threads, each with an arena of its own) most of that memory stays resident
//! although nothing uses it. Code that frees such memory calls [`note_freed`]; the task
//! [`spawn_trimmer`] starts asks glibc for it back ([`release`]) once the frees have paused.
//! [`resident_bytes`] says how much memory the process holds (for the trimmer's log and
//! `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Frees noted since the process started.
static FREED: AtomicU64 = AtomicU64::new(0);

/// How often the trimmer looks at the count of frees.
const TICK: Duration = Duration::from_secs(1);

/// Under steady frees, the most ticks between two trims.
const BUSY_TICKS: u32 = 30;

/// Notes that a large amount of memory was freed, or is about to be: a tenant closed.
pub fn note_freed() {
    FREED.fetch_add(1, Ordering::Relaxed);
}

/// How many frees were noted since the process started.
pub fn freed() -> u64 {
    FREED.load(Ordering::Relaxed)
}

/// Asks the C allocator to return the free pages of every arena to the system; returns whether
/// it gave any back. Blocking (it walks every arena, locking each in turn): call it from a
/// blocking thread. Elsewhere than glibc it does nothing and returns false.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and touches only the allocator's own free lists,
    // under the locks every other allocator call takes.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Asks the C allocator to return the free pages of every arena to the system; returns whether
/// it gave any back. Elsewhere than glibc it does nothing and returns false.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release() -> bool {
    false
}

/// Starts, on the current Tokio runtime, the task that calls [`release`] once frees noted with
/// [`note_freed`] have paused for a second, or every thirty seconds while they go on. It runs
/// until the runtime shuts down.
pub fn spawn_trimmer() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut policy = Policy::new(FREED.load(Ordering::Relaxed));
        loop {
            tick.tick().await;
            if !policy.tick(FREED.load(Ordering::Relaxed)) {
                continue;
            }
            let trimmed = tokio::task::spawn_blocking(|| {
                let before = resident_bytes();
                let started = Instant::now();
                let released = release();
                (released, before, resident_bytes(), started.elapsed())
            })
            .await;
            if let Ok((released, before, after, took)) = trimmed {
                tracing::debug!(
                    released,
                    resident_before_kib = before.map(|b| b / 1024),
                    resident_after_kib = after.map(|b| b / 1024),
                    took_ms = took.as_secs_f64() * 1e3,
                    "returned freed memory to the system"
                );
            }
        }
    })
}

/// This process's resident memory in bytes (`VmRSS` in `/proc/self/status`), when `/proc`
/// says.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// When to trim, from the count of frees seen at each tick.
#[derive(Debug)]
struct Policy {
    /// The count when the allocator was last trimmed (or when the trimmer started).
    trimmed_at: u64,
    /// The count at the previous tick.
    last_seen: u64,
    /// Ticks since the last trim.
    ticks: u32,
}

impl Policy {
    fn new(count: u64) -> Self {
        Self {
            trimmed_at: count,
            last_seen: count,
            ticks: 0,
        }
    }

    /// Whether to trim now, given the count of frees at this tick: when something was freed
    /// since the last trim, and either nothing since the previous tick (the frees paused) or
    /// frees went on for [`BUSY_TICKS`].
    fn tick(&mut self, count: u64) -> bool {
        self.ticks = self.ticks.saturating_add(1);
        let paused = count == self.last_seen;
        self.last_seen = count;
        if count == self.trimmed_at || !(paused || self.ticks >= BUSY_TICKS) {
            return false;
        }
        self.trimmed_at = count;
        self.ticks = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_frees_pause_and_not_again_until_more() {
        let mut policy = Policy::new(0);
        assert!(!policy.tick(0), "nothing freed");
        assert!(!policy.tick(3), "frees under way");
        assert!(!policy.tick(7), "frees under way");
        assert!(policy.tick(7), "paused after frees");
        assert!(!policy.tick(7), "nothing freed since the trim");
        assert!(!policy.tick(8), "frees under way");
        assert!(policy.tick(8), "paused again");
    }

    #[test]
    fn trims_every_thirty_ticks_while_frees_go_on() {
        let mut policy = Policy::new(0);
        let trims: Vec<u32> = (1..=90u32)
            .filter(|&tick| policy.tick(u64::from(tick)))
            .collect();
        assert_eq!(trims, vec![30, 60, 90]);
    }

    /// What the trimmer is for: memory SQLite freed on another thread, in that thread's arena,
    /// stays resident until it is released.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn release_returns_what_closed_databases_left_resident() {
        fn fill() {
            let dbs: Vec<rusqlite::Connection> = (0..16)
                .map(|_| {
                    let db = rusqlite::Connection::open_in_memory().unwrap();
                    db.execute_batch(
                        "PRAGMA cache_size = -65536;
                         CREATE TABLE t (v BLOB);
                         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
                                                 WHERE i < 1500)
                         INSERT INTO t SELECT randomblob(1000) FROM n;",
                    )
                    .unwrap();
                    db
                })
                .collect();
            // A live allocation made last sits above the freed ones: glibc cannot give back
            // the heap's top, so only a trim returns what lies beneath it.
            let keep = rusqlite::Connection::open_in_memory().unwrap();
            drop(dbs);
            std::mem::forget(keep);
        }
        std::thread::spawn(fill).join().unwrap();
        let before = resident_bytes().unwrap();
        release();
        let after = resident_bytes().unwrap();
        assert!(
            before.saturating_sub(after) > 8 << 20,
            "resident {before} bytes before the trim, {after} bytes after"
        );
    }
}
