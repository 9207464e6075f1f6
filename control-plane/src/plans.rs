//! Plans: named sets of quotas (request rate, storage, upload size, realtime connections,
//! projects per account, kept backups, limits of the tenant's own code) that tenants are placed
//! on.

use serde::{Deserialize, Serialize};
use warren_store::Database;
use warren_store::sql::{self, OptionalExtension, Row};

use crate::{Error, Result};

/// The plan every new tenant starts on.
pub const DEFAULT_PLAN: &str = "default";

/// The quotas a plan sets. Every figure is a whole number; 0 means "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Refill rate of the tenant's request token bucket, per second.
    pub requests_per_second: u64,
    /// Size of the token bucket: requests allowed at once after a quiet time.
    pub request_burst: u64,
    /// Bytes of database and files.
    pub storage_bytes: u64,
    /// Largest request body, file uploads included.
    pub max_upload_bytes: u64,
    /// Realtime connections open at once.
    pub max_realtime_connections: u64,
    /// Projects one account may own.
    pub max_projects: u64,
    /// Backups a tenant keeps at once at `/api/backups` (its own PocketBase-style backups).
    pub max_backups: u64,
    /// Bytes of all backups a tenant keeps at `/api/backups` together.
    pub max_backup_bytes: u64,
    /// CPU milliseconds one call into the tenant's code (`pb_hooks`) may take (0: the node's
    /// default, 1 s).
    pub hook_cpu_ms: u64,
    /// Bytes one JavaScript runtime of the tenant's code may allocate (0: the node's default,
    /// 64 MiB).
    pub hook_memory_bytes: u64,
    /// CPU milliseconds all calls into the tenant's code may take in one hour; past it they
    /// are refused until the next hour.
    pub hook_cpu_ms_per_hour: u64,
    /// How the tenant's WAL is shipped to the backup target (`async` when left out).
    #[serde(default)]
    pub shipping: Shipping,
}

/// How a plan's tenants ship their WAL to the backup target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Shipping {
    /// A write is acknowledged once committed on the node; its WAL is shipped within the
    /// node's shipping interval. A node's death can lose the writes of that last interval.
    #[default]
    Async,
    /// A write is acknowledged only once the WAL segment holding its commit is stored in the
    /// backup target (writes waiting together share one segment). A node's death loses no
    /// acknowledged write; a write the target does not take in time gets a 503 (committed on
    /// the node, not acknowledged).
    Sync,
}

impl Shipping {
    /// Its name in the control database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Shipping::Async => "async",
            Shipping::Sync => "sync",
        }
    }
}

/// A plan: its name and quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Plan {
    /// Unique name, 1–64 characters of `a-z`, `0-9`, `-` and `_`.
    pub name: String,
    /// The quotas.
    #[serde(flatten)]
    pub limits: Limits,
    /// Creation time.
    pub created: String,
    /// Last change.
    pub updated: String,
}

/// Checks a plan name.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(
            "name",
            "A plan name is 1 to 64 characters of lowercase letters, digits, '-' and '_'.".into(),
        ))
    }
}

/// Largest figure a plan may hold (SQLite integers are signed).
const MAX_FIGURE: u64 = i64::MAX as u64;
/// Longest CPU time a plan may give one call into a tenant's code.
const MAX_HOOK_CPU_MS: u64 = 60_000;
/// Smallest and largest memory a plan may give one JavaScript runtime of a tenant.
const MIN_HOOK_MEMORY: u64 = 4 << 20;
const MAX_HOOK_MEMORY: u64 = 1 << 30;

/// CPU milliseconds per hour a new plan gives a tenant's code when none is set (15 minutes: a
/// quarter of one core).
pub const DEFAULT_HOOK_CPU_MS_PER_HOUR: u64 = 900_000;

impl Limits {
    /// What a plan created without figures starts with: no quotas, and the node's defaults for
    /// the tenant's code with [`DEFAULT_HOOK_CPU_MS_PER_HOUR`].
    pub fn for_new_plan() -> Self {
        Self {
            hook_cpu_ms: 1000,
            hook_memory_bytes: 64 << 20,
            hook_cpu_ms_per_hour: DEFAULT_HOOK_CPU_MS_PER_HOUR,
            ..Self::default()
        }
    }

