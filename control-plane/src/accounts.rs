//! Developer accounts of the console: the accounts table, signed-in sessions and the one-time
//! links (email verification, password reset) sent by mail.
//!
//! Secrets handed to browsers and mailboxes are random; only their SHA-256 is stored. Password
//! hashing is the caller's (it is slow and bounded by `warren_secrets::Passwords`).

use serde::Serialize;
use sha2::{Digest, Sha256};
use warren_store::Database;
use warren_store::sql::{self, OptionalExtension, Row, params};

use crate::{Error, Result};

/// How long a console session lasts.
pub const SESSION_SECONDS: i64 = 14 * 24 * 3600;
/// How long a verification link stays valid.
pub const VERIFY_SECONDS: i64 = 3 * 24 * 3600;
/// How long a password-reset link stays valid.
pub const RESET_SECONDS: i64 = 3600;
/// Longest accepted email address.
pub const MAX_EMAIL: usize = 254;

/// An account as the console and the operator see it (never its password hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Account {
    /// Stable id.
    pub id: String,
    /// Sign-in email, lowercased.
    pub email: String,
    /// Whether the email was confirmed through its link.
    pub verified: bool,
    /// Whether the operator disabled the account.
    pub disabled: bool,
    /// Creation time, `YYYY-MM-DD HH:MM:SS.mmmZ`.
    pub created: String,
    /// Last change.
    pub updated: String,
    /// The account's plan: its `maxProjects` caps the account's projects, and new projects
    /// start on it.
    pub plan: String,
}

/// What a one-time link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Confirms the account's email.
    Verify,
    /// Lets the holder choose a new password.
    Reset,
}

impl LinkKind {
    fn as_str(self) -> &'static str {
        match self {
            LinkKind::Verify => "verify",
            LinkKind::Reset => "reset",
        }
    }

    fn lifetime(self) -> i64 {
        match self {
            LinkKind::Verify => VERIFY_SECONDS,
            LinkKind::Reset => RESET_SECONDS,
        }
    }
}

const COLUMNS: &str = "id, email, verified, disabled, created, updated, plan";

fn from_row(row: &Row<'_>) -> sql::Result<Account> {
    Ok(Account {
        id: row.get(0)?,
        email: row.get(1)?,
        verified: row.get(2)?,
        disabled: row.get(3)?,
        created: row.get(4)?,
        updated: row.get(5)?,
        plan: row.get(6)?,
    })
}

/// SHA-256 of a secret, hex.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Normalizes and checks an email: trimmed, lowercased, one `@`, a dotted domain, no spaces
/// or control characters, at most [`MAX_EMAIL`] bytes.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= MAX_EMAIL
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        })
        && !email.contains(['<', '>', '"', ',', ';']);
    if ok {
        Ok(email)
    } else {
        Err(Error::Invalid(
            "email",
            "Enter a valid email address.".into(),
        ))
    }
}

/// Checks a new password's length (8–71 characters, the superuser rule).
pub fn check_password(password: &str) -> Result<()> {
    if (8..=71).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(Error::Invalid(
            "password",
            "The password must be 8 to 71 characters long.".into(),
        ))
    }
}

/// The accounts, sessions and links tables. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Accounts {
    /// The control database.
    db: Database,
}

impl Accounts {
    /// Accounts kept in the control database `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Creates an unverified account on the default plan; `password_hash` is an argon2id PHC
    /// string.
    pub async fn create(&self, email: &str, password_hash: String) -> Result<Account> {
        self.create_on(email, password_hash, crate::plans::DEFAULT_PLAN)
            .await
    }

    /// Creates an unverified account on plan `plan`, or on the default plan when no plan has
    /// that name.
    pub async fn create_on(
        &self,
        email: &str,
        password_hash: String,
        plan: &str,
    ) -> Result<Account> {
        let email = normalize_email(email)?;
        let id = warren_secrets::random::record_id();
        let plan = plan.to_string();
        self.db
            .write(move |c| {
                let sql = format!(
                    "INSERT INTO accounts (id, email, password, plan)
                     VALUES (?1, ?2, ?3, COALESCE((SELECT name FROM plans WHERE name = ?4), ?5))
                     RETURNING {COLUMNS}"
                );
                match c
                    .prepare_cached(&sql)?
                    .query_row(
                        params![id, email, password_hash, plan, crate::plans::DEFAULT_PLAN],
                        from_row,
                    )
                    .map_err(warren_store::Error::from)
                {
                    Err(e) if e.is_constraint() => Err(Error::EmailTaken),
                    other => Ok(other?),
                }
            })
            .await
    }

