//! Auth tokens that verified recently, each with the exact auth-record row it verified against,
//! so a token seen again costs one primary-key read and a comparison instead of a signature
//! check, a record decode and a caller build.
//!
//! Nothing is ever invalidated explicitly, which is what makes the cache safe: a hit requires
//! the record's current row (read in the caller's own snapshot) to equal, column for column,
//! the row the token was verified against. A password change or any `tokenKey` rotation, a
//! deleted record, any other field edited (by this process or another one, such as
//! `warren superuser upsert`) all change or remove that row, and the token is verified anew.
//! The verification also depended on the collection (its secret), so a hit requires the very
//! catalog entry it was verified with (a schema change builds new entries); and on the clock,
//! so a hit requires the token's expiry to lie ahead.
//!
//! A hit also remembers the version of the auth collection's table (`Database::table_version`)
//! at which the row last compared equal. A read outside any transaction that finds that version
//! unchanged skips the comparison, and so the read of the record: no write since touched the
//! table (the writer counts every table as touched whenever it cannot tell), and a tenant's
//! file is held by this process alone. Only a record read back by its rowid qualifies (a table
//! without a rowid is one whose row changes SQLite's update hook does not report). Inside a
//! transaction (the writer's, whose earlier jobs may have changed the row without committing
//! yet) the row is always compared.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use warren_store::sql::{Connection, Value as SqlValue, ValueRef};

use crate::Caller;
use crate::catalog::Entry;

/// Most tokens remembered per tenant; the cache starts afresh when full (a tenant's working
/// set of signed-in clients is small, and a miss only costs a full verification).
const CAPACITY: usize = 256;

/// A token that verified, and what it verified against.
pub(crate) struct Hit {
    /// The id of the auth record the token verified against.
    pub id: String,
    /// The collection entry the token was checked with.
    pub entry: Arc<Entry>,
    /// The statement that reads the auth record (all fields, then its rowid), by `rowid`
    /// when there is one, else by id.
    pub sql: Arc<str>,
    /// The record's rowid when it was read.
    pub rowid: Option<i64>,
    /// The record's row as it was then.
    pub row: Vec<SqlValue>,
    /// The token's expiry, unix seconds.
    pub exp: u64,
    /// The caller the token resolved to.
    pub caller: Caller,
    /// The version of the record's table at which the row was last seen equal to `row` (0:
    /// none; see the module doc).
    pub seen: AtomicU64,
}

impl std::fmt::Debug for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The row holds the password hash and token key: never shown.
        f.debug_struct("Hit")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The per-tenant cache (lives in the tenant's [`crate::Catalog`], so it goes with it).
#[derive(Default)]
pub struct Verified {
    /// Hashed with foldhash: only tokens that verified are inserted, so no client picks the
    /// keys, and SipHash over a 200-byte token cost more than the rest of the lookup.
    tokens: Mutex<HashMap<String, Arc<Hit>, foldhash::quality::RandomState>>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified").finish_non_exhaustive()
    }
}

impl Verified {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Hit>, foldhash::quality::RandomState>> {
        // Each critical section is one map operation: a poisoned map is still consistent.
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `token` verified against when it last did, if it is remembered: a hint only,
    /// which [`Verified::check`] confirms against the record as it stands.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Hit>> {
        self.lock().get(token).cloned()
    }

    /// The caller of `hit` if its token verified against record `id` exactly as it stands now
    /// on `conn`, with `entry`, and has not expired. `version` is the version of the record's
    /// table read before this read began, if known (see the module doc).
    pub(crate) fn check(
        hit: &Hit,
        conn: &Connection,
        entry: &Arc<Entry>,
        id: &str,
        version: Option<u64>,
    ) -> crate::Result<Option<Caller>> {
        if !Arc::ptr_eq(&hit.entry, entry)
            || hit.id != id
            || warren_secrets::token::now() >= hit.exp
        {
            return Ok(None);
        }
        let version = usable(conn, version).filter(|_| hit.rowid.is_some());
        if version.is_some_and(|v| hit.seen.load(Ordering::SeqCst) == v) {
            return Ok(Some(hit.caller.clone()));
        }
        let equal = match hit.rowid {
            Some(rowid) => row_equals(conn, &hit.sql, &rowid, &hit.row)?,
            None => row_equals(conn, &hit.sql, &id, &hit.row)?,
        };
        if !equal {
            return Ok(None);
        }
        if let Some(v) = version {
            hit.seen.store(v, Ordering::SeqCst);
        }
        Ok(Some(hit.caller.clone()))
    }

    /// Remembers that `token` verified.
    pub(crate) fn remember(&self, token: &str, hit: Hit) {
        let mut tokens = self.lock();
        if tokens.len() >= CAPACITY && !tokens.contains_key(token) {
            tokens.clear();
        }
        tokens.insert(token.to_string(), Arc::new(hit));
    }
}

