//! A tenant's cron jobs: the list each open tenant carries ([`Crons`]), PocketBase's system
//! jobs registered when it opens ([`system`]), and the node's one [`Scheduler`] that runs the
//! due jobs of open tenants each minute.
//!
//! A job is an id, a cron expression ([`warren_cron::Schedule`]) and an async callback given
//! the tenant. Registering an id again replaces the job. The list lives in the open tenant, so
//! a tenant's jobs go when it closes and come back (system jobs, then whatever the hooks
//! loader registers) when it opens again.

mod scheduler;
pub mod system;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

pub use scheduler::{Admission, Scheduler, Tick};
pub use warren_cron::{Moment, Schedule};

use crate::{Error, Result, Tenant};

/// What a job's callback returns: a future that ends with `Err(message)` on failure (the
/// message goes into the tenant's logs).
pub type JobFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A job's callback; called with the tenant each time the job runs.
pub type JobFn = Arc<dyn Fn(Tenant) -> JobFuture + Send + Sync>;

/// Longest job id accepted.
pub const MAX_ID: usize = 255;
/// Most jobs one tenant may register (system jobs included).
pub const MAX_JOBS: usize = 1000;
/// Prefix of PocketBase's own jobs' ids, listed after the tenant's own jobs.
pub const SYSTEM_PREFIX: &str = "__pb";

/// One registered job.
#[derive(Clone)]
pub struct Job {
    /// The job's id, unique within its tenant.
    pub id: String,
    /// When it runs.
    pub schedule: Arc<Schedule>,
    /// What it does.
    pub run: JobFn,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("expression", &self.schedule.expression())
            .finish_non_exhaustive()
    }
}

/// A tenant's registered jobs, in registration order (a replaced job moves to the end, as in
/// PocketBase).
#[derive(Default)]
pub struct Crons {
    jobs: Mutex<Vec<Job>>,
}

impl std::fmt::Debug for Crons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.jobs().iter()).finish()
    }
}

impl Crons {
    /// Registers job `id` to run `run` on `expression`, replacing any job with that id.
    /// Refuses an empty or over-long id, a bad expression (PocketBase's message) and more than
    /// [`MAX_JOBS`] jobs.
    pub fn add(&self, id: &str, expression: &str, run: JobFn) -> Result<()> {
        if id.is_empty() || id.len() > MAX_ID {
            return Err(Error::Invalid(format!(
                "a cron job id must have 1 to {MAX_ID} bytes"
            )));
        }
        let schedule = Schedule::parse(expression)
            .map_err(|e| Error::Invalid(format!("failed to add new cron job: {e}")))?;
        self.add_parsed(id, Arc::new(schedule), run)
    }

    /// Like [`Crons::add`], with the schedule parsed already (the system jobs, the same in
    /// every tenant, are parsed once per process).
    pub(crate) fn add_parsed(&self, id: &str, schedule: Arc<Schedule>, run: JobFn) -> Result<()> {
        let mut jobs = self.lock();
        jobs.retain(|job| job.id != id);
        if jobs.len() >= MAX_JOBS {
            return Err(Error::TooLarge(format!(
                "a project may register at most {MAX_JOBS} cron jobs"
            )));
        }
        jobs.push(Job {
            id: id.to_string(),
            schedule,
            run,
        });
        Ok(())
    }

    /// Removes job `id`; returns whether there was one.
    pub fn remove(&self, id: &str) -> bool {
        let mut jobs = self.lock();
        let before = jobs.len();
        jobs.retain(|job| job.id != id);
        jobs.len() != before
    }

    /// The registered jobs, in registration order.
    pub fn jobs(&self) -> Vec<Job> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        // Single list operations: a poisoned list is still consistent.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wraps an async closure as a [`JobFn`].
pub fn job_fn<F, Fut>(f: F) -> JobFn
where
    F: Fn(Tenant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move |tenant| Box::pin(f(tenant)))
}

/// Orders jobs as PocketBase lists them: the tenant's own jobs by id, then the system jobs
/// (`__pb…`) in registration order.
pub fn list_order(jobs: &mut [Job]) {
    jobs.sort_by(|a, b| {
        match (
            a.id.starts_with(SYSTEM_PREFIX),
            b.id.starts_with(SYSTEM_PREFIX),
        ) {
            (false, false) => a.id.cmp(&b.id),
            (false, true) => std::cmp::Ordering::Less,
            (true, false) => std::cmp::Ordering::Greater,
            (true, true) => std::cmp::Ordering::Equal,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> JobFn {
        job_fn(|_| async { Ok(()) })
    }

    #[test]
    fn adding_an_id_again_replaces_the_job_and_moves_it_last() {
        let crons = Crons::default();
        crons.add("a", "* * * * *", noop()).unwrap();
        crons.add("b", "@daily", noop()).unwrap();
        crons.add("a", "@hourly", noop()).unwrap();
        let jobs = crons.jobs();
        let listed: Vec<_> = jobs
            .iter()
            .map(|j| (j.id.as_str(), j.schedule.expression()))
            .collect();
        assert_eq!(listed, [("b", "0 0 * * *"), ("a", "0 * * * *")]);
        assert!(crons.remove("a") && !crons.remove("a"));
        assert_eq!(crons.jobs().len(), 1);
    }

    #[test]
    fn bad_jobs_are_refused_with_the_reason() {
        let crons = Crons::default();
        let e = crons.add("a", "* * *", noop()).unwrap_err().to_string();
        assert!(
            e.starts_with("failed to add new cron job: invalid cron expression"),
            "{e}"
        );
        assert!(crons.add("", "* * * * *", noop()).is_err());
        assert!(crons.add(&"x".repeat(256), "* * * * *", noop()).is_err());
        for i in 0..MAX_JOBS {
            crons.add(&i.to_string(), "* * * * *", noop()).unwrap();
        }
        assert!(matches!(
            crons.add("one more", "* * * * *", noop()),
            Err(Error::TooLarge(_))
        ));
        // Replacing one is still fine at the cap.
        crons.add("7", "@daily", noop()).unwrap();
    }

    #[test]
    fn jobs_are_listed_like_pocketbase_lists_them() {
        let crons = Crons::default();
        for id in ["__pbDBOptimize__", "zeta", "__pbLogsCleanup__", "alpha"] {
            crons.add(id, "* * * * *", noop()).unwrap();
        }
        let mut jobs = crons.jobs();
        list_order(&mut jobs);
        let ids: Vec<_> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(
            ids,
            ["alpha", "zeta", "__pbDBOptimize__", "__pbLogsCleanup__"]
        );
    }
}
