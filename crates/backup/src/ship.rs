//! Continuous WAL shipping: one task per open, shipped database sends the frames of each new
//! commit to the backup target as a segment, and the stored files that appeared with them.
//!
//! Driven by commits: the task sleeps on the database's commit counter, so an idle tenant costs
//! nothing; after a commit it ships at most once per interval. The database never checkpoints
//! on its own (see `Database::open_shipped`); this task checkpoints, on the writer between two
//! transactions, only when the WAL holds no frame it has not shipped. A WAL can therefore
//! restart (new salts) only after every frame of the previous one was shipped; any other
//! change (a WAL checkpointed behind its back, a lost state file) ends the generation, and the
//! next snapshot starts a new one.
//!
//! A generation is the snapshot it follows: the snapshot's database is the file as it was
//! right after a full checkpoint, and the generation's segments, numbered from 0, hold every
//! transaction committed after it. Layout in the target:
//! `wal/<tenant id>/<backup id>/<seq, 10 digits>.wal.zst` and
//! `wal/<tenant id>/<backup id>/files/<path under storage/>`. A segment is stored whole or
//! not at all; a crash before its state was saved ships it again under the same name.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use warren_store::Database;

use crate::target::Target;
use crate::wal::{self, Cursor, Segment};
use crate::{Error, Result};

/// Name of the shipping state file inside a tenant's directory.
pub const STATE_FILE: &str = ".wal-ship.json";
/// Most frames in one segment (about 16 MiB of 4 KiB pages).
const SEGMENT_FRAMES: usize = 4096;
/// Frames shipped from one WAL before it is checkpointed.
const CHECKPOINT_FRAMES: u32 = 1000;
/// Files modified this long before the last scan are looked at again (clock granularity,
/// uploads being renamed into place while a scan runs).
const FILE_SLACK_MS: i64 = 5000;
/// How often a tenant without a generation asks again for a snapshot.
const ASK_AGAIN: Duration = Duration::from_secs(60);

/// Key prefix of tenant `tenant_id`'s shipped WAL.
pub fn tenant_prefix(tenant_id: &str) -> String {
    format!("wal/{tenant_id}/")
}

/// Key prefix of the generation that follows backup `backup_id`.
pub fn generation_prefix(tenant_id: &str, backup_id: &str) -> String {
    format!("wal/{tenant_id}/{backup_id}/")
}

/// Key of segment `seq` of a chain, shipped by a node holding the tenant under ownership
/// generation `ownership`: `<seq, 10 digits>.wal.zst` for 0 (the single-node layout), else
/// `<seq>-o<ownership, 10 digits>.wal.zst`.
pub fn segment_key(tenant_id: &str, backup_id: &str, seq: u64, ownership: u64) -> String {
    let prefix = generation_prefix(tenant_id, backup_id);
    if ownership == 0 {
        format!("{prefix}{seq:010}.wal.zst")
    } else {
        format!("{prefix}{seq:010}-o{ownership:010}.wal.zst")
    }
}

/// Key of a generation's coverage mark: every transaction committed up to its `throughMs` is
/// in the generation's segments (rewritten by each shipping pass that leaves nothing behind).
pub fn through_key(tenant_id: &str, backup_id: &str) -> String {
    format!("{}through.json", generation_prefix(tenant_id, backup_id))
}

/// The coverage mark stored under [`through_key`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Through {
    /// Every transaction committed up to this moment (ms since the Unix epoch) is shipped.
    pub through_ms: i64,
}

/// Up to when (ms since the Unix epoch) the tenant in directory `dir` is known to have shipped
/// every transaction into generation `backup_id`: now, when its shipping state is in that
/// generation and its WAL holds no frame past what was shipped; `None` otherwise.
pub fn local_through(dir: &Path, backup_id: &str) -> Option<i64> {
    let now = warren_store::commits::now_ms();
    let state: State = serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE)).ok()?).ok()?;
    if state.generation != backup_id {
        return None;
    }
    let wal = dir.join("data.db-wal");
    let unshipped = match state.cursor {
        Some(cursor) => wal::has_frame_after(&wal, &cursor).ok()?,
        None => match wal::read_header(&wal).ok()? {
            // Nothing was shipped from this WAL: any frame in it is unshipped.
            Some(header) => wal::has_frame_after(&wal, &header).ok()?,
            None => false,
        },
    };
    // The database file changed behind the shipper's back: nothing is known.
    if unshipped || state.db_file != fingerprint(&dir.join("data.db")) {
        return None;
    }
    Some(now)
}

/// Records in the tenant directory `dir` (not open anywhere, its database without WAL) that
/// snapshot `backup_id`, taken of it as it is at `time_ms` under ownership generation
/// `ownership`, starts its chain: the shipper that opens the tenant continues that chain
/// instead of asking for a snapshot (see [`crate::snapshot::create_chain_start`]).
pub fn start_chain(dir: &Path, backup_id: &str, ownership: u64, time_ms: i64) -> Result<()> {
    let state = State {
        generation: backup_id.to_string(),
        seq: 0,
        cursor: None,
        backfilled: true,
        clean: true,
        files_since_ms: time_ms - FILE_SLACK_MS,
        db_file: fingerprint(&dir.join("data.db")),
        ownership,
        bytes: 0,
        states: first_state(),
    };
    let body = serde_json::to_vec(&state).map_err(|e| Error::Invalid(e.to_string()))?;
    let partial = dir.join(format!("{STATE_FILE}.partial"));
    std::fs::write(&partial, body)?;
    std::fs::rename(&partial, dir.join(STATE_FILE))?;
    Ok(())
}

