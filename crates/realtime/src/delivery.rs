//! The delivery runtime: worker threads for event fan-out and open event streams, scheduled
//! below request handling, so that delivering an event to thousands of clients never delays
//! the requests (and the writes that produce the events).
//!
//! The server starts it once with [`start`]; until then (in tests, in tools) everything runs
//! on the caller's runtime.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// How much nicer delivery threads are than the thread that starts the runtime, by default
/// (request threads keep that one's niceness). At 10 the scheduler gives a runnable request
/// thread about nine tenths of a contended core and lets it preempt a delivery thread when it
/// wakes. The price shows when busy clients share the server's cores (a load generator on the
/// same machine): their wake-ups preempt delivery too, which costs it context switches.
pub const NICENESS: i32 = 10;
/// The largest niceness Linux allows.
const MAX_NICENESS: i32 = 19;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Starts the delivery runtime (one worker per core, `nicer` levels below the calling
/// thread) if it is not running yet and returns its handle.
pub fn start(nicer: i32) -> std::io::Result<Handle> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.handle().clone());
    }
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    // Absolute, not relative to the spawning thread: blocking threads are spawned by workers
    // that are already lowered.
    let niceness = delivery_niceness(
        rustix::process::getpriority_process(None).unwrap_or(0),
        nicer,
    );
    let runtime = Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("warren-delivery")
        .on_thread_start(move || lower_priority(niceness))
        .enable_all()
        .build()?;
    if let Err(lost) = RUNTIME.set(runtime) {
        // Another caller started one first; this one never ran anything.
        lost.shutdown_background();
    }
    Ok(handle())
}

/// The delivery runtime's handle once started, else the current runtime's. Panics outside
/// a Tokio runtime when none was started, like `tokio::spawn`.
pub fn handle() -> Handle {
    match RUNTIME.get() {
        Some(runtime) => runtime.handle().clone(),
        None => Handle::current(),
    }
}

/// Whether [`start`] has run in this process.
pub fn started() -> bool {
    RUNTIME.get().is_some()
}

/// Spawns delivery work on the delivery runtime (or the current one, see [`handle`]).
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(future)
}

/// The niceness of delivery threads `nicer` levels below request threads at `base`.
fn delivery_niceness(base: i32, nicer: i32) -> i32 {
    (base + nicer.max(0)).min(MAX_NICENESS)
}

/// Sets the calling thread's niceness (on Linux the nice value is per thread). A system that
/// refuses leaves the thread as it is: delivery still works, only without the preference for
/// requests.
fn lower_priority(niceness: i32) {
    if let Err(e) = rustix::process::setpriority_process(None, niceness) {
        tracing::debug!(error = %e, "could not lower the delivery threads' priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_threads_run_below_request_threads() {
        let base = rustix::process::getpriority_process(None).unwrap();
        let handle = start(NICENESS).unwrap();
        assert!(started());
        let nice = handle
            .block_on(async { spawn(async { rustix::process::getpriority_process(None) }).await })
            .unwrap()
            .unwrap();
        assert_eq!(nice, delivery_niceness(base, NICENESS));
        if base + NICENESS <= MAX_NICENESS {
            assert_eq!(nice, base + NICENESS);
        }
        // Blocking threads of the delivery runtime get the same niceness, not a lower one.
        let blocking = handle
            .block_on(async {
                spawn(async {
                    tokio::task::spawn_blocking(|| rustix::process::getpriority_process(None)).await
                })
                .await
            })
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(blocking, nice);
        // The calling thread keeps its priority.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), base);
        assert_eq!(start(0).unwrap().id(), handle.id());
    }
}
