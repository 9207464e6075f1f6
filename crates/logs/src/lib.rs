//! A tenant's request logs, kept where PocketBase keeps them: the `_logs` table of the tenant's
//! `auxiliary.db`, with the same columns, JSON `data` shape and indexes but one (see
//! [`DROP_MESSAGE_INDEX`]), so a data directory moves between Warren and PocketBase with its logs.
//!
//! Recording is built to be nearly free on the request path: [`Logs::record`] pushes into a
//! bounded in-memory buffer, and a background task per tenant writes the buffer in one
//! transaction every second (sooner when it fills), applying the tenant's `logs` settings
//! (`maxDays`, `minLevel`, `logIP`, `logAuthId`, `maxDataSize`) at that point. The same task deletes logs
//! older than `maxDays`. The auxiliary database opens on first use, so a tenant that never
//! logs never opens it, and closes again once a second has passed without entries (the task
//! ends then too; a tenant that logs only now and then closes it right after its batch), so
//! an open tenant that is not being used holds no connection for its logs.
//! Entries a closing tenant has not written yet wait in a [`Backlog`] for its next opening
//! (or a later, larger write) instead of costing a write of their own at every close.
//!
//! It uses `warren-store` for SQLite and `warren-filter` for the `filter`/`sort` parameters of
//! the logs API. It must not depend on HTTP crates.

mod backlog;
mod query;
mod request;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::Notify;
use warren_store::{Closed, Database, Migration, Options};

pub use backlog::Backlog;
pub use query::{ListQuery, MAX_PER_PAGE, Page};
pub use request::{Data, RequestData};

/// File name of the auxiliary database inside a tenant's (or PocketBase's) data directory.
pub const AUXILIARY_FILE: &str = "auxiliary.db";

/// The `_logs` table exactly as PocketBase creates it (`IF NOT EXISTS`, so an imported
/// `auxiliary.db` keeps its rows); the next migrations drop one of its indexes and replace
/// another.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS `_logs` (
    `id`      TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `level`   INTEGER DEFAULT 0 NOT NULL,
    `message` TEXT DEFAULT '' NOT NULL,
    `data`    JSON DEFAULT '{}' NOT NULL,
    `created` TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_logs_level on `_logs` (`level`);
CREATE INDEX IF NOT EXISTS idx_logs_message on `_logs` (`message`);
CREATE INDEX IF NOT EXISTS idx_logs_created_hour on `_logs` (strftime('%Y-%m-%d %H:00:00', `created`));";

/// Warren's one change to PocketBase's schema: no index on `message`. A request's message is
/// its method and path (`GET /api/collections/posts/records/…`), so each batch of entries
/// lands all over that index's b-tree and dirties a page per distinct path, which the batch
/// writes to the WAL and the next checkpoint copies back: the index alone cost as much as the
/// rest of the row (measured in `crates/bench/README.md`, "Request logs without the `message`
/// index"). Only an exact `message = …` filter could use it: a text search (`~`) is a
/// case-insensitive `LIKE`, which no index of this collation serves, and the list and the
/// stats read by `created`.
/// PocketBase opens a data directory without it as it is, so a directory still moves both ways.
pub const DROP_MESSAGE_INDEX: &str = "DROP INDEX IF EXISTS idx_logs_message;";

/// Warren's second change: the hourly index keys each row by the first 13 characters of its
/// `created` text (`YYYY-MM-DD HH`) instead of `strftime('%Y-%m-%d %H:00:00', created)`. Both
/// order and group rows alike, since `created` is always written as
/// `YYYY-MM-DD HH:MM:SS.mmmZ`; but SQLite evaluates the key at every insert, and `strftime`
/// parses and formats a date each time: about 3,500 instructions of the 22,000 a request's
/// log row cost, against about 100 for `substr`. [`crate::Logs::stats`] groups by the same
/// expression, so it still reads the hours in order from the index. PocketBase's own stats
/// query runs without an index on a directory moved back to it, as for the message index.
pub const HOUR_INDEX: &str = "DROP INDEX IF EXISTS idx_logs_created_hour;
CREATE INDEX IF NOT EXISTS idx_logs_hour ON `_logs` (substr(`created`, 1, 13));";

/// The hour a log row belongs to, as the hourly index keys it (see [`HOUR_INDEX`]).
pub(crate) const HOUR_KEY: &str = "substr(\"_logs\".\"created\", 1, 13)";

/// Migrations of the auxiliary database.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: SCHEMA,
    },
    Migration {
        version: 2,
        sql: DROP_MESSAGE_INDEX,
    },
    Migration {
        version: 3,
        sql: HOUR_INDEX,
    },
];

/// Log levels, as PocketBase numbers them (Go's `slog` levels).
pub mod level {
    /// Debug messages.
    pub const DEBUG: i64 = -4;
    /// Successful requests.
    pub const INFO: i64 = 0;
    /// Warnings.
    pub const WARN: i64 = 4;
    /// Failed requests (status 400 and above).
    pub const ERROR: i64 = 8;
}

/// Entries are written at least this often while any are pending.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// A tenant whose auxiliary database closed longer ago than this logs occasionally: its first
/// batch closes the database again at once instead of a [`FLUSH_EVERY`] later.
const OCCASIONAL: Duration = Duration::from_secs(10);
/// A buffer this long is written at once instead of waiting for the next tick. Each batch is
/// one transaction, and its cost beyond the rows is shared by the batch: the commit, and the
/// last page of the table and of each index, written to the WAL once per batch. Every b-tree
/// of `_logs` now grows at its end (ids sort in the order they are made), so a batch of 512
/// shares those costs nearly as well as one of 4,096, and its write holds a core for a few
/// milliseconds instead of about 25: under load, a logged request's p99 fell by about a quarter
/// with it (`crates/bench/README.md`). A batch takes all that is buffered, so a writer that
/// falls behind writes longer ones; the buffer's bound is [`MAX_BUFFER_BYTES`].
const FLUSH_AT: usize = 512;
/// Most bytes (roughly) held in one tenant's buffer; entries beyond are dropped, so a flood of
/// requests cannot grow memory while the auxiliary database is slow.
const MAX_BUFFER_BYTES: usize = 4 << 20;
/// Longest message kept (bytes), as PocketBase.
pub const MAX_MESSAGE: usize = 8000;
/// The largest serialized `data` kept when `logs.maxDataSize` is 0 (PocketBase's ~16 KB).
pub const DEFAULT_MAX_DATA: usize = 16 << 10;
/// The key PocketBase adds to data it cut.
pub const TRUNCATED: &str = "__pb_truncated__";
/// How often logs older than `maxDays` are deleted while the tenant is open.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Batch writes and prunes running at once across every tenant of the process. Each runs on
/// the blocking pool; without a bound, hundreds of tenants whose first second of logs ends
/// together would each take a thread of their own (and the allocator's memory for it).
const CONCURRENT_WRITES: usize = 4;
static WRITES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_WRITES);

