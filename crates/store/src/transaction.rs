//! A transaction held on a database's writer, fed step by step from a blocking thread.
//!
//! Invariants: while a [`Transaction`] lives, the writer runs nothing else (its thread is parked
//! in one idle turn, so other requests' group-committed writes wait in the queue); each step
//! runs in a savepoint of its own and is answered before the next is taken; the transaction
//! commits only on [`Transaction::commit`] before its deadline, and rolls back when the
//! deadline passes, a step panics or the handle is dropped. The thread that began it is marked,
//! so a plain write from that thread (which would wait for the writer it holds) fails at once
//! with [`Error::Held`] instead of hanging.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use rusqlite::Connection;

use crate::commits::{self, CommitLog};
use crate::version::DataVersion;
use crate::writer::{Idle, Writer};
use crate::{Error, Result};

thread_local! {
    /// The databases (by identity) whose writer this thread holds in a transaction.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Whether the current thread holds the writer of database `key` in a transaction.
pub(crate) fn held_here(key: usize) -> bool {
    HELD.with(|held| held.borrow().contains(&key))
}

/// One step: runs on the writer's connection and says whether it succeeded (a failed step
/// rolls back to its savepoint; the transaction goes on).
type Step = Box<dyn FnOnce(&Connection) -> bool + Send>;

/// What the holder sends to the parked writer.
enum Control {
    Step(Step),
    Commit(mpsc::SyncSender<Result<()>>),
}

/// A transaction on a database's writer (see the module doc). Not `Send`: it stays on the
/// blocking thread that began it, the one marked as holding the writer.
pub struct Transaction {
    control: mpsc::Sender<Control>,
    key: usize,
    /// The database's data version: changed after every step (a step may run any SQL).
    version: Arc<DataVersion>,
    _thread: PhantomData<*const ()>,
}

/// Parks the writer in a transaction; returns once `BEGIN IMMEDIATE` ran (or failed, or the
/// deadline passed while earlier writes were still committing).
pub(crate) fn begin(
    writer: &Writer,
    log: Option<CommitLog>,
    key: usize,
    deadline: Instant,
) -> Result<Transaction> {
    if held_here(key) {
        return Err(Error::Held);
    }
    let (control, steps) = mpsc::channel::<Control>();
    let (ready, started) = mpsc::sync_channel::<Result<()>>(1);
    let version = writer.version().clone();
    let held_version = version.clone();
    let idle: Idle = Box::new(move |conn| hold(conn, steps, ready, deadline, log, &held_version));
    writer.idle_blocking(idle)?;
    let wait = deadline.saturating_duration_since(Instant::now());
    match started.recv_timeout(wait) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        // Dropping `control` makes the parked writer roll back at once when it gets there.
        Err(_) => return Err(Error::TransactionEnded),
    }
    HELD.with(|held| held.borrow_mut().push(key));
    Ok(Transaction {
        control,
        key,
        version,
        _thread: PhantomData,
    })
}

impl Transaction {
    /// Runs `f` inside the transaction (in a savepoint of its own: a failing step leaves
    /// nothing behind, the transaction goes on) and answers its result.
    pub fn run<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&Connection) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let version = self.version.clone();
        let step: Step = Box::new(move |conn| {
            let out = f(conn);
            let ok = out.is_ok();
            version.bump();
            let _ = reply.send(out);
            ok
        });
        self.control
            .send(Control::Step(step))
            .map_err(|_| E::from(Error::TransactionEnded))?;
        answer
            .recv()
            .map_err(|_| E::from(Error::TransactionEnded))?
    }

    /// Commits everything the steps did; fails (and nothing stands) past the deadline.
    pub fn commit(self) -> Result<()> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.control
            .send(Control::Commit(reply))
            .map_err(|_| Error::TransactionEnded)?;
        answer.recv().map_err(|_| Error::TransactionEnded)?
    }

    /// Rolls everything back (as dropping the handle does).
    pub fn rollback(self) {}
}

impl Drop for Transaction {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|k| *k == self.key) {
                held.remove(at);
            }
        });
    }
}

