//! Projects: tenants owned by a console account. Every lookup here is scoped to the account,
//! so an id from another account is simply not found.

use warren_store::sql::{self, OptionalExtension, params};

use crate::tenants::{TenantInfo, Tenants};
use crate::{Error, Result, slug};

/// The projects account `account` may own: its plan's `maxProjects` (0 means no limit).
/// An account or plan that does not exist allows none.
pub async fn max_projects(db: &warren_store::Database, account: &str) -> Result<u32> {
    let account = account.to_string();
    let max: Option<Option<i64>> = db
        .read(move |c| {
            Ok::<_, Error>(
                c.prepare_cached(
                    "SELECT p.max_projects FROM accounts a LEFT JOIN plans p ON p.name = a.plan
                     WHERE a.id = ?1",
                )?
                .query_row([account], |row| row.get(0))
                .optional()?,
            )
        })
        .await?;
    let max = match max.flatten() {
        None => 0,
        Some(0) => u64::from(u32::MAX),
        Some(n) => u64::try_from(n).unwrap_or(0),
    };
    Ok(u32::try_from(max).unwrap_or(u32::MAX))
}

/// The tenants of one account, over the tenant bookkeeping. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Projects {
    /// Tenant bookkeeping and provisioning.
    tenants: Tenants,
}

impl Projects {
    /// Projects over `tenants`.
    pub fn new(tenants: Tenants) -> Self {
        Self { tenants }
    }