/// Errors of the logs store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The auxiliary database failed.
    #[error(transparent)]
    Store(#[from] warren_store::Error),
    /// The tenant's settings could not be read.
    #[error("settings: {0}")]
    Settings(#[from] warren_records::Error),
    /// The `filter` or `sort` parameter is invalid.
    #[error("invalid filter: {0}")]
    Filter(#[from] warren_filter::Error),
}

/// Result alias for the logs store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<warren_store::sql::Error> for Error {
    fn from(e: warren_store::sql::Error) -> Self {
        Error::Store(e.into())
    }
}

/// One log entry, before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// One of [`level`].
    pub level: i64,
    /// `"GET /api/health"` for requests.
    pub message: String,
    /// The structured attributes (`type`, `url`, `status`, ...).
    pub data: Data,
    /// When it happened, `YYYY-MM-DD HH:MM:SS.mmmZ`.
    pub created: String,
}

impl Entry {
    /// An entry stamped now. A message over [`MAX_MESSAGE`] bytes is cut; `data` is cut to the
    /// tenant's `logs.maxDataSize` when the entry is kept.
    pub fn new(level: i64, message: impl Into<String>, data: Map<String, Value>) -> Self {
        let mut message = message.into();
        truncate(&mut message, MAX_MESSAGE);
        Self {
            level,
            message,
            data: Data::Map(data),
            created: warren_schema::datetime::DateTime::now().format(),
        }
    }

    /// A request's entry stamped now (see [`Entry::new`]).
    pub fn request(level: i64, message: impl Into<String>, data: RequestData) -> Self {
        let mut message = message.into();
        truncate(&mut message, MAX_MESSAGE);
        Self {
            level,
            message,
            data: Data::Request(Box::new(data)),
            created: warren_schema::datetime::DateTime::now().format(),
        }
    }

    /// Roughly the memory the entry holds.
    fn size(&self) -> usize {
        let data: usize = match &self.data {
            Data::Map(map) => map
                .iter()
                .map(|(k, v)| k.len() + 32 + v.as_str().map_or(0, str::len))
                .sum(),
            Data::Request(request) => request.size(),
        };
        96 + self.message.len() + data
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Ids for the rows of one batch: 15 characters of `[a-z0-9]` like PocketBase's, the first 9
/// the batch's time in milliseconds and the last 6 a process-wide sequence (started at a
/// random point), so a batch appends at the end of the primary-key index instead of dirtying
/// pages all over it, and no two rows written by this process share an id.
struct LogIds {
    prefix: [u8; 9],
}

/// The next sequence number of [`LogIds`].
static LOG_SEQUENCE: std::sync::LazyLock<std::sync::atomic::AtomicU64> =
    std::sync::LazyLock::new(|| {
        let start = warren_secrets::random::record_id()
            .bytes()
            .fold(0u64, |n, b| n.wrapping_mul(31).wrapping_add(u64::from(b)));
        std::sync::atomic::AtomicU64::new(start)
    });

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

impl LogIds {
    fn now() -> Self {
        let millis = warren_schema::datetime::DateTime::now().unix_millis.max(0) as u64;
        let mut prefix = [b'0'; 9];
        base36(millis, &mut prefix);
        Self { prefix }
    }

    fn next(&mut self) -> String {
        let sequence = LOG_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut id = [b'0'; 15];
        id[..9].copy_from_slice(&self.prefix);
        base36(sequence, &mut id[9..]);
        // Every byte comes from BASE36.
        String::from_utf8_lossy(&id).into_owned()
    }
}

/// Writes the lowest digits of `n` in base 36 into `out`, most significant first.
fn base36(mut n: u64, out: &mut [u8]) {
    for digit in out.iter_mut().rev() {
        *digit = BASE36[(n % 36) as usize];
        n /= 36;
    }
}

/// The `logs` section of a tenant's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Days logs are kept; 0 turns logging off.
    pub max_days: i64,
    /// Entries below this level are not written.
    pub min_level: i64,
    /// Whether `remoteIP`/`userIP` are kept.
    pub log_ip: bool,
    /// Whether `authId` is kept.
    pub log_auth_id: bool,
    /// Largest serialized `data` in bytes (`logs.maxDataSize`, [`DEFAULT_MAX_DATA`] for 0).
    pub max_data_size: usize,
}

impl LogSettings {
    /// Reads the `logs` section of a settings document (defaults where missing).
    pub fn from_settings(settings: &Value) -> Self {
        let logs = settings.get("logs");
        let int = |key: &str, default: i64| {
            logs.and_then(|l| l.get(key))
                .and_then(Value::as_f64)
                .map_or(default, |f| f as i64)
        };
        let flag = |key: &str, default: bool| {
            logs.and_then(|l| l.get(key))
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        Self {
            max_days: int("maxDays", 5),
            min_level: int("minLevel", 0),
            log_ip: flag("logIP", true),
            log_auth_id: flag("logAuthId", false),
            max_data_size: match int("maxDataSize", 0) {
                n if n <= 0 => DEFAULT_MAX_DATA,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            },
        }
    }

    /// Whether `entry` is written, and in what form.
    fn apply(&self, mut entry: Entry) -> Option<Entry> {
        if self.max_days <= 0 || entry.level < self.min_level {
            return None;
        }
        match &mut entry.data {
            Data::Map(data) => {
                if !self.log_ip {
                    data.remove("remoteIP");
                    data.remove("userIP");
                }
                if !self.log_auth_id {
                    data.remove("authId");
                }
                cut_data(data, self.max_data_size);
            }
            Data::Request(request) => {
                if !self.log_ip {
                    request.remote_ip = None;
                    request.user_ip = None;
                }
                if !self.log_auth_id {
                    request.auth_id = None;
                }
                if request.size_bound() > self.max_data_size {
                    let mut data = request.to_map();
                    cut_data(&mut data, self.max_data_size);
                    entry.data = Data::Map(data);
                }
            }
        }
        Some(entry)
    }
}

/// Cuts `data` as PocketBase does when its JSON (keys sorted) is longer than `max` bytes: the
/// members that lie whole within the first `max` bytes stay, one whose value is cut stays as
/// `null`, later ones go, and `"__pb_truncated__": true` marks the entry.
fn cut_data(data: &mut Map<String, Value>, max: usize) {
    // A request's entry is far below any limit: a bound of its size spares serializing it.
    if size_bound(data) <= max {
        return;
    }
    let size = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
    // `{` + `"key":value` joined by `,` + `}`, the way serde_json writes a map.
    let total = 2
        + data.len().saturating_sub(1)
        + data
            .iter()
            .map(|(k, v)| size(&Value::String(k.clone())) + 1 + size(v))
            .sum::<usize>();
    if total <= max {
        return;
    }
    let mut kept = Map::new();
    let mut end = 1;
    for (key, value) in std::mem::take(data) {
        let key_end = end + usize::from(!kept.is_empty()) + size(&Value::String(key.clone())) + 1;
        if key_end > max {
            break;
        }
        let value_end = key_end + size(&value);
        if value_end > max {
            kept.insert(key, Value::Null);
            break;
        }
        kept.insert(key, value);
        end = value_end;
    }
    kept.insert(TRUNCATED.into(), Value::Bool(true));
    *data = kept;
}

/// An upper bound of `data`'s serialized size without serializing it (a character escapes to
/// at most 6 bytes, a number to at most 40); `usize::MAX` for nested values.
fn size_bound(data: &Map<String, Value>) -> usize {
    let text = |s: &str| 2 + 6 * s.len();
    data.iter().fold(2 + data.len(), |sum, (key, value)| {
        let value = match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 40,
            Value::String(s) => text(s),
            Value::Array(_) | Value::Object(_) => return usize::MAX,
        };
        sum.saturating_add(text(key) + 1 + value)
    })
}

/// A tenant's logs: the write buffer and the (lazily opened) auxiliary database. Cheap to
/// clone; pending entries are written when the last clone is dropped.
#[derive(Clone)]
pub struct Logs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs")
            .field("path", &self.inner.store.path)
            .finish()
    }
}

