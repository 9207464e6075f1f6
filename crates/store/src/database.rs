//! A database handle: file, pragmas, the read pool and the writer, behind one cheap clone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::commits::CommitLog;
use crate::migrate::{self, Migration};
use crate::transaction::Transaction;
use crate::version::Versions;
use crate::writer::Writer;
use crate::{Error, Result};

/// How a database is opened.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Most read connections open at once. Readers are opened lazily, so an idle database
    /// holds only its writer connection.
    pub readers: usize,
    /// Page cache per connection, in KiB. Small by default: a tenant is one of thousands.
    pub cache_kib: u32,
    /// Migrations applied by the writer connection when the database opens.
    pub migrations: &'static [Migration],
    /// Whether a commit is on disk before it is acknowledged (`synchronous = FULL`: it
    /// survives power loss). `false` gives `synchronous = NORMAL`: a commit survives a crash
    /// of the process but the last ones can be lost with the machine's power, for data that
    /// is not acknowledged to anyone (request logs, already buffered in memory).
    pub durable: bool,
    /// Whether this process holds the file for itself while a connection to it is open
    /// (SQLite's `unix-excl` VFS, see [`EXCLUSIVE_VFS`]): other processes get "database is
    /// locked", and the WAL index lives in this process's memory instead of a `-shm` file, so
    /// a read transaction takes no `fcntl` lock. Every connection this process opens to such a
    /// file must then be opened the same way (see [`connect`]).
    pub exclusive: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            readers: 2,
            cache_kib: 2048,
            migrations: &[],
            durable: true,
            exclusive: false,
        }
    }
}

/// The VFS of [`Options::exclusive`] databases. It takes a write lock on the file's shared
/// range at the first transaction and keeps it until the process closes its last connection.
pub const EXCLUSIVE_VFS: &str = "unix-excl";

/// Opens a connection to `path` with `flags`, through [`EXCLUSIVE_VFS`] when `exclusive`. A
/// connection to an exclusive database must be read-write even to only read: a read-only one
/// would take (and drop) POSIX locks of its own and so release part of the process's hold.
pub fn connect(path: &Path, flags: OpenFlags, exclusive: bool) -> Result<Connection> {
    Ok(if exclusive {
        Connection::open_with_flags_and_vfs(path, flags, EXCLUSIVE_VFS)?
    } else {
        Connection::open_with_flags(path, flags)?
    })
}

impl Options {
    /// The largest WAL (bytes) a closing writer leaves in place instead of checkpointing: none
    /// for a durable database, which is whole in its main file once closed; a few pages for
    /// one that is not (request logs), whose close then costs no sync, the next open reading
    /// the frames back.
    fn wal_kept_on_close(&self) -> u64 {
        if self.durable { 0 } else { SMALL_WAL }
    }
}

/// See [`Options::wal_kept_on_close`]: 64 pages of 4 KiB.
const SMALL_WAL: u64 = 256 * 1024;

/// VM steps between two budget checks of an inline read, and checks allowed: about 20,000
/// steps, a fraction of a millisecond.
const INLINE_STEP: i32 = 1000;
const INLINE_CHECKS: u32 = 20;

