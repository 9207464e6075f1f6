//! The commit log of a shipped database: after each commit the writer records how many frames
//! the WAL holds and when the commit returned, and bumps a counter that a WAL shipper waits on.
//! Checkpoints of a shipped database are left to its shipper (see [`crate::Database::open_shipped`]).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

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
}

impl CommitLog {
    pub(crate) fn new() -> Self {
        Self {
            pending: Arc::new(Mutex::new(VecDeque::new())),
            counter: tokio::sync::watch::Sender::new(0),
        }
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
