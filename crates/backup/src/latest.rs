//! Restoring a tenant's latest shipped state on a node that takes it over: the newest snapshot
//! of the highest ownership generation (or the chain start whose shipped WAL reaches past a
//! newer plain copy, see [`newest_chain`]) and every segment of its chain, replayed to the end,
//! the chain's state objects (code deployed and secrets set since, see [`crate::state`])
//! applied, checked, put in place, and a new chain started under the new owner's ownership generation
//! so that no object of a previous owner is ever extended.
//!
//! Fencing: the chain chosen is the newest one of the highest ownership generation in the
//! target, and within it only segments shipped under that generation are replayed (see
//! [`crate::pitr::replay`]). A stale owner that keeps shipping into its own, older chain after
//! a newer owner started one is therefore never replayed again.

use std::path::{Path, PathBuf};

use crate::manifest::Manifest;
use crate::snapshot::{self, Source};
use crate::target::Target;
use crate::{Error, Result, pitr, restore};

/// What a restore of the latest state did.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// The snapshot it started from.
    pub from: Manifest,
    /// WAL transactions replayed on it.
    pub transactions: u64,
    /// Commit time (ms since the epoch) of the last transaction replayed (0 when none).
    pub last_commit_ms: i64,
    /// State objects (code deployed, secrets set after the snapshot) applied on it.
    pub states: usize,
    /// The snapshot that starts the new owner's chain.
    pub chain: Manifest,
}

/// The snapshot a restore of tenant `tenant_id`'s latest state starts from: the newest of the
/// highest ownership generation, or the chain start before it when that newest is a plain
/// copy the chain's shipped WAL is known to reach past (see [`candidates`]); `None` when the
/// target holds no backup of it.
pub async fn newest_chain(target: &Target, tenant_id: &str) -> Result<Option<Manifest>> {
    let Some((newest, chain)) = candidates(restore::list(target, tenant_id).await?) else {
        return Ok(None);
    };
    let Some(chain) = chain else {
        return Ok(Some(newest));
    };
    let through_ms = pitr::shipped_through(target, &chain).await?;
    Ok(Some(if reaches_past(&newest, through_ms) {
        chain
    } else {
        newest
    }))
}

/// What a restore of the latest state chooses between, from `all` as [`restore::list`] orders
/// them: the newest snapshot of the highest ownership generation (clocks of different owners
/// are not compared: the highest generation wins over any moment) and, when that newest is a
/// plain copy (taken without the tenant's shipper, so it starts no chain), the newest chain
/// start of the same generation before it. The chain start is the latest state when its
/// shipped WAL reaches past the copy ([`reaches_past`]): replayed, it holds everything the
/// copy does and the writes shipped since.
pub fn candidates(mut all: Vec<Manifest>) -> Option<(Manifest, Option<Manifest>)> {
    let generation = all.iter().map(|m| m.ownership_generation).max()?;
    all.retain(|m| m.ownership_generation == generation);
    let newest = all.pop()?;
    if newest.wal.is_some() {
        return Some((newest, None));
    }
    let chain = all.into_iter().rev().find(|m| m.wal.is_some());
    Some((newest, chain))
}

/// Whether a chain whose shipped WAL is known complete up to `known_ms` holds everything
/// plain copy `copy` holds (the moment the copy started, to the millisecond).
pub fn reaches_past(copy: &Manifest, known_ms: Option<i64>) -> bool {
    let copied_ms = crate::parse_time(&copy.created)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(i64::MAX);
    known_ms.is_some_and(|known| known >= copied_ms)
}

