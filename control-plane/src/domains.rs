//! Custom domains: a tenant claims a host name, proves it with the TXT record
//! `_warren.<domain>` holding its token, and from then on the name routes to the tenant exactly
//! like `<slug>.<platform domain>`. Plain async functions over the control plane, shared by the
//! operator API, the CLI and the console.

use std::net::SocketAddr;

use serde::Serialize;
use warren_store::Database;
use warren_store::sql::{self, OptionalExtension, Row};

use crate::tenants::TenantInfo;
use crate::{ControlPlane, Error, Result, Tenants, dns};

/// Most custom domains one tenant may have.
pub const MAX_PER_TENANT: i64 = 50;

/// A custom domain as the control plane keeps it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DomainInfo {
    /// The host name.
    pub domain: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// The value `_warren.<domain>` must hold.
    pub token: String,
    /// `pending` or `verified`.
    pub status: String,
    /// Why the last check failed (empty when it did not).
    pub last_error: String,
    /// When it was verified (empty while pending).
    pub verified: String,
    /// When it was added.
    pub created: String,
}

impl DomainInfo {
    /// The name of the TXT record that proves the claim.
    pub fn txt_name(&self) -> String {
        format!("_warren.{}", self.domain)
    }
}

const COLUMNS: &str = "domain, tenant_id, token, status, last_error, verified, created";

fn from_row(row: &Row<'_>) -> sql::Result<DomainInfo> {
    Ok(DomainInfo {
        domain: row.get(0)?,
        tenant_id: row.get(1)?,
        token: row.get(2)?,
        status: row.get(3)?,
        last_error: row.get(4)?,
        verified: row.get(5)?,
        created: row.get(6)?,
    })
}

/// Checks and normalizes a domain (lowercase, no trailing dot): at least two DNS labels of
/// letters, digits and hyphens, not an IP address, not the platform domain or under it.
pub fn normalize(domain: &str, platform_domain: &str) -> std::result::Result<String, String> {
    let name = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let platform = platform_domain.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("The domain must be 1 to 253 characters long.".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err("The domain must be a DNS name such as app.example.com.".into());
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("The domain must be a name, not an IP address.".into());
    }
    if name == platform || name.ends_with(&format!(".{platform}")) {
        return Err("The platform's own domain cannot be claimed.".into());
    }
    Ok(name)
}

async fn tenant(tenants: &Tenants, slug: &str) -> Result<TenantInfo> {
    tenants.find(slug).await?.ok_or(Error::NotFound)
}

/// Adds `domain` to tenant `slug` as pending, with a fresh verification token.
pub async fn add(
    tenants: &Tenants,
    platform_domain: &str,
    slug: &str,
    domain: &str,
) -> Result<DomainInfo> {
    let name = normalize(domain, platform_domain).map_err(|r| Error::Invalid("domain", r))?;
    let owner = tenant(tenants, slug).await?;
    let token = warren_secrets::random::secret(32);
    tenants
        .db()
        .write(move |c| {
            let count: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM domains WHERE tenant_id = ?1")?
                .query_row([&owner.id], |r| r.get(0))?;
            if count >= MAX_PER_TENANT {
                return Err(Error::Invalid(
                    "domain",
                    format!("A tenant may have at most {MAX_PER_TENANT} domains."),
                ));
            }
            let inserted = c
                .prepare_cached(&format!(
                    "INSERT INTO domains (domain, tenant_id, token) VALUES (?1, ?2, ?3)
                     RETURNING {COLUMNS}"
                ))?
                .query_row([&name, &owner.id, &token], from_row);
            match inserted.map_err(warren_store::Error::from) {
                Err(e) if e.is_constraint() => Err(Error::DomainTaken),
                other => Ok(other?),
            }
        })
        .await
}

/// The domains of tenant `slug`, by name.
pub async fn list(tenants: &Tenants, slug: &str) -> Result<Vec<DomainInfo>> {
    let owner = tenant(tenants, slug).await?;
    tenants
        .db()
        .read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM domains WHERE tenant_id = ?1 ORDER BY domain"
            ))?;
            let rows = stmt.query_map([owner.id], from_row)?;
            Ok(rows.collect::<sql::Result<Vec<_>>>()?)
        })
        .await
}

/// Domain `domain` of tenant `slug`.
pub async fn get(tenants: &Tenants, slug: &str, domain: &str) -> Result<DomainInfo> {
    let owner = tenant(tenants, slug).await?;
    let name = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    tenants
        .db()
        .read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM domains WHERE domain = ?1 AND tenant_id = ?2"
            ))?
            .query_row([name, owner.id], from_row)
            .optional()?)
        })
        .await
        .and_then(|found: Option<DomainInfo>| found.ok_or(Error::NotFound))
}

/// Removes domain `domain` from tenant `slug`.
pub async fn remove(tenants: &Tenants, slug: &str, domain: &str) -> Result<DomainInfo> {
    let found = get(tenants, slug, domain).await?;
    let name = found.domain.clone();
    tenants
        .db()
        .write(move |c| {
            c.prepare_cached("DELETE FROM domains WHERE domain = ?1")?
                .execute([name])?;
            Ok::<_, Error>(())
        })
        .await?;
    Ok(found)
}

