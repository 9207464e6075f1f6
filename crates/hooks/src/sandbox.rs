//! One tenant's QuickJS runtime and context, with its limits: the CPU deadline checked by the
//! interrupt handler, the runtime's memory limit and its stack limit.
//!
//! The context is QuickJS's plain one: the language's own objects and nothing of the host (no
//! `std`/`os` modules, no file or network access, no timers). What a tenant can reach is what
//! [`crate::native`] adds.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Runtime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Limits;

/// No deadline.
const NONE: u64 = u64::MAX;

thread_local! {
    /// The deadline of the call running on this thread (its clock and the atomic the interrupt
    /// handler reads), so a native function that waits can pause it.
    static RUNNING: RefCell<Option<(Arc<AtomicU64>, Instant)>> = const { RefCell::new(None) };
    /// Time the running call has spent waiting in native calls.
    static WAITED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    /// The node's pool of calls and the slot of it the running call holds: a call that waits
    /// gives its slot back meanwhile (waiting uses no core), so a tenant whose calls wait on
    /// their writes or the network does not hold the node's slots.
    static SLOT: RefCell<Option<(Arc<Semaphore>, Option<OwnedSemaphorePermit>)>> =
        const { RefCell::new(None) };
}

/// Holds the running call's slot of the node's pool until dropped (see [`waiting`]).
pub(crate) struct Slot;

/// Makes `permit`, a slot of `pool`, the running call's until the returned guard drops.
pub(crate) fn hold_slot(pool: Arc<Semaphore>, permit: OwnedSemaphorePermit) -> Slot {
    SLOT.with(|s| *s.borrow_mut() = Some((pool, Some(permit))));
    Slot
}

impl Drop for Slot {
    fn drop(&mut self) {
        SLOT.with(|s| s.borrow_mut().take());
    }
}

/// Gives the running call's slot back; the pool to take one from again, if it held one.
fn release_slot() -> Option<Arc<Semaphore>> {
    SLOT.with(|s| {
        let mut slot = s.borrow_mut();
        let (pool, permit) = slot.as_mut()?;
        // Dropping the permit frees the slot.
        drop(permit.take()?);
        Some(pool.clone())
    })
}

/// Takes a slot of `pool` again for the running call (blocking its thread until one is free).
fn retake_slot(pool: Arc<Semaphore>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let permit = handle.block_on(pool.acquire_owned()).ok();
    SLOT.with(|s| {
        if let Some((_, slot)) = s.borrow_mut().as_mut() {
            *slot = permit;
        }
    });
}

/// How long the native calls of one call into a tenant's code may wait in all (a slow remote
/// cannot hold the tenant's code longer than this).
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(90);

/// Runs `wait` (a native call waiting on the network: `$http.send`, a mail) with the running
/// call's CPU deadline paused: the time it waits is not the tenant's CPU time. `wait` gets the
/// wait budget the call has left and must not wait longer; with none left it is not run.
pub(crate) fn waiting<R>(wait: impl FnOnce(Duration) -> R) -> Result<R, String> {
    let left = WAIT_LIMIT.saturating_sub(WAITED.with(Cell::get));
    if left.is_zero() {
        return Err(format!(
            "the call waited {}s on the network already, its limit",
            WAIT_LIMIT.as_secs()
        ));
    }
    let started = Instant::now();
    let pool = release_slot();
    let running = RUNNING.with(|r| r.borrow().clone());
    let result = match running {
        None => wait(left),
        Some((deadline, epoch)) => {
            let now = epoch.elapsed().as_micros() as u64;
            let budget = deadline.load(Ordering::Relaxed).saturating_sub(now);
            deadline.store(NONE, Ordering::Relaxed);
            let result = wait(left);
            let now = epoch.elapsed().as_micros() as u64;
            deadline.store(now.saturating_add(budget), Ordering::Relaxed);
            result
        }
    };
    if let Some(pool) = pool {
        retake_slot(pool);
    }
    WAITED.with(|w| w.set(w.get() + started.elapsed()));
    Ok(result)
}

/// A tenant's JavaScript runtime. Not shared between tenants, so nothing one tenant changes
/// (globals, prototypes) is seen by another.
pub struct Sandbox {
    /// Owns the context below (declared first so it drops first).
    context: Context,
    runtime: Runtime,
    /// Microseconds since `epoch` after which the running call is interrupted.
    deadline: Arc<AtomicU64>,
    /// Set by the interrupt handler when it stopped a call.
    interrupted: Arc<AtomicBool>,
    epoch: Instant,
    limits: Limits,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// It ran past the CPU limit.
    Interrupted,
    /// It ran out of memory.
    OutOfMemory,
    /// It threw (message and stack).
    Thrown(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Interrupted => f.write_str("interrupted: the call ran past its CPU-time limit"),
            Self::OutOfMemory => f.write_str("stopped: the call ran out of its memory limit"),
            Self::Thrown(message) => f.write_str(message),
        }
    }
}