    /// The account with `id`.
    pub async fn get(&self, id: &str) -> Result<Account> {
        let id = id.to_string();
        self.db
            .read(move |c| {
                let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1");
                c.prepare_cached(&sql)?
                    .query_row([id], from_row)
                    .optional()?
                    .ok_or(Error::NotFound)
            })
            .await
    }

    /// The account with `email` and its password hash, if any.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<(Account, String)>> {
        let email = email.trim().to_lowercase();
        self.db
            .read(move |c| {
                let sql = format!("SELECT {COLUMNS}, password FROM accounts WHERE email = ?1");
                Ok(c.prepare_cached(&sql)?
                    .query_row([email], |row| Ok((from_row(row)?, row.get(7)?)))
                    .optional()?)
            })
            .await
    }

    /// One page of accounts, oldest first, and the total count; only the account with
    /// `email` when one is given.
    pub async fn list(
        &self,
        page: u32,
        per_page: u32,
        email: Option<&str>,
    ) -> Result<(Vec<Account>, u64)> {
        let offset = i64::from(page.saturating_sub(1)) * i64::from(per_page);
        let limit = i64::from(per_page);
        let email = email.map(|e| e.trim().to_lowercase());
        self.db
            .read(move |c| {
                let sql = format!(
                    "SELECT {COLUMNS} FROM accounts WHERE ?3 IS NULL OR email = ?3
                     ORDER BY created, id LIMIT ?1 OFFSET ?2"
                );
                let items = c
                    .prepare_cached(&sql)?
                    .query_map(params![limit, offset, email], from_row)?
                    .collect::<sql::Result<Vec<_>>>()?;
                let total: i64 = c.query_row(
                    "SELECT count(*) FROM accounts WHERE ?1 IS NULL OR email = ?1",
                    [&email],
                    |row| row.get(0),
                )?;
                Ok((items, u64::try_from(total).unwrap_or(0)))
            })
            .await
    }

    /// Disables or enables account `id`. Disabling signs it out everywhere.
    pub async fn set_disabled(&self, id: &str, disabled: bool) -> Result<Account> {
        let id = id.to_string();
        self.db
            .write(move |c| {
                let sql = format!(
                    "UPDATE accounts SET disabled = ?2, updated = strftime('%Y-%m-%d %H:%M:%fZ')
                     WHERE id = ?1 RETURNING {COLUMNS}"
                );
                let account = c
                    .prepare_cached(&sql)?
                    .query_row(params![id, disabled], from_row)
                    .optional()?
                    .ok_or(Error::NotFound)?;
                if disabled {
                    c.execute("DELETE FROM account_sessions WHERE account_id = ?1", [&id])?;
                }
                Ok(account)
            })
            .await
    }

    /// Puts account `id` on plan `plan` (which must exist) and moves the projects it owns
    /// onto the same plan, in one write. The caller refreshes the directory so the projects'
    /// new quotas apply at their next request.
    pub async fn set_plan(&self, id: &str, plan: &str) -> Result<Account> {
        let (id, plan) = (id.to_string(), plan.to_string());
        self.db
            .write(move |c| {
                let known = c
                    .prepare_cached("SELECT 1 FROM plans WHERE name = ?1")?
                    .query_row([&plan], |_| Ok(()))
                    .optional()?;
                if known.is_none() {
                    return Err(Error::Invalid("plan", "There is no such plan.".into()));
                }
                let sql = format!(
                    "UPDATE accounts SET plan = ?2, updated = strftime('%Y-%m-%d %H:%M:%fZ')
                     WHERE id = ?1 RETURNING {COLUMNS}"
                );
                let account = c
                    .prepare_cached(&sql)?
                    .query_row(params![id, plan], from_row)
                    .optional()?
                    .ok_or(Error::NotFound)?;
                c.prepare_cached("UPDATE tenants SET plan = ?2 WHERE account_id = ?1")?
                    .execute(params![id, plan])?;
                Ok(account)
            })
            .await
    }

    /// The account named by `key`: its email when `key` has an `@`, else its id.
    pub async fn find(&self, key: &str) -> Result<Account> {
        if key.contains('@') {
            return Ok(self.find_by_email(key).await?.ok_or(Error::NotFound)?.0);
        }
        self.get(key.trim()).await
    }

    /// Marks account `id` verified.
    pub async fn mark_verified(&self, id: &str) -> Result<Account> {
        let id = id.to_string();
        self.db
            .write(move |c| {
                let sql = format!(
                    "UPDATE accounts SET verified = 1, updated = strftime('%Y-%m-%d %H:%M:%fZ')
                     WHERE id = ?1 RETURNING {COLUMNS}"
                );
                c.prepare_cached(&sql)?
                    .query_row([id], from_row)
                    .optional()?
                    .ok_or(Error::NotFound)
            })
            .await
    }

    /// Sets account `id`'s password hash, signs it out everywhere and voids its reset links.
    pub async fn set_password(&self, id: &str, password_hash: String) -> Result<()> {
        let id = id.to_string();
        self.db
            .write(move |c| {
                let changed = c.execute(
                    "UPDATE accounts SET password = ?2, updated = strftime('%Y-%m-%d %H:%M:%fZ')
                     WHERE id = ?1",
                    params![id, password_hash],
                )?;
                if changed == 0 {
                    return Err(Error::NotFound);
                }
                c.execute("DELETE FROM account_sessions WHERE account_id = ?1", [&id])?;
                c.execute(
                    "DELETE FROM account_tokens WHERE account_id = ?1 AND kind = 'reset'",
                    [&id],
                )?;
                Ok(())
            })
            .await
    }

    /// Issues a one-time link secret of `kind` for account `id`; earlier links of that kind
    /// stop working.
    pub async fn issue_link(&self, id: &str, kind: LinkKind) -> Result<String> {
        let secret = warren_secrets::random::secret(43);
        let (id, hash) = (id.to_string(), digest(&secret));
        self.db
            .write(move |c| {
                c.execute(
                    "DELETE FROM account_tokens WHERE account_id = ?1 AND kind = ?2",
                    params![id, kind.as_str()],
                )?;
                c.execute(
                    "INSERT INTO account_tokens (token_hash, account_id, kind, expires)
                     VALUES (?1, ?2, ?3, unixepoch() + ?4)",
                    params![hash, id, kind.as_str(), kind.lifetime()],
                )?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(secret)
    }

    /// Uses up a link secret of `kind`: the account it was issued to, if it is still valid.
    pub async fn redeem_link(&self, secret: &str, kind: LinkKind) -> Result<Option<String>> {
        if secret.is_empty() || secret.len() > 128 {
            return Ok(None);
        }
        let hash = digest(secret);
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(
                    "DELETE FROM account_tokens WHERE token_hash = ?1 AND kind = ?2
                     RETURNING account_id, expires > unixepoch()",
                )?
                .query_row(params![hash, kind.as_str()], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
                })
                .optional()?
                .and_then(|(id, live)| live.then_some(id)))
            })
            .await
    }

    /// Whether a link secret of `kind` is currently valid (without using it up).
    pub async fn link_is_valid(&self, secret: &str, kind: LinkKind) -> Result<bool> {
        if secret.is_empty() || secret.len() > 128 {
            return Ok(false);
        }
        let hash = digest(secret);
        self.db
            .read(move |c| {
                Ok(c.prepare_cached(
                    "SELECT 1 FROM account_tokens
                     WHERE token_hash = ?1 AND kind = ?2 AND expires > unixepoch()",
                )?
                .query_row(params![hash, kind.as_str()], |_| Ok(()))
                .optional()?
                .is_some())
            })
            .await
    }

    /// Starts a session for account `id`; returns the cookie's secret.
    pub async fn start_session(&self, id: &str) -> Result<String> {
        let secret = warren_secrets::random::secret(43);
        let (id, hash) = (id.to_string(), digest(&secret));
        self.db
            .write(move |c| {
                // Expired sessions of this account go when it signs in again.
                c.execute(
                    "DELETE FROM account_sessions WHERE account_id = ?1 AND expires <= unixepoch()",
                    [&id],
                )?;
                c.execute(
                    "INSERT INTO account_sessions (token_hash, account_id, expires)
                     VALUES (?1, ?2, unixepoch() + ?3)",
                    params![hash, id, SESSION_SECONDS],
                )?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(secret)
    }

    /// The enabled account signed in with session secret `secret`, if the session is live.
    pub async fn session(&self, secret: &str) -> Result<Option<Account>> {
        if secret.is_empty() || secret.len() > 128 {
            return Ok(None);
        }
        let hash = digest(secret);
        self.db
            .read(move |c| {
                let sql = "SELECT a.id, a.email, a.verified, a.disabled, a.created, a.updated,
                                  a.plan
                           FROM account_sessions s JOIN accounts a ON a.id = s.account_id
                           WHERE s.token_hash = ?1 AND s.expires > unixepoch() AND a.disabled = 0";
                Ok(c.prepare_cached(sql)?
                    .query_row([hash], from_row)
                    .optional()?)
            })
            .await
    }

    /// Ends the session with secret `secret` (no error if there is none).
    pub async fn end_session(&self, secret: &str) -> Result<()> {
        let hash = digest(secret);
        self.db
            .write(move |c| {
                c.execute("DELETE FROM account_sessions WHERE token_hash = ?1", [hash])?;
                Ok(())
            })
            .await
    }

    /// The key that signs CSRF tokens (made with the database).
    pub async fn csrf_key(&self) -> Result<Vec<u8>> {
        self.db
            .read(|c| {
                Ok(
                    c.query_row("SELECT csrf FROM console_keys WHERE id = 1", [], |row| {
                        row.get(0)
                    })?,
                )
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open_control_db;

    async fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = open_control_db(dir.path()).await.unwrap();
        (dir, Accounts::new(db))
    }

    #[tokio::test]
    async fn emails_are_unique_regardless_of_case() {
        let (_dir, accounts) = accounts().await;
        let a = accounts
            .create("Ann@Example.com", "h".into())
            .await
            .unwrap();
        assert_eq!(a.email, "ann@example.com");
        assert!(!a.verified && !a.disabled);
        assert!(matches!(
            accounts.create("ANN@example.com", "h".into()).await,
            Err(Error::EmailTaken)
        ));
        let (found, hash) = accounts
            .find_by_email(" ann@EXAMPLE.com ")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.id, hash.as_str()), (a.id, "h"));
    }

    #[tokio::test]
    async fn links_work_once_and_only_for_their_kind() {
        let (_dir, accounts) = accounts().await;
        let a = accounts.create("a@example.com", "h".into()).await.unwrap();
        let secret = accounts.issue_link(&a.id, LinkKind::Verify).await.unwrap();
        assert_eq!(
            accounts
                .redeem_link(&secret, LinkKind::Reset)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            accounts
                .redeem_link(&secret, LinkKind::Verify)
                .await
                .unwrap(),
            Some(a.id.clone())
        );
        assert_eq!(
            accounts
                .redeem_link(&secret, LinkKind::Verify)
                .await
                .unwrap(),
            None
        );
        // A newer link replaces the older one.
        let first = accounts.issue_link(&a.id, LinkKind::Reset).await.unwrap();
        let second = accounts.issue_link(&a.id, LinkKind::Reset).await.unwrap();
        assert!(
            !accounts
                .link_is_valid(&first, LinkKind::Reset)
                .await
                .unwrap()
        );
        assert!(
            accounts
                .link_is_valid(&second, LinkKind::Reset)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn sessions_end_on_logout_disable_and_password_change() {
        let (_dir, accounts) = accounts().await;
        let a = accounts.create("a@example.com", "h".into()).await.unwrap();
        let s1 = accounts.start_session(&a.id).await.unwrap();
        assert_eq!(accounts.session(&s1).await.unwrap().unwrap().id, a.id);
        accounts.end_session(&s1).await.unwrap();
        assert!(accounts.session(&s1).await.unwrap().is_none());

        let s2 = accounts.start_session(&a.id).await.unwrap();
        accounts.set_disabled(&a.id, true).await.unwrap();
        assert!(accounts.session(&s2).await.unwrap().is_none());
        accounts.set_disabled(&a.id, false).await.unwrap();

        let s3 = accounts.start_session(&a.id).await.unwrap();
        accounts.set_password(&a.id, "h2".into()).await.unwrap();
        assert!(accounts.session(&s3).await.unwrap().is_none());
        assert!(accounts.session("").await.unwrap().is_none());
    }

    #[test]
    fn emails_are_checked() {
        assert_eq!(normalize_email(" A@B.co ").unwrap(), "a@b.co");
        for bad in [
            "", "a", "a@b", "a@.b", "a b@c.d", "a@b..c", "<a@b.c>", "a\n@b.c",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
