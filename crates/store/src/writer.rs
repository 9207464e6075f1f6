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

/// Handle to the writer task. Dropping every handle ends the task and closes the connection.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Ends (its sender is dropped) once the writer task has closed its connection.
    closed: tokio::sync::watch::Receiver<()>,
}

impl Writer {
    /// Starts the writer task that owns `conn`.
    pub(crate) fn start(conn: Connection) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (done, closed) = tokio::sync::watch::channel(());
        tokio::spawn(async move {
            run(conn, queue).await;
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
        self.jobs.send(job).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

/// The writer loop: wait for a job, take whatever else is queued, commit them together.
async fn run(conn: Connection, mut queue: mpsc::Receiver<Job>) {
    let mut conn = Some(conn);
    while let Some(first) = queue.recv().await {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(current) = conn.take() else { return };
        let done = tokio::task::spawn_blocking(move || {
            let (finishers, commit) = commit_batch(&current, batch);
            (current, finishers, commit)
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

/// Runs a batch in one transaction. Returns each job's finisher and the commit outcome.
fn commit_batch(conn: &Connection, batch: Vec<Job>) -> (Vec<Finish>, Result<(), String>) {
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
    let commit = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    (finishers, commit)
}
