//! The node's cron scheduler: one timer for every tenant, not one per tenant.
//!
//! Invariants:
//! - A tick runs the due jobs of the tenants open in the registry, and only of those the
//!   [`Admission`] admits (a suspended tenant never runs a job).
//! - Each minute is ticked at most once: a second tick for the same minute does nothing, so a
//!   job runs at most once per minute it is due.
//! - A job still running is not started again (by a tick or by "run now"); the next due tick
//!   after it ends starts it.
//! - Jobs run on a bounded pool of workers, and each tenant runs one job at a time: a
//!   tenant's slow jobs hold at most one worker, and other tenants' jobs keep running.
//! - A failed or panicking job is written into its tenant's logs with the job id.
//!
//! Tests drive [`Scheduler::tick`] with the moments they choose; `warren serve` runs
//! [`Scheduler::start`], which ticks at each minute boundary of the system clock (or, for
//! tests of the whole server, every given interval as if a minute had passed).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use warren_cron::{Moment, Schedule};

use super::{Job, job_fn, list_order, system};
use crate::backups::{Backups, Quota};
use crate::{Registry, Tenant};

/// Which tenants may run jobs now; the serving process answers from its tenant directory.
pub trait Admission: Send + Sync {
    /// The tenants allowed to run jobs (suspended ones are left out), each with its plan's
    /// bounds on kept backups. Asked once per tick.
    fn admitted(&self) -> HashMap<String, Quota>;
}

/// Runs the cron jobs of this node's open tenants. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    /// The open tenants; `None` for a scheduler that only runs jobs on request.
    registry: Option<Registry>,
    /// Backups of the node's tenants, shared with `/api/backups` (one backup per tenant at a
    /// time, whoever starts it).
    backups: Backups,
    /// Who may run jobs; every open tenant when unset.
    admission: RwLock<Option<Arc<dyn Admission>>>,
    /// The workers every job run takes one of.
    pool: Arc<Semaphore>,
    /// Tenant id → its one-job-at-a-time lane.
    lanes: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// (tenant id, job id) of every job started and not yet finished.
    running: Mutex<HashSet<(String, String)>>,
    /// The last minute ticked.
    last_tick: Mutex<Option<i64>>,
}

/// What one tick started.
#[derive(Default)]
pub struct Tick {
    /// (tenant id, job id) of each job started.
    pub started: Vec<(String, String)>,
    /// (tenant id, job id) of each due job left alone because it was still running.
    pub still_running: Vec<(String, String)>,
    handles: Vec<JoinHandle<()>>,
}