    /// The account's projects, newest first.
    pub async fn list(&self, account: &str) -> Result<Vec<TenantInfo>> {
        let account = account.to_string();
        self.tenants
            .db()
            .read(move |c| {
                let rows = c
                    .prepare_cached(&format!(
                        "{} WHERE t.account_id = ?1 ORDER BY t.created DESC, t.slug",
                        crate::tenants::select()
                    ))?
                    .query_map([account], crate::tenants::from_row)?
                    .collect::<sql::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    /// The account's project with tenant id `id`; `NotFound` when it is another's or absent.
    pub async fn get(&self, account: &str, id: &str) -> Result<TenantInfo> {
        let (account, id) = (account.to_string(), id.to_string());
        self.tenants
            .db()
            .read(move |c| {
                c.prepare_cached(&format!(
                    "{} WHERE t.id = ?1 AND t.account_id = ?2",
                    crate::tenants::select()
                ))?
                .query_row([id, account], crate::tenants::from_row)
                .optional()?
                .ok_or(Error::NotFound)
            })
            .await
    }

    /// Creates project `slug` for `account` unless it already owns `max` projects: provisions
    /// the tenant's directory, then records it (owner and cap checked in the same write), so
    /// a project is never routable before its database exists and two concurrent requests
    /// cannot both pass the cap. The project starts on the account's plan.
    pub async fn create(&self, account: &str, slug: &str, max: u32) -> Result<TenantInfo> {
        slug::validate(slug).map_err(|reason| Error::Invalid("slug", reason))?;
        if self.tenants.find(slug).await?.is_some() {
            return Err(Error::SlugTaken);
        }
        if self.list(account).await?.len() >= max as usize {
            return Err(Error::ProjectLimit(max));
        }
        let (id, elsewhere) = self.tenants.provision_new(slug).await?;
        let (row_id, row_slug, owner) = (id.clone(), slug.to_string(), account.to_string());
        let inserted = self
            .tenants
            .db()
            .write(move |c| {
                let owned: i64 = c.query_row(
                    "SELECT count(*) FROM tenants WHERE account_id = ?1",
                    [&owner],
                    |row| row.get(0),
                )?;
                if owned >= i64::from(max) {
                    return Err(Error::ProjectLimit(max));
                }
                let inserted = c
                    .prepare_cached(
                        "INSERT INTO tenants (id, slug, account_id, plan)
                         VALUES (?1, ?2, ?3, COALESCE((SELECT plan FROM accounts WHERE id = ?3),
                                                      'default'))",
                    )?
                    .execute(params![row_id, row_slug, owner]);
                match inserted.map_err(warren_store::Error::from) {
                    Err(e) if e.is_constraint() => Err(Error::SlugTaken),
                    Err(e) => Err(e.into()),
                    Ok(_) => Ok(c
                        .prepare_cached(&format!("{} WHERE t.id = ?1", crate::tenants::select()))?
                        .query_row([&row_id], crate::tenants::from_row)?),
                }
            })
            .await;
        if inserted.is_err() {
            self.tenants.discard_new(&id, elsewhere).await;
        }
        inserted
    }

    /// How many projects `account` owns.
    pub async fn count(&self, account: &str) -> Result<u64> {
        let account = account.to_string();
        self.tenants
            .db()
            .read(move |c| {
                let n: i64 = c.query_row(
                    "SELECT count(*) FROM tenants WHERE account_id = ?1",
                    [account],
                    |row| row.get(0),
                )?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Accounts;
    use crate::lifecycle::Lifecycle;
    use crate::{open_control_db, tenants_root};

    async fn setup() -> (tempfile::TempDir, Accounts, Projects) {
        let dir = tempfile::tempdir().unwrap();
        let db = open_control_db(dir.path()).await.unwrap();
        let tenants = Tenants::new(db.clone(), tenants_root(dir.path()));
        (dir, Accounts::new(db), Projects::new(tenants))
    }

    #[tokio::test]
    async fn accounts_see_and_delete_only_their_own_projects() {
        let (_dir, accounts, projects) = setup().await;
        let a = accounts.create("a@example.com", "h".into()).await.unwrap();
        let b = accounts.create("b@example.com", "h".into()).await.unwrap();
        let pa = projects.create(&a.id, "alpha", 3).await.unwrap();
        let pb = projects.create(&b.id, "beta", 3).await.unwrap();
        assert_eq!(
            projects.list(&a.id).await.unwrap(),
            std::slice::from_ref(&pa)
        );
        assert!(matches!(
            projects.get(&a.id, &pb.id).await,
            Err(Error::NotFound)
        ));
        assert!(matches!(
            Lifecycle::offline(projects.tenants.clone())
                .delete_project(&a.id, &pb.id)
                .await,
            Err(Error::NotFound)
        ));
        assert_eq!(projects.get(&b.id, &pb.id).await.unwrap(), pb);
        Lifecycle::offline(projects.tenants.clone())
            .delete_project(&a.id, &pa.id)
            .await
            .unwrap();
        assert!(projects.list(&a.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_cap_and_slug_rules_hold() {
        let (dir, accounts, projects) = setup().await;
        let a = accounts.create("a@example.com", "h".into()).await.unwrap();
        projects.create(&a.id, "one", 2).await.unwrap();
        projects.create(&a.id, "two", 2).await.unwrap();
        assert!(matches!(
            projects.create(&a.id, "three", 2).await,
            Err(Error::ProjectLimit(2))
        ));
        assert!(matches!(
            projects.create(&a.id, "one", 9).await,
            Err(Error::SlugTaken)
        ));
        assert!(matches!(
            projects.create(&a.id, "No Good", 9).await,
            Err(Error::Invalid("slug", _))
        ));
        assert_eq!(projects.count(&a.id).await.unwrap(), 2);
        let dirs = std::fs::read_dir(tenants_root(dir.path())).unwrap().count();
        assert_eq!(dirs, 2);
    }

    #[tokio::test]
    async fn an_accounts_plan_sets_its_cap_and_its_projects_plan() {
        let (_dir, accounts, projects) = setup().await;
        let db = projects.tenants.db().clone();
        let a = accounts.create("a@example.com", "h".into()).await.unwrap();
        assert_eq!(a.plan, crate::plans::DEFAULT_PLAN);
        assert_eq!(max_projects(&db, &a.id).await.unwrap(), 3);
        assert_eq!(max_projects(&db, "nosuchaccount00").await.unwrap(), 0);
        let before = projects.create(&a.id, "before", 3).await.unwrap();
        assert_eq!(before.plan, "default");

        let moved = accounts.set_plan(&a.id, "free").await.unwrap();
        assert_eq!(moved.plan, "free");
        assert_eq!(max_projects(&db, &a.id).await.unwrap(), 1);
        assert_eq!(projects.get(&a.id, &before.id).await.unwrap().plan, "free");
        Lifecycle::offline(projects.tenants.clone())
            .delete_project(&a.id, &before.id)
            .await
            .unwrap();
        let after = projects.create(&a.id, "after", 1).await.unwrap();
        assert_eq!(after.plan, "free");
        assert!(matches!(
            accounts.set_plan(&a.id, "nosuch").await,
            Err(Error::Invalid("plan", _))
        ));
        assert!(matches!(
            accounts.set_plan("nosuchaccount00", "free").await,
            Err(Error::NotFound)
        ));
        assert_eq!(accounts.get(&a.id).await.unwrap().plan, "free");
    }
}
