//! The data directory's serve lock: `warren serve` holds an exclusive lock on
//! `<data dir>/serve.lock` (holding its URL) for as long as it runs, so a second server cannot
//! serve the same tenants and an in-place restore from the CLI knows whether it may swap a
//! tenant's directory itself (no server: it takes the lock for the swap) or must go through
//! the running server's operator API.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, bail};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "serve.lock";

/// An exclusive hold on a data directory, released when dropped (or when the process dies).
pub struct DataLock {
    file: File,
}

/// Who holds the lock when it is taken.
pub enum Holder {
    /// Nobody: it is ours now.
    Free(DataLock),
    /// Another process; what it wrote (a server's URL, or `restore`).
    Held(String),
}

fn open(data_dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Takes the lock without waiting, writing `holder` into it, or says who holds it.
pub fn try_take(data_dir: &Path, holder: &str) -> anyhow::Result<Holder> {
    let mut file = open(data_dir)?;
    match file.try_lock() {
        Ok(()) => {
            let mut lock = DataLock { file };
            lock.describe(holder)?;
            Ok(Holder::Free(lock))
        }
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = Read::by_ref(&mut file).take(4096).read_to_string(&mut text);
            Ok(Holder::Held(text.trim().to_string()))
        }
        Err(TryLockError::Error(e)) => Err(e).context("locking the data directory"),
    }
}

/// Takes the lock for `warren serve`, or fails saying who holds it.
pub fn take_for_serve(data_dir: &Path) -> anyhow::Result<DataLock> {
    match try_take(data_dir, "starting")? {
        Holder::Free(lock) => Ok(lock),
        Holder::Held(by) => bail!(
            "{} is in use ({}): another `warren serve` or an in-place restore holds {LOCK_FILE}",
            data_dir.display(),
            if by.is_empty() { "unknown holder" } else { &by }
        ),
    }
}

impl DataLock {
    /// Records what holds the lock (a server's URL), for messages of other processes.
    pub fn describe(&mut self, holder: &str) -> anyhow::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        writeln!(self.file, "{holder} (pid {})", std::process::id())?;
        Ok(())
    }
}
