//! Request logs of closed tenants, waiting to be written in fewer, larger batches.
//!
//! A tenant that closes with entries still buffered used to write them at once: one opening
//! of its `auxiliary.db`, one transaction and one close for a handful of rows. On a platform
//! whose traffic touches more tenants than stay open, nearly every request closes a tenant,
//! and that write cost more than serving the request. A [`Backlog`] keeps those entries in
//! memory instead, by file: the tenant's next opening takes them back (and writes them with
//! its own), and entries nobody takes are written once they have waited [`PARK_FOR`], once
//! no tenant has closed for [`QUIET`], or oldest first when the whole backlog passes
//! [`MAX_PARKED_BYTES`]. So a tenant in rotation writes its logs every few seconds instead of
//! at every close, and an idle platform still writes everything within about a second.
//!
//! Logs are not durable anyway (entries wait up to a second in an open tenant's buffer): a
//! crash loses at most the entries waiting here, a graceful stop writes them
//! ([`Backlog::write_all`]), and a caller about to act on a tenant's files writes or drops
//! them first ([`Backlog::settle`], [`Backlog::discard`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::{Entry, LogSettings, Store};

/// Longest a closed tenant's entries wait for its next opening before they are written.
const PARK_FOR: Duration = Duration::from_secs(10);
/// Once no tenant has closed with entries for this long, everything waiting is written.
const QUIET: Duration = Duration::from_secs(1);
/// Most bytes (roughly) waiting across every tenant; beyond it the oldest are written at once.
const MAX_PARKED_BYTES: usize = 16 << 20;
/// Writes of waiting entries in flight at once (each also takes a turn of the process-wide
/// bound on log writes).
const WRITERS: usize = 4;
/// Shortest pause between two looks for due entries, so that entries coming due one after
/// another are written in rounds instead of one look each.
const ROUND: Duration = Duration::from_millis(100);

/// Entries of closed tenants waiting to be written. Cheap to clone; one per registry of
/// tenants.
#[derive(Clone, Default)]
pub struct Backlog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Backlog")
            .field("tenants", &state.parked.len())
            .field("bytes", &state.bytes)
            .finish()
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer task early (the backlog passed its bound).
    wake: Notify,
    /// Told whenever a write ends.
    written: Notify,
}

#[derive(Default)]
struct State {
    /// Waiting entries by `auxiliary.db` path.
    parked: HashMap<PathBuf, Parked>,
    /// Writes in flight by path.
    writing: HashMap<PathBuf, usize>,
    /// The waiting entries' approximate size.
    bytes: usize,
    /// When entries were last parked.
    last_park: Option<Instant>,
    /// Whether the writer task runs.
    writer: bool,
}

/// One closed tenant's waiting entries.
pub(crate) struct Parked {
    /// Where they go (its auxiliary database closed while they wait).
    pub store: Arc<Store>,
    /// Oldest first, each with whether the settings were applied.
    pub entries: Vec<(Entry, bool)>,
    /// Their approximate size.
    pub bytes: usize,
    /// When the oldest of them was recorded.
    pub since: Instant,
    /// The settings for those recorded before the settings were known.
    pub settings: LogSettings,
}

impl Backlog {
    /// An empty backlog.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many tenants have entries waiting, and their approximate size in bytes.
    pub fn size(&self) -> (usize, usize) {
        let state = self.shared.lock();
        (state.parked.len(), state.bytes)
    }

    /// Keeps a closing tenant's entries until its next opening or until they are due. Needs
    /// a runtime (the caller checks).
    pub(crate) fn park(&self, parked: Parked, runtime: &tokio::runtime::Handle) {
        parked.store.close();
        let (start, over) = {
            let mut state = self.shared.lock();
            state.bytes += parked.bytes;
            state.last_park = Some(Instant::now());
            match state.parked.get_mut(&parked.store.path) {
                // An earlier opening's entries still wait (two openings overlapped): the
                // older entries stay first.
                Some(waiting) => {
                    waiting.entries.extend(parked.entries);
                    waiting.bytes += parked.bytes;
                    waiting.since = waiting.since.min(parked.since);
                }
                None => {
                    state.parked.insert(parked.store.path.clone(), parked);
                }
            }
            let start = !std::mem::replace(&mut state.writer, true);
            (start, state.bytes > MAX_PARKED_BYTES)
        };
        if start {
            runtime.spawn(writer(self.shared.clone()));
        } else if over {
            self.shared.wake.notify_one();
        }
    }

