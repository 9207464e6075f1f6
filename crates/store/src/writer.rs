//! The single writer of a database, with group commit.
//!
//! SQLite allows one writer at a time. Instead of letting concurrent requests fight over the
//! write lock (SQLITE_BUSY), every write is queued to one drainer that takes the queue, runs all
//! pending jobs inside one `BEGIN IMMEDIATE … COMMIT` (one fsync), each job in a savepoint of its
//! own (a job alone in its group needs none), and only then answers each caller. A job that
//! fails rolls back to its savepoint and does not disturb the others; if the commit itself
//! fails, every job of the batch gets the error. Nothing is acknowledged before the commit that
//! holds it has returned.
//!
//! The drainer is not a thread of its own: a write to an idle database starts one on the
//! runtime's blocking pool, it runs until the queue is empty, and then parks the connection
//! (with the queue) in the handle and ends. An idle database therefore holds no thread, and a
//! node with thousands of open databases runs only as many writer threads as databases are
//! being written. One database's jobs still run one at a time, in queue order: at most one
//! drainer owns its connection. A write crosses threads twice (to the drainer and back), and a
//! group never waits for more jobs than are queued.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, watch};

use crate::commits::{self, CommitLog};
use crate::version::{DataVersion, Outcome};
use crate::{Error, Result};

/// Most jobs folded into one transaction. Bounds the latency one batch adds to its last job.
const MAX_BATCH: usize = 256;
/// Queue depth before callers wait (backpressure instead of unbounded memory).
const QUEUE: usize = 4096;

/// Delivers a job's outcome once the commit outcome is known.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Runs one job on the writer connection (or learns that it cannot run, and why); says whether
/// it succeeded and how to answer its caller.
type Job = Box<dyn FnOnce(std::result::Result<&Connection, String>) -> (bool, Finish) + Send>;
/// Runs on the writer connection between two transactions (no transaction open).
pub(crate) type Idle = Box<dyn FnOnce(&Connection) + Send>;

/// What the writer is asked to do.
enum Message {
    /// A write, folded into the next group commit.
    Job(Job),
    /// Work outside any transaction (a checkpoint), after the writes queued before it.
    Idle(Idle),
}

/// Handle to the writer. Dropping it closes the connection once the queued work is done (on a
/// blocking thread, never on the caller's).
pub(crate) struct Writer {
    jobs: mpsc::Sender<Message>,
    shared: Arc<Shared>,
    /// Ends (its sender is dropped) once the writer's connection is closed.
    closed: watch::Receiver<()>,
}

/// What the handle and a running drainer share.
struct Shared {
    state: Mutex<State>,
    /// Where drainers run (the blocking pool of the runtime the database was opened on).
    runtime: Option<tokio::runtime::Handle>,
    /// Where commits are recorded (shipped databases).
    log: Option<CommitLog>,
    /// Changed after every write's end, before its callers hear of it.
    version: Arc<DataVersion>,
}

struct State {
    /// The connection and its queue while no drainer runs; `None` while one runs (it owns
    /// them) and once the connection is closed.
    parked: Option<Parked>,
    /// The handle is gone: a drainer that empties the queue closes the connection instead of
    /// parking it.
    dropped: bool,
}

/// Opens a lazily opened writer's connection (see [`Writer::lazy`]).
pub(crate) type Opener = Box<dyn Fn() -> Result<Connection> + Send + Sync>;

/// The writer's connection, or what opens it when the first message arrives.
enum Link {
    Open(Connection),
    Lazy(Opener),
}

/// Everything a drainer needs, handed from one drainer to the next.
struct Parked {
    link: Link,
    queue: mpsc::Receiver<Message>,
    /// Dropped after the connection is closed, which ends [`Writer::closed`].
    done: watch::Sender<()>,
    /// Closing checkpoints the WAL when it holds more than this many bytes (`None`: never,
    /// for a shipped database; see [`Writer::start`]).
    checkpoint_above: Option<u64>,
    /// Marked by the connection's commits (see [`crate::version`]).
    version: Arc<DataVersion>,
    /// The connection's schema version after the last group commit; `None` until one, and
    /// after idle work (which may change the schema, as opening does with migrations).
    schema: Option<i64>,
}