    fn check(&self) -> Result<()> {
        let figures = [
            ("requestsPerSecond", self.requests_per_second),
            ("requestBurst", self.request_burst),
            ("storageBytes", self.storage_bytes),
            ("maxUploadBytes", self.max_upload_bytes),
            ("maxRealtimeConnections", self.max_realtime_connections),
            ("maxProjects", self.max_projects),
            ("maxBackups", self.max_backups),
            ("maxBackupBytes", self.max_backup_bytes),
            ("hookCpuMs", self.hook_cpu_ms),
            ("hookMemoryBytes", self.hook_memory_bytes),
            ("hookCpuMsPerHour", self.hook_cpu_ms_per_hour),
        ];
        for (field, value) in figures {
            if value > MAX_FIGURE {
                return Err(Error::Invalid(field, "The number is too large.".into()));
            }
        }
        if self.requests_per_second > 1_000_000_000 {
            return Err(Error::Invalid(
                "requestsPerSecond",
                "At most 1000000000 requests per second.".into(),
            ));
        }
        if self.hook_cpu_ms > MAX_HOOK_CPU_MS {
            return Err(Error::Invalid(
                "hookCpuMs",
                format!("At most {MAX_HOOK_CPU_MS} milliseconds per call."),
            ));
        }
        if self.hook_memory_bytes != 0
            && !(MIN_HOOK_MEMORY..=MAX_HOOK_MEMORY).contains(&self.hook_memory_bytes)
        {
            return Err(Error::Invalid(
                "hookMemoryBytes",
                format!(
                    "Between {} MiB and {} MiB (or 0 for the node's default).",
                    MIN_HOOK_MEMORY >> 20,
                    MAX_HOOK_MEMORY >> 20
                ),
            ));
        }
        Ok(())
    }

    /// The limits from columns `first..first + 12` of a row.
    pub(crate) fn from_row(row: &Row<'_>, first: usize) -> sql::Result<Self> {
        let get = |i: usize| -> sql::Result<u64> {
            Ok(row.get::<_, Option<i64>>(first + i)?.unwrap_or(0).max(0) as u64)
        };
        Ok(Self {
            requests_per_second: get(0)?,
            request_burst: get(1)?,
            storage_bytes: get(2)?,
            max_upload_bytes: get(3)?,
            max_realtime_connections: get(4)?,
            max_projects: get(5)?,
            max_backups: get(6)?,
            max_backup_bytes: get(7)?,
            hook_cpu_ms: get(8)?,
            hook_memory_bytes: get(9)?,
            hook_cpu_ms_per_hour: get(10)?,
            shipping: match row.get::<_, Option<String>>(first + 11)?.as_deref() {
                Some("sync") => Shipping::Sync,
                _ => Shipping::Async,
            },
        })
    }
}

/// The plan columns in [`Limits::from_row`] order, prefixed by a table alias and a dot.
pub(crate) fn limit_columns(alias: &str) -> String {
    [
        "requests_per_second",
        "request_burst",
        "storage_bytes",
        "max_upload_bytes",
        "max_realtime_connections",
        "max_projects",
        "max_backups",
        "max_backup_bytes",
        "hook_cpu_ms",
        "hook_memory_bytes",
        "hook_cpu_ms_per_hour",
        "shipping",
    ]
    .map(|c| format!("{alias}{c}"))
    .join(", ")
}

/// [`limit_columns`] of plans `p` joined to tenants `t`: the tenant's own `shipping`, when it
/// sets one, overrides its plan's.
pub(crate) fn tenant_limit_columns() -> String {
    limit_columns("p.").replace("p.shipping", "COALESCE(t.shipping, p.shipping)")
}

impl Shipping {
    /// Parses `async` or `sync`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "async" => Some(Shipping::Async),
            "sync" => Some(Shipping::Sync),
            _ => None,
        }
    }
}

fn from_row(row: &Row<'_>) -> sql::Result<Plan> {
    Ok(Plan {
        name: row.get(0)?,
        limits: Limits::from_row(row, 1)?,
        created: row.get(13)?,
        updated: row.get(14)?,
    })
}

fn select() -> String {
    format!(
        "SELECT name, {}, created, updated FROM plans",
        limit_columns("")
    )
}

/// The plans table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Plans {
    db: Database,
}

impl Plans {
    /// Plans stored in the control database `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Every plan, by name.
    pub async fn list(&self) -> Result<Vec<Plan>> {
        self.db
            .read(|c| {
                let mut stmt = c.prepare_cached(&format!("{} ORDER BY name", select()))?;
                let rows = stmt.query_map([], from_row)?;
                Ok(rows.collect::<sql::Result<Vec<_>>>()?)
            })
            .await
    }

    /// The plan called `name`, if any.
    pub async fn find(&self, name: &str) -> Result<Option<Plan>> {
        let name = name.to_string();
        self.db
            .read(move |c| {
                Ok(c.prepare_cached(&format!("{} WHERE name = ?1", select()))?
                    .query_row([name], from_row)
                    .optional()?)
            })
            .await
    }

