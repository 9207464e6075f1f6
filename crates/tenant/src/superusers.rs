//! The tenant's `_superusers`: created or updated from the CLI and the console (also for the
//! project's owner arriving by a one-time dashboard link), looked up to authenticate.

use warren_secrets::Passwords;
use warren_store::Database;
use warren_store::sql::{OptionalExtension, Row, params};

use crate::{Error, Result};

/// The fixed id PocketBase (and its SDKs) use for the superusers collection.
pub const COLLECTION_ID: &str = "pbc_3142635823";
/// The superusers collection's name.
pub const COLLECTION_NAME: &str = "_superusers";

/// A superuser record as stored.
#[derive(Debug, Clone)]
pub struct Superuser {
    /// Record id.
    pub id: String,
    /// Login email.
    pub email: String,
    /// Whether others may see the email (always false for superusers created here).
    pub email_visibility: bool,
    /// Whether the email is verified.
    pub verified: bool,
    /// Creation time, `YYYY-MM-DD HH:MM:SS.mmmZ`.
    pub created: String,
    /// Last update time.
    pub updated: String,
    /// Password hash (argon2id, or bcrypt for imported records).
    pub password_hash: String,
    /// Per-record signing key; rotating it invalidates the record's tokens.
    pub token_key: String,
}

const COLUMNS: &str = "id, email, emailVisibility, verified, created, updated, password, tokenKey";

fn from_row(row: &Row<'_>) -> warren_store::sql::Result<Superuser> {
    Ok(Superuser {
        id: row.get(0)?,
        email: row.get(1)?,
        email_visibility: row.get(2)?,
        verified: row.get(3)?,
        created: row.get(4)?,
        updated: row.get(5)?,
        password_hash: row.get(6)?,
        token_key: row.get(7)?,
    })
}

/// Creates the superuser `email` with `password`, or sets the password of the existing one.
/// Setting a password rotates the token key, so older tokens stop working.
pub async fn upsert(
    db: &Database,
    passwords: &Passwords,
    email: &str,
    password: &str,
) -> Result<Superuser> {
    let email = email.trim().to_lowercase();
    if !looks_like_email(&email) {
        return Err(Error::Invalid("the email address is not valid".into()));
    }
    let length = password.chars().count();
    if !(8..=71).contains(&length) {
        return Err(Error::Invalid(
            "the password must be 8 to 71 characters long".into(),
        ));
    }
    let hash = passwords.hash(password).await?;
    let token_key = warren_secrets::random::secret(50);
    let id = warren_secrets::random::record_id();
    let lookup = email.clone();
    db.write(move |c| {
        c.execute(
            "INSERT INTO _superusers (id, email, emailVisibility, verified, password, tokenKey, created, updated)
             VALUES (?1, ?2, FALSE, TRUE, ?3, ?4, strftime('%Y-%m-%d %H:%M:%fZ'), strftime('%Y-%m-%d %H:%M:%fZ'))
             ON CONFLICT (email) WHERE email != '' DO UPDATE SET
               password = excluded.password, tokenKey = excluded.tokenKey, updated = excluded.updated",
            params![id, email, hash, token_key],
        )?;
        Ok::<_, Error>(())
    })
    .await?;
    find_by_email(db, &lookup).await?.ok_or(Error::NotFound)
}

/// The superuser `email`; when the tenant has none with that email, one is created with a
/// random password (never shown; the owner sets one in the dashboard or the console). An
/// existing superuser is left as it is, so its tokens keep working.
pub async fn ensure(db: &Database, passwords: &Passwords, email: &str) -> Result<Superuser> {
    if let Some(found) = find_by_email(db, email).await? {
        return Ok(found);
    }
    let email = email.trim().to_lowercase();
    if !looks_like_email(&email) {
        return Err(Error::Invalid("the email address is not valid".into()));
    }
    let hash = passwords.hash(&warren_secrets::random::secret(40)).await?;
    let token_key = warren_secrets::random::secret(50);
    let id = warren_secrets::random::record_id();
    let lookup = email.clone();
    // Two links redeemed at once both insert; the second does nothing and both read the first.
    db.write(move |c| {
        c.execute(
            "INSERT INTO _superusers (id, email, emailVisibility, verified, password, tokenKey, created, updated)
             VALUES (?1, ?2, FALSE, TRUE, ?3, ?4, strftime('%Y-%m-%d %H:%M:%fZ'), strftime('%Y-%m-%d %H:%M:%fZ'))
             ON CONFLICT (email) WHERE email != '' DO NOTHING",
            params![id, email, hash, token_key],
        )?;
        Ok::<_, Error>(())
    })
    .await?;
    find_by_email(db, &lookup).await?.ok_or(Error::NotFound)
}