/// Restores tenant `tenant_id`'s latest shipped state into directory `dir` for a node that
/// holds the tenant under ownership generation `ownership`. `dir` is replaced atomically (a
/// stale directory there is moved aside and removed); nothing changes on any error. Scratch
/// space is taken beside `dir`, on its file system. Before this returns, a snapshot of the
/// restored state under `ownership` is stored: the new owner's commits extend that chain, and
/// a restore of the latest state from then on starts from it.
pub async fn restore_latest(
    target: &Target,
    tenant_id: &str,
    dir: &Path,
    ownership: u64,
) -> Result<Handoff> {
    let Some(from) = newest_chain(target, tenant_id).await? else {
        return Err(Error::NotFound(format!("no backup of tenant {tenant_id}")));
    };
    if from.ownership_generation > ownership {
        return Err(Error::Invalid(format!(
            "the target holds tenant {tenant_id}'s state under ownership generation {}, newer than {ownership}: this claim is stale",
            from.ownership_generation
        )));
    }
    let root = dir
        .parent()
        .ok_or_else(|| Error::Invalid("the tenant directory has no parent".into()))?;
    let suffix = format!("{tenant_id}-{:08x}", rand::random::<u32>());
    let staging = root.join(format!(".handoff-{suffix}"));
    let scratch = root.join(format!(".handoff-scratch-{suffix}"));
    let done = async {
        restore::fetch(target, &from, &staging, &crate::quiet).await?;
        let replayed = pitr::replay(target, &from, &staging, i64::MAX, &crate::quiet).await?;
        // The code deployed and the secrets set after the snapshot, newest last.
        let states = crate::state::apply(
            target,
            tenant_id,
            &from.id,
            from.ownership_generation,
            &staging,
        )
        .await?;
        let source = Source {
            tenant_id: tenant_id.to_string(),
            slug: from.slug.clone(),
            dir: staging.clone(),
            file_bucket: None,
            exclusive: false,
        };
        let chain =
            snapshot::create_chain_start(target, &scratch, &source, ownership, &crate::quiet)
                .await?;
        let time_ms = chain.wal.as_ref().map_or(0, |w| w.time_ms);
        let (at, id) = (staging.clone(), chain.id.clone());
        blocking(move || crate::ship::start_chain(&at, &id, ownership, time_ms)).await?;
        put_in_place(&staging, dir).await?;
        Ok(Handoff {
            from: from.clone(),
            transactions: replayed.transactions,
            last_commit_ms: replayed.last_ms,
            states,
            chain,
        })
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    if done.is_err() {
        let _ = tokio::fs::remove_dir_all(&staging).await;
    }
    done
}

/// What [`fetch_latest`] brought.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The snapshot it started from.
    pub from: Manifest,
    /// WAL transactions replayed on it.
    pub transactions: u64,
    /// Commit time (ms since the epoch) of the last transaction replayed (0 when none).
    pub last_commit_ms: i64,
}

/// Fetches database `id`'s latest shipped state from `target` into the new directory `dest`
/// (which must not exist): the newest snapshot of the highest ownership generation and every
/// segment of its chain shipped under that generation, replayed to the end. Unlike
/// [`restore_latest`] it starts no chain: for a database that stays open elsewhere (the
/// cluster's control database, whose rows are then copied into the open one), whose shipper
/// starts its own. `None` when the target holds nothing of it; fails when it holds a state
/// of a higher ownership generation than `ownership` (the caller's lead or claim is stale).
pub async fn fetch_latest(
    target: &Target,
    id: &str,
    dest: &Path,
    ownership: u64,
) -> Result<Option<Fetched>> {
    let Some(from) = newest_chain(target, id).await? else {
        return Ok(None);
    };
    if from.ownership_generation > ownership {
        return Err(Error::Invalid(format!(
            "the target holds {id}'s state under ownership generation {}, newer than {ownership}",
            from.ownership_generation
        )));
    }
    restore::fetch(target, &from, dest, &crate::quiet).await?;
    match pitr::replay(target, &from, dest, i64::MAX, &crate::quiet).await {
        Ok(replayed) => Ok(Some(Fetched {
            from,
            transactions: replayed.transactions,
            last_commit_ms: replayed.last_ms,
        })),
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(dest).await;
            Err(e)
        }
    }
}

/// What [`prune_chains`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Snapshots deleted, with the chain of segments that followed each.
    pub snapshots: usize,
    /// Objects of chains without a snapshot deleted.
    pub orphans: usize,
}