impl Tick {
    /// Waits until every job this tick started has finished.
    pub async fn finished(self) {
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// Workers of a scheduler made by [`Scheduler::default`].
const DEFAULT_WORKERS: usize = 4;

impl Default for Scheduler {
    /// A scheduler without a registry: it ticks nothing, but lists and runs a tenant's jobs
    /// on request (a router without a server).
    fn default() -> Self {
        Self::build(None, Backups::default(), DEFAULT_WORKERS)
    }
}

impl Scheduler {
    /// A scheduler for the tenants open in `registry`, running at most `workers` jobs at once
    /// and making automatic backups through `backups`.
    pub fn new(registry: Registry, backups: Backups, workers: usize) -> Self {
        Self::build(Some(registry), backups, workers)
    }

    fn build(registry: Option<Registry>, backups: Backups, workers: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                backups,
                admission: RwLock::new(None),
                pool: Arc::new(Semaphore::new(workers.max(1))),
                lanes: Mutex::new(HashMap::new()),
                running: Mutex::new(HashSet::new()),
                last_tick: Mutex::new(None),
            }),
        }
    }

    /// Runs jobs only of the tenants `admission` admits from now on.
    pub fn set_admission(&self, admission: Arc<dyn Admission>) {
        *self
            .inner
            .admission
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(admission);
    }

    /// Tenant `tenant`'s jobs as PocketBase lists them (`GET /api/crons`): its registered
    /// jobs, and `__pbAutoBackup__` while its settings set a backups cron.
    pub async fn jobs(&self, tenant: &Tenant) -> Vec<Job> {
        self.jobs_with(tenant, Quota::default()).await
    }

    async fn jobs_with(&self, tenant: &Tenant, quota: Quota) -> Vec<Job> {
        let mut jobs = tenant.crons().jobs();
        if let Some(backup) = self.auto_backup(tenant, quota).await {
            jobs.retain(|job| job.id != system::AUTO_BACKUP);
            jobs.push(backup);
        }
        list_order(&mut jobs);
        jobs
    }

    /// The `__pbAutoBackup__` job as the tenant's settings define it, if they set a cron.
    async fn auto_backup(&self, tenant: &Tenant, quota: Quota) -> Option<Job> {
        let settings = tenant.settings().await.ok()?;
        let expression = settings["backups"]["cron"].as_str().unwrap_or("");
        if expression.is_empty() {
            return None;
        }
        // Settings are checked when saved; an invalid stored one just registers nothing.
        let schedule = Schedule::parse(expression).ok()?;
        let keep = settings["backups"]["cronMaxKeep"]
            .as_f64()
            .map_or(0, |n| n.max(0.0) as usize);
        let backups = self.inner.backups.clone();
        let run = job_fn(move |tenant: Tenant| {
            let backups = backups.clone();
            async move {
                backups
                    .auto_backup(&tenant, quota, keep)
                    .await
                    .map(drop)
                    .map_err(|e| format!("[Backup cron] Failed to create backup: {e}"))
            }
        });
        Some(Job {
            id: system::AUTO_BACKUP.to_string(),
            schedule: Arc::new(schedule),
            run,
        })
    }

    /// Starts job `id` of `tenant` now, in the background (`POST /api/crons/{id}`), with
    /// `quota` bounding an automatic backup. Returns `false` when the tenant has no such job;
    /// a job that is still running is not started twice.
    pub async fn run_now(&self, tenant: &Tenant, id: &str, quota: Quota) -> bool {
        let jobs = self.jobs_with(tenant, quota).await;
        match jobs.into_iter().find(|job| job.id == id) {
            Some(job) => {
                let _ = self.launch(tenant, job);
                true
            }
            None => false,
        }
    }

    /// Runs the jobs due at `now` of every open, admitted tenant. Ticking a minute that was
    /// already ticked (or an earlier one) starts nothing.
    pub async fn tick(&self, now: Moment) -> Tick {
        let mut tick = Tick::default();
        {
            let mut last = self
                .inner
                .last_tick
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|last| last >= now.minute_index) {
                return tick;
            }
            *last = Some(now.minute_index);
        }
        let Some(registry) = &self.inner.registry else {
            return tick;
        };
        let admission = self
            .inner
            .admission
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let admitted = admission.map(|a| a.admitted());
        let tenants = registry.open_tenants();
        self.inner
            .lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, lane| Arc::strong_count(lane) > 1);
        for tenant in tenants {
            let quota = match &admitted {
                None => Quota::default(),
                Some(admitted) => match admitted.get(tenant.id()) {
                    Some(quota) => *quota,
                    None => continue,
                },
            };
            for job in self.jobs_with(&tenant, quota).await {
                if !job.schedule.is_due(now) {
                    continue;
                }
                let key = (tenant.id().to_string(), job.id.clone());
                match self.launch(&tenant, job) {
                    Some(handle) => {
                        tick.started.push(key);
                        tick.handles.push(handle);
                    }
                    None => tick.still_running.push(key),
                }
            }
        }
        tick
    }

    /// Starts `job` of `tenant` on the pool unless it is still running.
    fn launch(&self, tenant: &Tenant, job: Job) -> Option<JoinHandle<()>> {
        let key = (tenant.id().to_string(), job.id.clone());
        if !self.inner.running().insert(key.clone()) {
            tracing::debug!(tenant = %key.0, job = %key.1, "cron job still running; not started again");
            return None;
        }
        let guard = Running {
            inner: Arc::downgrade(&self.inner),
            key,
        };
        let lane = self
            .inner
            .lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.id().to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone();
        let pool = self.inner.pool.clone();
        let tenant = tenant.clone();
        Some(tokio::spawn(async move {
            let _guard = guard;
            // Waiting in its tenant's lane first holds no worker, so other tenants go on.
            let Ok(_lane) = lane.acquire_owned().await else {
                return;
            };
            let Ok(_worker) = pool.acquire_owned().await else {
                return;
            };
            let outcome = tokio::spawn((job.run)(tenant.clone())).await;
            let error = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(message)) => message,
                Err(e) if e.is_panic() => "the job panicked".to_string(),
                Err(e) => e.to_string(),
            };
            tracing::warn!(tenant = %tenant.id(), job = %job.id, %error, "cron job failed");
            let mut data = Map::new();
            data.insert("type".into(), Value::from("cron"));
            data.insert("jobId".into(), Value::from(job.id.as_str()));
            data.insert("error".into(), Value::from(error));
            tenant.logs().record(warren_logs::Entry::new(
                warren_logs::level::ERROR,
                format!("Cron job {} failed", job.id),
                data,
            ));
        }))
    }

    /// Ticks every minute until the scheduler is dropped: at each minute boundary of the
    /// system clock when `minute` is 60 s; otherwise every `minute`, each tick counting as the
    /// next minute from now (so tests of the whole server see a cron minute pass quickly).
    pub fn start(&self, minute: Duration) -> JoinHandle<()> {
        tokio::spawn(run(Arc::downgrade(&self.inner), minute))
    }
}