struct Inner {
    /// Where entries go.
    store: Arc<Store>,
    /// The tenant's main database, where its settings live. Only `Inner` holds it, never the
    /// tasks that outlive a closed tenant, so closing a tenant closes its database at once.
    data: Database,
    /// Entries not yet written.
    pending: Mutex<Pending>,
    /// Wakes the flusher early when the buffer fills. Shared with the flusher task, which
    /// holds only a weak reference to `Inner` so that an evicted tenant's logs can drop.
    wake: Arc<Notify>,
    /// Where entries still buffered at the end wait for the tenant's next opening (without
    /// one, they are written at once).
    backlog: Option<Backlog>,
}

#[derive(Default)]
struct Pending {
    /// Buffered entries, oldest first, each with whether the settings were already applied
    /// (they are unknown until first loaded).
    entries: Vec<(Entry, bool)>,
    /// Their approximate size.
    bytes: usize,
    /// When the oldest of them was recorded (by this opening or one before it).
    since: Option<Instant>,
    /// Entries dropped because the buffer was full, reported at the next flush.
    dropped: u64,
    /// Whether the flusher task runs.
    flusher: bool,
}

/// The auxiliary database and what decides what goes in it.
struct Store {
    /// The `auxiliary.db` file.
    path: PathBuf,
    /// The auxiliary database while open, and the last one closed.
    db: Mutex<Aux>,
    /// Held while the auxiliary database opens, so concurrent first uses open it once.
    opening: tokio::sync::Mutex<()>,
    /// When logs older than `maxDays` were last deleted (never: at the first batch).
    pruned: Mutex<Option<Instant>>,
    /// The `logs` settings as last loaded; applied when an entry is recorded, so a change
    /// takes effect for the very next request once [`Logs::reload_settings`] has run.
    settings: Mutex<Option<LogSettings>>,
}

/// The auxiliary database of a tenant's logs as it opens and closes.
#[derive(Default)]
struct Aux {
    /// Open now.
    open: Option<Database>,
    /// Resolves once the database last closed between batches is fully closed.
    closing: Option<Closed>,
    /// When it last closed.
    closed_at: Option<Instant>,
}

/// Options of an auxiliary database: one reader, a small cache, and commits that need not reach
/// the disk before they return. Entries wait in memory for up to [`FLUSH_EVERY`] before they are
/// written at all, so a crash loses the buffered ones whatever the database does; syncing each
/// batch would protect them against power loss only, at the price of an fsync on every batch
/// and in every checkpoint. With `synchronous = NORMAL` a written batch still survives a crash
/// of the process.
fn options() -> Options {
    Options {
        readers: 1,
        cache_kib: 512,
        migrations: MIGRATIONS,
        durable: false,
        // Other programs may read the request logs of a served tenant.
        exclusive: false,
    }
}

/// The page cache of the auxiliary database's writer for a batch of `rows`: 512 KiB (as
/// opened) for small batches, up to 8 MiB for the largest, so a busy tenant's batch finds the
/// index pages it dirties in memory instead of reading them again and spilling them to the WAL
/// before the commit, and a quiet tenant holds no more than before (SQLite lets go of cached
/// pages above a lowered size at once).
const fn cache_kib(rows: usize) -> usize {
    let kib = rows.saturating_mul(2).saturating_add(256);
    if kib < 512 {
        512
    } else if kib > 8192 {
        8192
    } else {
        kib
    }
}

/// WAL pages between two automatic checkpoints of the auxiliary database (SQLite's default is
/// 1,000). A checkpoint copies every page in the WAL back to the database; batches of logs
/// dirty many of the same index pages again and again, so a longer WAL copies each of them
/// once for several batches. At most about 16 MB of WAL per busy tenant, and none once the
/// tenant's logs go idle (the writer checkpoints and truncates it as it closes).
const AUTOCHECKPOINT_PAGES: u32 = 4000;

/// Rows one insert statement of a batch writes: SQLite runs a statement's setup and
/// teardown (cursors on the table and its three indexes, the program's start and halt) once
/// for all of them instead of once per row. A statement of several rows also keeps a
/// statement journal (the hourly index calls a function, which SQLite counts as a possible
/// abort midway), which costs about a page copy per b-tree it touches; 64 rows spread that
/// thin. Measured per row of a busy batch: 20.9 k instructions one by one, 17.0 k in chunks of 64.
const INSERT_CHUNK: usize = 64;

/// `INSERT INTO _logs` of `rows` rows, five parameters each.
fn insert_statement(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO _logs (id, level, message, data, created) VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?)");
    }
    sql
}

/// Binds `row` as the five parameters from `first` on; `data` is a buffer for its JSON.
fn bind_row(
    statement: &mut warren_store::sql::Statement<'_>,
    first: usize,
    row: &Entry,
    id: String,
    data: &mut Vec<u8>,
) -> warren_store::sql::Result<()> {
    data.clear();
    match &row.data {
        // Writing JSON into a Vec cannot fail.
        Data::Map(map) => serde_json::to_writer(&mut *data, map).unwrap_or_default(),
        Data::Request(request) => request.write_json(data),
    }
    // Both writers emit UTF-8 only.
    let json = std::str::from_utf8(data).unwrap_or("{}");
    statement.raw_bind_parameter(first, id)?;
    statement.raw_bind_parameter(first + 1, row.level)?;
    statement.raw_bind_parameter(first + 2, &row.message)?;
    statement.raw_bind_parameter(first + 3, json)?;
    statement.raw_bind_parameter(first + 4, &row.created)
}