/// One SQLite database with a small read pool and exactly one writer. Cheap to clone; the
/// file closes when the last clone (and the last in-flight operation) is dropped.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    /// The database file.
    path: PathBuf,
    /// Open options, kept to open further readers.
    options: Options,
    /// Idle read connections; a connection is taken out for the duration of one read.
    idle: Mutex<Vec<Connection>>,
    /// Bounds the number of read connections alive at once.
    permits: Semaphore,
    /// The single writer (group commit).
    writer: Writer,
    /// Commits recorded for a WAL shipper (shipped databases only).
    log: Option<CommitLog>,
    /// Whether a connection to the file has been opened (a lazily opened database that
    /// served nothing has opened none).
    connected: Arc<AtomicBool>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Database {
    /// Opens (creating if missing) the database at `path`, applies pending migrations and
    /// starts its writer. Blocking file work runs off the async executor.
    pub async fn open(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        Ok(Self::open_reading(path, options, false, |_| ()).await?.0)
    }

    /// Like [`Database::open`], for a database whose WAL is shipped to a backup: SQLite never
    /// checkpoints on its own (no automatic checkpoints, none when the last connection closes),
    /// every commit is recorded in [`Database::commit_log`], and the shipper checkpoints with
    /// [`Database::checkpoint`] once the frames are safe elsewhere.
    pub async fn open_shipped(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        Ok(Self::open_reading(path, options, true, |_| ()).await?.0)
    }

    /// Like [`Database::open`] (or [`Database::open_shipped`] when `shipped`), and runs `f` on
    /// the new writer connection before the writer starts, in the same hand-off to the blocking
    /// pool: a caller that reads something as it opens (a tenant its collections) pays one
    /// blocking hop and opens no read connection for it.
    pub async fn open_reading<T, F>(
        path: impl AsRef<Path>,
        options: Options,
        shipped: bool,
        f: F,
    ) -> Result<(Self, T)>
    where
        F: FnOnce(&Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        let path = path.as_ref().to_path_buf();
        let writer_path = path.clone();
        let (conn, out) = run_blocking(move || {
            let mut conn = open_connection(&writer_path, options, false)?;
            if shipped {
                crate::commits::install(&conn)?;
            }
            migrate::apply(&mut conn, options.migrations)?;
            let out = f(&conn);
            // What the open read (a tenant's collections and settings) is rarely read again
            // soon: the connection keeps only its schema, not those pages and statements, so
            // an idle open database holds little more than that.
            conn.flush_prepared_statement_cache();
            conn.release_memory()?;
            Ok((conn, out))
        })
        .await?;
        let log = shipped.then(CommitLog::new);
        let db = Self {
            inner: Arc::new(Inner {
                path,
                options,
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(options.readers.max(1)),
                writer: Writer::start(
                    conn,
                    log.clone(),
                    options.wal_kept_on_close(),
                    options.exclusive,
                )?,
                log,
                connected: Arc::new(AtomicBool::new(true)),
            }),
        };
        Ok((db, out))
    }

    /// A handle on the existing database at `path` that opens nothing yet: its writer
    /// connection opens (and pending migrations apply) with the first write, a read
    /// connection with the first read, as with [`Database::open`]. For a database known to be
    /// whole and migrated (a tenant reopened as it was closed); never shipped. An open that
    /// fails is reported to the first operation, not here.
    pub fn open_lazy(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let writer_path = path.clone();
        let connected = Arc::new(AtomicBool::new(false));
        let writer_connected = connected.clone();
        let writer = Writer::lazy(
            Box::new(move || {
                writer_connected.store(true, Ordering::Relaxed);
                let mut conn = open_connection(&writer_path, options, false)?;
                migrate::apply(&mut conn, options.migrations)?;
                Ok(conn)
            }),
            options.wal_kept_on_close(),
            options.exclusive,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                options,
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(options.readers.max(1)),
                writer,
                log: None,
                connected,
            }),
        })
    }

    /// The commit log of a shipped database (see [`Database::open_shipped`]).
    pub fn commit_log(&self) -> Option<&CommitLog> {
        self.inner.log.as_ref()
    }

    /// Runs `f` on the writer connection between two transactions: every write queued before
    /// has committed and none runs until `f` returns. For checkpoints of a shipped database;
    /// `f` must be short.
    pub async fn with_writer_idle<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.not_held()?;
        self.inner.writer.idle(f).await
    }

    /// A number that changes, to one this process never showed before, whenever a write on
    /// this handle ends (a commit or not), before its caller hears of it; read before a read
    /// starts and found unchanged later, nothing was committed in between (see
    /// [`crate::version`]). `None` while a commit is becoming visible, and unless the database
    /// is [`Options::exclusive`]: another process could write a shared file unseen.
    pub fn data_version(&self) -> Option<u64> {
        self.versions().and_then(|v| v.current())
    }

    /// The version of `table`: like [`Database::data_version`], but unchanged by writes known
    /// not to have touched the table (see [`crate::version`]). `None` in the same cases.
    pub fn table_version(&self, table: &str) -> Option<u64> {
        self.versions().and_then(|v| v.table(table))
    }

    /// A handle that reads [`Database::data_version`] later (inside a read, say); `None`
    /// unless the database is [`Options::exclusive`].
    pub fn versions(&self) -> Option<Versions> {
        self.inner
            .options
            .exclusive
            .then(|| Versions(self.inner.writer.version().clone()))
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> Options {
        self.inner.options
    }

    /// Runs `f` on a read-only connection from the pool, off the async executor.
    pub async fn read<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&Connection) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let inner = self.inner.clone();
        let _permit = inner.permits.acquire().await.map_err(|_| Error::Closed)?;
        let conn = inner.idle.lock().map_err(|_| Error::Closed)?.pop();
        let worker = inner.clone();
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let conn = match conn {
                Some(conn) => conn,
                None => {
                    worker.connected.store(true, Ordering::Relaxed);
                    open_connection(&worker.path, worker.options, true)?
                }
            };
            let out = f(&conn);
            Ok::<_, Error>((conn, out))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        // A connection left inside a transaction by a misbehaving closure is not reused.
        if conn.is_autocommit()
            && let Ok(mut idle) = inner.idle.lock()
        {
            idle.push(conn);
        }
        out
    }

    /// Runs a short read right on the calling task when a connection is idle, sparing the
    /// blocking pool's thread hand-off; meant for point reads (a record by id, a token's
    /// record). The read runs under a budget of SQLite VM steps: a read that exceeds it is
    /// abandoned and run again with [`Database::read`], so a slow query never holds the async
    /// executor for long. `f` may therefore run twice and must only read.
    pub fn read_quick<T, E, F>(
        &self,
        f: F,
    ) -> impl Future<Output = std::result::Result<T, E>> + Send + 'static
    where
        F: Fn(&Connection) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        // The inline attempt runs at once; the returned future owns everything it needs.
        let inline = self.try_inline(&f);
        let db = self.clone();
        async move {
            match inline {
                Some(out) => out,
                None => db.read(f).await,
            }
        }
    }

    /// [`Database::read_quick`]'s first attempt: `None` when no connection was idle or the
    /// budget ran out.
    fn try_inline<T, E, F>(&self, f: &F) -> Option<std::result::Result<T, E>>
    where
        F: Fn(&Connection) -> std::result::Result<T, E>,
    {
        let inner = &self.inner;
        let _permit = inner.permits.try_acquire().ok()?;
        let conn = inner.idle.lock().ok()?.pop()?;
        let exceeded = Arc::new(AtomicBool::new(false));
        let flag = exceeded.clone();
        let mut checks = 0u32;
        conn.progress_handler(
            INLINE_STEP,
            Some(move || {
                checks += 1;
                let stop = checks > INLINE_CHECKS;
                if stop {
                    flag.store(true, Ordering::Relaxed);
                }
                stop
            }),
        )
        .ok()?;
        let out = f(&conn);
        let cleared = conn.progress_handler(0, None::<fn() -> bool>).is_ok();
        if cleared
            && conn.is_autocommit()
            && let Ok(mut idle) = inner.idle.lock()
        {
            idle.push(conn);
        }
        if exceeded.load(Ordering::Relaxed) {
            return None;
        }
        Some(out)
    }

    /// Resolves once this database is fully closed: every handle dropped, the read pool and
    /// the writer's connection closed. Lets a caller replace the file safely afterwards.
    pub fn on_close(&self) -> Closed {
        Closed(self.inner.writer.closed())
    }

    /// Tells whether any connection to the file has been opened through this database (its
    /// clones included), also once it has closed: one opened with [`Database::open_lazy`] that
    /// served no request has not touched its files.
    pub fn connected(&self) -> Connected {
        Connected(self.inner.connected.clone())
    }

    /// Drops this handle and, when it was the last one, waits until the database is fully
    /// closed (unless shipped, its `-wal` checkpointed into the main file and cut to 0 bytes),
    /// so the file can be copied, packed or moved right after.
    pub async fn close(self) {
        let closed = self.on_close();
        drop(self);
        closed.wait().await;
    }

    /// A watcher that tells when any other connection (or process) has committed a change.
    pub async fn watch(&self) -> Result<ChangeWatcher> {
        let path = self.inner.path.clone();
        let options = self.inner.options;
        self.inner.connected.store(true, Ordering::Relaxed);
        run_blocking(move || {
            let conn = open_connection(&path, options, true)?;
            let version = data_version(&conn)?;
            Ok(ChangeWatcher {
                conn: Some(conn),
                version,
            })
        })
        .await
    }

    /// Runs `f` inside the writer's current group-commit transaction, within a savepoint of
    /// its own. Returns once the transaction holding the change is durably committed; if `f`
    /// fails, only its own changes are rolled back.
    pub async fn write<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&Connection) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.not_held()?;
        let out = self.inner.writer.submit(f).await?;
        self.wait_shipped().await?;
        Ok(out)
    }

    /// With synchronous shipping (see [`CommitLog::set_sync`]), waits until the commits made
    /// so far are stored in the backup target.
    async fn wait_shipped(&self) -> Result<()> {
        match &self.inner.log {
            Some(log) => log.wait_if_sync().await,
            None => Ok(()),
        }
    }

    /// Fails with [`Error::Held`] when the current thread holds this database's writer in a
    /// [`Transaction`]: waiting for the writer would wait for itself.
    fn not_held(&self) -> Result<()> {
        if crate::transaction::held_here(self.key()) {
            return Err(Error::Held);
        }
        Ok(())
    }

    /// This database's identity (the address of its shared state).
    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Holds the writer for one transaction fed step by step (see [`Transaction`]): waits,
    /// blocking the calling thread, for the writes queued before it, then runs `BEGIN
    /// IMMEDIATE`. Other writes wait until it commits or rolls back; past `deadline` it rolls
    /// back. Call it from a blocking thread inside the Tokio runtime (never from async code).
    pub fn begin_blocking(&self, deadline: std::time::Instant) -> Result<Transaction> {
        crate::transaction::begin(
            &self.inner.writer,
            self.inner.log.clone(),
            self.key(),
            deadline,
        )
    }

    /// Runs `f` on the writer in a transaction of its own, between two group commits, and
    /// commits it when `f` succeeds (rolls it back otherwise). For ad-hoc SQL that may be
    /// interrupted: SQLite rolls back the whole transaction of an interrupted write, which
    /// inside a group commit would take other callers' writes with it.
    pub async fn write_alone<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&Connection) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.not_held()?;
        let log = self.inner.log.clone();
        let run = move |conn: &Connection| -> std::result::Result<T, E> {
            conn.execute_batch("BEGIN IMMEDIATE").map_err(Error::from)?;
            let out = f(conn);
            if out.is_err() {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return out;
            }
            crate::commits::clear();
            if let Err(e) = conn.execute_batch("COMMIT") {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(Error::Commit(e.to_string()).into());
            }
            if let (Some(log), Some(frames)) = (&log, crate::commits::take()) {
                log.record(frames);
            }
            out
        };
        let out = self.inner.writer.idle(run).await.map_err(E::from)??;
        self.wait_shipped().await?;
        Ok(out)
    }
}