    /// Takes the entries waiting for `path`, for the tenant opening again.
    pub(crate) fn adopt(&self, path: &Path) -> Option<Parked> {
        let mut state = self.shared.lock();
        let parked = state.parked.remove(path)?;
        state.bytes -= parked.bytes;
        Some(parked)
    }

    /// Drops the entries waiting for `path` (its tenant's files are about to be replaced).
    /// A write already under way finishes.
    pub fn discard(&self, path: &Path) {
        drop(self.adopt(path));
    }

    /// Writes the entries waiting for `path` now and returns once no write to it is under
    /// way, its auxiliary database closed: for a caller about to move or delete the file,
    /// once no opening of its tenant is left to park more.
    pub async fn settle(&self, path: &Path) {
        loop {
            let written = self.shared.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let next = {
                let mut state = self.shared.lock();
                match state.parked.remove(path) {
                    Some(parked) => {
                        state.bytes -= parked.bytes;
                        *state.writing.entry(path.to_path_buf()).or_default() += 1;
                        Some(parked)
                    }
                    None if !state.writing.contains_key(path) => return,
                    None => None,
                }
            };
            match next {
                Some(parked) => write(&self.shared, parked).await,
                None => written.await,
            }
        }
    }

    /// Writes every waiting entry now (a server stopping), and returns once every write is
    /// done.
    pub async fn write_all(&self) {
        loop {
            let written = self.shared.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let (all, busy) = {
                let mut state = self.shared.lock();
                let all = take(&mut state, |_| true);
                (all, !state.writing.is_empty())
            };
            if all.is_empty() {
                if !busy {
                    return;
                }
                written.await;
                continue;
            }
            write_each(&self.shared, all).await;
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section moves entries between maps: a poisoned state is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Takes the waiting entries `due` says to write (oldest first), counting them as in flight.
fn take(state: &mut State, due: impl Fn(&Parked) -> bool) -> Vec<Parked> {
    let paths: Vec<PathBuf> = state
        .parked
        .iter()
        .filter(|(_, parked)| due(parked))
        .map(|(path, _)| path.clone())
        .collect();
    let mut taken: Vec<Parked> = paths
        .iter()
        .filter_map(|path| state.parked.remove(path))
        .collect();
    for parked in &taken {
        state.bytes -= parked.bytes;
        *state.writing.entry(parked.store.path.clone()).or_default() += 1;
    }
    taken.sort_by_key(|parked| parked.since);
    taken
}

/// The entries due now: those that waited long enough, every one once the platform is quiet,
/// and the oldest beyond the bound on bytes. Also when to look again.
fn due(state: &mut State, now: Instant) -> (Vec<Parked>, Option<Instant>) {
    let quiet = state
        .last_park
        .is_none_or(|at| now.duration_since(at) >= QUIET);
    let mut taken = take(state, |parked| {
        quiet || now.duration_since(parked.since) >= PARK_FOR
    });
    if state.bytes > MAX_PARKED_BYTES {
        let mut oldest: Vec<(Instant, PathBuf)> = state
            .parked
            .iter()
            .map(|(path, parked)| (parked.since, path.clone()))
            .collect();
        oldest.sort();
        let mut over = state.bytes - MAX_PARKED_BYTES / 2;
        let mut cut = std::collections::HashSet::new();
        for (_, path) in oldest {
            if over == 0 {
                break;
            }
            let bytes = state.parked.get(&path).map_or(0, |p| p.bytes);
            over = over.saturating_sub(bytes.max(1));
            cut.insert(path);
        }
        taken.extend(take(state, |parked| cut.contains(&parked.store.path)));
    }
    let next = state
        .parked
        .values()
        .map(|parked| parked.since + PARK_FOR)
        .min()
        .map(|at| match state.last_park {
            Some(last) => at.min(last + QUIET),
            None => at,
        });
    (taken, next)
}

/// The backlog's task: writes entries as they come due; ends once nothing waits.
async fn writer(shared: Arc<Shared>) {
    loop {
        let (taken, next) = {
            let mut state = shared.lock();
            let (taken, next) = due(&mut state, Instant::now());
            if taken.is_empty() && next.is_none() {
                // A park from now on starts a new task.
                state.writer = false;
                return;
            }
            (taken, next)
        };
        write_each(&shared, taken).await;
        let next = next
            .unwrap_or_else(Instant::now)
            .max(Instant::now() + ROUND);
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

/// Writes each of `taken`, at most [`WRITERS`] at once.
async fn write_each(shared: &Arc<Shared>, taken: Vec<Parked>) {
    let mut running = tokio::task::JoinSet::new();
    for parked in taken {
        while running.len() >= WRITERS {
            running.join_next().await;
        }
        let shared = shared.clone();
        running.spawn(async move { write(&shared, parked).await });
    }
    while running.join_next().await.is_some() {}
}

/// Writes one tenant's waiting entries and closes its auxiliary database again; counts the
/// write as done (it was counted in flight when taken).
async fn write(shared: &Shared, parked: Parked) {
    let Parked {
        store,
        entries,
        settings,
        ..
    } = parked;
    // A deleted tenant's directory is gone, and its logs with it.
    let deleted = store.path.parent().is_some_and(|dir| !dir.exists());
    if !deleted {
        if let Err(e) = store.write(entries, settings).await {
            tracing::warn!(error = %e, "request logs of a closed tenant lost");
        }
        if let Some(closed) = store.close() {
            closed.wait().await;
        }
    }
    {
        let mut state = shared.lock();
        if let Some(count) = state.writing.get_mut(&store.path) {
            *count -= 1;
            if *count == 0 {
                state.writing.remove(&store.path);
            }
        }
    }
    shared.written.notify_waiters();
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use warren_store::Database;

    use super::*;
    use crate::{ListQuery, Logs};

    /// A tenant's main database (its settings) in a temporary directory, and where its logs go.
    async fn tenant() -> (tempfile::TempDir, Database, PathBuf) {
        let (dir, data) = crate::tests::tenant_database().await;
        let aux = dir.path().join(crate::AUXILIARY_FILE);
        (dir, data, aux)
    }

    fn entry(n: usize) -> Entry {
        let data = json!({"type": "request", "status": 200, "n": n});
        Entry::new(
            crate::level::INFO,
            "GET /x",
            data.as_object().unwrap().clone(),
        )
    }

    /// Rows in the `_logs` table, read straight from the file.
    async fn rows(aux: &Path) -> i64 {
        let db = Database::open(aux, crate::options()).await.unwrap();
        let count = db
            .read(|c| {
                Ok::<_, crate::Error>(
                    c.query_row("SELECT count(*) FROM _logs", [], |r| r.get::<_, i64>(0))?,
                )
            })
            .await
            .unwrap();
        db.close().await;
        count
    }

    /// Opens the tenant's logs, records `n` entries and closes them again.
    fn open_record_close(data: &Database, aux: &Path, backlog: &Backlog, n: usize) {
        let logs = Logs::parking(aux.to_path_buf(), data.clone(), backlog);
        for i in 0..n {
            logs.record(entry(i));
        }
        drop(logs);
    }

    #[tokio::test]
    async fn a_closed_tenants_entries_wait_for_its_next_opening() {
        let (_dir, data, aux) = tenant().await;
        let backlog = Backlog::new();
        open_record_close(&data, &aux, &backlog, 3);
        let (tenants, bytes) = backlog.size();
        assert_eq!(tenants, 1);
        assert!(bytes > 0);
        // Nothing was written at the close.
        assert!(!aux.exists());

        // The next opening takes them back and writes them with its own.
        let logs = Logs::parking(aux.clone(), data.clone(), &backlog);
        assert_eq!(backlog.size(), (0, 0));
        logs.record(entry(3));
        assert_eq!(logs.flush().await.unwrap(), 4);
        let page = logs.list(ListQuery::default()).await.unwrap();
        assert_eq!(page.total_items, 4);
    }

    #[tokio::test]
    async fn waiting_entries_are_written_once_no_tenant_closes_for_a_while() {
        let (_dir, data, aux) = tenant().await;
        let backlog = Backlog::new();
        open_record_close(&data, &aux, &backlog, 2);
        let started = Instant::now();
        open_record_close(&data, &aux, &backlog, 3);
        while backlog.size().0 > 0 || !backlog.shared.lock().writing.is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the waiting entries were never written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Not before the platform had been quiet for a second since the last close.
        assert!(started.elapsed() >= QUIET);
        assert_eq!(rows(&aux).await, 5);
    }

    #[tokio::test]
    async fn settle_writes_the_waiting_entries_at_once_and_discard_drops_them() {
        let (_dir, data, aux) = tenant().await;
        let backlog = Backlog::new();
        open_record_close(&data, &aux, &backlog, 2);
        // Within the bound (for a hang), at once (the write does not wait its turn of 10 s).
        let settling = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), backlog.settle(&aux))
            .await
            .unwrap();
        assert!(settling.elapsed() < PARK_FOR / 2);
        assert_eq!(backlog.size(), (0, 0));
        assert_eq!(rows(&aux).await, 2);
        // Settling a file with nothing waiting returns at once.
        tokio::time::timeout(Duration::from_secs(10), backlog.settle(&aux))
            .await
            .unwrap();

        open_record_close(&data, &aux, &backlog, 5);
        backlog.discard(&aux);
        assert_eq!(backlog.size(), (0, 0));
        backlog.write_all().await;
        assert_eq!(rows(&aux).await, 2);
    }

    #[tokio::test]
    async fn write_all_writes_every_tenants_waiting_entries() {
        let (_a, data_a, aux_a) = tenant().await;
        let (_b, data_b, aux_b) = tenant().await;
        let backlog = Backlog::new();
        open_record_close(&data_a, &aux_a, &backlog, 2);
        open_record_close(&data_b, &aux_b, &backlog, 7);
        assert_eq!(backlog.size().0, 2);
        tokio::time::timeout(Duration::from_secs(10), backlog.write_all())
            .await
            .unwrap();
        assert_eq!(backlog.size(), (0, 0));
        assert_eq!((rows(&aux_a).await, rows(&aux_b).await), (2, 7));
    }

    #[tokio::test]
    async fn a_deleted_tenants_waiting_entries_are_not_written() {
        let (dir, data, aux) = tenant().await;
        let backlog = Backlog::new();
        open_record_close(&data, &aux, &backlog, 2);
        data.close().await;
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
        backlog.write_all().await;
        assert!(
            !path.exists(),
            "writing the logs created the directory again"
        );
    }

    fn parked(path: &str, bytes: usize, since: Instant) -> Parked {
        Parked {
            store: Store::new(PathBuf::from(path)),
            entries: Vec::new(),
            bytes,
            since,
            settings: LogSettings::from_settings(&serde_json::Value::Null),
        }
    }

    fn state(parked: Vec<Parked>, last_park: Instant) -> State {
        let mut state = State {
            last_park: Some(last_park),
            ..State::default()
        };
        for p in parked {
            state.bytes += p.bytes;
            state.parked.insert(p.store.path.clone(), p);
        }
        state
    }

    fn paths(taken: &[Parked]) -> Vec<&str> {
        taken
            .iter()
            .map(|p| p.store.path.to_str().unwrap())
            .collect()
    }

    #[test]
    fn entries_come_due_by_age_by_quiet_and_by_size() {
        let now = Instant::now() + Duration::from_secs(60);
        let ago = |secs: u64| now - Duration::from_secs(secs);

        // Busy (a close half a second ago): only those that waited long enough, oldest first.
        let mut busy = state(
            vec![
                parked("young", 10, ago(2)),
                parked("old", 10, ago(11)),
                parked("older", 10, ago(30)),
            ],
            now - QUIET / 2,
        );
        let (taken, next) = due(&mut busy, now);
        assert_eq!(paths(&taken), ["older", "old"]);
        assert_eq!(busy.bytes, 10);
        assert_eq!(busy.writing.len(), 2);
        // Next look: when the platform would be quiet, before "young" is due.
        assert_eq!(next, Some(now + QUIET / 2));

        // Quiet: everything.
        let mut quiet = state(vec![parked("young", 10, ago(2))], ago(5));
        let (taken, next) = due(&mut quiet, now);
        assert_eq!(paths(&taken), ["young"]);
        assert_eq!(next, None);

        // Over the bound: the oldest go until half of it is left.
        let third = MAX_PARKED_BYTES / 3 + 1;
        let mut full = state(
            vec![
                parked("a", third, ago(3)),
                parked("b", third, ago(2)),
                parked("c", third, ago(1)),
            ],
            now,
        );
        let (taken, _) = due(&mut full, now);
        assert_eq!(paths(&taken), ["a", "b"]);
        assert_eq!(full.bytes, third);
    }
}