impl crate::Tenant {
    /// The superuser for the project's owner `email`, created if missing (see [`ensure`]).
    pub async fn owner_superuser(&self, passwords: &Passwords, email: &str) -> Result<Superuser> {
        ensure(self.db(), passwords, email).await
    }

    /// Creates the superuser `email` with `password` in this tenant, or sets the password of
    /// the existing one (see [`upsert`]): how the control plane sets a project's superuser
    /// without holding the tenant's database.
    pub async fn set_superuser(
        &self,
        passwords: &Passwords,
        email: &str,
        password: &str,
    ) -> Result<Superuser> {
        upsert(self.db(), passwords, email, password).await
    }
}

/// The superuser with `email` (case-insensitive), if any.
pub async fn find_by_email(db: &Database, email: &str) -> Result<Option<Superuser>> {
    let email = email.trim().to_lowercase();
    db.read(move |c| {
        let sql = format!("SELECT {COLUMNS} FROM _superusers WHERE email = ?1 COLLATE NOCASE");
        Ok(c.prepare_cached(&sql)?
            .query_row([email], from_row)
            .optional()?)
    })
    .await
}

/// A deliberately loose email check (one `@`, a dot in the domain, no spaces); the records
/// engine applies PocketBase's full rule.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && !domain.contains('@')
        && email.len() <= 255
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open_database, provision};

    #[tokio::test]
    async fn upsert_creates_then_updates_and_rotates_the_token_key() {
        let dir = tempfile::tempdir().unwrap();
        provision(dir.path(), "a").await.unwrap();
        let db = open_database(dir.path(), "a").await.unwrap();
        let passwords = Passwords::new(1);
        let first = upsert(&db, &passwords, "Admin@Example.com", "password123")
            .await
            .unwrap();
        assert_eq!(first.email, "admin@example.com");
        assert_eq!(first.id.len(), 15);
        let second = upsert(&db, &passwords, "admin@example.com", "another-pass")
            .await
            .unwrap();
        assert_eq!(first.id, second.id);
        assert_ne!(first.token_key, second.token_key);
        assert!(
            passwords
                .verify("another-pass", &second.password_hash)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn ensure_creates_once_and_keeps_an_existing_superuser() {
        let dir = tempfile::tempdir().unwrap();
        provision(dir.path(), "a").await.unwrap();
        let db = open_database(dir.path(), "a").await.unwrap();
        let passwords = Passwords::new(1);
        let made = ensure(&db, &passwords, "Owner@Example.com").await.unwrap();
        assert_eq!(made.email, "owner@example.com");
        let again = ensure(&db, &passwords, "owner@example.com").await.unwrap();
        assert_eq!((made.id, made.token_key), (again.id, again.token_key));
        let set = upsert(&db, &passwords, "root@example.com", "password123")
            .await
            .unwrap();
        let kept = ensure(&db, &passwords, "root@example.com").await.unwrap();
        assert_eq!(set.token_key, kept.token_key);
        assert!(ensure(&db, &passwords, "nobody").await.is_err());
    }

    #[tokio::test]
    async fn bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        provision(dir.path(), "a").await.unwrap();
        let db = open_database(dir.path(), "a").await.unwrap();
        let passwords = Passwords::new(1);
        assert!(
            upsert(&db, &passwords, "not-an-email", "password123")
                .await
                .is_err()
        );
        assert!(upsert(&db, &passwords, "a@b.co", "short").await.is_err());
        assert!(find_by_email(&db, "a@b.co").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn each_tenant_draws_its_own_secrets() {
        let dir = tempfile::tempdir().unwrap();
        provision(dir.path(), "a").await.unwrap();
        provision(dir.path(), "b").await.unwrap();
        let mut secrets = Vec::new();
        for id in ["a", "b"] {
            let db = open_database(dir.path(), id).await.unwrap();
            let secret: String = db
                .read(|c| {
                    let sql = "SELECT json_extract(options, '$.authToken.secret') FROM _collections WHERE id = ?1";
                    Ok::<_, Error>(c.query_row(sql, [COLLECTION_ID], |r| r.get(0))?)
                })
                .await
                .unwrap();
            assert_eq!(secret.len(), 50);
            secrets.push(secret);
        }
        assert_ne!(secrets[0], secrets[1]);
    }
}