/// Parses a segment key's file name: its sequence number and the ownership generation it was
/// shipped under (see [`segment_key`]).
pub fn parse_segment(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal.zst")?;
    let (seq, ownership) = match stem.split_once("-o") {
        Some((seq, ownership)) => (seq, Some(ownership)),
        None => (stem, None),
    };
    let number = |digits: &str| -> Option<u64> {
        (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())?
    };
    let seq = number(seq)?;
    match ownership {
        None => Some((seq, 0)),
        Some(digits) => number(digits).filter(|g| *g > 0).map(|g| (seq, g)),
    }
}

/// What a shipper remembers between runs (in [`STATE_FILE`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    /// The backup the current generation follows; empty when there is none.
    generation: String,
    /// Next segment number.
    seq: u64,
    /// Where the shipped frames end in the WAL they came from.
    cursor: Option<Cursor>,
    /// Every shipped frame was checkpointed into the database file: a WAL that starts over
    /// continues the generation.
    backfilled: bool,
    /// The database was closed with every frame shipped.
    clean: bool,
    /// Stored files modified before this (ms since the epoch) are shipped or in the snapshot.
    files_since_ms: i64,
    /// Size and modification time (ns) of the database file when the state was saved: a
    /// database file changed while nobody shipped it ends the generation.
    db_file: Option<(u64, i64)>,
    /// The ownership generation the chain was started under: a shipper holding the tenant
    /// under another one never extends it.
    #[serde(default)]
    ownership: u64,
    /// Bytes stored in the chain so far (sealed segments, files and state objects).
    #[serde(default)]
    bytes: u64,
    /// Next state object number (0 is stored with the chain's snapshot; see [`crate::state`]).
    #[serde(default = "first_state")]
    states: u64,
}

fn first_state() -> u64 {
    1
}

/// Where a snapshot's database copy stands in the WAL: the generation starts there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WalStart {
    /// Salts of the WAL at the checkpoint.
    pub salt1: u32,
    /// Second salt.
    pub salt2: u32,
    /// Frames of that WAL contained in the copy.
    pub frames: u32,
    /// When the checkpoint ran (ms since the Unix epoch): the copy holds every commit before.
    pub time_ms: i64,
}

enum Control {
    /// Copy the database file for snapshot `backup` into the path; start its generation.
    Base(String, PathBuf, oneshot::Sender<Result<WalStart>>),
    /// Ship everything committed so far.
    Flush(oneshot::Sender<Result<()>>),
    /// Store a state object of what changed (see [`Shipping::store_state`]).
    State(crate::state::Items, oneshot::Sender<Result<bool>>),
}

/// The node's WAL shipping. Cheap to clone.
#[derive(Clone)]
pub struct Shipping {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    interval: Duration,
    /// Tenant id → its shipper's control channel.
    live: Mutex<HashMap<String, mpsc::UnboundedSender<Control>>>,
    /// Tenants whose shipper needs a snapshot to start a generation.
    wanted: mpsc::UnboundedSender<String>,
    wanted_rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    /// Running shipper tasks.
    running: tokio::sync::watch::Sender<usize>,
    /// Tenant id → held by its running shipper: a reopened tenant's shipper starts only once
    /// the previous one has finished.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The ownership generation under which this node holds a tenant (0 on a single node).
    ownership: std::sync::RwLock<Ownership>,
    /// A chain holding more bytes than this asks for a new snapshot (0: never).
    snapshot_after: std::sync::atomic::AtomicU64,
}

/// Tells the ownership generation under which this node holds a tenant (by tenant id).
pub type Ownership = Arc<dyn Fn(&str) -> u64 + Send + Sync>;

/// Keeps a tenant's shipper running; dropping it ships what is pending and stops it (the
/// shipper holds the database open until then).
pub struct ShipGuard {
    _close: oneshot::Sender<()>,
}

impl std::fmt::Debug for ShipGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShipGuard")
    }
}