impl Sandbox {
    /// A fresh runtime and context with `limits`.
    pub fn new(limits: Limits) -> Result<Self, String> {
        let runtime = Runtime::new().map_err(|e| e.to_string())?;
        runtime.set_memory_limit(limits.memory);
        runtime.set_max_stack_size(limits.stack);
        let deadline = Arc::new(AtomicU64::new(NONE));
        let interrupted = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        {
            let deadline = deadline.clone();
            let interrupted = interrupted.clone();
            runtime.set_interrupt_handler(Some(Box::new(move || {
                let late = epoch.elapsed().as_micros() as u64 > deadline.load(Ordering::Relaxed);
                if late {
                    interrupted.store(true, Ordering::Relaxed);
                }
                late
            })));
        }
        let context = Context::full(&runtime).map_err(|e| e.to_string())?;
        Ok(Self {
            context,
            runtime,
            deadline,
            interrupted,
            epoch,
            limits,
        })
    }

    /// Runs `f` in the context with the CPU deadline of one call. A JavaScript exception that
    /// escapes `f` comes back as a [`Failure`].
    pub fn call<R>(
        &self,
        f: impl for<'js> FnOnce(&Ctx<'js>) -> rquickjs::Result<R>,
    ) -> Result<R, Failure> {
        let limit = self.limits.cpu.as_micros() as u64;
        let now = self.epoch.elapsed().as_micros() as u64;
        self.deadline
            .store(now.saturating_add(limit), Ordering::Relaxed);
        self.interrupted.store(false, Ordering::Relaxed);
        let previous = RUNNING.with(|r| r.replace(Some((self.deadline.clone(), self.epoch))));
        let waited = WAITED.with(|w| w.replace(Duration::ZERO));
        let result = self.context.with(|ctx| match f(&ctx).catch(&ctx) {
            Ok(value) => Ok(value),
            Err(error) => Err(describe(error)),
        });
        RUNNING.with(|r| *r.borrow_mut() = previous);
        WAITED.with(|w| w.set(waited));
        self.deadline.store(NONE, Ordering::Relaxed);
        match result {
            Ok(value) => Ok(value),
            Err(_) if self.interrupted.load(Ordering::Relaxed) => {
                self.runtime.run_gc();
                Err(Failure::Interrupted)
            }
            Err(failure) => {
                self.runtime.run_gc();
                Err(failure)
            }
        }
    }

    /// Changes the CPU time of the next calls and the runtime's memory limit (a plan change).
    pub fn set_limits(&mut self, cpu: std::time::Duration, memory: usize) {
        if self.limits.memory != memory {
            self.runtime.set_memory_limit(memory);
        }
        self.limits.cpu = cpu;
        self.limits.memory = memory;
    }

    /// Bytes the runtime holds now.
    pub fn memory_used(&self) -> i64 {
        self.runtime.memory_usage().memory_used_size
    }
}