/// Deletes the chains of database `id` that a restore of its latest state can no longer use,
/// for the writer holding it under ownership generation `ownership` once its newest snapshot
/// is stored: the snapshots beyond the newest `keep` (at least 1) in the order a restore picks
/// them (ownership generation, then the moment each holds), each with its segments, and the
/// segments of chains whose snapshot is not in the target — only those of an older ownership
/// generation, or of this one before the newest snapshot kept, so that a snapshot being stored
/// by this writer or a newer one keeps its chain. A writer whose ownership generation is no
/// longer the highest in the target (a deposed lead) deletes nothing.
pub async fn prune_chains(
    target: &Target,
    id: &str,
    ownership: u64,
    keep: usize,
) -> Result<Pruned> {
    let mut all: Vec<(usize, Manifest)> = restore::list(target, id)
        .await?
        .into_iter()
        .enumerate()
        .collect();
    // Newest first, in the order `newest_chain` picks.
    all.sort_by_key(|(i, m)| std::cmp::Reverse((m.ownership_generation, *i)));
    let Some((_, newest)) = all.first() else {
        return Ok(Pruned::default());
    };
    if newest.ownership_generation != ownership {
        return Ok(Pruned::default());
    }
    let newest_id = newest.id.clone();
    let mut pruned = Pruned::default();
    let mut kept: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (rank, (_, manifest)) in all.iter().enumerate() {
        if rank < keep.max(1) {
            kept.insert(manifest.id.clone());
        } else {
            restore::delete(target, manifest).await?;
            pruned.snapshots += 1;
        }
    }
    let prefix = crate::ship::tenant_prefix(id);
    for key in target.list(&prefix).await? {
        let Some(chain) = key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('/').next())
        else {
            continue;
        };
        if kept.contains(chain) {
            continue;
        }
        let Some(generation) = crate::manifest::ownership_of(chain) else {
            continue;
        };
        // Same ownership generation: the same writer's clock, so ids compare by time.
        if generation < ownership || (generation == ownership && chain < newest_id.as_str()) {
            target.delete(&key).await?;
            pruned.orphans += 1;
        }
    }
    Ok(pruned)
}

