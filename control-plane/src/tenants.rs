//! Tenant bookkeeping: create (provision here or on the placed node, then record), list, get,
//! delete.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use warren_store::Database;
use warren_store::sql::{self, OptionalExtension, Row};

use crate::plans::Limits;
pub use crate::status::TenantStatus;
use crate::{Error, Result, slug};

/// A tenant as the control plane knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TenantInfo {
    /// Stable id (names its directory).
    pub id: String,
    /// The `<slug>` of its hostname.
    pub slug: String,
    /// Whether its hostnames answer.
    pub status: TenantStatus,
    /// Creation time, `YYYY-MM-DD HH:MM:SS.mmmZ`.
    pub created: String,
    /// The tenant's plan.
    pub plan: String,
    /// The plan's quotas (all 0, no limits, if the plan is missing).
    pub limits: Limits,
}

/// How tenant URLs are spelled: `http://<slug>.<domain>:<port>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlScheme {
    /// `http` or `https`.
    pub scheme: String,
    /// The platform domain.
    pub domain: String,
    /// The public port, left out when it is the scheme's default.
    pub port: Option<u16>,
}

impl UrlScheme {
    /// The URL of tenant `slug`.
    pub fn tenant_url(&self, slug: &str) -> String {
        self.url_of(&format!("{slug}.{}", self.domain))
    }

    /// The platform host's own URL (console and operator API).
    pub fn platform_url(&self) -> String {
        self.url_of(&self.domain)
    }

    /// The URL of `host` (a tenant's custom domain) with this scheme and port.
    pub fn host_url(&self, host: &str) -> String {
        self.url_of(host)
    }

    /// Whether `url` is exactly [`Self::tenant_url`] of `slug`, decided without building it:
    /// a tenant's request checks its URL every time.
    pub fn is_tenant_url(&self, url: &str, slug: &str) -> bool {
        self.host_of(url)
            .and_then(|host| host.strip_prefix(slug))
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|domain| domain == self.domain)
    }

    /// Whether `url` is exactly [`Self::host_url`] of `host`.
    pub fn is_host_url(&self, url: &str, host: &str) -> bool {
        self.host_of(url) == Some(host)
    }

    fn url_of(&self, host: &str) -> String {
        match self.shown_port() {
            Some(port) => format!("{}://{host}:{port}", self.scheme),
            None => format!("{}://{host}", self.scheme),
        }
    }

    /// The port URLs carry: none for the scheme's default.
    fn shown_port(&self) -> Option<u16> {
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        self.port.filter(|port| *port != default_port)
    }

    /// The host of `url` when `url` is spelled the way [`Self::url_of`] spells this scheme and
    /// port.
    fn host_of<'a>(&self, url: &'a str) -> Option<&'a str> {
        let rest = url
            .strip_prefix(self.scheme.as_str())?
            .strip_prefix("://")?;
        match self.shown_port() {
            Some(port) => {
                let (host, digits) = rest.rsplit_once(':')?;
                let canonical = !digits.starts_with('0')
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && digits.parse::<u16>() == Ok(port);
                canonical.then_some(host)
            }
            None => (!rest.contains(':')).then_some(rest),
        }
    }

    /// The scheme of a public URL such as `https://example.com` or `http://localhost:8080`:
    /// how users reach the platform when a proxy stands in front of it. Its host must be the
    /// platform domain `domain` (requests are routed by it); a path, query or user is refused.
    pub fn from_public_url(url: &str, domain: &str) -> std::result::Result<Self, String> {
        let bad = |why: &str| format!("--public-url {url:?}: {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not a URL like https://example.com"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad("only a scheme, a host and a port are allowed"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
                (host, Some(port))
            }
            None => (authority, None),
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host != domain.trim_end_matches('.').to_ascii_lowercase() {
            return Err(bad(&format!(
                "its host must be the platform domain {domain:?} (set --domain {host} to serve that name)"
            )));
        }
        Ok(Self {
            scheme,
            domain: domain.to_string(),
            port,
        })
    }
}