/// `version` when it may vouch for what `conn` reads: known, and no transaction open on
/// `conn` (a transaction may hold changes not committed yet, or an older snapshot).
pub(crate) fn usable(conn: &Connection, version: Option<u64>) -> Option<u64> {
    version.filter(|&v| v != 0 && conn.is_autocommit())
}

/// Reads the row `sql` selects for `id`, raw.
pub(crate) fn read_row(
    conn: &Connection,
    sql: &str,
    id: &str,
) -> crate::Result<Option<Vec<SqlValue>>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(columns);
    for i in 0..columns {
        out.push(match row.get_ref(i)? {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(n) => SqlValue::Integer(n),
            ValueRef::Real(f) => SqlValue::Real(f),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        });
    }
    Ok(Some(out))
}

/// Whether the row `sql` selects for `key` exists and equals `expected`, column for column, as
/// [`read_row`] would read it (compared in place: a cache hit copies nothing).
fn row_equals(
    conn: &Connection,
    sql: &str,
    key: &dyn warren_store::sql::ToSql,
    expected: &[SqlValue],
) -> crate::Result<bool> {
    let mut stmt = conn.prepare_cached(sql)?;
    if stmt.column_count() != expected.len() {
        return Ok(false);
    }
    let mut rows = stmt.query([key])?;
    let Some(row) = rows.next()? else {
        return Ok(false);
    };
    for (i, want) in expected.iter().enumerate() {
        let same = match (row.get_ref(i)?, want) {
            (ValueRef::Null, SqlValue::Null) => true,
            (ValueRef::Integer(n), SqlValue::Integer(m)) => n == *m,
            (ValueRef::Real(f), SqlValue::Real(g)) => f == *g,
            // Text read lossily from bytes that are not UTF-8 never equals them: a miss, so
            // such a row is verified every time, never wrongly matched.
            (ValueRef::Text(t), SqlValue::Text(s)) => t == s.as_bytes(),
            (ValueRef::Blob(b), SqlValue::Blob(c)) => b == c.as_slice(),
            _ => false,
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use warren_schema::Collection;
    use warren_secrets::TokenKind;
    use warren_secrets::token::{Claims, sign};
    use warren_store::Database;

    use crate::Catalog;
    use crate::auth::authenticate;

    use super::*;

    const ID: &str = "u0000000000000a";

    /// A database with an auth collection `users` holding record [`ID`] with token key `key1`,
    /// held by this process alone as a tenant's is (so it has a data version).
    async fn users(dir: &std::path::Path) -> (Database, Catalog) {
        let collection =
            Collection::from_create_body(&json!({"name": "users", "type": "auth"})).unwrap();
        let db = crate::testing::exclusive_database(dir, &[&collection], |c| {
            c.execute(
                "INSERT INTO users (id, email, password, tokenKey) VALUES (?1, 'a@b.test', 'h1', 'key1')",
                [ID],
            )?;
            Ok(())
        })
        .await;
        (db, Catalog::new(vec![collection]))
    }

    /// [`users`] in a temporary directory, with a token of the record (key `key1`) that has
    /// verified once.
    async fn signed_in() -> (tempfile::TempDir, Database, Catalog, String) {
        let dir = tempfile::tempdir().unwrap();
        let (db, catalog) = users(dir.path()).await;
        let token = token(&catalog, "key1");
        assert_eq!(caller(&db, &catalog, &token).await.id(), Some(ID));
        (dir, db, catalog, token)
    }

    fn token(catalog: &Catalog, key: &str) -> String {
        token_until(catalog, key, warren_secrets::token::now() + 600)
    }

    fn token_until(catalog: &Catalog, key: &str, exp: u64) -> String {
        let collection = &catalog.get("users").unwrap().collection;
        let claims = Claims {
            collection_id: collection.id.clone(),
            email: None,
            exp,
            id: ID.into(),
            new_email: None,
            refreshable: Some(true),
            kind: TokenKind::Auth,
        };
        let secret = &collection.auth_options().unwrap().auth_token.secret;
        sign(&claims, key, secret).unwrap()
    }

    async fn change(db: &Database, sql: &'static str) {
        db.write(move |c| c.execute_batch(sql).map_err(crate::Error::from))
            .await
            .unwrap();
    }

    async fn caller(db: &Database, catalog: &Catalog, token: &str) -> Caller {
        authenticate(db, catalog, token).await.unwrap()
    }

    fn cached(catalog: &Catalog) -> usize {
        catalog.verified().lock().len()
    }

    #[tokio::test]
    async fn a_token_seen_again_is_answered_from_the_cache_with_the_current_record() {
        let (_dir, db, catalog, token) = signed_in().await;
        assert_eq!(cached(&catalog), 1);
        assert_eq!(caller(&db, &catalog, &token).await.id(), Some(ID));
        // Any edit of the record is seen at once: the caller is rebuilt from the new row.
        change(&db, "UPDATE users SET verified = TRUE").await;
        let fresh = caller(&db, &catalog, &token).await;
        assert_eq!(fresh.record().unwrap()["verified"], json!(true));
    }

    #[tokio::test]
    async fn rotating_the_token_key_signs_a_cached_token_out() {
        let (_dir, db, catalog, token) = signed_in().await;
        change(&db, "UPDATE users SET tokenKey = 'key2'").await;
        assert_eq!(caller(&db, &catalog, &token).await.id(), None);
    }

    #[tokio::test]
    async fn a_password_change_signs_a_cached_token_out() {
        let (_dir, db, catalog, token) = signed_in().await;
        // As the write pipeline does: a new hash rotates the token key.
        change(&db, "UPDATE users SET password = 'h2', tokenKey = 'key3'").await;
        assert_eq!(caller(&db, &catalog, &token).await.id(), None);
    }

    #[tokio::test]
    async fn deleting_the_record_signs_a_cached_token_out() {
        let (_dir, db, catalog, token) = signed_in().await;
        change(&db, "DELETE FROM users").await;
        assert_eq!(caller(&db, &catalog, &token).await.id(), None);
    }

    #[tokio::test]
    async fn a_new_collection_secret_signs_a_cached_token_out() {
        let (_dir, db, catalog, token) = signed_in().await;
        let mut collection = catalog.get("users").unwrap().collection.clone();
        if let Some(auth) = collection.auth_options_mut() {
            auth.auth_token.secret = "another secret of enough length, 50 chars long....".into();
        }
        let rotated = Catalog::new(vec![collection]);
        assert_eq!(caller(&db, &rotated, &token).await.id(), None);
    }

    #[tokio::test]
    async fn a_cached_token_that_expires_makes_a_guest() {
        let dir = tempfile::tempdir().unwrap();
        let (db, catalog) = users(dir.path()).await;
        let exp = warren_secrets::token::now() + 1;
        let token = token_until(&catalog, "key1", exp);
        assert_eq!(caller(&db, &catalog, &token).await.id(), Some(ID));
        assert_eq!(cached(&catalog), 1);
        // A token is valid through its expiry second (as the signature check has it).
        while warren_secrets::token::now() <= exp {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Remembered, and still recognised without decoding, but no longer valid.
        assert!(crate::auth::Token::peek(&catalog, &token).is_some());
        assert_eq!(caller(&db, &catalog, &token).await.id(), None);
    }

    #[tokio::test]
    async fn a_cached_token_is_checked_at_its_record_rowid_and_nothing_else_found_there_passes() {
        let (_dir, db, catalog, token) = signed_in().await;
        assert_eq!(catalog.verified().get(&token).unwrap().rowid, Some(1));
        // Another record at the same rowid, with the token's key and hash: only its id differs,
        // and it is not the token's.
        change(
            &db,
            "DELETE FROM users;
             INSERT INTO users (id, email, password, tokenKey) VALUES ('u0000000000000b', 'a@b.test', 'h1', 'key1');",
        )
        .await;
        assert_eq!(caller(&db, &catalog, &token).await.id(), None);
        // The token's record back at another rowid: verified anew, then remembered there.
        change(
            &db,
            "DELETE FROM users;
             INSERT INTO users (id, email, password, tokenKey) VALUES ('u0000000000000c', 'c@d.test', 'h1', 'key8');
             INSERT INTO users (id, email, password, tokenKey) VALUES ('u0000000000000a', 'a@b.test', 'h1', 'key1');",
        )
        .await;
        assert_eq!(caller(&db, &catalog, &token).await.id(), Some(ID));
        assert_eq!(catalog.verified().get(&token).unwrap().rowid, Some(2));
        assert_eq!(caller(&db, &catalog, &token).await.id(), Some(ID));
    }

    #[tokio::test]
    async fn a_cached_token_is_not_taken_for_another_record() {
        let (_dir, db, catalog, token) = signed_in().await;
        // A second record with the same row values but another id does not match the hit.
        let hit = catalog.verified().get(&token).unwrap();
        let entry = catalog.get("users").unwrap().clone();
        db.read(move |c| {
            assert!(Verified::check(&hit, c, &entry, "u0000000000000b", None)?.is_none());
            assert!(Verified::check(&hit, c, &entry, ID, None)?.is_some());
            Ok::<_, crate::Error>(())
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn while_nothing_is_committed_a_token_seen_before_reads_nothing() {
        let (_dir, db, catalog, token) = signed_in().await;
        let hit = catalog.verified().get(&token).unwrap();
        let version = db.table_version("users");
        assert!(version.is_some());
        assert_eq!(Some(hit.seen.load(Ordering::SeqCst)), version);
        // On a connection where reading the record would fail (no such table), the unchanged
        // version answers alone; without it the row is read.
        let empty = Connection::open_in_memory().unwrap();
        let entry = catalog.get("users").unwrap().clone();
        let answered = Verified::check(&hit, &empty, &entry, ID, version).unwrap();
        assert_eq!(answered.unwrap().id(), Some(ID));
        assert!(Verified::check(&hit, &empty, &entry, ID, None).is_err());
        // Another version (a commit since) reads the row again, and remembers the new one.
        let other = version.map(|v| v + 1);
        assert!(Verified::check(&hit, &empty, &entry, ID, other).is_err());
        change(&db, "UPDATE users SET verified = TRUE").await;
        assert_ne!(db.table_version("users"), version);
        let fresh = caller(&db, &catalog, &token).await;
        assert_eq!(fresh.record().unwrap()["verified"], json!(true));
    }

    #[tokio::test]
    async fn writes_to_other_tables_leave_a_token_seen_before_unread() {
        let (_dir, db, catalog, token) = signed_in().await;
        change(&db, "CREATE TABLE posts (v TEXT)").await;
        change(&db, "INSERT INTO posts VALUES ('a')").await;
        // Verified again after the schema change, which counts as writing every table.
        assert_eq!(caller(&db, &catalog, &token).await.id(), Some(ID));
        let hit = catalog.verified().get(&token).unwrap();
        let version = db.table_version("users");
        assert_eq!(Some(hit.seen.load(Ordering::SeqCst)), version);
        // Posts written: the data version moves on, the users table's does not.
        let data = db.data_version();
        change(
            &db,
            "INSERT INTO posts VALUES ('b'); UPDATE posts SET v = 'c'",
        )
        .await;
        assert_ne!(db.data_version(), data);
        assert_eq!(db.table_version("users"), version);
        // So the token answers without its record being read (here it could not be).
        let empty = Connection::open_in_memory().unwrap();
        let entry = catalog.get("users").unwrap().clone();
        let answered = Verified::check(&hit, &empty, &entry, ID, version).unwrap();
        assert_eq!(answered.unwrap().id(), Some(ID));
        assert_eq!(caller(&db, &catalog, &token).await.id(), Some(ID));
        // Its own table written (the key rotated, with a post in the same group commit): read
        // again, and signed out.
        let (rotate, post) = (
            db.write(|c| {
                Ok::<_, crate::Error>(c.execute_batch("UPDATE users SET tokenKey = 'key2'")?)
            }),
            db.write(|c| Ok::<_, crate::Error>(c.execute_batch("INSERT INTO posts VALUES ('d')")?)),
        );
        let (rotated, posted) = tokio::join!(rotate, post);
        rotated.unwrap();
        posted.unwrap();
        assert_ne!(db.table_version("users"), version);
        assert_eq!(caller(&db, &catalog, &token).await.id(), None);
    }

    #[tokio::test]
    async fn a_token_whose_record_has_no_rowid_is_always_read() {
        let (_dir, db, catalog, token) = signed_in().await;
        let hit = catalog.verified().get(&token).unwrap();
        let version = db.table_version("users");
        let without_rowid = Hit {
            id: hit.id.clone(),
            entry: hit.entry.clone(),
            sql: hit.sql.clone(),
            rowid: None,
            row: hit.row.clone(),
            exp: hit.exp,
            caller: hit.caller.clone(),
            seen: AtomicU64::new(version.unwrap()),
        };
        let empty = Connection::open_in_memory().unwrap();
        let entry = catalog.get("users").unwrap().clone();
        assert!(
            Verified::check(&hit, &empty, &entry, ID, version)
                .unwrap()
                .is_some()
        );
        assert!(Verified::check(&without_rowid, &empty, &entry, ID, version).is_err());
    }

    #[tokio::test]
    async fn inside_a_transaction_the_row_is_compared_whatever_the_version() {
        let (_dir, db, catalog, token) = signed_in().await;
        let version = db.data_version();
        let pending = crate::auth::Token::peek(&catalog, &token).unwrap();
        // An earlier job of the same group commit rotated the key, not committed yet.
        let seen = db
            .write(move |c| {
                c.execute_batch("UPDATE users SET tokenKey = 'key2'")?;
                pending.resolve(c, version)
            })
            .await
            .unwrap();
        assert_eq!(seen.id(), None);
    }
}
