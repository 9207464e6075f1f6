//! The cluster's control database shipped to the backup target: the node that takes the lead
//! restores the latest one before it serves the platform, then ships it synchronously under its
//! lead's term, so whichever node leads next serves every acknowledged platform write.
//!
//! The database stays one open handle for the whole process (every part of the control plane
//! holds it); taking the lead replaces its rows by those of the restored copy in one
//! transaction. Fencing: a lead ships under its term, a restore replays only the newest chain of
//! the highest term in the target, and a deposed leader's late segments extend its own, older
//! chain, which no later lead replays.
//!
//! The chain stays short: once a lead has shipped [`SNAPSHOT_AFTER`] bytes into its chain,
//! its shipper asks for a new snapshot, and after each snapshot the lead stores (the first of
//! its term included) the chains beyond the newest [`KEEP_CHAINS`] are deleted from the target
//! (`warren_backup::latest::prune_chains`; a deposed lead deletes nothing).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use warren_backup::Target;
use warren_backup::ship::{ShipGuard, Shipping};
use warren_backup::snapshot::{self, Source};
use warren_store::Database;

/// The control database's id in the backup target (tenant ids are 15 characters, so it never
/// names a tenant).
pub const ID: &str = "control";
/// How long a platform write waits for its commit to be stored in the backup target.
const SYNC_WAIT: Duration = Duration::from_secs(10);
/// Bytes a lead ships into its chain (compressed segments) before it takes a new snapshot: a
/// new leader's restore replays at most about this much.
pub const SNAPSHOT_AFTER: u64 = 8 << 20;
/// Snapshots (with their chains) kept in the target: the newest and two before it.
pub const KEEP_CHAINS: usize = 3;
/// How often a node that does not lead checkpoints its copy (nothing ships it meanwhile).
const UPKEEP: Duration = Duration::from_secs(10);

/// The control database of a cluster node with a backup target.
pub struct ShippedControl {
    /// The node's control database, opened for shipping.
    db: Database,
    /// Its directory (`<data dir>/cluster/control`).
    dir: PathBuf,
    target: Target,
    /// The term this node serves the platform under once restored and shipping (0: none).
    ready: AtomicU64,
    /// The running shipper of the current term.
    term: tokio::sync::Mutex<Option<Term>>,
    /// When the copy was last checkpointed while not leading.
    upkept: std::sync::Mutex<Option<std::time::Instant>>,
}

struct Term {
    generation: u64,
    _guard: ShipGuard,
    _snapshots: tokio::task::JoinHandle<()>,
}

impl ShippedControl {
    /// The control database `db` in directory `dir`, shipped to `target` while this node leads.
    pub fn new(db: Database, dir: PathBuf, target: Target) -> Self {
        Self {
            db,
            dir,
            target,
            ready: AtomicU64::new(0),
            term: tokio::sync::Mutex::new(None),
            upkept: std::sync::Mutex::new(None),
        }
    }