/// Creates a new database file at `path` and fills it with `init`, fast and then durably:
/// the file is written without a journal or fsyncs (nobody can see it yet), switched to WAL,
/// closed, and only then flushed to disk together with its directory entry. Fails if the file
/// exists. Returns when the file is durable.
pub async fn create_file<F, T>(path: impl AsRef<Path>, init: F) -> Result<T>
where
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let path = path.as_ref().to_path_buf();
    run_blocking(move || {
        if path.exists() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "database exists",
            )));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF;")?;
        conn.execute_batch("BEGIN")?;
        let out = match init(&conn) {
            Ok(out) => {
                conn.execute_batch("COMMIT")?;
                out
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        };
        // WAL is recorded in the file header, so every later connection finds it set.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.close().map_err(|(_, e)| Error::from(e))?;
        std::fs::File::open(&path)?.sync_all()?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(out)
    })
    .await
}

/// See [`Database::on_close`].
#[derive(Clone)]
pub struct Closed(tokio::sync::watch::Receiver<()>);

/// Whether a database has opened a connection (see [`Database::connected`]); does not keep
/// the database open.
#[derive(Debug, Clone)]
pub struct Connected(Arc<AtomicBool>);

impl Connected {
    /// Whether a connection has been opened so far.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Closed {
    /// Waits until the database is closed.
    pub async fn wait(mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

/// Detects commits made through other connections, including other processes (`PRAGMA
/// data_version` on a connection of its own), so caches can be refreshed without polling data.
pub struct ChangeWatcher {
    conn: Option<Connection>,
    version: i64,
}

impl ChangeWatcher {
    /// Whether something was committed since the last call (or since the watcher was made).
    pub async fn changed(&mut self) -> Result<bool> {
        let conn = self.conn.take().ok_or(Error::Closed)?;
        let (conn, version) = run_blocking(move || {
            let version = data_version(&conn)?;
            Ok((conn, version))
        })
        .await?;
        self.conn = Some(conn);
        let changed = version != self.version;
        self.version = version;
        Ok(changed)
    }
}

fn data_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

/// Opens one connection with Warren's pragmas. A durable database's writer uses `synchronous =
/// FULL` so that an acknowledged commit survives power loss, not just a crash; group commit
/// pays for it.
/// No connection checkpoints when it closes (the writer of a database that is not shipped
/// does so itself, see `Writer::start`).
fn open_connection(path: &Path, options: Options, read_only: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = connect(path, flags, options.exclusive)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // No connection checkpoints as it closes: SQLite would then delete the `-wal` and `-shm`
    // files, and the next open create them again (about a tenth of the CPU of opening and
    // closing a tenant). The writer checkpoints instead as it closes, unless shipped (see
    // `Writer::start`), and leaves both files in place, the WAL at 0 bytes (a small WAL of a
    // database that is not durable stays as it is, see `Options::wal_kept_on_close`).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {};
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{};
         PRAGMA query_only = {};",
        if options.durable { "FULL" } else { "NORMAL" },
        options.cache_kib,
        if read_only { "ON" } else { "OFF" },
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Runs blocking SQLite work on tokio's blocking pool.
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[Migration] = &[Migration {
        version: 1,
        sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
    }];

    async fn open_temp() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(
            dir.path().join("data.db"),
            Options {
                migrations: SCHEMA,
                ..Options::default()
            },
        )
        .await
        .unwrap();
        (dir, db)
    }

    /// The length of `db`'s `-wal` file, 0 when there is none.
    fn wal_len(db: &Path) -> u64 {
        std::fs::metadata(format!("{}-wal", db.display())).map_or(0, |m| m.len())
    }

    fn count(conn: &Connection) -> Result<i64> {
        Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
    }

    #[tokio::test]
    async fn an_exclusive_database_keeps_its_wal_index_in_memory_and_copies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.db");
        let options = Options {
            migrations: SCHEMA,
            exclusive: true,
            ..Options::default()
        };
        let db = Database::open(&path, options).await.unwrap();
        for v in ["a", "b"] {
            db.write(move |c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES (?1)", [v])?))
                .await
                .unwrap();
        }
        assert_eq!(db.read(count).await.unwrap(), 2);
        assert!(wal_len(&path) > 0);
        // No `-shm` file: the WAL index is this process's memory.
        assert!(!dir.path().join("data.db-shm").exists());
        // A copy in this process reads through the same VFS, and leaves the WAL alone.
        let copy = dir.path().join("copy.db");
        db.vacuum_into(&copy).await.unwrap();
        crate::scratch_copy(&path, &dir.path().join("scratch.db"), true)
            .await
            .unwrap();
        assert!(wal_len(&path) > 0);
        assert_eq!(db.read(count).await.unwrap(), 2);
        let copied = Database::open(&copy, Options::default()).await.unwrap();
        assert_eq!(copied.read(count).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_data_version_changes_with_every_way_of_writing_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            migrations: SCHEMA,
            exclusive: true,
            ..Options::default()
        };
        let db = Database::open(dir.path().join("data.db"), options)
            .await
            .unwrap();
        let other = Database::open(dir.path().join("other.db"), options)
            .await
            .unwrap();
        let v0 = db.data_version().unwrap();
        assert_ne!(Some(v0), other.data_version());
        // Reads change nothing.
        assert_eq!(db.read(count).await.unwrap(), 0);
        assert_eq!(db.read_quick(count).await.unwrap(), 0);
        assert_eq!(db.data_version(), Some(v0));
        // A group-committed write, a failed one, ad-hoc SQL run alone, a held transaction.
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('a')", [])?))
            .await
            .unwrap();
        let v1 = db.data_version().unwrap();
        assert_ne!(v1, v0);
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES (NULL)", [])?))
            .await
            .unwrap_err();
        let v2 = db.data_version().unwrap();
        assert_ne!(v2, v1);
        db.write_alone(|c| Ok::<_, Error>(c.execute("UPDATE t SET v = 'b'", [])?))
            .await
            .unwrap();
        let v3 = db.data_version().unwrap();
        assert!(![v0, v1, v2].contains(&v3));
        let holder = db.clone();
        let seen = tokio::task::spawn_blocking(move || {
            let tx = holder
                .begin_blocking(std::time::Instant::now() + std::time::Duration::from_secs(5))
                .unwrap();
            tx.run(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('c')", [])?))
                .unwrap();
            let after_step = holder.data_version().unwrap();
            tx.commit().unwrap();
            after_step
        })
        .await
        .unwrap();
        assert!(![v0, v1, v2, v3].contains(&seen));
        let v4 = db.data_version().unwrap();
        assert!(![v0, v1, v2, v3, seen].contains(&v4));
        assert_eq!(db.read(count).await.unwrap(), 2);
        // A reopened file starts from a value never shown before.
        db.close().await;
        let again = Database::open(dir.path().join("data.db"), options)
            .await
            .unwrap();
        assert!(![v0, v1, v2, v3, seen, v4].contains(&again.data_version().unwrap()));
        // A file another process may share has none.
        let shared = Database::open(dir.path().join("shared.db"), Options::default())
            .await
            .unwrap();
        assert_eq!(shared.data_version(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_version_changes_only_with_writes_that_may_touch_the_table() {
        const TABLES: &[Migration] = &[Migration {
            version: 1,
            sql: "CREATE TABLE users (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE);
                  CREATE TABLE posts (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE);
                  CREATE TABLE tags (v TEXT PRIMARY KEY) WITHOUT ROWID;
                  INSERT INTO users (v) VALUES ('u1'), ('u2');",
        }];
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            migrations: TABLES,
            exclusive: true,
            ..Options::default()
        };
        let db = Database::open(dir.path().join("data.db"), options)
            .await
            .unwrap();
        async fn write(db: &Database, sql: &'static str) {
            db.write(move |c| Ok::<_, Error>(c.execute_batch(sql)?))
                .await
                .unwrap();
        }
        let users = || db.table_version("users").unwrap();
        // The first group commit after opening cannot vouch for what opening wrote.
        write(&db, "INSERT INTO posts (v) VALUES ('p0')").await;
        let u0 = users();
        // Writes to other tables leave the table's version alone, the data version not.
        let data = db.data_version();
        write(&db, "INSERT INTO posts (v) VALUES ('p1')").await;
        write(&db, "UPDATE posts SET v = 'p2' WHERE v = 'p1'").await;
        assert_eq!(users(), u0);
        assert_ne!(db.data_version(), data);
        let posts = db.table_version("POSTS").unwrap();
        assert_ne!(posts, u0);
        // Each way of writing its rows changes it, in any letter case.
        let mut seen = vec![u0];
        let mut changed = |v: u64| {
            assert!(!seen.contains(&v), "{v} was seen before: {seen:?}");
            seen.push(v);
        };
        write(&db, "UPDATE Users SET v = 'u3' WHERE v = 'u2'").await;
        changed(users());
        write(&db, "INSERT INTO users (v) VALUES ('u4')").await;
        changed(users());
        // Deleting every row (SQLite's truncate optimisation, which its update hook does not
        // report), writes to a table without a rowid, a failed job, a schema change, SQL run
        // alone and a held transaction: none of them say which tables they touched.
        write(&db, "DELETE FROM users").await;
        changed(users());
        write(&db, "INSERT INTO tags (v) VALUES ('t1')").await;
        changed(users());
        db.write(|c| Ok::<_, Error>(c.execute_batch("INSERT INTO posts (v) VALUES ('p2')")?))
            .await
            .unwrap_err();
        changed(users());
        write(&db, "CREATE TABLE other (v)").await;
        changed(users());
        db.write_alone(|c| Ok::<_, Error>(c.execute("INSERT INTO posts (v) VALUES ('p3')", [])?))
            .await
            .unwrap();
        changed(users());
        let holder = db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = holder
                .begin_blocking(std::time::Instant::now() + std::time::Duration::from_secs(5))
                .unwrap();
            tx.run(|c| Ok::<_, Error>(c.execute("INSERT INTO posts (v) VALUES ('p4')", [])?))
                .unwrap();
            tx.commit().unwrap();
        })
        .await
        .unwrap();
        changed(users());
        // After SQL run outside a group commit, the first group commit cannot vouch for the
        // schema either; the ones after it know their tables again.
        write(&db, "INSERT INTO posts (v) VALUES ('p5')").await;
        changed(users());
        let before = users();
        write(&db, "INSERT INTO posts (v) VALUES ('p6')").await;
        write(&db, "UPDATE posts SET v = 'p7' WHERE v = 'p6'").await;
        assert_eq!(users(), before);
        // A version never goes back to one shown before, reopened or not.
        db.close().await;
        let again = Database::open(dir.path().join("data.db"), options)
            .await
            .unwrap();
        changed(again.table_version("users").unwrap());
        // A file another process may share has none.
        let shared = Database::open(dir.path().join("shared.db"), Options::default())
            .await
            .unwrap();
        assert_eq!(shared.table_version("t"), None);
    }

    #[tokio::test]
    async fn open_reading_reads_on_the_new_writer_before_any_write() {
        let (dir, db) = open_temp().await;
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('a')", [])?))
            .await
            .unwrap();
        drop(db);
        let options = Options {
            migrations: SCHEMA,
            ..Options::default()
        };
        let (db, read) = Database::open_reading(dir.path().join("data.db"), options, false, count)
            .await
            .unwrap();
        assert_eq!(read.unwrap(), 1);
        // Writes go through the writer the reading ran on.
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('b')", [])?))
            .await
            .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_lazy_handle_opens_its_writer_on_the_first_write() {
        let (dir, db) = open_temp().await;
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('a')", [])?))
            .await
            .unwrap();
        db.close().await;
        let path = dir.path().join("data.db");
        let options = Options {
            migrations: SCHEMA,
            ..Options::default()
        };
        // Never used: closing it touches nothing, and at once.
        let idle = Database::open_lazy(&path, options).unwrap();
        let connected = idle.connected();
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), idle.close())
            .await
            .unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        assert!(!connected.get());
        // Read, then written, then closed whole like any other.
        let db = Database::open_lazy(&path, options).unwrap();
        let connected = db.connected();
        assert_eq!(db.read(count).await.unwrap(), 1);
        assert!(connected.get());
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('b')", [])?))
            .await
            .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 2);
        db.close().await;
        assert_eq!(wal_len(&path), 0);
    }