/// The writer's side: begin, run steps until commit, deadline or a dropped handle.
fn hold(
    conn: &Connection,
    steps: mpsc::Receiver<Control>,
    ready: mpsc::SyncSender<Result<()>>,
    deadline: Instant,
    log: Option<CommitLog>,
    version: &DataVersion,
) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let _ = ready.send(Err(e.into()));
        return;
    }
    if ready.send(Ok(())).is_err() {
        let _ = conn.execute_batch("ROLLBACK");
        return;
    }
    // A statement still running at the deadline is interrupted.
    let _ = conn.progress_handler(1000, Some(move || Instant::now() >= deadline));
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match steps.recv_timeout(wait) {
            Ok(Control::Step(step)) => {
                if conn.execute_batch("SAVEPOINT step").is_err() {
                    // The transaction is gone (a step ended it); nothing more can run.
                    drop(step);
                    break;
                }
                match std::panic::catch_unwind(AssertUnwindSafe(|| step(conn))) {
                    Ok(true) => {
                        let _ = conn.execute_batch("RELEASE step");
                    }
                    Ok(false) => {
                        let _ = conn.execute_batch("ROLLBACK TO step; RELEASE step");
                    }
                    // The step's reply is dropped with it: its caller learns the end.
                    Err(_) => break,
                }
            }
            Ok(Control::Commit(reply)) => {
                let outcome = if Instant::now() >= deadline || conn.is_autocommit() {
                    Err(Error::TransactionEnded)
                } else {
                    commit(conn, log.as_ref())
                };
                let _ = conn.progress_handler(0, None::<fn() -> bool>);
                if outcome.is_err() && !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                version.bump();
                let _ = reply.send(outcome);
                return;
            }
            // The deadline passed or the handle was dropped.
            Err(_) => break,
        }
    }
    let _ = conn.progress_handler(0, None::<fn() -> bool>);
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn commit(conn: &Connection, log: Option<&CommitLog>) -> Result<()> {
    commits::clear();
    conn.execute_batch("COMMIT")
        .map_err(|e| Error::Commit(e.to_string()))?;
    if let (Some(log), Some(frames)) = (log, commits::take()) {
        log.record(frames);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Database, Error, Migration, Options};

    const SCHEMA: &[Migration] = &[Migration {
        version: 1,
        sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
    }];

    async fn open_temp() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            migrations: SCHEMA,
            ..Options::default()
        };
        let db = Database::open(dir.path().join("data.db"), options)
            .await
            .unwrap();
        (dir, db)
    }

    fn count(c: &rusqlite::Connection) -> crate::Result<i64> {
        Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
    }

    fn insert(v: &'static str) -> impl FnOnce(&rusqlite::Connection) -> crate::Result<usize> {
        move |c| Ok(c.execute("INSERT INTO t (v) VALUES (?1)", [v])?)
    }

    fn soon() -> std::time::Instant {
        std::time::Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn steps_see_their_own_writes_and_readers_see_them_after_commit() {
        let (_dir, db) = open_temp().await;
        let holder = db.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let tx = holder.begin_blocking(soon()).unwrap();
            tx.run(insert("a")).unwrap();
            assert_eq!(tx.run(count).unwrap(), 1);
            assert_eq!(handle.block_on(holder.read(count)).unwrap(), 0);
            tx.commit().unwrap();
        })
        .await
        .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_writes_wait_for_the_commit() {
        let (_dir, db) = open_temp().await;
        let (started, begun) = tokio::sync::oneshot::channel();
        let (go, release) = std::sync::mpsc::channel::<()>();
        let holder = db.clone();
        let held = tokio::task::spawn_blocking(move || {
            let tx = holder.begin_blocking(soon()).unwrap();
            tx.run(insert("held")).unwrap();
            started.send(()).unwrap();
            release.recv().unwrap();
            // The other write, queued meanwhile, has not run inside this transaction.
            assert_eq!(tx.run(count).unwrap(), 1);
            tx.commit().unwrap();
        });
        begun.await.unwrap();
        let writer = db.clone();
        let other = tokio::spawn(async move { writer.write(insert("other")).await });
        tokio::task::yield_now().await;
        go.send(()).unwrap();
        held.await.unwrap();
        other.await.unwrap().unwrap();
        assert_eq!(db.read(count).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plain_write_from_the_holding_thread_fails_at_once() {
        let (_dir, db) = open_temp().await;
        let holder = db.clone();
        let handle = tokio::runtime::Handle::current();
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || {
            let tx = holder.begin_blocking(soon()).unwrap();
            let write = handle.block_on(holder.write(insert("x")));
            assert!(matches!(write, Err(Error::Held)), "{write:?}");
            assert!(matches!(holder.begin_blocking(soon()), Err(Error::Held)));
            tx.run(insert("y")).unwrap();
            tx.commit().unwrap();
            // Once the transaction is over, the thread writes normally again.
            handle.block_on(holder.write(insert("z"))).unwrap();
        })
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(db.read(count).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_or_late_transaction_rolls_back_and_frees_the_writer() {
        let (_dir, db) = open_temp().await;
        let holder = db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = holder.begin_blocking(soon()).unwrap();
            tx.run(insert("dropped")).unwrap();
            drop(tx);
            let deadline = std::time::Instant::now() + Duration::from_millis(100);
            let tx = holder.begin_blocking(deadline).unwrap();
            tx.run(insert("late")).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            assert!(matches!(tx.run(count), Err(Error::TransactionEnded)));
            assert!(matches!(tx.commit(), Err(Error::TransactionEnded)));
        })
        .await
        .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 0);
        db.write(insert("after")).await.unwrap();
        assert_eq!(db.read(count).await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_step_undoes_only_itself() {
        let (_dir, db) = open_temp().await;
        let holder = db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = holder.begin_blocking(soon()).unwrap();
            tx.run(insert("kept")).unwrap();
            let failed = tx.run(|c| {
                c.execute("INSERT INTO t (v) VALUES ('undone')", [])?;
                c.execute("INSERT INTO t (v) VALUES (NULL)", [])?;
                Ok::<_, Error>(())
            });
            assert!(failed.is_err());
            let panicked = tx.run::<(), Error, _>(|_| panic!("boom"));
            assert!(matches!(panicked, Err(Error::TransactionEnded)));
            // A panicking step ends the transaction: nothing of it commits.
            assert!(tx.commit().is_err());
        })
        .await
        .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 0);
        let holder = db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = holder.begin_blocking(soon()).unwrap();
            tx.run(insert("kept")).unwrap();
            let failed = tx.run(|c| {
                c.execute("INSERT INTO t (v) VALUES ('undone')", [])?;
                c.execute("INSERT INTO t (v) VALUES (NULL)", [])?;
                Ok::<_, Error>(())
            });
            assert!(failed.is_err());
            tx.commit().unwrap();
        })
        .await
        .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 1);
    }
}