    /// Whether this node serves the control database of a lead it holds (restored and shipped
    /// under that lead's term).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) != 0
    }

    /// Takes the control database over for the lead of term `generation`: the latest state in
    /// the backup target (none there: this node's own copy, as for a cluster's first lead)
    /// replaces the rows here, and shipping starts under `generation` with a snapshot, before
    /// the platform is served. Writes are then acknowledged only once stored in the target.
    pub async fn take_over(&self, generation: u64) -> anyhow::Result<()> {
        let mut term = self.term.lock().await;
        if term.as_ref().is_some_and(|t| t.generation == generation) {
            return Ok(());
        }
        self.ready.store(0, Ordering::Release);
        *term = None;
        let log = self
            .db
            .commit_log()
            .ok_or_else(|| anyhow::anyhow!("the control database is not opened for shipping"))?
            .clone();
        log.set_sync(None);
        let started = std::time::Instant::now();
        let parent = self.dir.parent().unwrap_or(&self.dir).to_path_buf();
        let staging = parent.join(format!(".control-fetch-{}", unique()));
        let fetched =
            warren_backup::latest::fetch_latest(&self.target, ID, &staging, generation).await;
        let replaced = async {
            let Some(fetched) = fetched? else {
                tracing::info!(
                    term = generation,
                    "the backup target holds no control database: this node's own starts it"
                );
                return Ok::<_, anyhow::Error>(None);
            };
            let copy = staging.join("data.db");
            // Brought to this version's schema before its rows are taken.
            warren_control_plane::open_control_db_file(&copy, false)
                .await?
                .close()
                .await;
            let rows = self.db.replace_rows(&copy).await?;
            Ok(Some((fetched, rows)))
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&staging).await;
        let replaced = replaced?;

        // A new chain under this term: the shipper starts without state and asks for the
        // snapshot taken below.
        let state = self.dir.join(warren_backup::ship::STATE_FILE);
        if let Err(e) = tokio::fs::remove_file(&state).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e.into());
        }
        log.take();
        let shipping = Shipping::new(self.target.clone(), Duration::from_secs(1));
        shipping.set_ownership(Arc::new(move |_: &str| generation));
        shipping.set_snapshot_after(SNAPSHOT_AFTER);
        let mut wanted = shipping
            .take_wanted()
            .ok_or_else(|| anyhow::anyhow!("the control database's shipping started twice"))?;
        let guard = shipping.start(ID, &self.dir, self.db.clone());
        let source = Source {
            tenant_id: ID.to_string(),
            slug: ID.to_string(),
            dir: self.dir.clone(),
            file_bucket: None,
            exclusive: false,
        };
        let scratch = parent.join(".control-scratch");
        let chain = snapshot::create_shipped(
            &self.target,
            &scratch,
            &source,
            Some(&shipping),
            &warren_backup::quiet,
        )
        .await?;
        // The shipper's first ask was for the snapshot just taken.
        while wanted.try_recv().is_ok() {}
        let (target, again) = (self.target.clone(), shipping.clone());
        let snapshots = tokio::spawn(async move {
            prune(&target, generation).await;
            while wanted.recv().await.is_some() {
                let made = snapshot::create_shipped(
                    &target,
                    &scratch,
                    &source,
                    Some(&again),
                    &warren_backup::quiet,
                )
                .await;
                match made {
                    Ok(chain) => {
                        tracing::info!(term = generation, chain = %chain.id, "control database snapshot");
                        prune(&target, generation).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the control database's snapshot failed")
                    }
                }
            }
        });
        log.set_sync(Some(SYNC_WAIT));
        match &replaced {
            Some((fetched, rows)) => tracing::info!(
                term = generation,
                from = %fetched.from.id,
                transactions = fetched.transactions,
                rows,
                chain = %chain.id,
                ms = started.elapsed().as_millis() as u64,
                "control database restored from the backup target"
            ),
            None => {
                tracing::info!(term = generation, chain = %chain.id, "control database shipped")
            }
        }
        *term = Some(Term {
            generation,
            _guard: guard,
            _snapshots: snapshots,
        });
        self.ready.store(generation, Ordering::Release);
        Ok(())
    }

    /// While this node does not lead: its copy is not shipped, so now and then its WAL is
    /// checkpointed and the commits recorded for a shipper are dropped.
    pub async fn upkeep(&self) {
        {
            let mut upkept = self.upkept.lock().unwrap_or_else(|p| p.into_inner());
            if upkept.is_some_and(|at| at.elapsed() < UPKEEP) {
                return;
            }
            *upkept = Some(std::time::Instant::now());
        }
        if self.ready() {
            return;
        }
        if let Some(log) = self.db.commit_log() {
            log.take();
        }
        let done = self
            .db
            .with_writer_idle(|c| {
                c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                    .map_err(warren_store::Error::from)
            })
            .await;
        if let Err(e) = done.and_then(|r| r) {
            tracing::warn!(error = %e, "checkpointing the control database failed");
        }
    }
}

/// Deletes the control database's chains a restore no longer needs (see the module doc).
async fn prune(target: &Target, term: u64) {
    match warren_backup::latest::prune_chains(target, ID, term, KEEP_CHAINS).await {
        Ok(pruned) if pruned != Default::default() => tracing::info!(
            term,
            snapshots = pruned.snapshots,
            orphans = pruned.orphans,
            "old control database chains pruned"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(term, error = %e, "pruning the control database's chains failed"),
    }
}

/// A name part no other staging directory of this process has.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Prepares `<data dir>/cluster/control` for a node whose control database is shipped: a
/// single node's `control.db` becomes the node's first copy of it (the first node of a cluster
/// brings its accounts and tenants), and the copy is opened for shipping.
pub async fn open(data_dir: &std::path::Path) -> anyhow::Result<Database> {
    let dir = warren_control_plane::cluster_control_dir(data_dir);
    tokio::fs::create_dir_all(&dir).await?;
    let file = dir.join("data.db");
    let single = data_dir.join("control.db");
    if !file.is_file() && single.is_file() {
        warren_store::vacuum_into(&single, &file, false).await?;
        tracing::info!(
            "the control database of this data directory becomes its cluster copy ({})",
            file.display()
        );
    }
    Ok(warren_control_plane::open_control_db_file(&file, true).await?)
}