    #[tokio::test]
    async fn a_database_that_is_not_durable_keeps_a_small_wal_as_it_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.db");
        let options = Options {
            migrations: SCHEMA,
            durable: false,
            ..Options::default()
        };
        let insert = |db: Database, n: usize| async move {
            db.write(move |c| {
                for _ in 0..n {
                    c.execute("INSERT INTO t (v) VALUES (hex(randomblob(2000)))", [])?;
                }
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
            db.close().await;
        };
        insert(Database::open(&path, options).await.unwrap(), 1).await;
        let small = wal_len(&path);
        assert!(small > 0 && small <= SMALL_WAL, "{small}");
        // Read back by the next open.
        let db = Database::open(&path, options).await.unwrap();
        assert_eq!(db.read(count).await.unwrap(), 1);
        // Past the bound, the close checkpoints it.
        insert(db, 200).await;
        assert_eq!(wal_len(&path), 0);
        let db = Database::open(&path, options).await.unwrap();
        assert_eq!(db.read(count).await.unwrap(), 201);
    }

    #[tokio::test]
    async fn a_lazy_handle_that_cannot_open_fails_each_operation_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: no connection opens.
        let path = dir.path().join("data.db");
        std::fs::create_dir(&path).unwrap();
        let db = Database::open_lazy(&path, Options::default()).unwrap();
        for _ in 0..2 {
            let out = db
                .write(|c| Ok::<_, Error>(c.execute("CREATE TABLE x (a)", [])?))
                .await;
            assert!(matches!(out, Err(Error::Commit(_))), "{out:?}");
        }
        assert!(db.read(count).await.is_err());
        db.close().await;
    }

