//! The single writer of a database, with group commit.
//!
//! SQLite allows one writer at a time. Instead of letting concurrent requests fight over the
//! write lock (SQLITE_BUSY), every write is queued to one task that drains the queue, runs all
//! pending jobs inside one `BEGIN IMMEDIATE … COMMIT` (one fsync), each job in a savepoint of its
//! own, and only then answers each caller. A job that fails rolls back to its savepoint and does
//! not disturb the others; if the commit itself fails, every job of the batch gets the error.
//! Nothing is acknowledged before the commit that holds it has returned.

use std::panic::AssertUnwindSafe;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::commits::{self, CommitLog};
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

/// What the writer task is asked to do.
enum Message {
    /// A write, folded into the next group commit.
    Job(Job),
    /// Work outside any transaction (a checkpoint), after the writes queued before it.
    Idle(Idle),
}

/// Handle to the writer task. Dropping every handle ends the task and closes the connection.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Message>,
    /// Ends (its sender is dropped) once the writer task has closed its connection.
    closed: tokio::sync::watch::Receiver<()>,
}

impl Writer {
    /// Starts the writer task that owns `conn`.
    /// With `log`, every commit that wrote WAL frames is recorded in it.
    pub(crate) fn start(conn: Connection, log: Option<CommitLog>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (done, closed) = tokio::sync::watch::channel(());
        tokio::spawn(async move {
            run(conn, queue, log).await;
            // `run` has dropped the connection by now.
            drop(done);
        });
        Self { jobs, closed }
    }

    /// A receiver whose `changed()` fails once the writer's connection is closed.
    pub(crate) fn closed(&self) -> tokio::sync::watch::Receiver<()> {
        self.closed.clone()
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
        self.jobs
            .send(Message::Job(job))
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Queues `idle` from a blocking thread (never from async code) without waiting for it.
    pub(crate) fn idle_blocking(&self, idle: Idle) -> Result<()> {
        self.jobs
            .blocking_send(Message::Idle(idle))
            .map_err(|_| Error::Closed)
    }

    /// Runs `f` on the writer connection outside any transaction, once the writes queued
    /// before it have committed; no write runs meanwhile.
    pub(crate) async fn idle<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<T>();
        let idle: Idle = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.jobs
            .send(Message::Idle(idle))
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)
    }
}

/// The writer loop: wait for a job, take whatever else is queued, commit them together.
/// Idle work runs between two batches, in queue order.
async fn run(conn: Connection, mut queue: mpsc::Receiver<Message>, log: Option<CommitLog>) {
    let mut conn = Some(conn);
    let mut next = None;
    loop {
        let message = match next.take() {
            Some(message) => message,
            None => match queue.recv().await {
                Some(message) => message,
                None => return,
            },
        };
        let Some(current) = conn.take() else { return };
        let mut batch = Vec::with_capacity(16);
        let work = match message {
            Message::Idle(idle) => Work::Idle(idle),
            Message::Job(first) => {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(Message::Job(job)) => batch.push(job),
                        Ok(idle) => {
                            next = Some(idle);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                Work::Batch(batch)
            }
        };
        let log = log.clone();
        let done = tokio::task::spawn_blocking(move || match work {
            Work::Idle(idle) => {
                idle(&current);
                (current, Vec::new(), Ok(()))
            }
            Work::Batch(batch) => {
                let (finishers, commit) = commit_batch(&current, batch, log.as_ref());
                (current, finishers, commit)
            }
        })
        .await;
        match done {
            Ok((current, finishers, commit)) => {
                conn = Some(current);
                for finish in finishers {
                    finish(commit.clone());
                }
            }
            Err(e) => {
                // Only reachable if the blocking pool itself failed; jobs' answers are dropped,
                // so callers see `Closed`, and the database must be reopened.
                tracing::error!(error = %e, "database writer stopped");
                return;
            }
        }
    }
}

/// One turn of the writer.
enum Work {
    Batch(Vec<Job>),
    Idle(Idle),
}

/// Runs a batch in one transaction. Returns each job's finisher and the commit outcome.
fn commit_batch(
    conn: &Connection,
    batch: Vec<Job>,
    log: Option<&CommitLog>,
) -> (Vec<Finish>, Result<(), String>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let message = e.to_string();
        let finishers = batch
            .into_iter()
            .map(|job| job(Err(message.clone())).1)
            .collect();
        return (finishers, Err(message));
    }
    let mut finishers = Vec::with_capacity(batch.len());
    for job in batch {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            finishers.push(job(Err(e.to_string())).1);
            continue;
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(conn)))) {
            Ok((true, finish)) => {
                let _ = conn.execute_batch("RELEASE job");
                finishers.push(finish);
            }
            Ok((false, finish)) => {
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                finishers.push(finish);
            }
            Err(_) => {
                // A panicking job's reply channel is dropped with it: its caller sees `Closed`.
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            }
        }
    }
    commits::clear();
    let commit = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    if let (Some(log), Some(frames)) = (log, commits::take()) {
        log.record(frames);
    }
    (finishers, commit)
}