/// Moves `staging` to `dir` by renames on one file system, a directory already at `dir` aside
/// first (and removed after), and syncs the parent.
async fn put_in_place(staging: &Path, dir: &Path) -> Result<()> {
    let (staging, dir) = (staging.to_path_buf(), dir.to_path_buf());
    blocking(move || {
        let aside: Option<PathBuf> = if dir.exists() {
            let aside =
                dir.with_file_name(format!(".handoff-replaced-{:08x}", rand::random::<u32>()));
            std::fs::rename(&dir, &aside)?;
            Some(aside)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&staging, &dir) {
            if let Some(aside) = &aside {
                let _ = std::fs::rename(aside, &dir);
            }
            return Err(e.into());
        }
        if let Some(parent) = dir.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        if let Some(aside) = aside {
            let _ = std::fs::remove_dir_all(aside);
        }
        Ok(())
    })
    .await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::{Shipping, generation_prefix, segment_key};
    use std::sync::Arc;
    use std::time::Duration;
    use warren_store::{Database, Migration, Options};

    const SCHEMA: &[Migration] = &[Migration {
        version: 1,
        sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
              CREATE TABLE _collections (id TEXT, name TEXT, type TEXT, fields TEXT);",
    }];

    async fn open(dir: &Path) -> Database {
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        Database::open_shipped(
            dir.join("data.db"),
            Options {
                migrations: SCHEMA,
                ..Options::default()
            },
        )
        .await
        .unwrap()
    }

    async fn insert(db: &Database, v: &str) {
        let v = v.to_string();
        db.write(move |c| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok::<_, warren_store::Error>(())
        })
        .await
        .unwrap();
    }

    fn rows(db: &Path) -> Vec<String> {
        let conn = warren_store::sql::Connection::open(db).unwrap();
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Tenant `id` (slug `slug`) in `dir`, as a snapshot reads it.
    fn source(id: &str, slug: &str, dir: &Path) -> Source {
        Source {
            tenant_id: id.into(),
            slug: slug.into(),
            dir: dir.to_path_buf(),
            file_bucket: None,
            exclusive: false,
        }
    }

    fn shipping(target: &Target, ownership: u64) -> Shipping {
        let shipping = Shipping::new(target.clone(), Duration::from_secs(3600));
        shipping.set_ownership(Arc::new(move |_: &str| ownership));
        shipping
    }

    /// A plain copy (taken without the shipper) newer than a chain start is restored only
    /// while it holds more than the chain is known to: once the chain's shipped WAL reaches
    /// past the copy, the chain start is the latest state, and its writes since are kept.
    #[tokio::test]
    async fn a_plain_copy_wins_over_a_chain_only_while_it_holds_more() {
        let root = tempfile::tempdir().unwrap();
        let target = Target::Dir(root.path().join("target"));
        let node = root.path().join("a/t1");
        let db = open(&node).await;
        // A single node's generation, the one plain copies carry.
        let ship = shipping(&target, 0);
        let _wanted = ship.take_wanted().unwrap();
        let _guard = ship.start("t1", &node, db.clone());
        let source = source("t1", "one", &node);
        let scratch = root.path().join("scratch");
        let chain =
            snapshot::create_shipped(&target, &scratch, &source, Some(&ship), &crate::quiet)
                .await
                .unwrap();
        insert(&db, "shipped").await;
        ship.flush("t1").await.unwrap();

        // A copy without the shipper, of the same generation: it holds a write not shipped yet.
        let copy = snapshot::create(&target, &scratch, &source, &crate::quiet)
            .await
            .unwrap();
        assert!(copy.wal.is_none());
        assert_eq!(copy.ownership_generation, chain.ownership_generation);
        let newest = newest_chain(&target, "t1").await.unwrap().unwrap();
        assert_eq!(
            newest.id, copy.id,
            "the copy holds all the chain is known to"
        );

        // The chain ships past the copy's moment: it is the latest state again.
        insert(&db, "after the copy").await;
        ship.flush("t1").await.unwrap();
        let newest = newest_chain(&target, "t1").await.unwrap().unwrap();
        assert_eq!(newest.id, chain.id);
        let node_b = root.path().join("b/t1");
        std::fs::create_dir_all(node_b.parent().unwrap()).unwrap();
        let handoff = restore_latest(&target, "t1", &node_b, 1).await.unwrap();
        assert_eq!(handoff.from.id, chain.id);
        assert_eq!(rows(&node_b.join("data.db")), ["shipped", "after the copy"]);
    }

    /// A tenant shipped by its first owner is restored whole on a second owner, which starts a
    /// chain of its own; the first owner, stale, keeps shipping into its old chain (and even
    /// into the new one), and a third owner's restore holds exactly the second owner's state.
    #[tokio::test]
    async fn a_new_owner_restores_the_latest_state_and_a_stale_owner_is_fenced() {
        let root = tempfile::tempdir().unwrap();
        let target = Target::Dir(root.path().join("target"));
        let node_a = root.path().join("a/t1");
        let db_a = open(&node_a).await;
        let ship_a = shipping(&target, 1);
        let _wanted_a = ship_a.take_wanted().unwrap();
        let _guard_a = ship_a.start("t1", &node_a, db_a.clone());
        let source = source("t1", "one", &node_a);
        let first = snapshot::create_shipped(
            &target,
            &root.path().join("scratch"),
            &source,
            Some(&ship_a),
            &crate::quiet,
        )
        .await
        .unwrap();
        assert_eq!(first.ownership_generation, 1);
        assert!(first.id.ends_with("-o0000000001"), "{}", first.id);
        for i in 0..10 {
            insert(&db_a, &format!("a{i}")).await;
        }
        ship_a.flush("t1").await.unwrap();
        let keys = target
            .list(&generation_prefix("t1", &first.id))
            .await
            .unwrap();
        assert!(
            keys.iter().any(|k| k.ends_with("-o0000000001.wal.zst")),
            "{keys:?}"
        );

        // Node B claims the tenant under generation 2: every shipped write is there.
        let node_b = root.path().join("b/t1");
        std::fs::create_dir_all(node_b.parent().unwrap()).unwrap();
        let handoff = restore_latest(&target, "t1", &node_b, 2).await.unwrap();
        assert_eq!(handoff.from.id, first.id);
        assert_eq!(handoff.transactions, 10);
        assert_eq!(handoff.chain.ownership_generation, 2);
        let expected: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
        assert_eq!(rows(&node_b.join("data.db")), expected);
        // Nothing of the staging is left beside it.
        let beside: Vec<_> = std::fs::read_dir(node_b.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, ["t1"]);
        // A claim older than the state in the target is refused.
        let stale = restore_latest(&target, "t1", &root.path().join("x/t1"), 1).await;
        assert!(matches!(stale, Err(Error::Invalid(_))), "{stale:?}");

        // The stale owner keeps writing and shipping into its own chain, and one of its
        // segments lands in the new owner's chain too.
        for i in 0..5 {
            insert(&db_a, &format!("late{i}")).await;
        }
        ship_a.flush("t1").await.unwrap();
        let late = target
            .list(&generation_prefix("t1", &first.id))
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.ends_with(".wal.zst"))
            .max()
            .unwrap();
        let bytes = target.get_bytes(&late, 1 << 30).await.unwrap();
        target
            .put_bytes(&segment_key("t1", &handoff.chain.id, 0, 1), bytes)
            .await
            .unwrap();

        // Node B serves and ships under generation 2, continuing the chain the restore began.
        let db_b = open(&node_b).await;
        let ship_b = shipping(&target, 2);
        let mut wanted_b = ship_b.take_wanted().unwrap();
        let guard_b = ship_b.start("t1", &node_b, db_b.clone());
        for i in 0..3 {
            insert(&db_b, &format!("b{i}")).await;
        }
        ship_b.flush("t1").await.unwrap();
        assert!(wanted_b.try_recv().is_err(), "no new snapshot was needed");
        drop(guard_b);
        drop(db_b);
        assert!(ship_b.wait_stopped(Duration::from_secs(10)).await);

        // Node C claims under generation 3: B's state, none of A's late writes.
        let node_c = root.path().join("c/t1");
        std::fs::create_dir_all(node_c.parent().unwrap()).unwrap();
        let handoff = restore_latest(&target, "t1", &node_c, 3).await.unwrap();
        assert!(handoff.from.id.ends_with("-o0000000002"));
        assert_eq!(handoff.transactions, 3);
        let mut expected = expected;
        expected.extend((0..3).map(|i| format!("b{i}")));
        assert_eq!(rows(&node_c.join("data.db")), expected);
    }

    /// The control database's way: fetched (no chain started) by each new lead, which ships
    /// its own chain under its own term; a deposed lead's late writes, shipped into its older
    /// chain, never come back.
    #[tokio::test]
    async fn a_fetch_takes_the_highest_term_and_never_a_deposed_one_s_late_writes() {
        let root = tempfile::tempdir().unwrap();
        let target = Target::Dir(root.path().join("target"));
        let nothing = fetch_latest(&target, "c1", &root.path().join("none"), 1).await;
        assert!(nothing.unwrap().is_none(), "an empty target holds nothing");

        // Lead 1 ships.
        let dir_a = root.path().join("a/c1");
        let db_a = open(&dir_a).await;
        let ship_a = shipping(&target, 1);
        let _wanted_a = ship_a.take_wanted().unwrap();
        let _guard_a = ship_a.start("c1", &dir_a, db_a.clone());
        let source = |dir: &Path| source("c1", "c1", dir);
        let scratch = root.path().join("scratch");
        snapshot::create_shipped(
            &target,
            &scratch,
            &source(&dir_a),
            Some(&ship_a),
            &crate::quiet,
        )
        .await
        .unwrap();
        for i in 0..5 {
            insert(&db_a, &format!("a{i}")).await;
        }
        ship_a.flush("c1").await.unwrap();

        // Lead 2 fetches it all, then ships its own chain from its copy.
        let dir_b = root.path().join("b/c1");
        let fetched = fetch_latest(&target, "c1", &dir_b, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fetched.transactions, 5);
        assert_eq!(fetched.from.ownership_generation, 1);
        let lead_a: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
        assert_eq!(rows(&dir_b.join("data.db")), lead_a);
        let stale = fetch_latest(&target, "c1", &root.path().join("stale"), 0).await;
        assert!(matches!(stale, Err(Error::Invalid(_))), "{stale:?}");
        let db_b = open(&dir_b).await;
        let ship_b = shipping(&target, 2);
        let _wanted_b = ship_b.take_wanted().unwrap();
        let guard_b = ship_b.start("c1", &dir_b, db_b.clone());
        snapshot::create_shipped(
            &target,
            &scratch,
            &source(&dir_b),
            Some(&ship_b),
            &crate::quiet,
        )
        .await
        .unwrap();
        for i in 0..3 {
            insert(&db_b, &format!("b{i}")).await;
        }
        ship_b.flush("c1").await.unwrap();

        // Lead 1, deposed, still writes and ships into its own chain.
        for i in 0..4 {
            insert(&db_a, &format!("late{i}")).await;
        }
        ship_a.flush("c1").await.unwrap();
        drop(guard_b);

        // Lead 3 fetches lead 2's state, none of lead 1's late writes.
        let dir_c = root.path().join("c/c1");
        let fetched = fetch_latest(&target, "c1", &dir_c, 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fetched.from.ownership_generation, 2);
        let mut expected = lead_a;
        expected.extend((0..3).map(|i| format!("b{i}")));
        assert_eq!(rows(&dir_c.join("data.db")), expected);
    }
    /// A lead that writes a lot asks for a snapshot once its chain passes the size set, and
    /// pruning after each snapshot leaves only the newest chains: an earlier term's chain, the
    /// lead's own older ones and a stale orphan are gone, a newer term's unfinished chain and
    /// a deposed writer's pruning are harmless, and a fetch of the latest state is complete.
    #[tokio::test]
    async fn a_long_lead_snapshots_by_size_and_old_chains_are_pruned() {
        let root = tempfile::tempdir().unwrap();
        let target = Target::Dir(root.path().join("target"));
        let scratch = root.path().join("scratch");
        let source = |dir: &Path| source("c1", "c1", dir);
        let stored = async || -> (Vec<String>, Vec<String>) {
            let snapshots = restore::list(&target, "c1")
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect();
            let wal = target.list("wal/c1/").await.unwrap();
            (snapshots, wal)
        };
        let wal_bytes = || -> u64 {
            walkdir(&root.path().join("target/wal/c1"))
                .iter()
                .map(|p| std::fs::metadata(p).unwrap().len())
                .sum()
        };

        // Term 1 leaves a chain with a few rows.
        let dir_a = root.path().join("a/c1");
        let db_a = open(&dir_a).await;
        let ship_a = shipping(&target, 1);
        let _wanted_a = ship_a.take_wanted().unwrap();
        let _guard_a = ship_a.start("c1", &dir_a, db_a.clone());
        let first = snapshot::create_shipped(
            &target,
            &scratch,
            &source(&dir_a),
            Some(&ship_a),
            &crate::quiet,
        )
        .await
        .unwrap();
        for i in 0..5 {
            insert(&db_a, &format!("a{i}")).await;
        }
        ship_a.flush("c1").await.unwrap();

        // Term 2 takes over and writes a lot, with a small limit.
        let dir_b = root.path().join("b/c1");
        fetch_latest(&target, "c1", &dir_b, 2)
            .await
            .unwrap()
            .unwrap();
        let db_b = open(&dir_b).await;
        let ship_b = shipping(&target, 2);
        const LIMIT: u64 = 64 << 10;
        ship_b.set_snapshot_after(LIMIT);
        let mut wanted_b = ship_b.take_wanted().unwrap();
        let _guard_b = ship_b.start("c1", &dir_b, db_b.clone());
        snapshot::create_shipped(
            &target,
            &scratch,
            &source(&dir_b),
            Some(&ship_b),
            &crate::quiet,
        )
        .await
        .unwrap();
        while wanted_b.try_recv().is_ok() {}
        // Nothing to prune yet but the earlier term's chain beyond the newest `keep`.
        assert_eq!(
            prune_chains(&target, "c1", 2, 2).await.unwrap(),
            Pruned::default()
        );
        // A stale orphan of term 1 (a snapshot it never finished) and an unfinished chain of
        // term 3 (a snapshot being stored by the next lead).
        let stale = crate::manifest::new_id_owned(time::OffsetDateTime::now_utc(), 1);
        let next = crate::manifest::new_id_owned(time::OffsetDateTime::now_utc(), 3);
        for chain in [&stale, &next] {
            target
                .put_bytes(&segment_key("c1", chain, 0, 1), b"x".to_vec())
                .await
                .unwrap();
        }

        let mut expected: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
        let (mut snapshots, mut shipped) = (0, 0u64);
        let mut chains = vec![];
        for i in 0..400 {
            // Random text: it does not compress away.
            let noise: String = (0..250)
                .map(|_| format!("{:08x}", rand::random::<u32>()))
                .collect();
            let v = format!("b{i}-{noise}");
            insert(&db_b, &v).await;
            expected.push(v);
            if i % 10 == 9 {
                let before = wal_bytes();
                ship_b.flush("c1").await.unwrap();
                shipped += wal_bytes().saturating_sub(before);
            }
            if wanted_b.try_recv().is_ok() {
                let chain = snapshot::create_shipped(
                    &target,
                    &scratch,
                    &source(&dir_b),
                    Some(&ship_b),
                    &crate::quiet,
                )
                .await
                .unwrap();
                chains.push(chain.id);
                snapshots += 1;
                prune_chains(&target, "c1", 2, 2).await.unwrap();
            }
        }
        ship_b.flush("c1").await.unwrap();
        assert!(snapshots >= 3, "{snapshots} snapshots asked for by size");

        // Only the newest two snapshots of term 2 and their chains are left, and the next
        // term's unfinished chain.
        let (ids, wal) = stored().await;
        let newest: Vec<String> = chains[chains.len() - 2..].to_vec();
        assert_eq!(ids, newest, "snapshots left");
        assert!(!ids.contains(&first.id));
        for key in &wal {
            let chain = key
                .strip_prefix("wal/c1/")
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            assert!(newest.iter().any(|c| c == chain) || chain == next, "{key}");
        }
        assert!(wal.iter().any(|k| k.contains(&next)), "{wal:?}");
        assert!(!wal.iter().any(|k| k.contains(&stale)), "{wal:?}");
        let left = wal_bytes();
        println!(
            "{snapshots} size-triggered snapshots; {shipped} bytes shipped, {left} left in the target's WAL (limit {LIMIT})"
        );
        assert!(left < 3 * LIMIT, "{left} bytes of WAL left");

        // Term 1, deposed, prunes nothing.
        assert_eq!(
            prune_chains(&target, "c1", 1, 1).await.unwrap(),
            Pruned::default()
        );
        assert_eq!(stored().await.0, newest);

        // The latest state is complete.
        let dir_c = root.path().join("c/c1");
        let fetched = fetch_latest(&target, "c1", &dir_c, 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fetched.from.id, *newest.last().unwrap());
        assert_eq!(rows(&dir_c.join("data.db")), expected);
    }

    fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walkdir(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