/// Looks up `_warren.<domain>` through `resolver` and marks the domain verified when one of
/// its TXT strings is the token; otherwise keeps the reason in `last_error`.
pub async fn check(
    tenants: &Tenants,
    resolver: SocketAddr,
    slug: &str,
    domain: &str,
) -> Result<DomainInfo> {
    let found = get(tenants, slug, domain).await?;
    let outcome = match dns::txt(resolver, &found.txt_name()).await {
        Ok(strings) if strings.iter().any(|s| s.trim() == found.token) => Ok(()),
        Ok(strings) if strings.is_empty() => {
            Err(format!("No TXT record {} was found.", found.txt_name()))
        }
        Ok(_) => Err(format!(
            "The TXT record {} does not hold the token.",
            found.txt_name()
        )),
        Err(e) => Err(e),
    };
    let name = found.domain.clone();
    tenants
        .db()
        .write(move |c| {
            let sql = match &outcome {
                Ok(()) => format!(
                    "UPDATE domains SET status = 'verified', last_error = '',
                       verified = CASE verified WHEN '' THEN strftime('%Y-%m-%d %H:%M:%fZ')
                                  ELSE verified END
                     WHERE domain = ?1 RETURNING {COLUMNS}"
                ),
                Err(_) => format!(
                    "UPDATE domains SET last_error = ?2 WHERE domain = ?1 RETURNING {COLUMNS}"
                ),
            };
            let mut stmt = c.prepare_cached(&sql)?;
            let row = match &outcome {
                Ok(()) => stmt.query_row([&name], from_row),
                Err(reason) => stmt.query_row([&name, reason], from_row),
            };
            row.optional()?.ok_or(Error::NotFound)
        })
        .await
}

/// Every verified domain with the tenant it reaches.
pub async fn verified(db: &Database) -> Result<Vec<(String, TenantInfo)>> {
    db.read(|c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT d.domain, t.id, t.slug, t.status, t.created, t.plan, {}
               FROM domains d JOIN tenants t ON t.id = d.tenant_id
               LEFT JOIN plans p ON p.name = t.plan
              WHERE d.status = 'verified'",
            crate::plans::tenant_limit_columns()
        ))?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get(0)?,
                TenantInfo {
                    id: row.get(1)?,
                    slug: row.get(2)?,
                    status: crate::tenants::status_at(row, 3)?,
                    created: row.get(4)?,
                    plan: row.get(5)?,
                    limits: crate::plans::Limits::from_row(row, 6)?,
                },
            ))
        })?;
        Ok(rows.collect::<sql::Result<Vec<_>>>()?)
    })
    .await
}

/// [`add`] through the control plane.
pub async fn add_domain(state: &ControlPlane, slug: &str, domain: &str) -> Result<DomainInfo> {
    add(&state.tenants, &state.urls.domain, slug, domain).await
}

/// [`check`] through the control plane: a verified domain routes at once.
pub async fn check_domain(state: &ControlPlane, slug: &str, domain: &str) -> Result<DomainInfo> {
    let info = check(&state.tenants, state.tenants.dns_resolver(), slug, domain).await?;
    if info.status == "verified" {
        let owner = tenant(&state.tenants, slug).await?;
        state.directory.learn_domain(&info.domain, owner);
    }
    Ok(info)
}

/// [`remove`] through the control plane: the name stops routing (and handshaking) at once.
pub async fn remove_domain(state: &ControlPlane, slug: &str, domain: &str) -> Result<DomainInfo> {
    let info = remove(&state.tenants, slug, domain).await?;
    state.directory.forget_domain(&info.domain);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open_control_db, tenants_root};

    #[test]
    fn domains_are_normalized_and_checked() {
        assert_eq!(
            normalize(" App.Example.COM. ", "warren.example").unwrap(),
            "app.example.com"
        );
        for bad in [
            "",
            "localhost",
            "a..b.com",
            "-a.example.com",
            "a_b.example.com",
            "127.0.0.1",
            "warren.example",
            "x.warren.example",
            &format!("{}.com", "a".repeat(64)),
        ] {
            let reason = normalize(bad, "warren.example").unwrap_err();
            assert!(reason.ends_with('.'), "{bad}: {reason}");
        }
    }

    #[tokio::test]
    async fn add_list_remove_and_uniqueness() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_control_db(dir.path()).await.unwrap();
        let tenants = Tenants::new(db.clone(), tenants_root(dir.path()));
        tenants.create("alpha").await.unwrap();
        tenants.create("beta").await.unwrap();
        let added = add(&tenants, "localhost", "alpha", "App.Example.com")
            .await
            .unwrap();
        assert_eq!(
            (added.domain.as_str(), added.status.as_str()),
            ("app.example.com", "pending")
        );
        assert!(added.token.len() >= 32);
        assert!(matches!(
            add(&tenants, "localhost", "beta", "app.example.com").await,
            Err(Error::DomainTaken)
        ));
        assert!(matches!(
            add(&tenants, "localhost", "nobody", "x.example.com").await,
            Err(Error::NotFound)
        ));
        assert_eq!(list(&tenants, "alpha").await.unwrap(), vec![added.clone()]);
        assert!(list(&tenants, "beta").await.unwrap().is_empty());
        assert!(verified(&db).await.unwrap().is_empty());
        assert!(matches!(
            remove(&tenants, "beta", "app.example.com").await,
            Err(Error::NotFound)
        ));
        remove(&tenants, "alpha", "app.example.com").await.unwrap();
        assert!(list(&tenants, "alpha").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_check_against_a_silent_resolver_keeps_the_domain_pending() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_control_db(dir.path()).await.unwrap();
        let tenants = Tenants::new(db, tenants_root(dir.path()));
        tenants.create("alpha").await.unwrap();
        add(&tenants, "localhost", "alpha", "app.example.com")
            .await
            .unwrap();
        // A bound UDP socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let checked = check(
            &tenants,
            silent.local_addr().unwrap(),
            "alpha",
            "app.example.com",
        )
        .await
        .unwrap();
        assert_eq!(checked.status, "pending");
        assert!(
            checked.last_error.contains("did not answer"),
            "{}",
            checked.last_error
        );
    }
}