impl Parked {
    /// The connection, opened first if the writer is lazy and this is its first message. A
    /// failed open is reported to that message's callers and tried again on the next one.
    fn conn(&mut self) -> std::result::Result<&Connection, String> {
        if let Link::Lazy(open) = &self.link {
            // Opening applies pending migrations, committed before the hook is in place: the
            // version reads as a commit under way until this message's write ends.
            self.version.committing();
            let conn = open().map_err(|e| e.to_string())?;
            crate::version::watch_commits(&conn, &self.version).map_err(|e| e.to_string())?;
            self.link = Link::Open(conn);
        }
        match &self.link {
            Link::Open(conn) => Ok(conn),
            Link::Lazy(_) => Err("the database is not open".into()),
        }
    }

    /// Checkpoints (see [`Writer::start`]), closes the connection, then says so. A lazy
    /// writer that never opened its connection has nothing to close.
    fn close(self) {
        let Parked {
            link,
            queue,
            done,
            checkpoint_above,
            version: _,
            schema: _,
        } = self;
        drop(queue);
        if let Link::Open(conn) = link {
            if let Some(above) = checkpoint_above {
                checkpoint_on_close(&conn, above);
            }
            drop(conn);
        }
        drop(done);
    }

    /// Whether closing does no work (a lazy writer that never opened its connection).
    fn unopened(&self) -> bool {
        matches!(self.link, Link::Lazy(_))
    }
}

/// Copies every WAL frame into the database file, syncs it and cuts the WAL to 0 bytes, the
/// files staying in place for the next open. A reader still inside a transaction makes it wait
/// (busy timeout) and, past that, leaves the frames in the WAL for the next open to find.
/// A WAL of `above` bytes or less is left as it is: the next open reads it back (SQLite's
/// recovery, a few pages), which costs less than the checkpoint's syncs.
fn checkpoint_on_close(conn: &Connection, above: u64) {
    if above > 0
        && let Some(path) = conn.path()
        && std::fs::metadata(format!("{path}-wal")).is_ok_and(|wal| wal.len() <= above)
    {
        return;
    }
    let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    match busy {
        Ok(0) => {}
        Ok(_) => tracing::warn!("database close: the WAL is in use; it is checkpointed later"),
        Err(e) => tracing::warn!("database close: the WAL was not checkpointed: {e}"),
    }
}

impl Writer {
    /// Makes the writer of `conn`; no thread runs until the first write.
    /// With `log`, every commit that wrote WAL frames is recorded in it, and the WAL is left
    /// to its shipper when the writer closes; without, the writer checkpoints it as it closes
    /// (no connection does so by itself, see `database::open_connection`) when it holds more
    /// than `checkpoint_above` bytes. With `tables`, the data version tells tables apart (see
    /// [`crate::version`]; only worth its cost where versions are read).
    pub(crate) fn start(
        conn: Connection,
        log: Option<CommitLog>,
        checkpoint_above: u64,
        tables: bool,
    ) -> Result<Self> {
        let checkpoint_above = log.is_none().then_some(checkpoint_above);
        Self::with_link(Link::Open(conn), log, checkpoint_above, tables)
    }

    /// Makes a writer whose connection `open` opens when the first write (or idle work)
    /// arrives: a database reopened only to be read, or not touched at all, opens no writer
    /// connection. Never shipped (a shipped database records commits from its first open).
    pub(crate) fn lazy(open: Opener, checkpoint_above: u64, tables: bool) -> Result<Self> {
        Self::with_link(Link::Lazy(open), None, Some(checkpoint_above), tables)
    }