/// The tenants table plus the directory tenants live in. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tenants {
    /// The control database.
    db: Database,
    /// Directory holding the tenants' directories.
    root: PathBuf,
    /// DNS resolver for custom-domain verification (the system's when unset).
    dns: Option<std::net::SocketAddr>,
    /// Where new tenants are provisioned when not here (a cluster's placed node).
    placer: crate::new_tenants::Placer,
}

pub(crate) fn from_row(row: &Row<'_>) -> sql::Result<TenantInfo> {
    Ok(TenantInfo {
        id: row.get(0)?,
        slug: row.get(1)?,
        status: status_at(row, 2)?,
        created: row.get(3)?,
        plan: row.get(4)?,
        limits: Limits::from_row(row, 5)?,
    })
}

/// The status stored in column `index` of `row`.
pub(crate) fn status_at(row: &Row<'_>, index: usize) -> warren_store::sql::Result<TenantStatus> {
    let stored: String = row.get(index)?;
    stored.parse().map_err(|e| {
        warren_store::sql::Error::FromSqlConversionFailure(
            index,
            warren_store::sql::Type::Text,
            Box::new(e),
        )
    })
}

/// `SELECT` of [`from_row`]'s columns: tenants `t` joined with their plans.
pub(crate) fn select() -> String {
    format!(
        "SELECT t.id, t.slug, t.status, t.created, t.plan, {}
         FROM tenants t LEFT JOIN plans p ON p.name = t.plan",
        crate::plans::tenant_limit_columns()
    )
}

/// Which tenants a [`Tenants::page`] call returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only tenants with this status.
    pub status: Option<String>,
    /// Only tenants on this plan.
    pub plan: Option<String>,
    /// Only tenants whose slug starts with this.
    pub slug_prefix: Option<String>,
}

/// One page of tenants and how many match in all.
#[derive(Debug, Clone)]
pub struct Page {
    /// The tenants of the page, by slug.
    pub items: Vec<TenantInfo>,
    /// Tenants matching the filter.
    pub total: u64,
}

impl Tenants {
    /// Tenant bookkeeping over `db`, with tenant directories under `root`.
    pub fn new(db: Database, root: PathBuf) -> Self {
        Self {
            db,
            root,
            dns: None,
            placer: Default::default(),
        }
    }

    /// Provisions the tenants [`Tenants::create`] and project creation make through `placer`
    /// from now on (every clone of this value included); imports stay here.
    pub fn set_placer(&self, placer: std::sync::Arc<dyn crate::new_tenants::PlaceNew>) {
        self.placer.set(placer);
    }

    /// Provisions a new tenant to be recorded under `slug`: on its placed node when a placer
    /// takes it, else here. Its fresh id, and whether it was made elsewhere.
    pub(crate) async fn provision_new(&self, slug: &str) -> Result<(String, bool)> {
        use crate::new_tenants::Provisioned;
        let mut id = warren_secrets::random::record_id();
        if let Some(placer) = self.placer.get() {
            match placer.provision_there(&id, slug).await {
                Provisioned::There => return Ok((id, true)),
                Provisioned::Here => {}
                // A fresh id: one the placed node may still claim late is never reused here.
                Provisioned::Failed => id = warren_secrets::random::record_id(),
            }
        }
        warren_tenant::provision(&self.root, &id).await?;
        Ok((id, false))
    }

    /// Undoes [`Tenants::provision_new`] after its record failed: the directory here removed,
    /// or the tenant made `elsewhere` given up.
    pub(crate) async fn discard_new(&self, id: &str, elsewhere: bool) {
        if !elsewhere {
            let _ = tokio::fs::remove_dir_all(warren_tenant::tenant_dir(&self.root, id)).await;
        }
        if let Some(placer) = self.placer.get() {
            placer.abandon(id, elsewhere).await;
        }
    }

    /// Uses `resolver` for custom-domain verification lookups.
    pub fn with_dns_resolver(mut self, resolver: Option<std::net::SocketAddr>) -> Self {
        self.dns = resolver;
        self
    }