    /// Creates plan `name` with `limits`.
    pub async fn create(&self, name: &str, limits: Limits) -> Result<Plan> {
        validate_name(name)?;
        limits.check()?;
        let name = name.to_string();
        self.db
            .write(move |c| {
                let sql = format!(
                    "INSERT INTO plans (name, {}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                     RETURNING name, {}, created, updated",
                    limit_columns(""),
                    limit_columns("")
                );
                let inserted = c
                    .prepare_cached(&sql)?
                    .query_row(params_of(&name, &limits), from_row);
                match inserted.map_err(warren_store::Error::from) {
                    Err(e) if e.is_constraint() => Err(Error::Invalid(
                        "name",
                        "A plan with this name exists.".into(),
                    )),
                    other => Ok(other?),
                }
            })
            .await
    }

    /// Replaces the limits of plan `name`; tenants on it get them at their next request.
    pub async fn update(&self, name: &str, limits: Limits) -> Result<Plan> {
        limits.check()?;
        let name = name.to_string();
        self.db
            .write(move |c| {
                let sql = format!(
                    "UPDATE plans SET requests_per_second = ?2, request_burst = ?3,
                       storage_bytes = ?4, max_upload_bytes = ?5, max_realtime_connections = ?6,
                       max_projects = ?7, max_backups = ?8, max_backup_bytes = ?9, hook_cpu_ms = ?10,
                       hook_memory_bytes = ?11, hook_cpu_ms_per_hour = ?12, shipping = ?13,
                       updated = strftime('%Y-%m-%d %H:%M:%fZ')
                     WHERE name = ?1 RETURNING name, {}, created, updated",
                    limit_columns("")
                );
                Ok::<_, Error>(
                    c.prepare_cached(&sql)?
                        .query_row(params_of(&name, &limits), from_row)
                        .optional()?,
                )
            })
            .await?
            .ok_or(Error::NotFound)
    }
}

fn params_of(name: &str, limits: &Limits) -> [sql::Value; 13] {
    use sql::Value::{Integer, Text};
    [
        Text(name.to_string()),
        Integer(limits.requests_per_second as i64),
        Integer(limits.request_burst as i64),
        Integer(limits.storage_bytes as i64),
        Integer(limits.max_upload_bytes as i64),
        Integer(limits.max_realtime_connections as i64),
        Integer(limits.max_projects as i64),
        Integer(limits.max_backups as i64),
        Integer(limits.max_backup_bytes as i64),
        Integer(limits.hook_cpu_ms as i64),
        Integer(limits.hook_memory_bytes as i64),
        Integer(limits.hook_cpu_ms_per_hour as i64),
        Text(limits.shipping.as_str().to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open_control_db;

    #[tokio::test]
    async fn a_default_plan_is_seeded_and_plans_change() {
        let dir = tempfile::tempdir().unwrap();
        let plans = Plans::new(open_control_db(dir.path()).await.unwrap());
        let default = plans.find(DEFAULT_PLAN).await.unwrap().unwrap();
        assert_eq!(default.limits.requests_per_second, 0);
        assert!(default.limits.max_projects > 0);
        assert_eq!(
            (
                default.limits.hook_cpu_ms,
                default.limits.hook_memory_bytes,
                default.limits.hook_cpu_ms_per_hour
            ),
            (1000, 64 << 20, DEFAULT_HOOK_CPU_MS_PER_HOUR)
        );
        let free = plans.find("free").await.unwrap().unwrap();
        assert!(free.limits.hook_cpu_ms_per_hour < DEFAULT_HOOK_CPU_MS_PER_HOUR);
        for bad in [
            Limits {
                hook_cpu_ms: 60_001,
                ..Limits::default()
            },
            Limits {
                hook_memory_bytes: 1 << 20,
                ..Limits::default()
            },
        ] {
            assert!(matches!(
                plans.create("bad", bad).await,
                Err(Error::Invalid(_, _))
            ));
        }
        let limits = Limits {
            requests_per_second: 5,
            request_burst: 10,
            ..Limits::default()
        };
        let pro = plans.create("pro", limits).await.unwrap();
        assert_eq!(pro.limits, limits);
        assert!(matches!(
            plans.create("pro", limits).await,
            Err(Error::Invalid("name", _))
        ));
        assert!(matches!(
            plans.create("Bad Name", limits).await,
            Err(Error::Invalid("name", _))
        ));
        let raised = Limits {
            storage_bytes: 1 << 30,
            shipping: Shipping::Sync,
            ..limits
        };
        assert_eq!(plans.update("pro", raised).await.unwrap().limits, raised);
        assert!(matches!(
            plans.update("nope", raised).await,
            Err(Error::NotFound)
        ));
        let names: Vec<_> = plans
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["default", "free", "pro"]);
    }
}