impl Shipping {
    /// Ships into `target`, at most once per `interval` per database.
    pub fn new(target: Target, interval: Duration) -> Self {
        let (wanted, wanted_rx) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                target,
                interval,
                live: Mutex::new(HashMap::new()),
                wanted,
                wanted_rx: Mutex::new(Some(wanted_rx)),
                running: tokio::sync::watch::Sender::new(0),
                locks: Mutex::new(HashMap::new()),
                ownership: std::sync::RwLock::new(Arc::new(|_: &str| 0)),
                snapshot_after: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Sets where shippers learn the ownership generation under which this node holds a
    /// tenant (the cluster's claim; 0 for every tenant until this is called, as on a single
    /// node). A shipper reads it when its tenant opens: its segments and snapshots carry it, and
    /// a chain started under another generation is never extended (a new snapshot starts one).
    /// A tenant claimed again under a new generation while open must be closed (drained) and
    /// reopened for its shipper to take the new one.
    pub fn set_ownership(&self, ownership: Ownership) {
        *self
            .inner
            .ownership
            .write()
            .unwrap_or_else(|p| p.into_inner()) = ownership;
    }

    /// Makes a shipper whose chain holds more than `bytes` (sealed segments and files stored
    /// since its snapshot) ask for a new snapshot through [`Shipping::take_wanted`], so a
    /// database that is written a lot keeps a short chain to replay; 0 (the default) never
    /// asks. A snapshot that does not come is asked for again after a minute.
    pub fn set_snapshot_after(&self, bytes: u64) {
        self.inner
            .snapshot_after
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The ownership generation under which this node holds tenant `tenant_id` now.
    pub fn ownership_of(&self, tenant_id: &str) -> u64 {
        let source = self
            .inner
            .ownership
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        source(tenant_id)
    }

    /// The tenant ids whose shipper waits for a snapshot to start a generation (once).
    pub fn take_wanted(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.inner
            .wanted_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Starts shipping tenant `tenant_id`'s database `db` (opened with
    /// `Database::open_shipped`) from its directory `dir`.
    pub fn start(&self, tenant_id: &str, dir: &Path, db: Database) -> ShipGuard {
        let (close, closed) = oneshot::channel();
        let (control, commands) = mpsc::unbounded_channel();
        self.inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant_id.to_string(), control.clone());
        self.inner.running.send_modify(|n| *n += 1);
        let shipper = Shipper {
            ownership: self.ownership_of(tenant_id),
            confirmed: false,
            unconfirmed: false,
            ship: self.inner.clone(),
            tenant: tenant_id.to_string(),
            dir: dir.to_path_buf(),
            wal: dir.join("data.db-wal"),
            db,
            state: State::default(),
            recent: HashSet::new(),
            times: std::collections::VecDeque::new(),
            asked: None,
        };
        let inner = self.inner.clone();
        let tenant = tenant_id.to_string();
        let lock = self
            .inner
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.clone())
            .or_default()
            .clone();
        tokio::spawn(async move {
            let held = lock.lock_owned().await;
            shipper.run(commands, closed).await;
            drop(held);
            let mut live = inner.live.lock().unwrap_or_else(|p| p.into_inner());
            if live.get(&tenant).is_some_and(|c| c.same_channel(&control)) {
                live.remove(&tenant);
            }
            drop(live);
            inner.running.send_modify(|n| *n -= 1);
        });
        ShipGuard { _close: close }
    }

    fn control(&self, tenant_id: &str) -> Option<mpsc::UnboundedSender<Control>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant_id)
            .cloned()
    }

    /// Whether tenant `tenant_id` is being shipped in this process.
    pub fn is_live(&self, tenant_id: &str) -> bool {
        self.control(tenant_id).is_some()
    }

    /// Asks tenant `tenant_id`'s shipper for the database copy of snapshot `backup_id` at
    /// `dest`; `None` when the tenant is not shipped in this process.
    pub async fn base(
        &self,
        tenant_id: &str,
        backup_id: &str,
        dest: &Path,
    ) -> Option<Result<WalStart>> {
        let control = self.control(tenant_id)?;
        let (reply, answer) = oneshot::channel();
        control
            .send(Control::Base(
                backup_id.to_string(),
                dest.to_path_buf(),
                reply,
            ))
            .ok()?;
        answer.await.ok()
    }

    /// Ships what tenant `tenant_id` has committed so far (false when it is not shipped here).
    pub async fn flush(&self, tenant_id: &str) -> Result<bool> {
        let Some(control) = self.control(tenant_id) else {
            return Ok(false);
        };
        let (reply, answer) = oneshot::channel();
        if control.send(Control::Flush(reply)).is_err() {
            return Ok(false);
        }
        answer
            .await
            .map_err(|_| Error::Target("the shipper stopped".into()))??;
        Ok(true)
    }

    /// Stores in tenant `tenant_id`'s current chain what `items` names (its code folders, its
    /// secrets) as it is now in its directory, through its shipper (one change at a time, so
    /// numbers follow the order of changes). `Some(Ok(true))` once stored and the chain's
    /// snapshot is known stored too; `Some(Ok(false))` when the tenant has no chain that a
    /// restore would use yet (a snapshot must carry it); `None` when the tenant is not shipped
    /// in this process.
    pub async fn store_state(
        &self,
        tenant_id: &str,
        items: crate::state::Items,
    ) -> Option<Result<bool>> {
        let control = self.control(tenant_id)?;
        let (reply, answer) = oneshot::channel();
        control.send(Control::State(items, reply)).ok()?;
        answer.await.ok()
    }

    /// Waits until every shipper has stopped (after their tenants closed), at most `limit`.
    pub async fn wait_stopped(&self, limit: Duration) -> bool {
        let mut running = self.inner.running.subscribe();
        tokio::time::timeout(limit, running.wait_for(|n| *n == 0))
            .await
            .is_ok()
    }
}