    fn with_link(
        link: Link,
        log: Option<CommitLog>,
        checkpoint_above: Option<u64>,
        tables: bool,
    ) -> Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (done, closed) = watch::channel(());
        let version = Arc::new(DataVersion::new(tables));
        if let Link::Open(conn) = &link {
            crate::version::watch_commits(conn, &version)?;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                parked: Some(Parked {
                    link,
                    queue,
                    done,
                    checkpoint_above,
                    version: version.clone(),
                    schema: None,
                }),
                dropped: false,
            }),
            // Jobs may use the runtime (spawn, `Handle::current`): drainers run on its pool.
            runtime: tokio::runtime::Handle::try_current().ok(),
            log,
            version,
        });
        Ok(Self {
            jobs,
            shared,
            closed,
        })
    }

    /// The database's data version (see [`crate::version`]).
    pub(crate) fn version(&self) -> &Arc<DataVersion> {
        &self.shared.version
    }

    /// A receiver whose `changed()` fails once the writer's connection is closed.
    pub(crate) fn closed(&self) -> watch::Receiver<()> {
        self.closed.clone()
    }

    /// Starts a drainer if none runs (called after every message sent).
    fn wake(&self) {
        let parked = self.shared.lock().parked.take();
        if let Some(parked) = parked {
            self.shared.spawn(parked);
        }
    }

    /// Sends `message`, waiting while the queue is full, and makes sure a drainer takes it.
    async fn send(&self, message: Message) -> Result<()> {
        self.jobs.send(message).await.map_err(|_| Error::Closed)?;
        self.wake();
        Ok(())
    }

    /// Queues `f` and waits until the transaction that ran it has committed.
    pub(crate) async fn submit<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&Connection) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<std::result::Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            let out = match conn {
                Ok(conn) => f(conn),
                Err(message) => Err(E::from(Error::Commit(message))),
            };
            let ok = out.is_ok();
            let finish: Finish = Box::new(move |commit| {
                let result = match (out, commit) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(message)) => Err(E::from(Error::Commit(message))),
                    (Err(e), _) => Err(e),
                };
                // The caller may have gone away (request cancelled); the write stands anyway.
                let _ = reply.send(result);
            });
            (ok, finish)
        });
        self.send(Message::Job(job)).await?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Queues `idle` from a blocking thread (never from async code) without waiting for it.
    pub(crate) fn idle_blocking(&self, idle: Idle) -> Result<()> {
        self.jobs
            .blocking_send(Message::Idle(idle))
            .map_err(|_| Error::Closed)?;
        self.wake();
        Ok(())
    }

    /// Runs `f` on the writer connection outside any transaction, once the writes queued
    /// before it have committed; no write runs meanwhile.
    pub(crate) async fn idle<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<T>();
        let version = self.shared.version.clone();
        let idle: Idle = Box::new(move |conn| {
            let out = f(conn);
            // `f` may have committed (ad-hoc SQL run alone).
            version.bump();
            let _ = reply.send(out);
        });
        self.send(Message::Idle(idle)).await?;
        answer.await.map_err(|_| Error::Closed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let parked = {
            let mut state = self.shared.lock();
            state.dropped = true;
            state.parked.take()
        };
        // Closing may checkpoint and sync: never on the caller's (possibly async) thread,
        // unless there is nothing to close.
        match parked {
            Some(parked) if parked.unopened() => parked.close(),
            Some(parked) => self.shared.spawn_close(parked),
            None => {}
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section moves an `Option` or sets a flag: a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a drainer for `parked` on the blocking pool (a thread of its own without a runtime).
    fn spawn(self: &Arc<Self>, parked: Parked) {
        let shared = self.clone();
        self.run_blocking(move || drain(&shared, parked));
    }

    /// Closes `parked` on the blocking pool.
    fn spawn_close(&self, parked: Parked) {
        self.run_blocking(move || parked.close());
    }

    fn run_blocking(&self, f: impl FnOnce() + Send + 'static) {
        match &self.runtime {
            Some(runtime) => {
                // A runtime shutting down drops `f` unrun, which closes what it holds.
                runtime.spawn_blocking(f);
            }
            None => {
                if let Err(e) = std::thread::Builder::new()
                    .name("warren-writer".into())
                    .spawn(f)
                {
                    tracing::error!("database writer: no thread: {e}");
                }
            }
        }
    }
}

/// The drainer: take a message, and with a job whatever other jobs are queued, commit them
/// together; idle work runs between two batches, in queue order. When the queue is empty the
/// connection is parked for the next drainer (or closed, once the handle is gone).
fn drain(shared: &Shared, mut parked: Parked) {
    let mut next = None;
    loop {
        let message = match next.take() {
            Some(message) => message,
            None => match parked.queue.try_recv() {
                Ok(message) => message,
                Err(TryRecvError::Disconnected) => return parked.close(),
                Err(TryRecvError::Empty) => {
                    let mut state = shared.lock();
                    // Checked again under the lock: a sender that queued after this check
                    // finds the connection parked and starts the next drainer.
                    match parked.queue.try_recv() {
                        Ok(message) => message,
                        Err(TryRecvError::Empty) if !state.dropped => {
                            state.parked = Some(parked);
                            return;
                        }
                        Err(_) => {
                            drop(state);
                            return parked.close();
                        }
                    }
                }
            },
        };
        match message {
            Message::Idle(idle) => {
                // Any SQL may run, DDL included: the next group commit counts every table as
                // touched.
                parked.schema = None;
                let conn = match parked.conn() {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Dropped unrun: its caller sees `Closed`.
                        tracing::warn!("database writer: the connection did not open: {e}");
                        shared.version.bump();
                        continue;
                    }
                };
                if std::panic::catch_unwind(AssertUnwindSafe(|| idle(conn))).is_err() {
                    // Its caller sees `Closed`; a transaction it left open is undone.
                    tracing::error!("database writer: idle work panicked");
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                }
                shared.version.bump();
            }
            Message::Job(first) => {
                let mut batch = Vec::with_capacity(16);
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match parked.queue.try_recv() {
                        Ok(Message::Job(job)) => batch.push(job),
                        Ok(idle) => {
                            next = Some(idle);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let (finishers, commit, ended) = match parked.conn() {
                    Ok(conn) => {
                        let before = conn.total_changes();
                        let (finishers, commit, all_kept) =
                            commit_batch(conn, batch, shared.log.as_ref());
                        let changes = conn.total_changes().wrapping_sub(before);
                        (
                            finishers,
                            commit,
                            Some((all_kept, changes, schema_version(conn))),
                        )
                    }
                    Err(message) => {
                        let finishers = batch
                            .into_iter()
                            .map(|job| job(Err(message.clone())).1)
                            .collect();
                        (finishers, Err(message), None)
                    }
                };
                // Committed or not, before any caller hears of it.
                match ended {
                    Some((all_kept, changes, schema)) => {
                        let same_schema = schema.is_some() && schema == parked.schema;
                        parked.schema = schema;
                        shared.version.bump_after(Outcome {
                            clean: all_kept && commit.is_ok() && same_schema,
                            changes,
                        });
                    }
                    None => shared.version.bump(),
                }
                for finish in finishers {
                    finish(commit.clone());
                }
            }
        }
    }
}

/// The connection's schema version (`None` if it cannot be read).
fn schema_version(conn: &Connection) -> Option<i64> {
    conn.prepare_cached("PRAGMA schema_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ok()
}

/// Runs one transaction-control statement, prepared once per connection.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Undoes a job's savepoint and forgets it.
fn roll_back_job(conn: &Connection) {
    let _ = control(conn, "ROLLBACK TO job");
    let _ = control(conn, "RELEASE job");
}

/// Runs a batch in one transaction. Returns each job's finisher, the commit outcome, and
/// whether every job succeeded.
fn commit_batch(
    conn: &Connection,
    batch: Vec<Job>,
    log: Option<&CommitLog>,
) -> (Vec<Finish>, Result<(), String>, bool) {
    if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
        let message = e.to_string();
        let finishers = batch
            .into_iter()
            .map(|job| job(Err(message.clone())).1)
            .collect();
        return (finishers, Err(message), false);
    }
    let jobs = batch.len();
    // A lone job needs no savepoint: the transaction is its own, and a failure rolls it back.
    let alone = batch.len() == 1;
    let mut finishers = Vec::with_capacity(batch.len());
    let mut kept = 0;
    for job in batch {
        if !alone && let Err(e) = control(conn, "SAVEPOINT job") {
            finishers.push(job(Err(e.to_string())).1);
            continue;
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(conn)))) {
            Ok((true, finish)) => {
                if !alone {
                    let _ = control(conn, "RELEASE job");
                }
                kept += 1;
                finishers.push(finish);
            }
            Ok((false, finish)) => {
                if !alone {
                    roll_back_job(conn);
                }
                finishers.push(finish);
            }
            Err(_) => {
                // A panicking job's reply channel is dropped with it: its caller sees `Closed`.
                if !alone {
                    roll_back_job(conn);
                }
            }
        }
    }
    if kept == 0 {
        // Nothing to keep (a lone job failed, or every job did): nothing is written.
        if !conn.is_autocommit() {
            let _ = control(conn, "ROLLBACK");
        }
        return (finishers, Ok(()), false);
    }
    commits::clear();
    let commit = control(conn, "COMMIT").map_err(|e| {
        let _ = control(conn, "ROLLBACK");
        e.to_string()
    });
    if let (Some(log), Some(frames)) = (log, commits::take()) {
        log.record(frames);
    }
    (finishers, commit, kept == jobs)
}