    /// The DNS resolver for custom-domain verification.
    pub fn dns_resolver(&self) -> std::net::SocketAddr {
        self.dns.unwrap_or_else(crate::dns::system_resolver)
    }

    /// The control database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The directory holding the tenants' directories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates tenant `slug`: validates the slug, provisions its directory and database, then
    /// records it. The record is written last, so a tenant is never routable before its
    /// database exists; a failed insert removes the fresh directory again.
    pub async fn create(&self, slug: &str) -> Result<TenantInfo> {
        slug::validate(slug).map_err(|reason| Error::Invalid("slug", reason))?;
        if self.find(slug).await?.is_some() {
            return Err(Error::SlugTaken);
        }
        let (id, elsewhere) = self.provision_new(slug).await?;
        self.register(id, slug, elsewhere).await
    }

    /// Creates tenant `slug` from the PocketBase data directory `from`: its collections,
    /// records, users (password hashes, token keys), settings, logs and files come across as
    /// they are; no system collections are added. Returns the tenant and what was copied.
    pub async fn import(
        &self,
        slug: &str,
        from: &Path,
    ) -> Result<(TenantInfo, warren_tenant::transfer::Summary)> {
        self.import_with(slug, from, &warren_tenant::transfer::quiet)
            .await
    }

    /// [`Tenants::import`] from a data directory or a zip of one (unpacked into scratch space
    /// next to the tenants first, under the archive's path checks), reporting progress. Needs a
    /// multi-threaded runtime (unpacking blocks its thread).
    pub async fn import_with(
        &self,
        slug: &str,
        from: &Path,
        report: warren_tenant::transfer::Report<'_>,
    ) -> Result<(TenantInfo, warren_tenant::transfer::Summary)> {
        use warren_tenant::transfer::{self, Files};
        slug::validate(slug).map_err(|reason| Error::Invalid("slug", reason))?;
        if self.find(slug).await?.is_some() {
            return Err(Error::SlugTaken);
        }
        let id = warren_secrets::random::record_id();
        let is_file = tokio::fs::metadata(from).await.is_ok_and(|m| m.is_file());
        let summary = if is_file {
            tokio::fs::create_dir_all(&self.root)
                .await
                .map_err(Error::Io)?;
            let unpacked = self.root.join(format!(".unpack-{id}"));
            let (zip, dest) = (from.to_path_buf(), unpacked.clone());
            let limits = warren_tenant::archive::Limits {
                max_entries: usize::MAX,
                max_bytes: u64::MAX,
            };
            let unpacking = tokio::task::block_in_place(|| {
                warren_tenant::archive::unpack(&zip, &dest, limits, report)
            });
            let imported = match unpacking {
                Ok(_) => {
                    transfer::import_with(&self.root, &id, &unpacked, Files::Move, report).await
                }
                Err(e) => Err(e),
            };
            let _ = tokio::fs::remove_dir_all(&unpacked).await;
            imported?
        } else {
            transfer::import_with(&self.root, &id, from, Files::Copy, report).await?
        };
        Ok((self.register(id, slug, false).await?, summary))
    }