/// One database's shipper.
struct Shipper {
    ship: Arc<Inner>,
    /// The ownership generation this node holds the tenant under.
    ownership: u64,
    /// The chain's snapshot is known to be stored in the target (checked once per chain
    /// before any commit is reported shipped).
    confirmed: bool,
    /// The last pass shipped everything but could not report it: the chain's snapshot is not
    /// stored yet.
    unconfirmed: bool,
    tenant: String,
    dir: PathBuf,
    wal: PathBuf,
    db: Database,
    state: State,
    /// Files shipped since `files_since_ms` (not shipped again).
    recent: HashSet<String>,
    /// When a snapshot was last asked for.
    asked: Option<Instant>,
    /// Commits recorded by the writer whose frames are not shipped yet.
    times: std::collections::VecDeque<warren_store::Commit>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

impl Shipper {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Control>,
        mut closed: oneshot::Receiver<()>,
    ) {
        let Some(log) = self.db.commit_log().cloned() else {
            tracing::error!(tenant = %self.tenant, "a database not opened for shipping cannot be shipped");
            return;
        };
        let mut commits = log.subscribe();
        if let Err(e) = self.resume().await {
            tracing::warn!(tenant = %self.tenant, error = %e, "WAL shipping cannot resume");
        }
        let mut last = tokio::time::Instant::now() - self.ship.interval;
        // When the next shipping pass is due: the interval after the last pass once a commit
        // came (at once with synchronous shipping), or a retry after a failure.
        let mut due: Option<tokio::time::Instant> = self.pending().then(tokio::time::Instant::now);
        loop {
            let due_at =
                due.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = &mut closed => break,
                command = commands.recv() => match command {
                    Some(Control::Base(backup, dest, reply)) => {
                        let based = self.base(&backup, &dest).await;
                        // Writers waiting for a chain are released once its snapshot is stored.
                        if based.is_ok() {
                            due = Some(tokio::time::Instant::now());
                        }
                        let _ = reply.send(based);
                    }
                    Some(Control::State(items, reply)) => {
                        let _ = reply.send(self.store_state(&items).await);
                    }
                    Some(Control::Flush(reply)) => {
                        let shipped = self.ship(&log).await;
                        // A flush is a ship: the next one waits its interval from here.
                        if shipped.is_ok() && !self.unconfirmed {
                            due = None;
                        }
                        last = tokio::time::Instant::now();
                        let _ = reply.send(shipped);
                    }
                    None => break,
                },
                changed = commits.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    commits.borrow_and_update();
                    let interval = match log.sync_wait() {
                        Some(_) => Duration::ZERO,
                        None => self.ship.interval,
                    };
                    let at = (last + interval).max(tokio::time::Instant::now());
                    due = Some(due.map_or(at, |d| d.min(at)));
                }
                _ = tokio::time::sleep_until(due_at), if due.is_some() => {
                    due = self.ship_logged(&log).await;
                    last = tokio::time::Instant::now();
                }
            }
        }
        // Closing: ship what is pending, then let the database close.
        for attempt in 0..3 {
            match self.ship(&log).await {
                Ok(()) => {
                    if self.state.generation.is_empty() {
                        break;
                    }
                    let shipped_all = match self.state.cursor {
                        Some(cursor) => !wal::has_frame_after(&self.wal, &cursor).unwrap_or(true),
                        None => wal::read_header(&self.wal).ok().flatten().is_none(),
                    };
                    self.state.clean = shipped_all;
                    if let Err(e) = self.save().await {
                        tracing::warn!(tenant = %self.tenant, error = %e, "WAL shipping state not saved");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(tenant = %self.tenant, attempt, error = %e, "shipping the last WAL frames failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Whether frames may be waiting (a WAL left from a previous run).
    fn pending(&self) -> bool {
        !self.state.generation.is_empty()
    }

    async fn ship_logged(&mut self, log: &warren_store::CommitLog) -> Option<tokio::time::Instant> {
        match self.ship(log).await {
            // The chain's snapshot is still being stored: look again shortly.
            Ok(()) if self.unconfirmed => {
                Some(tokio::time::Instant::now() + Duration::from_millis(250))
            }
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(tenant = %self.tenant, error = %e, "WAL shipping failed; retrying");
                Some(tokio::time::Instant::now() + Duration::from_secs(1))
            }
        }
    }

    /// Loads the state and decides whether the generation continues.
    async fn resume(&mut self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let state: Option<State> = match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let wal = self.wal.clone();
        let header = blocking(move || wal::read_header(&wal)).await?;
        let mut state = state.unwrap_or_default();
        let db_file = fingerprint(self.db.path());
        let continues = !state.generation.is_empty()
            && state.ownership == self.ownership
            && match (header, state.cursor) {
                (Some(h), Some(c)) if h.salt1 == c.salt1 && h.salt2 == c.salt2 => true,
                // The WAL started over, or was checkpointed away when the database closed:
                // fine only if every frame of the old one had been shipped and the database
                // file was not changed by anyone else since.
                _ => (state.backfilled || state.clean) && state.db_file == db_file,
            };
        if continues {
            if header.is_none_or(|h| {
                state
                    .cursor
                    .is_none_or(|c| c.salt1 != h.salt1 || c.salt2 != h.salt2)
            }) {
                state.cursor = None;
                state.backfilled = true;
            }
        } else {
            if !state.generation.is_empty() {
                tracing::warn!(tenant = %self.tenant, generation = %state.generation, "the WAL changed while it was not shipped; a new snapshot starts a new generation");
            }
            state = State::default();
        }
        state.clean = false;
        self.state = state;
        self.save().await?;
        if self.state.generation.is_empty() {
            self.ask_for_snapshot();
        }
        Ok(())
    }

    fn ask_for_snapshot(&mut self) {
        if self.asked.is_some_and(|t| t.elapsed() < ASK_AGAIN) {
            return;
        }
        self.asked = Some(Instant::now());
        let _ = self.ship.wanted.send(self.tenant.clone());
    }

    async fn save(&mut self) -> Result<()> {
        self.state.db_file = fingerprint(self.db.path());
        let body = serde_json::to_vec(&self.state).map_err(|e| Error::Invalid(e.to_string()))?;
        let path = self.dir.join(STATE_FILE);
        let partial = self.dir.join(format!("{STATE_FILE}.partial"));
        blocking(move || {
            std::fs::write(&partial, body)?;
            std::fs::rename(&partial, &path)?;
            Ok(())
        })
        .await
    }

    /// Ships every committed frame not shipped yet (and the files that came with them).
    async fn ship(&mut self, log: &warren_store::CommitLog) -> Result<()> {
        if self.state.generation.is_empty() {
            self.ask_for_snapshot();
            return Ok(());
        }
        self.unconfirmed = false;
        loop {
            // Every commit recorded up to now is in the WAL read below.
            let read_at = warren_store::commits::now_ms();
            let committed = log.committed();
            let wal = self.wal.clone();
            let header = blocking(move || wal::read_header(&wal)).await?;
            let Some(header) = header else {
                self.report_shipped(log, committed).await?;
                return self.mark_through(read_at).await;
            };
            let from = match self.state.cursor {
                Some(c) if c.salt1 == header.salt1 && c.salt2 == header.salt2 => c,
                _ if self.state.backfilled => header,
                _ => {
                    tracing::warn!(tenant = %self.tenant, "the WAL started over with frames that were not shipped; waiting for a new snapshot");
                    self.state = State::default();
                    self.save().await?;
                    self.ask_for_snapshot();
                    return Ok(());
                }
            };
            let wal = self.wal.clone();
            let (frames, next) =
                blocking(move || wal::read_frames(&wal, &from, SEGMENT_FRAMES)).await?;
            if frames.frames.is_empty() {
                self.report_shipped(log, committed).await?;
                if from.frames >= CHECKPOINT_FRAMES && !self.state.backfilled {
                    self.checkpoint().await?;
                }
                return self.mark_through(read_at).await;
            }
            self.ship_files().await?;
            self.times.extend(log.take());
            // The writer records a commit's time just after its COMMIT returns: a read made
            // in between finds the commit without its time, which comes a moment later. (A
            // commit made before this process, recovered after a crash, never gets one.)
            for _ in 0..TIME_WAITS {
                let last = frames.commits.last();
                if last.is_none_or(|f| self.times.iter().any(|c| c.frames == *f)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                self.times.extend(log.take());
            }
            let times = commit_times(&frames.commits, &mut self.times, &self.wal);
            let segment = Segment {
                page_size: header.page_size,
                seq: self.state.seq,
                frames: frames.frames,
                commit_times: times,
            };
            let sealed = blocking(move || segment.seal()).await?;
            let key = segment_key(
                &self.tenant,
                &self.state.generation,
                self.state.seq,
                self.ownership,
            );
            let size = sealed.len() as u64;
            self.ship.target.put_bytes(&key, sealed).await?;
            self.state.bytes += size;
            self.state.seq += 1;
            self.state.cursor = Some(next);
            self.state.backfilled = false;
            self.save().await?;
            let limit = self
                .ship
                .snapshot_after
                .load(std::sync::atomic::Ordering::Relaxed);
            if limit > 0 && self.state.bytes > limit {
                self.ask_for_snapshot();
            }
        }
    }

    /// Tells the database's writers that every commit up to number `committed` is in the
    /// target (synchronous shipping waits on it), once the chain's snapshot is known stored:
    /// a chain without its snapshot restores nothing.
    async fn report_shipped(
        &mut self,
        log: &warren_store::CommitLog,
        committed: u64,
    ) -> Result<()> {
        if !self.snapshot_confirmed().await? {
            self.unconfirmed = true;
            return Ok(());
        }
        log.mark_shipped(committed);
        Ok(())
    }

    /// Whether the current chain's snapshot is known stored in the target (looked up until
    /// it is): a chain without its snapshot restores nothing.
    async fn snapshot_confirmed(&mut self) -> Result<bool> {
        if self.confirmed {
            return Ok(true);
        }
        let key = format!(
            "{}{}",
            crate::Manifest::dir(&self.tenant, &self.state.generation),
            crate::manifest::MANIFEST
        );
        match self
            .ship
            .target
            .get_bytes(&key, crate::manifest::MAX_MANIFEST)
            .await
        {
            Ok(_) => {
                self.confirmed = true;
                Ok(true)
            }
            // The chain's snapshot is still being stored (or failed).
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records in the target that every transaction committed up to `through_ms` is shipped.
    async fn mark_through(&mut self, through_ms: i64) -> Result<()> {
        if self.state.generation.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&Through { through_ms })
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let key = through_key(&self.tenant, &self.state.generation);
        self.ship.target.put_bytes(&key, body).await
    }

    /// Checkpoints the WAL if it holds nothing unshipped.
    async fn checkpoint(&mut self) -> Result<()> {
        let Some(cursor) = self.state.cursor else {
            return Ok(());
        };
        let wal = self.wal.clone();
        let commits = self.db.commit_log().cloned();
        let done = self
            .db
            .with_writer_idle(move |conn| -> Result<bool> {
                if wal::has_frame_after(&wal, &cursor)? {
                    return Ok(false);
                }
                let (log, ckpt): (i64, i64) =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get(1)?, r.get(2)?))
                    })?;
                let done = log == ckpt && log == i64::from(cursor.frames);
                if done && let Some(commits) = &commits {
                    forget_spent(commits);
                }
                Ok(done)
            })
            .await??;
        if done {
            self.times.clear();
            self.state.backfilled = true;
            self.save().await?;
        }
        Ok(())
    }

    /// The database copy of a snapshot: ship what is pending, checkpoint everything on the
    /// writer, copy the file (nothing checkpoints meanwhile: only this task does), and start
    /// the generation of `backup`.
    async fn base(&mut self, backup: &str, dest: &Path) -> Result<WalStart> {
        if crate::manifest::ownership_of(backup) != Some(self.ownership) {
            return Err(Error::Invalid(format!(
                "snapshot {backup} does not carry ownership generation {} under which this node holds the tenant",
                self.ownership
            )));
        }
        let log = self.db.commit_log().cloned();
        let mut found = None;
        for _ in 0..200 {
            if let Some(log) = &log {
                self.ship(log).await?;
            }
            let (wal, cursor, shipping) = (
                self.wal.clone(),
                self.state.cursor,
                !self.state.generation.is_empty(),
            );
            let commits = log.clone();
            let outcome = self
                .db
                .with_writer_idle(move |conn| -> Result<Option<(Option<Cursor>, i64)>> {
                    let header = wal::read_header(&wal)?;
                    if shipping {
                        let unshipped = match cursor {
                            Some(c) => wal::has_frame_after(&wal, &c)?,
                            None => header
                                .is_some_and(|h| wal::has_frame_after(&wal, &h).unwrap_or(true)),
                        };
                        if unshipped {
                            return Ok(None);
                        }
                    }
                    let (log, ckpt): (i64, i64) =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                            Ok((r.get(1)?, r.get(2)?))
                        })?;
                    if log != ckpt {
                        // A reader holds an older snapshot; try again in a moment.
                        return Ok(None);
                    }
                    if let Some(commits) = &commits {
                        forget_spent(commits);
                    }
                    let end = match header {
                        Some(h) => Some(wal::read_frames(&wal, &h, usize::MAX)?.1),
                        None => None,
                    };
                    Ok(Some((end, warren_store::commits::now_ms())))
                })
                .await??;
            match outcome {
                Some(found_now) => {
                    found = Some(found_now);
                    break;
                }
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        // What the times held were for is in the copy now, or shipped.
        self.times.clear();
        let Some((end, time_ms)) = found else {
            return Err(Error::Target(
                "the database stayed too busy to be checkpointed for a snapshot".into(),
            ));
        };
        let (source, copy) = (self.db.path().to_path_buf(), dest.to_path_buf());
        blocking(move || {
            std::fs::copy(&source, &copy)?;
            Ok(())
        })
        .await?;
        self.state = State {
            generation: backup.to_string(),
            seq: 0,
            cursor: end,
            backfilled: true,
            clean: false,
            files_since_ms: time_ms - FILE_SLACK_MS,
            db_file: None,
            ownership: self.ownership,
            bytes: 0,
            states: first_state(),
        };
        // A new chain: a long one may ask for the next snapshot at once.
        self.asked = None;
        self.confirmed = false;
        self.recent.clear();
        // The chain's state object 0: the secrets, which the snapshot does not hold, stored
        // before its manifest (the code folders are packed after this copy, so the snapshot
        // holds every deploy made before the chain started).
        self.state.bytes = crate::state::store_secrets(
            &self.ship.target,
            &self.tenant,
            backup,
            self.ownership,
            &self.dir,
        )
        .await?;
        self.save().await?;
        Ok(WalStart {
            salt1: end.map_or(0, |c| c.salt1),
            salt2: end.map_or(0, |c| c.salt2),
            frames: end.map_or(0, |c| c.frames),
            time_ms,
        })
    }

    /// Stores a state object of `items` in the current chain (see [`Shipping::store_state`]).
    async fn store_state(&mut self, items: &crate::state::Items) -> Result<bool> {
        if self.state.generation.is_empty() {
            self.ask_for_snapshot();
            return Ok(false);
        }
        let seq = self.state.states;
        let size = crate::state::store(
            &self.ship.target,
            &self.tenant,
            &self.state.generation,
            seq,
            self.ownership,
            &self.dir,
            items,
        )
        .await?;
        self.state.states = seq + 1;
        self.state.bytes += size;
        self.save().await?;
        // Not yet restorable while the chain's snapshot is not stored.
        self.snapshot_confirmed().await
    }

    /// Ships stored files modified since the last scan (new uploads) into the generation.
    async fn ship_files(&mut self) -> Result<()> {
        let storage = self.dir.join("storage");
        let since = self.state.files_since_ms;
        let started = warren_store::commits::now_ms();
        let found = blocking(move || scan(&storage, since)).await?;
        let prefix = format!(
            "{}files/",
            generation_prefix(&self.tenant, &self.state.generation)
        );
        for (rel, modified) in found {
            if self.recent.contains(&rel) {
                continue;
            }
            let path = self.dir.join("storage").join(&rel);
            let sealed = match blocking(move || {
                let bytes = std::fs::read(&path)?;
                wal::seal_file(&bytes)
            })
            .await
            {
                Ok(sealed) => sealed,
                // Deleted since the scan: nothing to ship.
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let size = sealed.len() as u64;
            match self
                .ship
                .target
                .put_bytes(&format!("{prefix}{rel}"), sealed)
                .await
            {
                Ok(()) => self.state.bytes += size,
                Err(Error::Invalid(e)) => {
                    tracing::warn!(tenant = %self.tenant, file = %rel, error = %e, "a stored file's name cannot be shipped");
                }
                Err(e) => return Err(e),
            }
            if modified >= started - FILE_SLACK_MS {
                self.recent.insert(rel);
            }
        }
        self.state.files_since_ms = started - FILE_SLACK_MS;
        let since = self.state.files_since_ms;
        let storage = self.dir.join("storage");
        self.recent.retain(|rel| {
            std::fs::metadata(storage.join(rel))
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|m| system_ms(m) >= since)
        });
        Ok(())
    }
}

fn system_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Files under `root` modified at or after `since` (ms), as `/`-separated relative paths.
/// Unfinished uploads (`*.part`) are left out.
fn scan(root: &Path, since: i64) -> Result<Vec<(String, i64)>> {
    let mut files = Vec::new();
    crate::remote::walk(root, std::path::PathBuf::new(), &mut files)?;
    let mut found = Vec::new();
    for path in files {
        if path.to_string_lossy().ends_with(".part") {
            continue;
        }
        let modified = std::fs::metadata(root.join(&path))
            .and_then(|m| m.modified())
            .map(system_ms)
            .unwrap_or(i64::MAX);
        if modified >= since
            && let Some(text) = path.to_str()
        {
            found.push((text.replace('\\', "/"), modified));
        }
    }
    Ok(found)
}

/// Size and modification time (ns since the epoch) of the file at `path`.
fn fingerprint(path: &Path) -> Option<(u64, i64)> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as i64;
    Some((meta.len(), modified))
}