/// The pragmas run before writing a batch of `rows`.
fn tuning(rows: usize) -> String {
    format!(
        "PRAGMA cache_size = -{}; PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES};",
        cache_kib(rows)
    )
}

/// Creates (or migrates) an auxiliary database at `path` with the `_logs` table, and closes it.
pub async fn create_auxiliary(path: &Path) -> Result<()> {
    Database::open(path, options()).await?.close().await;
    Ok(())
}

impl Logs {
    /// Logs stored in `path` (opened on first use), filtered by the settings in `data`.
    /// Entries still buffered when the last clone drops are written at once.
    pub fn new(path: PathBuf, data: Database) -> Self {
        Self::with(Store::new(path), Pending::default(), data, None)
    }

    /// Like [`Logs::new`], but entries still buffered when the last clone drops wait in
    /// `backlog` for the next opening of the same file, which takes them back (see
    /// [`Backlog`]).
    pub fn parking(path: PathBuf, data: Database, backlog: &Backlog) -> Self {
        let Some(parked) = backlog.adopt(&path) else {
            return Self::with(Store::new(path), Pending::default(), data, Some(backlog));
        };
        let pending = Pending {
            entries: parked.entries,
            bytes: parked.bytes,
            since: Some(parked.since),
            ..Pending::default()
        };
        let logs = Self::with(parked.store, pending, data, Some(backlog));
        // They were waiting already: the flusher writes them with the next batch.
        logs.close_when_idle();
        logs
    }

    fn with(
        store: Arc<Store>,
        pending: Pending,
        data: Database,
        backlog: Option<&Backlog>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                data,
                pending: Mutex::new(pending),
                wake: Arc::new(Notify::new()),
                backlog: backlog.cloned(),
            }),
        }
    }

    /// Queues `entry` for the next batch write. Never blocks on I/O; drops the entry when the
    /// buffer is full.
    pub fn record(&self, entry: Entry) {
        let (entry, checked) = match self.inner.store.cached_settings() {
            Some(settings) => match settings.apply(entry) {
                Some(entry) => (entry, true),
                None => return,
            },
            None => (entry, false),
        };
        let size = entry.size();
        let (start, wake) = {
            let mut pending = self.inner.lock();
            if pending.bytes + size > MAX_BUFFER_BYTES {
                pending.dropped += 1;
                return;
            }
            pending.bytes += size;
            if pending.entries.is_empty() && pending.since.is_none() {
                pending.since = Some(Instant::now());
            }
            pending.entries.push((entry, checked));
            let start = !pending.flusher;
            pending.flusher = true;
            // Once per batch: the flusher keeps the wake-up until it next waits.
            (start, pending.entries.len() == FLUSH_AT)
        };
        if start {
            self.start_flusher();
        }
        if wake {
            self.inner.wake.notify_one();
        }
    }

    /// Starts the background task (its flag is set by the caller), which writes the buffer
    /// and closes the auxiliary database once idle.
    fn start_flusher(&self) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(flusher(
                    Arc::downgrade(&self.inner),
                    self.inner.wake.clone(),
                ));
            }
            // Without a runtime entries wait for an explicit `flush`.
            Err(_) => self.inner.lock().flusher = false,
        }
    }

    /// Writes every pending entry now; returns how many were stored.
    pub async fn flush(&self) -> Result<usize> {
        let entries = self.inner.take().entries;
        let settings = self.inner.settings().await?;
        let written = self.inner.store.write(entries, settings).await;
        self.close_when_idle();
        written
    }

    /// Applies `settings` (the tenant's `logs` settings, read by whoever opened the tenant) to
    /// entries recorded from now on, sparing the read of the settings at the first batch.
    pub fn set_settings(&self, settings: LogSettings) {
        *self
            .inner
            .store
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(settings);
    }

    /// Reads the tenant's `logs` settings again (after they changed) and applies them to
    /// entries recorded from now on.
    pub async fn reload_settings(&self) -> Result<LogSettings> {
        self.inner.load_settings().await
    }

    /// Deletes logs older than the tenant's `maxDays`; returns how many.
    pub async fn prune(&self) -> Result<usize> {
        let settings = self.inner.settings().await?;
        let pruned = self.inner.store.prune(settings).await;
        self.close_when_idle();
        pruned
    }

    /// The auxiliary database, opened (and created) if it is closed; the background task
    /// closes it again once idle.
    pub async fn database(&self) -> Result<Database> {
        let db = self.inner.store.aux().await?;
        self.close_when_idle();
        Ok(db)
    }

    /// Makes sure the background task runs, so that an auxiliary database opened outside it
    /// closes once idle.
    fn close_when_idle(&self) {
        let start = !std::mem::replace(&mut self.inner.lock().flusher, true);
        if start {
            self.start_flusher();
        }
    }

    /// The auxiliary database if it is open now (it opens for a batch or a query, and closes
    /// when idle).
    pub fn open_database(&self) -> Option<Database> {
        self.inner.store.slot().open.clone()
    }

    /// Resolves once the auxiliary database is fully closed (`None`: it never opened): the
    /// open one, else the one last closed while idle. For a caller about to move or delete
    /// the tenant's files, once it has dropped every handle to the tenant.
    pub fn on_close(&self) -> Option<Closed> {
        let slot = self.inner.store.slot();
        match &slot.open {
            Some(db) => Some(db.on_close()),
            None => slot.closing.clone(),
        }
    }
}

impl Inner {
    /// Loads the settings and caches them for [`Logs::record`].
    async fn load_settings(&self) -> Result<LogSettings> {
        let settings = warren_records::settings::load(&self.data).await?;
        let settings = LogSettings::from_settings(&settings);
        *self
            .store
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(settings);
        Ok(settings)
    }

    /// The cached settings, loaded on first use.
    async fn settings(&self) -> Result<LogSettings> {
        match self.store.cached_settings() {
            Some(settings) => Ok(settings),
            None => self.load_settings().await,
        }
    }