impl Inner {
    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        // Single inserts and removals: a poisoned set is still consistent.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Marks a job as running until dropped (also when the job panics).
struct Running {
    inner: Weak<Inner>,
    key: (String, String),
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.running().remove(&self.key);
        }
    }
}

async fn run(inner: Weak<Inner>, minute: Duration) {
    let real = minute == Duration::from_secs(60);
    let mut now = Moment::now();
    loop {
        if real {
            tokio::time::sleep(until_next_minute()).await;
            now = Moment::now().max(now.plus_minutes(1));
        } else {
            tokio::time::sleep(minute.max(Duration::from_millis(10))).await;
            now = now.plus_minutes(1);
        }
        let Some(inner) = inner.upgrade() else { return };
        let ticked = Scheduler { inner }.tick(now).await;
        if !ticked.started.is_empty() {
            tracing::debug!(jobs = ticked.started.len(), "cron jobs started");
        }
    }
}

/// Time left until just after the next minute boundary of the system clock.
fn until_next_minute() -> Duration {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(60_000 - millis % 60_000 + 5)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{RegistryConfig, provision};

    struct Fixture {
        _dir: tempfile::TempDir,
        registry: Registry,
        scheduler: Scheduler,
    }

    async fn fixture(tenants: &[&str], workers: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(RegistryConfig {
            root: dir.path().to_path_buf(),
            max_open: 100,
            idle_timeout: Duration::from_secs(600),
        });
        for id in tenants {
            provision(dir.path(), id).await.unwrap();
        }
        let scheduler = Scheduler::new(registry.clone(), Backups::new(registry.clone()), workers);
        Fixture {
            _dir: dir,
            registry,
            scheduler,
        }
    }

    /// 2026-12-04 at `hh:mm` UTC (the system jobs are due at minute 0 only).
    fn at(hour: i64, minute: i64) -> Moment {
        Moment::from_unix(1_796_342_400 + hour * 3600 + minute * 60)
    }

    fn counting(count: &Arc<AtomicUsize>) -> super::super::JobFn {
        let count = count.clone();
        job_fn(move |_| {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
    }

    struct Only(Vec<&'static str>);

    impl Admission for Only {
        fn admitted(&self) -> HashMap<String, Quota> {
            self.0
                .iter()
                .map(|id| (id.to_string(), Quota::default()))
                .collect()
        }
    }

    #[tokio::test]
    async fn a_due_job_runs_once_per_minute_and_others_wait_for_theirs() {
        let f = fixture(&["a"], 4).await;
        let tenant = f.registry.get("a").await.unwrap();
        let (every, hourly) = (Arc::default(), Arc::default());
        tenant
            .crons()
            .add("every", "* * * * *", counting(&every))
            .unwrap();
        tenant
            .crons()
            .add("hourly", "0 * * * *", counting(&hourly))
            .unwrap();
        f.scheduler.tick(at(10, 1)).await.finished().await;
        // The same minute again, and an earlier one: nothing runs twice.
        assert!(f.scheduler.tick(at(10, 1)).await.started.is_empty());
        assert!(f.scheduler.tick(at(9, 0)).await.started.is_empty());
        f.scheduler.tick(at(11, 0)).await.finished().await;
        assert_eq!(every.load(Ordering::SeqCst), 2);
        assert_eq!(hourly.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_job_still_running_is_not_started_again() {
        let f = fixture(&["a"], 4).await;
        let tenant = f.registry.get("a").await.unwrap();
        let gate = Arc::new(tokio::sync::Notify::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (g, r) = (gate.clone(), runs.clone());
        let slow = job_fn(move |_| {
            let (gate, runs) = (g.clone(), r.clone());
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                gate.notified().await;
                Ok(())
            }
        });
        tenant.crons().add("slow", "* * * * *", slow).unwrap();
        let first = f.scheduler.tick(at(10, 7)).await;
        assert_eq!(first.started, [("a".to_string(), "slow".to_string())]);
        let second = f.scheduler.tick(at(10, 8)).await;
        assert!(second.started.is_empty());
        assert_eq!(
            second.still_running,
            [("a".to_string(), "slow".to_string())]
        );
        // Asked to run now meanwhile, it is known but not started twice.
        assert!(f.scheduler.run_now(&tenant, "slow", Quota::default()).await);
        gate.notify_one();
        first.finished().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Finished: the next minute starts it again.
        let third = f.scheduler.tick(at(10, 9)).await;
        assert_eq!(third.started.len(), 1);
        gate.notify_one();
        third.finished().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn suspended_and_closed_tenants_run_nothing() {
        let f = fixture(&["a", "b", "c"], 4).await;
        let counts: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::default()).collect();
        for (id, count) in ["a", "b", "c"].iter().zip(&counts) {
            let tenant = f.registry.get(id).await.unwrap();
            tenant
                .crons()
                .add("job", "* * * * *", counting(count))
                .unwrap();
        }
        // `b` is suspended (the directory leaves it out), `c` is closed.
        f.scheduler.set_admission(Arc::new(Only(vec!["a", "c"])));
        f.registry.close("c");
        f.scheduler.tick(at(10, 7)).await.finished().await;
        let ran: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        assert_eq!(ran, [1, 0, 0]);
        // Reopened, `c` has its system jobs again but not the job registered before.
        let c = f.registry.get("c").await.unwrap();
        let ids: Vec<String> = f
            .scheduler
            .jobs(&c)
            .await
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(
            ids,
            [
                "__pbDBOptimize__",
                "__pbMFACleanup__",
                "__pbOTPCleanup__",
                "__pbLogsCleanup__"
            ]
        );
    }

    #[tokio::test]
    async fn a_slow_tenant_holds_one_worker_and_others_keep_running() {
        let f = fixture(&["slow", "quick"], 2).await;
        let gate = Arc::new(tokio::sync::Notify::new());
        let slow = f.registry.get("slow").await.unwrap();
        let entered = Arc::new(AtomicUsize::new(0));
        for i in 0..5 {
            let (g, e) = (gate.clone(), entered.clone());
            let job = job_fn(move |_| {
                let (gate, entered) = (g.clone(), e.clone());
                async move {
                    entered.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Ok(())
                }
            });
            slow.crons()
                .add(&format!("slow{i}"), "* * * * *", job)
                .unwrap();
        }
        let quick_runs = Arc::new(AtomicUsize::new(0));
        let quick = f.registry.get("quick").await.unwrap();
        quick
            .crons()
            .add("quick", "* * * * *", counting(&quick_runs))
            .unwrap();
        let tick = f.scheduler.tick(at(10, 7)).await;
        assert_eq!(tick.started.len(), 6);
        // Five slow jobs queue in their tenant's lane; the quick tenant's job is not held.
        tokio::time::timeout(Duration::from_secs(5), async {
            while quick_runs.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        // Only one of the slow tenant's jobs holds a worker.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(entered.load(Ordering::SeqCst), 1);
        // Release whatever still waits, then every started job has finished.
        let release = tokio::spawn({
            let gate = gate.clone();
            async move {
                loop {
                    gate.notify_waiters();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        tick.finished().await;
        release.abort();
    }

    #[tokio::test]
    async fn failures_go_into_the_tenants_logs_with_the_job_id() {
        let f = fixture(&["a"], 4).await;
        let tenant = f.registry.get("a").await.unwrap();
        let failing = job_fn(|_| async { Err("the disk is full".to_string()) });
        tenant.crons().add("nightly", "* * * * *", failing).unwrap();
        let panicking = job_fn(|_| async { panic!("boom") });
        tenant
            .crons()
            .add("broken", "* * * * *", panicking)
            .unwrap();
        f.scheduler.tick(at(10, 7)).await.finished().await;
        tenant.logs().flush().await.unwrap();
        let logged: Vec<(String, String)> = tenant
            .logs()
            .database()
            .await
            .unwrap()
            .read(|c| {
                let mut statement = c.prepare(
                    "SELECT json_extract(data, '$.jobId'), json_extract(data, '$.error')
                     FROM _logs ORDER BY 1",
                )?;
                let rows = statement
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, crate::Error>(rows)
            })
            .await
            .unwrap();
        assert_eq!(
            logged,
            [
                ("broken".to_string(), "the job panicked".to_string()),
                ("nightly".to_string(), "the disk is full".to_string())
            ]
        );
        // A failed job runs again at its next minute.
        assert_eq!(f.scheduler.tick(at(10, 8)).await.started.len(), 2);
    }

    #[tokio::test]
    async fn the_backups_cron_makes_a_backup_and_keeps_the_newest_few() {
        let f = fixture(&["a"], 4).await;
        let tenant = f.registry.get("a").await.unwrap();
        assert!(
            f.scheduler
                .jobs(&tenant)
                .await
                .iter()
                .all(|j| j.id != system::AUTO_BACKUP)
        );
        let patch = serde_json::json!({"backups": {"cron": "*/5 * * * *", "cronMaxKeep": 2}});
        warren_records::settings::update(tenant.db(), patch)
            .await
            .unwrap();
        tenant.forget_settings();
        let jobs = f.scheduler.jobs(&tenant).await;
        let last = jobs.last().unwrap();
        assert_eq!(
            (last.id.as_str(), last.schedule.expression()),
            (system::AUTO_BACKUP, "*/5 * * * *")
        );
        // Two older automatic backups and one made by hand.
        let dir = tenant.dir().join(crate::backups::BACKUPS_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        for (i, key) in [
            "@auto_pb_backup_acme_1.zip",
            "@auto_pb_backup_acme_2.zip",
            "mine.zip",
        ]
        .iter()
        .enumerate()
        {
            let file = std::fs::File::create(dir.join(key)).unwrap();
            file.set_modified(old + Duration::from_secs(i as u64))
                .unwrap();
        }
        // Not due at minute 7; due at minute 10.
        assert!(f.scheduler.tick(at(10, 7)).await.started.is_empty());
        f.scheduler.tick(at(10, 10)).await.finished().await;
        let mut kept: Vec<String> = crate::backups::list(tenant.dir())
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.key)
            .collect();
        kept.sort();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert_eq!(kept[0], "@auto_pb_backup_acme_2.zip");
        // The new one, named like PocketBase's: prefix, app name, UTC time.
        assert!(
            kept[1].starts_with("@auto_pb_backup_acme_20") && kept[1].len() == 39,
            "{kept:?}"
        );
        assert_eq!(kept[2], "mine.zip");
    }

    #[tokio::test]
    async fn run_now_starts_a_known_job_and_refuses_an_unknown_one() {
        let f = fixture(&["a"], 4).await;
        let tenant = f.registry.get("a").await.unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        tenant
            .crons()
            .add("report", "0 0 1 1 *", counting(&count))
            .unwrap();
        assert!(
            !f.scheduler
                .run_now(&tenant, "missing", Quota::default())
                .await
        );
        assert!(
            f.scheduler
                .run_now(&tenant, "report", Quota::default())
                .await
        );
        tokio::time::timeout(Duration::from_secs(5), async {
            while count.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }
}