fn describe(error: CaughtError<'_>) -> Failure {
    let text = match &error {
        CaughtError::Exception(exception) => {
            let message = exception.message().unwrap_or_default();
            let stack = exception.stack().unwrap_or_default();
            if stack.is_empty() {
                message
            } else {
                format!("{message}\n{stack}")
            }
        }
        CaughtError::Value(value) => format!("{value:?}"),
        CaughtError::Error(error) => error.to_string(),
    };
    if text.contains("out of memory") {
        Failure::OutOfMemory
    } else {
        Failure::Thrown(text)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sandbox(cpu_ms: u64) -> Sandbox {
        Sandbox::new(Limits {
            cpu: Duration::from_millis(cpu_ms),
            memory: 16 << 20,
            ..Limits::default()
        })
        .unwrap()
    }

    fn eval(sandbox: &Sandbox, source: &str) -> Result<String, Failure> {
        let source = source.to_string();
        sandbox.call(move |ctx| {
            let value: rquickjs::Value = ctx.eval(source)?;
            Ok(format!(
                "{:?}",
                value
                    .as_int()
                    .map(i64::from)
                    .or(value.as_float().map(|f| f as i64))
            ))
        })
    }

    #[test]
    fn an_endless_loop_is_interrupted_within_the_limit() {
        let sandbox = sandbox(200);
        let started = Instant::now();
        assert_eq!(eval(&sandbox, "for (;;) {}"), Err(Failure::Interrupted));
        let took = started.elapsed();
        assert!(took < Duration::from_millis(600), "took {took:?}");
        // A try/catch in the tenant's code cannot swallow the interrupt.
        let started = Instant::now();
        let caught = eval(&sandbox, "for (;;) { try { for (;;) {} } catch (e) {} }");
        assert_eq!(caught, Err(Failure::Interrupted));
        assert!(started.elapsed() < Duration::from_millis(600));
        // The sandbox answers the next call.
        assert_eq!(eval(&sandbox, "1 + 1").unwrap(), "Some(2)");
    }

    /// A sandbox with `wait(ms)` sleeping like a native call waiting on the network, and
    /// `block(ms)` sleeping without pausing the deadline.
    fn waiting_sandbox(cpu_ms: u64) -> Sandbox {
        let sandbox = sandbox(cpu_ms);
        sandbox
            .call(|ctx| {
                let wait = rquickjs::Function::new(ctx.clone(), |ms: u32| {
                    waiting(|left| std::thread::sleep(Duration::from_millis(ms as u64).min(left)))
                        .is_ok()
                })?;
                let block = rquickjs::Function::new(ctx.clone(), |ms: u32| {
                    std::thread::sleep(Duration::from_millis(ms as u64))
                })?;
                ctx.globals().set("wait", wait)?;
                ctx.globals().set("block", block)
            })
            .unwrap();
        sandbox
    }

    #[test]
    fn a_waiting_call_gives_its_slot_of_the_node_back() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let pool = Arc::new(Semaphore::new(1));
        let inside = pool.clone();
        let (during, after) = runtime.block_on(async move {
            let permit = inside.clone().acquire_owned().await.unwrap();
            tokio::task::spawn_blocking(move || {
                let _slot = hold_slot(inside.clone(), permit);
                let during = waiting(|_| inside.available_permits()).unwrap();
                (during, inside.available_permits())
            })
            .await
            .unwrap()
        });
        // Free while it waited, held again once it went on, and free once the call ended.
        assert_eq!((during, after), (1, 0));
        assert_eq!(pool.available_permits(), 1);
    }

    #[test]
    fn waiting_on_the_network_is_not_cpu_time() {
        let sandbox = waiting_sandbox(200);
        // 3 × 150 ms of waiting in a call allowed 200 ms of CPU.
        assert_eq!(
            eval(
                &sandbox,
                "wait(150); wait(150); wait(150); let n = 0; for (let i = 0; i < 1000; i++) n++; n"
            )
            .unwrap(),
            "Some(1000)"
        );
        // The same time spent without pausing is CPU time: the call is stopped.
        assert_eq!(
            eval(&sandbox, "block(300); for (let i = 0; i < 1e6; i++) {} 1"),
            Err(Failure::Interrupted)
        );
        // The budget left before a wait is kept after it.
        assert_eq!(
            eval(&sandbox, "wait(100); for (;;) {}"),
            Err(Failure::Interrupted)
        );
    }

    #[test]
    fn the_waits_of_one_call_are_capped() {
        let sandbox = waiting_sandbox(200);
        WAITED.with(|w| w.set(Duration::ZERO));
        let capped = sandbox.call(|ctx| {
            let before = WAITED.with(|w| w.replace(WAIT_LIMIT));
            let refused: bool = ctx.eval("wait(1)")?;
            WAITED.with(|w| w.set(before));
            Ok(refused)
        });
        assert_eq!(capped, Ok(false));
        // The next call has its whole budget again.
        let fresh = sandbox.call(|ctx| ctx.eval::<bool, _>("wait(1)"));
        assert_eq!(fresh, Ok(true));
    }

    #[test]
    fn a_memory_bomb_is_stopped_and_the_sandbox_recovers() {
        let sandbox = sandbox(5000);
        let bomb = eval(
            &sandbox,
            "const a = []; for (;;) a.push('x'.repeat(1 << 20) + a.length);",
        );
        assert_eq!(bomb, Err(Failure::OutOfMemory));
        assert!(sandbox.memory_used() < 16 << 20);
        assert_eq!(eval(&sandbox, "2 + 2").unwrap(), "Some(4)");
    }

    #[test]
    fn deep_recursion_is_stopped() {
        let sandbox = sandbox(5000);
        match eval(&sandbox, "function f(n) { return f(n + 1) + 1 } f(0)") {
            Err(Failure::Thrown(message)) => {
                assert!(message.contains("stack"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(eval(&sandbox, "3").unwrap(), "Some(3)");
    }

    #[test]
    fn a_polluted_prototype_stays_in_its_sandbox() {
        let a = sandbox(1000);
        let b = sandbox(1000);
        eval(
            &a,
            "Object.prototype.evil = 1; Array.prototype.push = null; globalThis.x = 5; 0",
        )
        .unwrap();
        assert_eq!(eval(&a, "({}).evil").unwrap(), "Some(1)");
        assert_eq!(
            eval(&b, "({}).evil === undefined ? 7 : 0").unwrap(),
            "Some(7)"
        );
        assert_eq!(
            eval(&b, "typeof x === 'undefined' ? 7 : 0").unwrap(),
            "Some(7)"
        );
        assert_eq!(
            eval(&b, "const q = []; q.push(1); q.length").unwrap(),
            "Some(1)"
        );
    }

    #[test]
    fn the_host_is_out_of_reach() {
        let sandbox = sandbox(1000);
        for name in ["require", "process", "std", "os", "fetch", "setTimeout"] {
            let check = format!("typeof {name} === 'undefined' ? 1 : 0");
            assert_eq!(eval(&sandbox, &check).unwrap(), "Some(1)", "{name}");
        }
        match eval(&sandbox, "nosuchthing()") {
            Err(Failure::Thrown(message)) => assert!(message.contains("nosuchthing"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