    /// Writes tenant `slug` as a PocketBase data directory into `to` (missing or empty), and
    /// its code folders (`pb_hooks`, `pb_migrations`, `pb_public`) beside it.
    pub async fn export(&self, slug: &str, to: &Path) -> Result<warren_tenant::transfer::Summary> {
        let info = self.find(slug).await?.ok_or(Error::NotFound)?;
        let code = warren_tenant::transfer::beside(to);
        // Refused before the data is written, so a full code folder leaves nothing half done.
        for folder in warren_tenant::code::Folder::ALL {
            let path = folder.path(&code);
            if std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_some())
                && warren_tenant::code::summary(&warren_tenant::tenant_dir(&self.root, &info.id))?
                    .iter()
                    .any(|f| f.folder == folder)
            {
                return Err(Error::Invalid(
                    "to",
                    format!(
                        "{} is not empty; the project's code is written beside the data directory",
                        path.display()
                    ),
                ));
            }
        }
        let mut summary = warren_tenant::transfer::export(&self.root, &info.id, to).await?;
        summary.code_files = warren_tenant::transfer::export_code(&self.root, &info.id, to).await?;
        Ok(summary)
    }

    /// Records the provisioned tenant `id` under `slug`; removes its directory again (or, made
    /// `elsewhere`, gives it up) if that fails.
    pub(crate) async fn register(
        &self,
        id: String,
        slug: &str,
        elsewhere: bool,
    ) -> Result<TenantInfo> {
        let (row_id, row_slug) = (id.clone(), slug.to_string());
        let inserted = self
            .db
            .write(move |c| {
                let inserted = c
                    .prepare_cached("INSERT INTO tenants (id, slug) VALUES (?1, ?2)")?
                    .execute([&row_id, &row_slug]);
                match inserted.map_err(warren_store::Error::from) {
                    Err(e) if e.is_constraint() => Err(Error::SlugTaken),
                    Err(e) => Err(e.into()),
                    Ok(_) => Ok(c
                        .prepare_cached(&format!("{} WHERE t.id = ?1", select()))?
                        .query_row([&row_id], from_row)?),
                }
            })
            .await;
        if inserted.is_err() {
            self.discard_new(&id, elsewhere).await;
        }
        inserted
    }

    /// The tenant with `slug`, if any.
    pub async fn find(&self, slug: &str) -> Result<Option<TenantInfo>> {
        let slug = slug.to_string();
        self.db
            .read(move |c| {
                Ok(
                    c.prepare_cached(&format!("{} WHERE t.slug = ?1", select()))?
                        .query_row([slug], from_row)
                        .optional()?,
                )
            })
            .await
    }

    /// The tenant with stable id `id`, if any.
    pub async fn find_id(&self, id: &str) -> Result<Option<TenantInfo>> {
        let id = id.to_string();
        self.db
            .read(move |c| {
                Ok(c.prepare_cached(&format!("{} WHERE t.id = ?1", select()))?
                    .query_row([id], from_row)
                    .optional()?)
            })
            .await
    }

    /// Every tenant, ordered by slug.
    pub async fn list(&self) -> Result<Vec<TenantInfo>> {
        self.db
            .read(|c| {
                let mut stmt = c.prepare_cached(&format!("{} ORDER BY t.slug", select()))?;
                let rows = stmt.query_map([], from_row)?;
                Ok(rows.collect::<sql::Result<Vec<_>>>()?)
            })
            .await
    }

    /// One page (1-based, `per_page` long) of the tenants matching `filter`, by slug.
    pub async fn page(&self, filter: Filter, page: u64, per_page: u64) -> Result<Page> {
        let offset = page
            .saturating_sub(1)
            .saturating_mul(per_page)
            .min(i64::MAX as u64);
        self.db
            .read(move |c| {
                let matches = "(?1 IS NULL OR t.status = ?1) AND (?2 IS NULL OR t.plan = ?2)
                     AND (?3 IS NULL OR substr(t.slug, 1, length(?3)) = ?3)";
                let args = sql::params![filter.status, filter.plan, filter.slug_prefix];
                let total: i64 = c
                    .prepare_cached(&format!("SELECT count(*) FROM tenants t WHERE {matches}"))?
                    .query_row(args, |r| r.get(0))?;
                let mut stmt = c.prepare_cached(&format!(
                    "{} WHERE {matches} ORDER BY t.slug LIMIT ?4 OFFSET ?5",
                    select()
                ))?;
                let rows = stmt.query_map(
                    sql::params![
                        filter.status,
                        filter.plan,
                        filter.slug_prefix,
                        per_page as i64,
                        offset as i64
                    ],
                    from_row,
                )?;
                Ok(Page {
                    items: rows.collect::<sql::Result<Vec<_>>>()?,
                    total: total.max(0) as u64,
                })
            })
            .await
    }

    /// Sets the status of tenant `slug`.
    pub async fn set_status(&self, slug: &str, status: TenantStatus) -> Result<TenantInfo> {
        self.update(slug, "status", status.as_str().to_string())
            .await
    }

    /// Moves tenant `slug` to plan `plan`, which must exist.
    pub async fn set_plan(&self, slug: &str, plan: &str) -> Result<TenantInfo> {
        let known: Option<i64> = {
            let plan = plan.to_string();
            self.db
                .read(move |c| {
                    Ok::<_, Error>(
                        c.prepare_cached("SELECT 1 FROM plans WHERE name = ?1")?
                            .query_row([plan], |r| r.get(0))
                            .optional()?,
                    )
                })
                .await?
        };
        if known.is_none() {
            return Err(Error::Invalid("plan", "There is no such plan.".into()));
        }
        self.update(slug, "plan", plan.to_string()).await
    }

    /// Sets tenant `slug`'s own shipping mode, overriding its plan's; `None` follows the plan
    /// again.
    pub async fn set_shipping(
        &self,
        slug: &str,
        shipping: Option<crate::plans::Shipping>,
    ) -> Result<TenantInfo> {
        let slug = slug.to_string();
        let value = shipping.map(|s| s.as_str().to_string());
        self.db
            .write(move |c| {
                let changed = c
                    .prepare_cached("UPDATE tenants SET shipping = ?2 WHERE slug = ?1")?
                    .execute(warren_store::sql::params![&slug, &value])?;
                if changed == 0 {
                    return Ok(None);
                }
                Ok::<_, Error>(
                    c.prepare_cached(&format!("{} WHERE t.slug = ?1", select()))?
                        .query_row([&slug], from_row)
                        .optional()?,
                )
            })
            .await?
            .ok_or(Error::NotFound)
    }

    /// Sets one column (a fixed name, never user input) of tenant `slug`.
    async fn update(&self, slug: &str, column: &'static str, value: String) -> Result<TenantInfo> {
        let slug = slug.to_string();
        self.db
            .write(move |c| {
                let changed = c
                    .prepare_cached(&format!("UPDATE tenants SET {column} = ?2 WHERE slug = ?1"))?
                    .execute([&slug, &value])?;
                if changed == 0 {
                    return Ok(None);
                }
                Ok::<_, Error>(
                    c.prepare_cached(&format!("{} WHERE t.slug = ?1", select()))?
                        .query_row([&slug], from_row)
                        .optional()?,
                )
            })
            .await?
            .ok_or(Error::NotFound)
    }

    /// Deletes the record of tenant `id` and its custom domains; its directory is left to
    /// the caller ([`crate::lifecycle::Lifecycle::delete`] removes it once the tenant is closed).
    pub(crate) async fn delete_record(&self, id: &str) -> Result<TenantInfo> {
        let key = id.to_string();
        self.db
            .write(move |c| {
                let found = c
                    .prepare_cached(&format!("{} WHERE t.id = ?1", select()))?
                    .query_row([&key], from_row)
                    .optional()?;
                if found.is_some() {
                    c.prepare_cached("DELETE FROM tenants WHERE id = ?1")?
                        .execute([&key])?;
                    c.prepare_cached("DELETE FROM domains WHERE tenant_id = ?1")?
                        .execute([&key])?;
                }
                Ok::<_, Error>(found)
            })
            .await?
            .ok_or(Error::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_recognized_exactly_as_it_is_built() {
        let schemes = [
            UrlScheme {
                scheme: "http".into(),
                domain: "localhost".into(),
                port: Some(8090),
            },
            UrlScheme {
                scheme: "https".into(),
                domain: "example.com".into(),
                port: None,
            },
            UrlScheme {
                scheme: "https".into(),
                domain: "example.com".into(),
                port: Some(443),
            },
            UrlScheme {
                scheme: "http".into(),
                domain: "example.com".into(),
                port: Some(80),
            },
        ];
        for urls in &schemes {
            let tenant = urls.tenant_url("alpha");
            assert!(urls.is_tenant_url(&tenant, "alpha"), "{tenant}");
            assert!(!urls.is_tenant_url(&tenant, "alph"), "{tenant}");
            assert!(!urls.is_tenant_url(&tenant, "alpha.x"), "{tenant}");
            assert!(!urls.is_tenant_url(&urls.tenant_url("beta"), "alpha"));
            assert!(!urls.is_tenant_url(&urls.platform_url(), "alpha"));
            assert!(!urls.is_tenant_url(&format!("{tenant}/"), "alpha"));
            let host = urls.host_url("app.customer.org");
            assert!(urls.is_host_url(&host, "app.customer.org"), "{host}");
            assert!(!urls.is_host_url(&host, "customer.org"));
            assert!(!urls.is_tenant_url(&host, "app"));
        }
        let local = &schemes[0];
        for other in [
            "https://alpha.localhost:8090",
            "http://alpha.localhost",
            "http://alpha.localhost:8091",
            "http://alpha.localhost:08090",
            "http://alpha.localhost:+8090",
            "http://alpha.localhost:8090:8090",
            "http://alpha.localhost.evil:8090",
        ] {
            assert!(!local.is_tenant_url(other, "alpha"), "{other}");
        }
        assert!(!schemes[1].is_tenant_url("https://alpha.example.com:443", "alpha"));
    }
    use crate::{open_control_db, tenants_root};

    async fn tenants() -> (tempfile::TempDir, Tenants) {
        let dir = tempfile::tempdir().unwrap();
        let db = open_control_db(dir.path()).await.unwrap();
        let tenants = Tenants::new(db, tenants_root(dir.path()));
        (dir, tenants)
    }

    #[tokio::test]
    async fn create_list_delete() {
        let (dir, tenants) = tenants().await;
        let alpha = tenants.create("alpha").await.unwrap();
        assert_eq!(alpha.status, TenantStatus::Active);
        assert!(
            dir.path()
                .join("tenants")
                .join(&alpha.id)
                .join("data.db")
                .exists()
        );
        tenants.create("beta").await.unwrap();
        let slugs: Vec<_> = tenants
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.slug)
            .collect();
        assert_eq!(slugs, ["alpha", "beta"]);
        let lifecycle = crate::Lifecycle::offline(tenants.clone());
        lifecycle.delete("alpha").await.unwrap();
        assert!(!dir.path().join("tenants").join(&alpha.id).exists());
        assert!(tenants.find("alpha").await.unwrap().is_none());
        assert!(matches!(
            lifecycle.delete("alpha").await,
            Err(Error::NotFound)
        ));
    }

    #[tokio::test]
    async fn slugs_are_unique_and_checked() {
        let (dir, tenants) = tenants().await;
        tenants.create("alpha").await.unwrap();
        assert!(matches!(
            tenants.create("alpha").await,
            Err(Error::SlugTaken)
        ));
        assert!(matches!(
            tenants.create("Bad Slug").await,
            Err(Error::Invalid("slug", _))
        ));
        // Neither failure left a directory behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("tenants"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn urls_leave_out_default_ports() {
        let scheme = UrlScheme {
            scheme: "http".into(),
            domain: "localhost".into(),
            port: Some(8090),
        };
        assert_eq!(scheme.tenant_url("myapp"), "http://myapp.localhost:8090");
        let scheme = UrlScheme {
            scheme: "https".into(),
            domain: "example.com".into(),
            port: Some(443),
        };
        assert_eq!(scheme.tenant_url("myapp"), "https://myapp.example.com");
        assert_eq!(scheme.platform_url(), "https://example.com");
    }

    #[test]
    fn a_public_url_gives_scheme_and_port_of_the_platform_domain() {
        let public = UrlScheme::from_public_url("https://Example.com/", "example.com").unwrap();
        assert_eq!(public.tenant_url("myapp"), "https://myapp.example.com");
        let public = UrlScheme::from_public_url("http://localhost:8080", "localhost").unwrap();
        assert_eq!(public.tenant_url("myapp"), "http://myapp.localhost:8080");
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/app",
            "https://user@example.com",
            "https://example.com:0",
            "https://example.com:http",
            "https://other.org",
        ] {
            let refused = UrlScheme::from_public_url(bad, "example.com");
            assert!(refused.is_err(), "{bad} was accepted");
        }
    }
}