    #[tokio::test]
    async fn writes_are_visible_to_readers() {
        let (_dir, db) = open_temp().await;
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('a')", [])?))
            .await
            .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn the_watcher_sees_commits_from_other_connections() {
        let (_dir, db) = open_temp().await;
        let mut watcher = db.watch().await.unwrap();
        assert!(!watcher.changed().await.unwrap());
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('a')", [])?))
            .await
            .unwrap();
        assert!(watcher.changed().await.unwrap());
        assert!(!watcher.changed().await.unwrap());
    }

    #[tokio::test]
    async fn created_files_are_complete_and_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        create_file(&path, |c| {
            c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); INSERT INTO t (v) VALUES ('a');")?;
            Ok(())
        })
        .await
        .unwrap();
        assert!(create_file(&path, |_| Ok(())).await.is_err());
        let db = Database::open(&path, Options::default()).await.unwrap();
        assert_eq!(db.read(count).await.unwrap(), 1);
        let mode: String = db
            .read(|c| Ok::<_, Error>(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn only_a_database_opened_not_durable_skips_the_sync_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let synchronous = |db: Database| async move {
            db.write(|c| {
                Ok::<_, Error>(c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))?)
            })
            .await
            .unwrap()
        };
        let durable = Database::open(dir.path().join("durable.db"), Options::default())
            .await
            .unwrap();
        // 2 is FULL, 1 is NORMAL.
        assert_eq!(synchronous(durable).await, 2);
        let options = Options {
            durable: false,
            ..Options::default()
        };
        let logs = Database::open(dir.path().join("logs.db"), options)
            .await
            .unwrap();
        assert_eq!(synchronous(logs).await, 1);
    }

    #[tokio::test]
    async fn a_failed_initialization_leaves_no_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let failed = create_file(&path, |c| {
            c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); SYNTAX ERROR;")?;
            Ok(())
        })
        .await;
        assert!(failed.is_err());
    }

    #[tokio::test]
    async fn quick_reads_answer_short_and_long_queries_alike() {
        let (_dir, db) = open_temp().await;
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('a')", [])?))
            .await
            .unwrap();
        // Open a connection so that the first quick read can run inline.
        assert_eq!(db.read(count).await.unwrap(), 1);
        assert_eq!(db.read_quick(count).await.unwrap(), 1);
        // Far over the inline budget: abandoned inline, answered by the pool.
        let long = |c: &Connection| -> Result<i64> {
            Ok(c.query_row(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
                 SELECT count(*) FROM n",
                [],
                |r| r.get(0),
            )?)
        };
        assert_eq!(db.read_quick(long).await.unwrap(), 200_000);
        // The connection went back to the pool without its budget.
        assert_eq!(db.read(long).await.unwrap(), 200_000);
        let res = db
            .read_quick(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('b')", [])?))
            .await;
        assert!(res.is_err(), "quick reads are read-only too");
    }

    #[tokio::test]
    async fn on_close_resolves_after_the_last_handle_is_dropped() {
        let (_dir, db) = open_temp().await;
        let closed = db.on_close();
        let other = db.clone();
        drop(db);
        let waiting = tokio::spawn(closed.wait());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(other);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
    }

    /// Threads of this process now.
    fn threads() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_databases_hold_no_writer_thread_and_take_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            migrations: SCHEMA,
            ..Options::default()
        };
        let mut open = Vec::new();
        for i in 0..64 {
            let db = Database::open(dir.path().join(format!("{i}.db")), options)
                .await
                .unwrap();
            db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('a')", [])?))
                .await
                .unwrap();
            open.push(db);
        }
        // 64 open databases, each written once: no thread per database (the blocking pool
        // holds a few threads for a while, far fewer than 64).
        assert!(threads() < 40, "{} threads", threads());
        // A writer whose drainer ended runs the next write, as often as asked.
        for round in 0..3 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            for db in &open {
                db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('b')", [])?))
                    .await
                    .unwrap();
                assert_eq!(db.read(count).await.unwrap(), 2 + round);
            }
        }
        // Closing them closes every connection.
        for db in open {
            tokio::time::timeout(std::time::Duration::from_secs(5), db.close())
                .await
                .unwrap();
        }
        for i in 0..64 {
            assert_eq!(wal_len(&dir.path().join(format!("{i}.db"))), 0);
        }
    }

    #[tokio::test]
    async fn a_database_dropped_while_writes_are_queued_commits_them_then_closes() {
        let (dir, db) = open_temp().await;
        let mut jobs = Vec::new();
        for _ in 0..20 {
            let db = db.clone();
            jobs.push(tokio::spawn(async move {
                db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('x')", [])?))
                    .await
            }));
        }
        db.close().await;
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        assert_eq!(wal_len(&dir.path().join("data.db")), 0);
        let db = Database::open(
            dir.path().join("data.db"),
            Options {
                migrations: SCHEMA,
                ..Options::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 20);
    }

    #[tokio::test]
    async fn a_closed_database_keeps_an_empty_wal_and_is_whole_in_its_main_file() {
        use std::os::unix::fs::MetadataExt;
        let (dir, db) = open_temp().await;
        // A reader too: whichever connection closes last must keep the files.
        assert_eq!(db.read(count).await.unwrap(), 0);
        for _ in 0..10 {
            db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('x')", [])?))
                .await
                .unwrap();
        }
        let path = dir.path().join("data.db");
        assert!(wal_len(&path) > 0);
        let inode = |suffix: &str| {
            std::fs::metadata(format!("{}{suffix}", path.display()))
                .unwrap()
                .ino()
        };
        let (wal, shm) = (inode("-wal"), inode("-shm"));
        db.close().await;
        // Checkpointed and cut, not deleted.
        assert_eq!(wal_len(&path), 0);
        assert_eq!((inode("-wal"), inode("-shm")), (wal, shm));
        // The main file alone holds every committed row.
        let alone = tempfile::tempdir().unwrap();
        std::fs::copy(&path, alone.path().join("data.db")).unwrap();
        let copy = Database::open(alone.path().join("data.db"), Options::default())
            .await
            .unwrap();
        assert_eq!(copy.read(count).await.unwrap(), 10);
        // Reopening uses the same files.
        let options = Options {
            migrations: SCHEMA,
            ..Options::default()
        };
        let db = Database::open(&path, options).await.unwrap();
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('y')", [])?))
            .await
            .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 11);
        assert_eq!((inode("-wal"), inode("-shm")), (wal, shm));
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let (_dir, db) = open_temp().await;
        let res = db
            .read(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('a')", [])?))
            .await;
        assert!(res.is_err());
    }

    #[tokio::test]
    async fn a_failing_write_rolls_back_only_itself() {
        let (_dir, db) = open_temp().await;
        let mut jobs = Vec::new();
        for i in 0..50 {
            let db = db.clone();
            jobs.push(tokio::spawn(async move {
                db.write(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [i.to_string()])?;
                    if i % 5 == 0 {
                        // Violates NOT NULL after a successful insert in the same job.
                        c.execute("INSERT INTO t (v) VALUES (NULL)", [])?;
                    }
                    Ok::<_, Error>(())
                })
                .await
            }));
        }
        let mut failed = 0;
        for job in jobs {
            if job.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 10);
        assert_eq!(db.read(count).await.unwrap(), 40);
    }

    #[tokio::test]
    async fn committed_writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.db");
        let options = Options {
            migrations: SCHEMA,
            ..Options::default()
        };
        {
            let db = Database::open(&path, options).await.unwrap();
            for _ in 0..20 {
                db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('x')", [])?))
                    .await
                    .unwrap();
            }
        }
        let db = Database::open(&path, options).await.unwrap();
        assert_eq!(db.read(count).await.unwrap(), 20);
    }

    #[tokio::test]
    async fn a_panicking_write_does_not_take_the_writer_down() {
        let (_dir, db) = open_temp().await;
        let res: Result<()> = db.write(|_| panic!("boom")).await;
        assert!(matches!(res, Err(Error::Closed)));
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('ok')", [])?))
            .await
            .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_lone_failing_or_panicking_write_leaves_nothing_behind() {
        let (_dir, db) = open_temp().await;
        let failed = db
            .write(|c| {
                c.execute("INSERT INTO t (v) VALUES ('kept?')", [])?;
                c.execute("INSERT INTO t (v) VALUES (NULL)", [])?;
                Ok::<_, Error>(())
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(db.read(count).await.unwrap(), 0);
        let panicked: Result<()> = db
            .write(|c| {
                c.execute("INSERT INTO t (v) VALUES ('kept?')", [])?;
                panic!("boom")
            })
            .await;
        assert!(matches!(panicked, Err(Error::Closed)));
        assert_eq!(db.read(count).await.unwrap(), 0);
        db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('ok')", [])?))
            .await
            .unwrap();
        assert_eq!(db.read(count).await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_queued_together_commit_as_one_group_each_in_its_savepoint() {
        let (_dir, db) = open_temp().await;
        // Hold the writer until every write below is queued, so they form one group.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holder = {
            let db = db.clone();
            tokio::spawn(async move { db.with_writer_idle(move |_| held.recv()).await })
        };
        let mut jobs = Vec::new();
        for i in 0..10 {
            let db = db.clone();
            jobs.push(tokio::spawn(async move {
                db.write(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [i.to_string()])?;
                    match i % 3 {
                        0 => c
                            .execute("INSERT INTO t (v) VALUES (NULL)", [])
                            .map(|_| ())?,
                        1 if i == 4 => panic!("boom"),
                        _ => {}
                    }
                    Ok::<_, Error>(i)
                })
                .await
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        release.send(()).unwrap();
        holder.await.unwrap().unwrap().unwrap();
        let mut kept = Vec::new();
        for job in jobs {
            if let Ok(i) = job.await.unwrap() {
                kept.push(i);
            }
        }
        assert_eq!(kept, vec![1, 2, 5, 7, 8]);
        assert_eq!(db.read(count).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_shipped_database_records_commits_and_never_checkpoints_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.db");
        let options = Options {
            migrations: SCHEMA,
            ..Options::default()
        };
        {
            let db = Database::open_shipped(&path, options).await.unwrap();
            let log = db.commit_log().unwrap().clone();
            let mut counter = log.subscribe();
            let mut frames = 0;
            // Far past SQLite's automatic checkpoint (1000 frames).
            for _ in 0..1100 {
                db.write(|c| Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES ('x')", [])?))
                    .await
                    .unwrap();
                let commits = log.take();
                assert_eq!(commits.len(), 1);
                assert!(commits[0].frames > frames);
                frames = commits[0].frames;
            }
            assert!(counter.has_changed().unwrap());
            counter.borrow_and_update();
            let checkpointed: (i64, i64) = db
                .with_writer_idle(|c| {
                    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get(1)?, r.get(2)?))
                    })
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(checkpointed.0, i64::from(frames));
            // Reads do not record commits.
            assert_eq!(db.read(count).await.unwrap(), 1100);
            assert!(log.take().is_empty());
        }
        // Closing leaves the WAL in place (no checkpoint on close).
        assert!(dir.path().join("data.db-wal").exists());
        let db = Database::open(&path, options).await.unwrap();
        assert_eq!(db.read(count).await.unwrap(), 1100);
    }
}