    /// When nothing is pending, lets the flusher go (an entry recorded from now on starts a
    /// new one) and closes the auxiliary database; says whether it did.
    fn settle_if_idle(&self) -> bool {
        {
            let mut pending = self.lock();
            if !pending.entries.is_empty() {
                return false;
            }
            pending.flusher = false;
        }
        self.store.close();
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Every critical section is a few field updates: a poisoned buffer is still consistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the pending entries, reporting dropped ones.
    fn take(&self) -> Taken {
        let mut pending = self.lock();
        if pending.dropped > 0 {
            tracing::warn!(
                dropped = pending.dropped,
                "request logs dropped: the buffer was full"
            );
            pending.dropped = 0;
        }
        // The next batch is likely about as long as this one: room for it up front instead of
        // growing from nothing (a quiet tenant's buffer stays small).
        let room = pending.entries.len().min(FLUSH_AT);
        Taken {
            entries: std::mem::replace(&mut pending.entries, Vec::with_capacity(room)),
            bytes: std::mem::take(&mut pending.bytes),
            since: pending.since.take(),
        }
    }
}

/// Entries taken from the buffer.
struct Taken {
    entries: Vec<(Entry, bool)>,
    bytes: usize,
    since: Option<Instant>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Taken {
            entries,
            bytes,
            since,
        } = self.take();
        if entries.is_empty() {
            return;
        }
        let store = self.store.clone();
        // Entries recorded before the settings were ever loaded get the defaults.
        let settings = store
            .cached_settings()
            .unwrap_or_else(|| LogSettings::from_settings(&Value::Null));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        match &self.backlog {
            Some(backlog) => backlog.park(
                backlog::Parked {
                    store,
                    entries,
                    bytes,
                    since: since.unwrap_or_else(Instant::now),
                    settings,
                },
                &runtime,
            ),
            None => {
                runtime.spawn(async move {
                    // A deleted tenant's directory is gone, and its logs with it.
                    let deleted = store.path.parent().is_some_and(|dir| !dir.exists());
                    if deleted {
                        return;
                    }
                    if let Err(e) = store.write(entries, settings).await {
                        tracing::warn!(error = %e, "request logs lost on close");
                    }
                });
            }
        }
    }
}

/// Background task of one tenant's logs: writes the buffer every [`FLUSH_EVERY`] (or when
/// woken) and prunes old logs every [`PRUNE_EVERY`]; after a period without entries it closes
/// the auxiliary database and ends (the next entry starts it again); ends too once the logs
/// are dropped. A tenant whose logs were not written for [`OCCASIONAL`] closes the database
/// right after its first batch when nothing else came meanwhile: a tenant touched once holds
/// no connection for its logs while it stays open.
async fn flusher(weak: Weak<Inner>, wake: Arc<Notify>) {
    let mut first = true;
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        if inner.settle_if_idle() {
            return;
        }
        let entries = inner.take().entries;
        let prune = inner.store.prune_due();
        let settings = match inner.settings().await {
            Ok(settings) => settings,
            Err(e) => {
                tracing::warn!(error = %e, "request logs dropped: the settings cannot be read");
                continue;
            }
        };
        let store = inner.store.clone();
        // Not holding `Inner` across the write lets a closing tenant drop it meanwhile.
        drop(inner);
        if let Err(e) = store.write(entries, settings).await {
            tracing::warn!(error = %e, "request logs could not be written");
        }
        if prune && let Err(e) = store.prune(settings).await {
            tracing::warn!(error = %e, "old request logs could not be deleted");
        }
        if std::mem::take(&mut first) && store.occasional() {
            let Some(inner) = weak.upgrade() else { return };
            if inner.settle_if_idle() {
                return;
            }
        }
    }
}

impl Store {
    fn slot(&self) -> std::sync::MutexGuard<'_, Aux> {
        // Every critical section moves an `Option`: a poisoned slot is still consistent.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The auxiliary database, opened if closed.
    async fn aux(&self) -> Result<Database> {
        self.open(false).await
    }

    /// The auxiliary database for a write, opened if closed: an existing file opens with the
    /// write's own hand-off to the blocking pool (its pending migrations applied then), not
    /// one before it.
    async fn aux_for_write(&self) -> Result<Database> {
        self.open(true).await
    }

    async fn open(&self, for_write: bool) -> Result<Database> {
        if let Some(db) = &self.slot().open {
            return Ok(db.clone());
        }
        let _opening = self.opening.lock().await;
        if let Some(db) = &self.slot().open {
            return Ok(db.clone());
        }
        // A new file is created whole at once, so that a query never finds it without its table.
        let db = if for_write && self.path.exists() {
            Database::open_lazy(&self.path, options())?
        } else {
            Database::open(&self.path, options()).await?
        };
        self.slot().open = Some(db.clone());
        Ok(db)
    }

