//! A tenant's JavaScript runtimes: the one loaded with the tenant, and more made alike (the
//! same files in the same order) while its calls would otherwise wait, up to a bound, dropped
//! again after a quiet time. A call borrows one runtime for its whole duration.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Limits;
use crate::native::Shared;
use crate::sandbox::Sandbox;

/// How long a runtime beyond the first may stay unused before it is dropped.
pub const IDLE_RUNTIME: Duration = Duration::from_secs(30);

/// One loaded runtime of a tenant: its sandbox and what its native functions share.
pub(crate) struct Runtime {
    pub(crate) sandbox: Sandbox,
    pub(crate) shared: Arc<Shared>,
    /// When it was last given back.
    used: Instant,
}

impl Runtime {
    pub(crate) fn new(sandbox: Sandbox, shared: Arc<Shared>) -> Self {
        Self {
            sandbox,
            shared,
            used: Instant::now(),
        }
    }
}

/// Makes one more runtime of the tenant's code with these limits (blocking).
pub(crate) type Make = Box<dyn Fn(Limits) -> Result<Runtime, String> + Send + Sync>;

/// The runtimes of one tenant's code.
pub(crate) struct Pool {
    /// One permit per runtime that may be in use at once.
    slots: Arc<Semaphore>,
    /// Runtimes not in use, the most recently used last.
    idle: Mutex<Vec<Runtime>>,
    make: Make,
}

/// A borrowed slot, with its runtime once there is one; gives it back when dropped.
pub(crate) struct Lease {
    pool: Arc<Pool>,
    runtime: Option<Runtime>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Pool {
    /// A pool holding `first` that grows to at most `most` runtimes, each made by `make`.
    pub(crate) fn new(first: Runtime, most: usize, make: Make) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(most.max(1))),
            idle: Mutex::new(vec![first]),
            make,
        })
    }

    /// Waits for a slot; the lease holds an idle runtime if there is one (else
    /// [`Lease::runtime`] makes one). A write that a call of this pool waits for
    /// ([`warren_tenant::hooks::nested`]) does not wait: that call holds a slot already, so
    /// the pool may hold up to twice its bound for as long as such writes run.
    pub(crate) async fn lend(self: &Arc<Self>) -> Lease {
        let slot = if warren_tenant::hooks::is_nested() {
            None
        } else {
            match self.slots.clone().acquire_owned().await {
                Ok(slot) => Some(slot),
                // The semaphore is never closed.
                Err(_) => unreachable!("a pool's slots are never closed"),
            }
        };
        let (runtime, dropped) = {
            let mut idle = self.idle();
            let runtime = idle.pop();
            let keep = usize::from(runtime.is_none());
            (runtime, stale(&mut idle, keep))
        };
        drop(dropped);
        Lease {
            pool: self.clone(),
            runtime,
            slot,
        }
    }

    /// Runtimes not in use now.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Bytes the idle runtimes hold.
    pub(crate) fn memory_used(&self) -> i64 {
        self.idle().iter().map(|r| r.sandbox.memory_used()).sum()
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Runtime>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Lease {
    /// The borrowed runtime, made now with `limits` if no idle one was there (blocking).
    pub(crate) fn runtime(&mut self, limits: Limits) -> Result<&mut Runtime, String> {
        if self.runtime.is_none() {
            self.runtime = Some((self.pool.make)(limits)?);
        }
        match self.runtime.as_mut() {
            Some(runtime) => Ok(runtime),
            None => unreachable!("the runtime was just made"),
        }
    }
}

impl Lease {
    /// Gives up this lease's slot for good: a runtime could not be made for it, so the pool
    /// does not grow past the runtimes it has.
    pub(crate) fn shrink(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.forget();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut runtime) = self.runtime.take() else {
            return;
        };
        runtime.used = Instant::now();
        let dropped = {
            let mut idle = self.pool.idle();
            idle.push(runtime);
            stale(&mut idle, 1)
        };
        // Freed outside the lock: dropping a runtime frees all its memory.
        drop(dropped);
    }
}

/// Takes the runtimes of `idle` unused for [`IDLE_RUNTIME`], keeping at least `keep`.
fn stale(idle: &mut Vec<Runtime>, keep: usize) -> Vec<Runtime> {
    // The least recently used come first.
    let count = idle
        .iter()
        .take(idle.len().saturating_sub(keep))
        .take_while(|r| r.used.elapsed() > IDLE_RUNTIME)
        .count();
    idle.drain(..count).collect()
}

/// CPU time the calling thread has used so far.
pub(crate) fn thread_cpu() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_counts_work_not_sleep() {
        let started = thread_cpu();
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu() - started;
        assert!(slept < Duration::from_millis(20), "{slept:?}");
        // Busy work shows up (however loaded the machine is, within ten seconds).
        let started = thread_cpu();
        let begun = Instant::now();
        let mut x = 0u64;
        while thread_cpu() - started < Duration::from_millis(30) {
            assert!(begun.elapsed() < Duration::from_secs(10));
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
    }
}