/// Pauses of 1 ms a segment's read waits, at most, for the time of its last commit.
const TIME_WAITS: usize = 20;

/// Drops the commit times recorded so far, on the writer between two transactions, once
/// every frame in the WAL is shipped or checkpointed. They were for commits already shipped:
/// one recorded just after a segment was read (the writer records a commit's time once its
/// COMMIT has returned) would otherwise stay behind, and after the WAL starts over a later
/// commit ending at the same frame number would take its earlier time, so a replay to a
/// moment would apply a commit made after it.
fn forget_spent(commits: &warren_store::CommitLog) {
    drop(commits.take());
}

/// The commit time of each commit frame (1-based WAL indexes): from the commits the writer
/// recorded (consumed from `recorded`), else the WAL file's modification time (a commit
/// recovered after a crash; the file system's clock is coarse, a few milliseconds behind at
/// most).
fn commit_times(
    commits: &[u32],
    recorded: &mut std::collections::VecDeque<warren_store::Commit>,
    wal: &Path,
) -> Vec<i64> {
    let fallback = std::fs::metadata(wal)
        .ok()
        .and_then(|m| m.modified().ok())
        .map(system_ms)
        .unwrap_or_else(warren_store::commits::now_ms);
    let mut out = Vec::with_capacity(commits.len());
    for frame in commits {
        match recorded.iter().position(|c| c.frames == *frame) {
            Some(i) => {
                out.push(recorded[i].time_ms);
                recorded.drain(..=i);
            }
            None => out.push(fallback),
        }
    }
    while recorded.len() > 65_536 {
        recorded.pop_front();
    }
    // Times never go backwards within a segment.
    for i in 1..out.len() {
        if out[i] < out[i - 1] {
            out[i] = out[i - 1];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{FORMAT, Manifest};
    use warren_store::{Migration, Options};

    const SCHEMA: &[Migration] = &[Migration {
        version: 1,
        sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);
              CREATE TABLE _collections (id TEXT, name TEXT, type TEXT, fields TEXT);",
    }];

    fn count(db: &Path) -> i64 {
        let conn = warren_store::sql::Connection::open(db).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    /// Commits spread over several WALs (checkpoints and restarts in between) are shipped,
    /// and a replay onto the snapshot's copy reaches exactly the commits up to a moment.
    #[tokio::test]
    async fn shipped_commits_replay_up_to_any_moment() {
        let dir = tempfile::tempdir().unwrap();
        let tenant_dir = dir.path().join("tenant");
        std::fs::create_dir_all(tenant_dir.join("storage")).unwrap();
        let db = Database::open_shipped(
            tenant_dir.join("data.db"),
            Options {
                migrations: SCHEMA,
                ..Options::default()
            },
        )
        .await
        .unwrap();
        let target = Target::Dir(dir.path().join("target"));
        let shipping = Shipping::new(target.clone(), Duration::from_millis(5));
        let mut wanted = shipping.take_wanted().unwrap();
        let guard = shipping.start("t1", &tenant_dir, db.clone());
        assert_eq!(wanted.recv().await.as_deref(), Some("t1"));
        let id = "20261125T000000Z-00000001";
        let copy = dir.path().join("copy.db");
        let start = shipping.base("t1", id, &copy).await.unwrap().unwrap();

        // 1 KiB rows: 1,200 commits fill the WAL past the checkpoint threshold.
        let mut marks = Vec::new();
        for i in 0..1200 {
            db.write(move |c| {
                c.execute("INSERT INTO t (v) VALUES (?1)", [vec![i as u8; 1024]])?;
                Ok::<_, warren_store::Error>(())
            })
            .await
            .unwrap();
            if i % 300 == 299 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                marks.push((i + 1, warren_store::commits::now_ms()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if i % 100 == 0 {
                shipping.flush("t1").await.unwrap();
            }
        }
        shipping.flush("t1").await.unwrap();
        let keys = target.list(&generation_prefix("t1", id)).await.unwrap();
        assert!(keys.len() > 3, "{keys:?}");
        // The WAL was checkpointed and started over (new salts) along the way.
        let now = wal::read_header(&tenant_dir.join("data.db-wal"))
            .unwrap()
            .unwrap();
        assert_ne!((now.salt1, now.salt2), (start.salt1, start.salt2));

        let manifest = Manifest {
            format: FORMAT,
            id: id.into(),
            tenant_id: "t1".into(),
            slug: "t".into(),
            created: String::new(),
            finished: String::new(),
            objects: Vec::new(),
            counts: Default::default(),
            wal: Some(start),
            ownership_generation: 0,
        };
        for (rows, at) in marks {
            let staging = dir.path().join(format!("staging-{rows}"));
            std::fs::create_dir_all(&staging).unwrap();
            std::fs::copy(&copy, staging.join("data.db")).unwrap();
            crate::pitr::replay(&target, &manifest, &staging, at, &crate::quiet)
                .await
                .unwrap();
            assert_eq!(count(&staging.join("data.db")), rows);
        }

        // Closing ships what is pending and leaves a clean state.
        db.write(|c| {
            c.execute("INSERT INTO t (v) VALUES (x'00')", [])?;
            Ok::<_, warren_store::Error>(())
        })
        .await
        .unwrap();
        drop(guard);
        drop(db);
        assert!(shipping.wait_stopped(Duration::from_secs(10)).await);
        let state: State =
            serde_json::from_slice(&std::fs::read(tenant_dir.join(STATE_FILE)).unwrap()).unwrap();
        assert!(state.clean);
        let staging = dir.path().join("staging-all");
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::copy(&copy, staging.join("data.db")).unwrap();
        crate::pitr::replay(&target, &manifest, &staging, i64::MAX, &crate::quiet)
            .await
            .unwrap();
        assert_eq!(count(&staging.join("data.db")), 1201);
    }

    /// A replay as of a moment whose transactions are not all shipped yet is refused, not
    /// answered with the older state the shipped segments hold; once shipped, it is complete.
    #[tokio::test]
    async fn a_moment_past_the_shipped_wal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tenant_dir = dir.path().join("tenant");
        std::fs::create_dir_all(tenant_dir.join("storage")).unwrap();
        let db = Database::open_shipped(
            tenant_dir.join("data.db"),
            Options {
                migrations: SCHEMA,
                ..Options::default()
            },
        )
        .await
        .unwrap();
        let target = Target::Dir(dir.path().join("target"));
        // Long enough that nothing ships on its own between the steps below.
        let shipping = Shipping::new(target.clone(), Duration::from_secs(2));
        let _wanted = shipping.take_wanted().unwrap();
        let _guard = shipping.start("t1", &tenant_dir, db.clone());
        let id = "20261125T000000Z-00000002";
        let copy = dir.path().join("copy.db");
        let start = shipping.base("t1", id, &copy).await.unwrap().unwrap();
        let manifest = Manifest {
            format: FORMAT,
            id: id.into(),
            tenant_id: "t1".into(),
            slug: "t".into(),
            created: String::new(),
            finished: String::new(),
            objects: Vec::new(),
            counts: Default::default(),
            wal: Some(start.clone()),
            ownership_generation: 0,
        };
        let insert = || {
            db.write(|c| {
                c.execute("INSERT INTO t (v) VALUES (x'01')", [])?;
                Ok::<_, warren_store::Error>(())
            })
        };
        // Commit times are in milliseconds and a moment includes the commits of its own
        // millisecond: the first commit must come after the base's moment for the last check.
        tokio::time::sleep(Duration::from_millis(5)).await;
        insert().await.unwrap();
        shipping.flush("t1").await.unwrap();
        insert().await.unwrap();
        let restore = async |at: i64| {
            let staging = tempfile::tempdir_in(dir.path()).unwrap();
            std::fs::copy(&copy, staging.path().join("data.db")).unwrap();
            let done = crate::pitr::replay(&target, &manifest, staging.path(), at, &crate::quiet)
                .await
                .unwrap();
            let through = crate::pitr::shipped_through(&target, &manifest)
                .await
                .unwrap();
            let local = local_through(&tenant_dir, id);
            let covered = crate::pitr::check_covered(&manifest, at, &done, through, local);
            (covered, count(&staging.path().join("data.db")))
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = warren_store::commits::now_ms();
        // The second row is committed but not shipped: the shipped WAL ends before `now`.
        let (covered, rows) = restore(now).await;
        assert_eq!(rows, 1);
        assert!(
            matches!(&covered, Err(Error::Invalid(m)) if m.contains("complete only up to")),
            "{covered:?}"
        );
        // Shipped, the same moment restores whole.
        shipping.flush("t1").await.unwrap();
        let (covered, rows) = restore(now).await;
        covered.unwrap();
        assert_eq!(rows, 2);
        // A moment before both commits: the replay meets a later one, so it is complete.
        let (covered, rows) = restore(start.time_ms).await;
        covered.unwrap();
        assert_eq!(rows, 0);
    }

    /// With synchronous shipping a write returns only once its commit is in the target; when
    /// the target fails, the write is refused after the wait (committed locally, unacknowledged).
    #[tokio::test]
    async fn a_synchronous_write_returns_once_its_commit_is_shipped() {
        let dir = tempfile::tempdir().unwrap();
        let tenant_dir = dir.path().join("tenant");
        std::fs::create_dir_all(tenant_dir.join("storage")).unwrap();
        let db = Database::open_shipped(
            tenant_dir.join("data.db"),
            Options {
                migrations: SCHEMA,
                ..Options::default()
            },
        )
        .await
        .unwrap();
        let log = db.commit_log().unwrap().clone();
        log.set_sync(Some(Duration::from_millis(1500)));
        let target = Target::Dir(dir.path().join("target"));
        // A long interval: synchronous shipping does not wait for it.
        let shipping = Shipping::new(target.clone(), Duration::from_secs(3600));
        let _wanted = shipping.take_wanted().unwrap();
        let _guard = shipping.start("t1", &tenant_dir, db.clone());
        let source = crate::snapshot::Source {
            tenant_id: "t1".into(),
            slug: "t".into(),
            dir: tenant_dir.clone(),
            file_bucket: None,
            exclusive: false,
        };
        let manifest = crate::snapshot::create_shipped(
            &target,
            &dir.path().join("scratch"),
            &source,
            Some(&shipping),
            &crate::quiet,
        )
        .await
        .unwrap();
        let insert = || {
            db.write(|c| {
                c.execute("INSERT INTO t (v) VALUES (x'01')", [])?;
                Ok::<_, warren_store::Error>(())
            })
        };
        let started = Instant::now();
        for _ in 0..8 {
            insert().await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        // Acknowledged means replayable from the target right now.
        let staging = dir.path().join("staging");
        crate::restore::fetch(&target, &manifest, &staging, &crate::quiet)
            .await
            .unwrap();
        crate::pitr::replay(&target, &manifest, &staging, i64::MAX, &crate::quiet)
            .await
            .unwrap();
        assert_eq!(count(&staging.join("data.db")), 8);

        // The target breaks: a file where its directory was.
        std::fs::rename(dir.path().join("target"), dir.path().join("target-away")).unwrap();
        std::fs::write(dir.path().join("target"), b"not a directory").unwrap();
        let refused = insert().await.unwrap_err();
        assert!(
            matches!(refused, warren_store::Error::NotShipped(_)),
            "{refused:?}"
        );
        assert_eq!(count(&tenant_dir.join("data.db")), 9);
    }

    #[test]
    fn segment_names_sort_and_parse() {
        let key = segment_key("t1", "20261125T101010Z-0000000a", 42, 0);
        assert_eq!(key, "wal/t1/20261125T101010Z-0000000a/0000000042.wal.zst");
        assert_eq!(parse_segment("0000000042.wal.zst"), Some((42, 0)));
        assert_eq!(parse_segment("42.wal.zst"), None);
        assert!(segment_key("t", "b", 9, 0) < segment_key("t", "b", 10, 0));
        let owned = segment_key("t1", "b", 3, 7);
        assert_eq!(owned, "wal/t1/b/0000000003-o0000000007.wal.zst");
        assert_eq!(
            parse_segment("0000000003-o0000000007.wal.zst"),
            Some((3, 7))
        );
        assert_eq!(parse_segment("0000000003-o0000000000.wal.zst"), None);
        assert_eq!(parse_segment("0000000003-o7.wal.zst"), None);
        assert!(segment_key("t", "b", 9, 7) < segment_key("t", "b", 10, 7));
    }
}