    /// A store of the logs in `path`, its auxiliary database not open yet.
    fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Store {
            path,
            db: Mutex::new(Aux::default()),
            opening: tokio::sync::Mutex::new(()),
            pruned: Mutex::new(None),
            settings: Mutex::new(None),
        })
    }

    /// Lets go of the auxiliary database; it closes on the blocking pool once a write or
    /// query still using it ends. Returns what resolves once it is closed (`None`: it
    /// never opened).
    fn close(&self) -> Option<Closed> {
        let mut slot = self.slot();
        if let Some(db) = slot.open.take() {
            slot.closing = Some(db.on_close());
            slot.closed_at = Some(Instant::now());
            // Its connection's memory, for the trimmer to give back.
            warren_heap::note_freed();
        }
        slot.closing.clone()
    }

    /// Whether the auxiliary database has not closed within [`OCCASIONAL`] (or ever): its
    /// logs come now and then rather than every second or so.
    fn occasional(&self) -> bool {
        self.slot()
            .closed_at
            .is_none_or(|at| at.elapsed() >= OCCASIONAL)
    }

    /// Whether old logs are due to be deleted (at the first batch, then every
    /// [`PRUNE_EVERY`]); counts as done.
    fn prune_due(&self) -> bool {
        let mut pruned = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
        let due = pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY);
        if due {
            *pruned = Some(Instant::now());
        }
        due
    }

    fn cached_settings(&self) -> Option<LogSettings> {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `entries` in one transaction, applying `settings` to those recorded before the
    /// settings were known.
    async fn write(&self, entries: Vec<(Entry, bool)>, settings: LogSettings) -> Result<usize> {
        if entries.is_empty() {
            return Ok(0);
        }
        let rows: Vec<Entry> = entries
            .into_iter()
            .filter_map(|(e, checked)| if checked { Some(e) } else { settings.apply(e) })
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let count = rows.len();
        let tuning = tuning(count);
        let _turn = WRITES
            .acquire()
            .await
            .map_err(|_| warren_store::Error::Closed)?;
        let mut ids = LogIds::now();
        self.aux_for_write()
            .await?
            .write(move |c| {
                c.execute_batch(&tuning)?;
                let mut rows = rows.into_iter();
                let mut data = Vec::with_capacity(512);
                if rows.len() >= INSERT_CHUNK {
                    let mut chunk = c.prepare_cached(&insert_statement(INSERT_CHUNK))?;
                    while rows.len() >= INSERT_CHUNK {
                        for (row, first) in rows.by_ref().take(INSERT_CHUNK).zip((1..).step_by(5)) {
                            bind_row(&mut chunk, first, &row, ids.next(), &mut data)?;
                        }
                        chunk.raw_execute()?;
                    }
                }
                if rows.len() > 0 {
                    let mut single = c.prepare_cached(&insert_statement(1))?;
                    for row in rows {
                        bind_row(&mut single, 1, &row, ids.next(), &mut data)?;
                        single.raw_execute()?;
                    }
                }
                Ok::<_, Error>(())
            })
            .await?;
        Ok(count)
    }

    /// Deletes logs older than `maxDays` days (all of them when logging is off).
    async fn prune(&self, settings: LogSettings) -> Result<usize> {
        let days = settings.max_days.max(0);
        let cutoff = warren_schema::datetime::DateTime {
            unix_millis: warren_schema::datetime::DateTime::now()
                .unix_millis
                .saturating_sub(days.saturating_mul(86_400_000)),
        }
        .format();
        let _turn = WRITES
            .acquire()
            .await
            .map_err(|_| warren_store::Error::Closed)?;
        self.aux_for_write()
            .await?
            .write(move |c| {
                Ok::<_, Error>(
                    c.prepare_cached("DELETE FROM _logs WHERE created < ?1")?
                        .execute([cutoff])?,
                )
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A tenant's main database (where its settings live) in a new temporary directory.
    pub(crate) async fn tenant_database() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let data = Database::open(
            dir.path().join("data.db"),
            Options {
                migrations: &[Migration {
                    version: 1,
                    sql: "CREATE TABLE _params (id TEXT PRIMARY KEY, value JSON, created TEXT, updated TEXT);",
                }],
                ..Options::default()
            },
        )
        .await
        .unwrap();
        (dir, data)
    }

    async fn logs() -> (tempfile::TempDir, Logs) {
        let (dir, data) = tenant_database().await;
        let logs = Logs::new(dir.path().join(AUXILIARY_FILE), data);
        (dir, logs)
    }

    fn request(status: i64, ip: &str) -> Entry {
        let data = json!({"type": "request", "status": status, "remoteIP": ip, "userIP": ip, "authId": "u1"});
        let level = if status >= 400 {
            level::ERROR
        } else {
            level::INFO
        };
        Entry::new(level, "GET /x", data.as_object().unwrap().clone())
    }

    async fn set_logs(logs: &Logs, section: Value) {
        let mut settings = warren_records::settings::defaults();
        settings["logs"] = section;
        warren_records::settings::save(&logs.inner.data, &settings)
            .await
            .unwrap();
        logs.reload_settings().await.unwrap();
    }

    #[test]
    fn the_cache_grows_with_the_batch_within_bounds() {
        assert_eq!(cache_kib(0), 512);
        assert_eq!(cache_kib(100), 512);
        assert_eq!(cache_kib(1024), 2304);
        assert_eq!(cache_kib(FLUSH_AT), 1280);
        assert_eq!(cache_kib(4096), 8192);
        assert_eq!(cache_kib(usize::MAX), 8192);
    }

    /// The clock stands still (nothing here waits on it), so only the mark can make the
    /// flusher take the buffer before its one-second tick.
    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_taken_without_waiting_for_the_tick() {
        let (_dir, logs) = logs().await;
        for _ in 0..FLUSH_AT - 1 {
            logs.record(request(200, "10.0.0.1"));
        }
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(logs.inner.lock().entries.len(), FLUSH_AT - 1);
        logs.record(request(200, "10.0.0.1"));
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(
            logs.inner.lock().entries.is_empty(),
            "the full batch was left waiting"
        );
    }

    #[tokio::test]
    async fn a_batch_sizes_the_cache_and_spaces_the_checkpoints() {
        let (_dir, logs) = logs().await;
        // More than a batch's mark: the flusher is woken, but this task takes the buffer first.
        for _ in 0..1024 {
            logs.record(request(200, "10.0.0.1"));
        }
        assert_eq!(logs.flush().await.unwrap(), 1024);
        let db = logs.database().await.unwrap();
        let (cache, checkpoint) = db
            .write(|c| {
                let pragma =
                    |name: &str| c.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
                Ok::<_, Error>((pragma("cache_size")?, pragma("wal_autocheckpoint")?))
            })
            .await
            .unwrap();
        assert_eq!(cache, -2304);
        assert_eq!(checkpoint, i64::from(AUTOCHECKPOINT_PAGES));
    }

    /// The names of the indexes on `_logs` in the auxiliary database at `path`.
    fn log_indexes(path: &Path) -> Vec<String> {
        let c = rusqlite::Connection::open(path).unwrap();
        let mut names = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '_logs' AND sql IS NOT NULL ORDER BY name")
            .unwrap();
        names
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[tokio::test]
    async fn a_pocketbase_auxiliary_database_keeps_its_rows_and_loses_only_the_message_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUXILIARY_FILE);
        {
            // As PocketBase leaves it: its schema, its rows, no user_version.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute(
                "INSERT INTO _logs (id, level, message, data, created) VALUES ('pb1', 0, 'GET /api/health', '{}', '2026-12-01 10:00:00.000Z')",
                [],
            )
            .unwrap();
        }
        assert!(log_indexes(&path).contains(&"idx_logs_message".to_owned()));

        create_auxiliary(&path).await.unwrap();

        assert_eq!(log_indexes(&path), ["idx_logs_hour", "idx_logs_level"]);
        let (_data_dir, data) = tenant_database().await;
        let logs = Logs::new(path.clone(), data);
        logs.record(request(200, "10.0.0.1"));
        assert_eq!(logs.flush().await.unwrap(), 1);
        let page = logs
            .list(ListQuery {
                filter: "message = 'GET /api/health'".into(),
                ..ListQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.total_items, 1);
        assert_eq!(page.items[0]["id"], json!("pb1"));
    }

    #[tokio::test]
    async fn hourly_stats_count_each_hour_and_read_the_hours_from_the_index() {
        let (dir, logs) = logs().await;
        for (created, status) in [
            ("2026-12-01 09:59:59.999Z", 200),
            ("2026-12-01 10:00:00.000Z", 200),
            ("2026-12-01 10:30:00.000Z", 500),
            ("2026-12-01 10:59:59.999Z", 404),
            ("2026-12-02 10:00:00.000Z", 200),
        ] {
            let mut entry = request(status, "10.0.0.1");
            entry.created = created.into();
            logs.record(entry);
        }
        assert_eq!(logs.flush().await.unwrap(), 5);
        let hours = |stats: Vec<Value>| -> Vec<(String, i64)> {
            stats
                .iter()
                .map(|s| {
                    (
                        s["date"].as_str().unwrap().to_owned(),
                        s["total"].as_i64().unwrap(),
                    )
                })
                .collect()
        };
        assert_eq!(
            hours(logs.stats("").await.unwrap()),
            [
                ("2026-12-01 09:00:00.000Z".to_owned(), 1),
                ("2026-12-01 10:00:00.000Z".to_owned(), 3),
                ("2026-12-02 10:00:00.000Z".to_owned(), 1),
            ]
        );
        assert_eq!(
            hours(logs.stats("data.status >= 400").await.unwrap()),
            [("2026-12-01 10:00:00.000Z".to_owned(), 2)]
        );
        // The hours come in order from the hourly index, without a sort of every row.
        let c = rusqlite::Connection::open(dir.path().join(AUXILIARY_FILE)).unwrap();
        let plan: Vec<String> = c
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT COUNT(DISTINCT id), {HOUR_KEY} FROM _logs \
                 WHERE TRUE GROUP BY {HOUR_KEY} ORDER BY {HOUR_KEY}"
            ))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(plan, ["SCAN _logs USING INDEX idx_logs_hour"], "{plan:?}");
    }

    #[tokio::test]
    async fn a_new_auxiliary_database_has_pocketbase_indexes_but_the_message_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUXILIARY_FILE);
        create_auxiliary(&path).await.unwrap();
        assert_eq!(log_indexes(&path), ["idx_logs_hour", "idx_logs_level"]);
    }

    #[tokio::test]
    async fn entries_are_written_in_a_batch_and_listed() {
        let (_dir, logs) = logs().await;
        for status in [200, 404, 500] {
            logs.record(request(status, "10.0.0.1"));
        }
        assert_eq!(logs.flush().await.unwrap(), 3);
        let page = logs
            .list(ListQuery {
                filter: "data.status >= 400".into(),
                sort: "-data.status".into(),
                ..ListQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.total_items, 2);
        assert_eq!(page.items[0]["data"]["status"], json!(500));
        assert_eq!(page.items[0]["level"], json!(8));
        // Defaults keep IPs and drop the auth id.
        assert_eq!(page.items[0]["data"]["remoteIP"], json!("10.0.0.1"));
        assert!(page.items[0]["data"].get("authId").is_none());
    }

    #[tokio::test]
    async fn a_batch_written_in_chunks_keeps_every_row_whole() {
        // Two full chunks and a remainder, both kinds of data, every row told apart.
        let (_dir, logs) = logs().await;
        let count = INSERT_CHUNK * 2 + 5;
        for n in 0..count {
            let entry = if n % 2 == 0 {
                request(200 + n as i64, "10.0.0.1")
            } else {
                let data = RequestData {
                    method: "GET".into(),
                    url: format!("/n/{n}"),
                    status: 200 + n as u16,
                    ..RequestData::default()
                };
                Entry::request(level::INFO, format!("GET /n/{n}"), data)
            };
            logs.record(entry);
        }
        assert_eq!(logs.flush().await.unwrap(), count);
        let db = logs.database().await.unwrap();
        let rows = db
            .write(|c| {
                let mut rows = c.prepare(
                    "SELECT id, json_extract(data, '$.status'), message, created FROM _logs ORDER BY rowid",
                )?;
                let rows = rows
                    .query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                    })?
                    .collect::<warren_store::sql::Result<Vec<_>>>()?;
                Ok::<_, Error>(rows)
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), count);
        let ids: std::collections::HashSet<_> = rows.iter().map(|r| r.0.clone()).collect();
        assert_eq!(ids.len(), count, "every row has its own id");
        for (n, (id, status, message, created)) in rows.iter().enumerate() {
            assert_eq!(*status, 200 + n as i64, "row {n} in the order recorded");
            assert_eq!(id.len(), 15);
            assert_eq!(created.len(), 24);
            if n % 2 == 1 {
                assert_eq!(*message, format!("GET /n/{n}"));
            }
        }
    }

    #[tokio::test]
    async fn a_tenant_that_never_logged_lists_no_logs() {
        let (dir, logs) = logs().await;
        assert!(logs.open_database().is_none());
        assert!(!dir.path().join(AUXILIARY_FILE).exists());
        let page = logs.list(ListQuery::default()).await.unwrap();
        assert_eq!(page.total_items, 0);
        assert!(page.items.is_empty());
    }

    #[tokio::test]
    async fn settings_given_at_open_apply_from_the_first_entry() {
        let (_dir, logs) = logs().await;
        // The stored settings are the defaults (errors and successes kept); the ones given
        // say otherwise, and win without a read.
        let mut given = LogSettings::from_settings(&Value::Null);
        given.min_level = level::ERROR;
        logs.set_settings(given);
        logs.record(request(200, "10.0.0.1"));
        logs.record(request(500, "10.0.0.1"));
        assert_eq!(logs.flush().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn settings_decide_what_is_kept() {
        let (_dir, logs) = logs().await;
        set_logs(
            &logs,
            json!({"maxDays": 3, "minLevel": 4, "logIP": false, "logAuthId": true}),
        )
        .await;
        logs.record(request(200, "10.0.0.1"));
        logs.record(request(500, "10.0.0.1"));
        assert_eq!(logs.flush().await.unwrap(), 1);
        let page = logs.list(ListQuery::default()).await.unwrap();
        let data = &page.items[0]["data"];
        assert_eq!(data["status"], json!(500));
        assert!(data.get("remoteIP").is_none() && data.get("userIP").is_none());
        assert_eq!(data["authId"], json!("u1"));

        set_logs(&logs, json!({"maxDays": 0})).await;
        logs.record(request(500, "10.0.0.1"));
        // Turning logging back on does not revive what was recorded while it was off.
        set_logs(&logs, json!({"maxDays": 5})).await;
        assert_eq!(logs.flush().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn pruning_deletes_only_logs_older_than_max_days() {
        let (_dir, logs) = logs().await;
        let mut old = request(200, "a");
        old.created = "2001-01-01 00:00:00.000Z".into();
        logs.record(old);
        logs.record(request(200, "b"));
        logs.flush().await.unwrap();
        assert_eq!(logs.prune().await.unwrap(), 1);
        let page = logs.list(ListQuery::default()).await.unwrap();
        assert_eq!(page.total_items, 1);
        assert_eq!(page.items[0]["data"]["remoteIP"], json!("b"));
    }

    #[tokio::test]
    async fn the_background_task_writes_without_a_flush_call() {
        let (_dir, logs) = logs().await;
        logs.record(request(200, "a"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let page = logs.list(ListQuery::default()).await.unwrap();
            if page.total_items == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "the entry was never written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_auxiliary_database_closes_when_idle_and_reopens_for_the_next_entry() {
        let (_dir, logs) = logs().await;
        for round in 1..=2 {
            logs.record(request(200, "a"));
            // Written by the background task, then closed a second later with no new entry.
            let started = Instant::now();
            let closed = loop {
                let closed = logs.on_close().filter(|_| logs.open_database().is_none());
                if let (Some(closed), false) = (closed, logs.inner.lock().flusher) {
                    break closed;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "round {round}: the auxiliary database never closed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            tokio::time::timeout(Duration::from_secs(10), closed.wait())
                .await
                .unwrap();
            println!(
                "round {round}: written and closed after {:?}",
                started.elapsed()
            );
            // A query opens it again (and the background task closes it after).
            let page = logs.list(ListQuery::default()).await.unwrap();
            assert_eq!(page.total_items, round);
            assert!(logs.open_database().is_some());
        }
    }

    /// Rows in the `_logs` table of `path`, read on a connection of its own.
    fn rows_on_disk(path: &Path) -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM _logs", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_logging_now_and_then_closes_its_database_after_one_batch() {
        let (dir, logs) = logs().await;
        let path = dir.path().join(AUXILIARY_FILE);
        let started = Instant::now();
        logs.record(request(200, "a"));
        loop {
            let closed = logs.open_database().is_none() && !logs.inner.lock().flusher;
            if closed && started.elapsed() > Duration::from_millis(500) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "never closed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = started.elapsed();
        assert_eq!(rows_on_disk(&path), 1);
        // Written after a second; closed at once, not after another idle second.
        assert!(
            took < FLUSH_EVERY * 2 - Duration::from_millis(300),
            "{took:?}"
        );

        // Logging again soon after, it logs regularly: the database stays open a while.
        logs.record(request(200, "b"));
        let started = Instant::now();
        while rows_on_disk(&path) < 2 {
            assert!(started.elapsed() < Duration::from_secs(20), "never written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(logs.open_database().is_some());
    }

    #[tokio::test]
    async fn a_full_buffer_drops_entries_instead_of_growing() {
        let (_dir, logs) = logs().await;
        let mut data = Map::new();
        data.insert("url".into(), Value::String("x".repeat(8192)));
        let entry = Entry::new(level::INFO, "GET /", data);
        let per_entry = entry.size();
        for _ in 0..(MAX_BUFFER_BYTES / per_entry + 100) {
            logs.record(entry.clone());
        }
        let pending = logs.inner.lock();
        assert!(pending.bytes <= MAX_BUFFER_BYTES);
        assert!(pending.dropped >= 100);
    }

    #[test]
    fn the_size_bound_is_never_below_the_serialized_size() {
        for value in [
            json!({}),
            json!({"a": "plain", "b": 1.5e300, "c": -9_007_199_254_740_993i64, "d": null}),
            json!({"url": "/api/x?q=\"\u{1}\n\\", "ok": true, "ünï": "çödé 🦀"}),
        ] {
            let map = value.as_object().unwrap();
            let size = serde_json::to_vec(&value).unwrap().len();
            assert!(size_bound(map) >= size, "{value}");
        }
        assert_eq!(
            size_bound(json!({"n": [1]}).as_object().unwrap()),
            usize::MAX
        );
    }

    #[test]
    fn data_over_the_limit_is_cut_like_pocketbase() {
        let data = |pairs: Value| pairs.as_object().unwrap().clone();
        let mut small = data(json!({"a": "test1", "b": "test2"}));
        cut_data(&mut small, 100);
        assert_eq!(Value::Object(small), json!({"a": "test1", "b": "test2"}));
        // Exactly at the limit is kept whole: `{"a":"test1","b":"xx…"}` is 13 + 6 + len bytes.
        let exact = "x".repeat(81);
        let mut at_limit = data(json!({"a": "test1", "b": exact}));
        cut_data(&mut at_limit, 100);
        assert_eq!(at_limit["b"], json!(exact));
        // One byte more: `b` is cut inside its value and kept as null.
        let over = "x".repeat(82);
        let mut cut = data(json!({"a": "test1", "b": over, "c": 1}));
        cut_data(&mut cut, 100);
        assert_eq!(
            Value::Object(cut),
            json!({"__pb_truncated__": true, "a": "test1", "b": null})
        );
        // A key that does not fit whole is dropped with everything after it.
        let mut keyed = data(json!({"a": "x".repeat(90), "bbbbbbbbbbbb": 1}));
        cut_data(&mut keyed, 100);
        assert_eq!(
            Value::Object(keyed),
            json!({"__pb_truncated__": true, "a": "x".repeat(90)})
        );
    }

    #[tokio::test]
    async fn max_data_size_cuts_what_is_written() {
        let (_dir, logs) = logs().await;
        set_logs(&logs, json!({"maxDays": 5, "maxDataSize": 64})).await;
        let mut data = Map::new();
        data.insert("type".into(), "request".into());
        data.insert("url".into(), Value::String("/x".repeat(100)));
        logs.record(Entry::new(level::INFO, "m".repeat(MAX_MESSAGE + 10), data));
        assert_eq!(logs.flush().await.unwrap(), 1);
        let page = logs.list(ListQuery::default()).await.unwrap();
        let item = &page.items[0];
        assert_eq!(
            item["data"],
            json!({"__pb_truncated__": true, "type": "request", "url": null})
        );
        assert_eq!(item["message"].as_str().unwrap().len(), MAX_MESSAGE);
    }

    #[test]
    fn log_ids_look_like_pocketbase_ids_and_never_repeat() {
        let mut first = LogIds::now();
        let mut second = LogIds::now();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            for id in [first.next(), second.next()] {
                assert_eq!(id.len(), 15);
                assert!(id.bytes().all(|b| BASE36.contains(&b)), "{id}");
                assert!(seen.insert(id));
            }
        }
    }

    #[tokio::test]
    async fn request_entries_are_written_as_their_json_and_follow_the_settings() {
        let (_dir, logs) = logs().await;
        let data = RequestData {
            method: "GET".into(),
            url: "/api/health".into(),
            status: 200,
            exec_time: 0.5,
            remote_ip: Some("10.0.0.1".into()),
            user_ip: Some("10.0.0.2".into()),
            auth: "users".into(),
            auth_id: Some("u1".into()),
            ..RequestData::default()
        };
        logs.record(Entry::request(level::INFO, "GET /api/health", data.clone()));
        assert_eq!(logs.flush().await.unwrap(), 1);
        let page = logs.list(ListQuery::default()).await.unwrap();
        let mut expected = Value::Object(data.to_map());
        // The defaults keep the addresses and drop the auth id.
        expected.as_object_mut().unwrap().remove("authId");
        assert_eq!(page.items[0]["data"], expected);

        set_logs(
            &logs,
            json!({"maxDays": 5, "logIP": false, "logAuthId": true, "maxDataSize": 64}),
        )
        .await;
        logs.record(Entry::request(level::INFO, "GET /api/health", data.clone()));
        logs.flush().await.unwrap();
        let page = logs
            .list(ListQuery {
                filter: "data.authId = 'u1'".into(),
                ..ListQuery::default()
            })
            .await
            .unwrap();
        let written = &page.items[0]["data"];
        assert!(written.get("remoteIP").is_none() && written.get("userIP").is_none());
        assert_eq!(written["auth"], json!("users"));
        assert_eq!(written["authId"], json!("u1"));
        assert_eq!(written[TRUNCATED], json!(true));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut text = "é".repeat(10);
        truncate(&mut text, 5);
        assert_eq!(text, "éé");
    }
}
