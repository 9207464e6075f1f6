//! The commit log of a shipped database: after each commit the writer records how many frames
//! the WAL holds and when the commit returned, and bumps a counter that a WAL shipper waits on.
//! Checkpoints of a shipped database are left to its shipper (see [`crate::Database::open_shipped`]).
//!
//! Synchronous shipping: the shipper reports which commits are durable in the backup target
//! ([`CommitLog::mark_shipped`]); when the log is set to synchronous ([`CommitLog::set_sync`]),
//! `Database::write` returns only once the commit holding the write is reported shipped, or
//! fails with [`crate::Error::NotShipped`] past the wait set (the write is then committed on
//! this node but not acknowledged, as after a crash between commit and answer).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// Most commit records kept unread; older ones are dropped (their frames still ship, stamped
/// with the time of a later commit).
const MAX_PENDING: usize = 65_536;

thread_local! {
    /// Frames in the WAL after the last commit on this thread, set by the WAL hook.
    static FRAMES: Cell<Option<u32>> = const { Cell::new(None) };
}

fn hook(_: &Wal, frames: std::os::raw::c_int) -> rusqlite::Result<()> {
    FRAMES.with(|f| f.set(Some(frames.max(0) as u32)));
    Ok(())
}

/// Installs the WAL hook on `conn`: it replaces SQLite's automatic checkpoints.
pub(crate) fn install(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
    conn.wal_hook(Some(hook));
    Ok(())
}

/// Clears the frame count the hook left on this thread (before a commit).
pub(crate) fn clear() {
    FRAMES.with(|f| f.set(None));
}

/// The frame count the hook left on this thread by the last commit, if it wrote any.
pub(crate) fn take() -> Option<u32> {
    FRAMES.with(|f| f.take())
}

/// One commit: frames in the WAL once it was written, and the wall-clock time (ms since the
/// Unix epoch) when it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Frames in the WAL after the commit (its last frame is the commit frame).
    pub frames: u32,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
}

/// The shared side of a shipped database's commit log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CommitLog {
    pending: Arc<Mutex<VecDeque<Commit>>>,
    counter: tokio::sync::watch::Sender<u64>,
    /// Commits (by their counter value) known durable in the backup target.
    shipped: tokio::sync::watch::Sender<u64>,
    /// How long a write waits for its commit to be shipped, in ms; 0: it does not wait.
    sync_ms: Arc<AtomicU64>,
}

impl CommitLog {
    pub(crate) fn new() -> Self {
        Self {
            pending: Arc::new(Mutex::new(VecDeque::new())),
            counter: tokio::sync::watch::Sender::new(0),
            shipped: tokio::sync::watch::Sender::new(0),
            sync_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many commits were recorded so far (each commit's number is the count after it).
    pub fn committed(&self) -> u64 {
        *self.counter.borrow()
    }

    /// Reports that every commit up to number `through` (see [`CommitLog::committed`]) is
    /// durable in the backup target.
    pub fn mark_shipped(&self, through: u64) {
        self.shipped.send_if_modified(|n| {
            let newer = through > *n;
            if newer {
                *n = through;
            }
            newer
        });
    }

    /// Commits known durable in the backup target (see [`CommitLog::mark_shipped`]).
    pub fn shipped(&self) -> u64 {
        *self.shipped.borrow()
    }

    /// Makes writes wait, at most `wait`, until their commit is shipped (synchronous
    /// shipping); `None` makes them return at commit (asynchronous shipping).
    pub fn set_sync(&self, wait: Option<Duration>) {
        let ms = wait.map_or(0, |w| (w.as_millis() as u64).max(1));
        if self.sync_ms.load(Ordering::Relaxed) != ms {
            self.sync_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// How long writes wait for their commit to be shipped; `None` when shipping is
    /// asynchronous.
    pub fn sync_wait(&self) -> Option<Duration> {
        match self.sync_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Waits until commit number `commit` is shipped, at most `limit`.
    pub async fn wait_shipped(&self, commit: u64, limit: Duration) -> crate::Result<()> {
        let mut shipped = self.shipped.subscribe();
        match tokio::time::timeout(limit, shipped.wait_for(|n| *n >= commit)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(crate::Error::NotShipped(format!(
                "the write was committed on this node but not stored in the backup target within {} ms",
                limit.as_millis()
            ))),
        }
    }

    /// With synchronous shipping, waits until every commit recorded so far is shipped (at
    /// most the wait set); returns at once otherwise.
    pub async fn wait_if_sync(&self) -> crate::Result<()> {
        let Some(limit) = self.sync_wait() else {
            return Ok(());
        };
        let commit = self.committed();
        if self.shipped() >= commit {
            return Ok(());
        }
        self.wait_shipped(commit, limit).await
    }

    /// Records a commit that left `frames` frames in the WAL.
    pub(crate) fn record(&self, frames: u32) {
        let commit = Commit {
            frames,
            time_ms: now_ms(),
        };
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.len() >= MAX_PENDING {
                pending.pop_front();
            }
            pending.push_back(commit);
        }
        self.counter.send_modify(|n| *n += 1);
    }

    /// A receiver whose `changed()` resolves after the next commit.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.counter.subscribe()
    }

    /// The commits recorded since the last call, oldest first.
    pub fn take(&self) -> Vec<Commit> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
