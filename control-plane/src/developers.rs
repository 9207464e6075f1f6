//! The developers' side of the platform, shared by the console and the operator API: their
//! accounts and sessions, the projects they own, the mailer that writes to them, and the
//! one-time links that open a project's dashboard signed in.

use warren_mail::Mailer;
use warren_store::Database;

use crate::accounts::Accounts;
use crate::dashboard_links::DashboardLinks;
use crate::projects::Projects;
use crate::tenants::Tenants;

/// Accounts, their projects and the platform's mailer. Cheap to clone.
#[derive(Clone)]
pub struct Developers {
    /// Accounts, sessions and mailed links.
    accounts: Accounts,
    /// Tenants owned by accounts.
    projects: Projects,
    /// The platform's SMTP relay, or the local outbox without one.
    mailer: Mailer,
    /// Pending one-time dashboard sign-in codes.
    links: DashboardLinks,
}

impl Developers {
    /// Developers' accounts in the control database `db`, their projects among `tenants`.
    pub fn new(db: Database, tenants: Tenants, mailer: Mailer) -> Self {
        Self {
            accounts: Accounts::new(db),
            projects: Projects::new(tenants),
            mailer,
            links: DashboardLinks::default(),
        }
    }

    /// The same, with dashboard codes that live for `ttl` instead of a minute.
    pub fn with_dashboard_link_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.links = DashboardLinks::new(ttl);
        self
    }

    /// Pending one-time dashboard sign-in codes.
    pub fn dashboard_links(&self) -> &DashboardLinks {
        &self.links
    }

    /// The accounts store.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Accounts' projects.
    pub fn projects(&self) -> &Projects {
        &self.projects
    }

    /// The platform's mailer.
    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// The local outbox, when mail is kept in one (the platform has no SMTP relay).
    pub fn outbox(&self) -> Option<&warren_mail::Outbox> {
        self.mailer.outbox()
    }
}
