//! Who a token belongs to: verifies PocketBase auth tokens against the tenant's own records
//! and secrets, for every auth collection (superusers included); and the record reads the auth
//! flows of `warren-auth` build on (loading auth records, checking a rule against one).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde_json::Value;
use warren_filter::{Filter, RequestContext};
use warren_schema::record::{RecordData, RecordJson, Visibility, record_from_row};
use warren_secrets::TokenKind;
use warren_store::Database;
use warren_store::sql::Value as Raw;

use crate::catalog::{Catalog, Entry};
use crate::verified::{self, Hit, Verified};
use crate::{Caller, Error, Result, sql};

/// Resolves an `Authorization` token to a caller. As in PocketBase, a token that is malformed,
/// expired, of another kind, of another tenant or badly signed makes a guest, not an error.
/// The check is a point read, run inline when a connection is idle (`Database::read_quick`),
/// so a request does not wait for a hop to the blocking pool before its own work.
pub async fn authenticate(db: &Database, catalog: &Catalog, token: &str) -> Result<Caller> {
    match Token::peek(catalog, token) {
        None => Ok(Caller::Guest),
        Some(token) => {
            let version = token.table_version(db);
            db.read_quick(move |c| token.resolve(c, version)).await
        }
    }
}

/// A token whose claims name an auth collection of the tenant, not yet checked against its
/// record: [`Token::resolve`] does that on a database connection, so a request can check its
/// token inside the same read as the rest of its work.
#[derive(Debug, Clone)]
pub struct Token {
    token: String,
    id: String,
    entry: Arc<Entry>,
    /// What the token verified against when last seen, still to be confirmed by the record.
    hit: Option<Arc<Hit>>,
    /// The tenant's tokens verified recently (see [`crate::verified`]).
    verified: Arc<Verified>,
}

impl Token {
    /// Reads the claims (unverified) and finds the collection they name; `None` when the token
    /// cannot belong to any auth record of this tenant (the caller is then a guest).
    pub fn peek(catalog: &Catalog, token: &str) -> Option<Self> {
        // A token verified before names its record and collection already: no decoding. The
        // hit only stands for the very entry it was verified with (see [`Verified::check`]).
        if let Some(hit) = catalog.verified().get(token)
            && catalog
                .get(&hit.entry.collection.id)
                .is_some_and(|entry| Arc::ptr_eq(entry, &hit.entry))
        {
            return Some(Self {
                token: token.to_string(),
                id: hit.id.clone(),
                entry: hit.entry.clone(),
                hit: Some(hit),
                verified: catalog.verified().clone(),
            });
        }
        let claims = warren_secrets::token::peek(token).ok()?;
        if claims.kind != TokenKind::Auth {
            return None;
        }
        let entry = catalog.get(&claims.collection_id)?.clone();
        // Only an exact id match counts (a name would let a token pick a collection by name).
        if entry.collection.id != claims.collection_id {
            return None;
        }
        entry.collection.auth_options()?;
        Some(Self {
            token: token.to_string(),
            id: claims.id,
            entry,
            hit: None,
            verified: catalog.verified().clone(),
        })
    }

    /// The name of the auth collection the token claims.
    pub fn collection_name(&self) -> &str {
        &self.entry.collection.name
    }

    /// The version of the claimed collection's table in `db` (`Database::table_version`), to
    /// read before the read that resolves the token.
    pub fn table_version(&self, db: &Database) -> Option<u64> {
        db.table_version(&self.entry.collection.name)
    }

    /// Loads the record the token claims and verifies the token with its key: the caller, or a
    /// guest when the record is gone or the token does not verify. `version` is the version
    /// of the collection's table read before this read began ([`Token::table_version`]),
    /// which spares a token seen before the read of its record while nothing written since
    /// touched that table.
    pub fn resolve(
        &self,
        conn: &warren_store::sql::Connection,
        version: Option<u64>,
    ) -> Result<Caller> {
        let entry = &self.entry;
        let hit = match &self.hit {
            Some(hit) => Some(hit.clone()),
            None => self.verified.get(&self.token),
        };
        if let Some(hit) = hit
            && let Some(caller) = Verified::check(&hit, conn, entry, &self.id, version)?
        {
            return Ok(caller);
        }
        let Some(secret) = entry
            .collection
            .auth_options()
            .map(|auth| auth.auth_token.secret.as_str())
        else {
            return Ok(Caller::Guest);
        };
        let Some(row) = verified::read_row(conn, &load_statement(entry), &self.id)? else {
            return Ok(Caller::Guest);
        };
        let data = record_from_row(&entry.collection, &row_map(entry, &row));
        let token_key = data
            .get("tokenKey")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if token_key.is_empty() {
            return Ok(Caller::Guest);
        }
        let Ok(claims) =
            warren_secrets::token::verify(&self.token, TokenKind::Auth, token_key, secret)
        else {
            return Ok(Caller::Guest);
        };
        let Some(caller) = caller_for(entry, &data) else {
            return Ok(Caller::Guest);
        };
        // Seen again, the token's record is read back by its rowid, the last column: one
        // b-tree instead of the id index and then the table (after a commit by the writer, a
        // reader reads every page afresh). The whole row, id included, must still match.
        let rowid = match row.last() {
            Some(Raw::Integer(rowid)) => Some(*rowid),
            _ => None,
        };
        let sql: Arc<str> = match rowid {
            Some(_) => recheck_statement(entry).into(),
            None => load_statement(entry).into(),
        };
        let hit = Hit {
            id: self.id.clone(),
            entry: entry.clone(),
            sql,
            rowid,
            row,
            exp: claims.exp,
            caller: caller.clone(),
            seen: AtomicU64::new(verified::usable(conn, version).unwrap_or(0)),
        };
        self.verified.remember(&self.token, hit);
        Ok(caller)
    }
}

/// The caller of a request as a handler first gets it: already known, or a token still to be
/// checked on the connection of the handler's own read or write.
#[derive(Debug, Clone)]
pub enum Pending {
    /// Resolved (a guest, or a token checked earlier in the request).
    Known(Caller),
    /// A token to check with [`Token::resolve`].
    Token(Token),
}

impl Pending {
    /// The caller, checking the token on `conn` when there is one (`version` as for
    /// [`Token::resolve`]).
    pub fn resolve(
        &self,
        conn: &warren_store::sql::Connection,
        version: Option<u64>,
    ) -> Result<Caller> {
        match self {
            Self::Known(caller) => Ok(caller.clone()),
            Self::Token(token) => token.resolve(conn, version),
        }
    }
}

/// The caller a record becomes once authenticated (hidden fields and email shown); `None` when
/// the record does not render as a JSON object.
pub fn caller_for(entry: &Entry, data: &RecordData) -> Option<Caller> {
    let record = RecordJson::build(
        &entry.collection,
        data,
        Visibility {
            show_hidden: true,
            show_email: true,
        },
    );
    let Value::Object(record) = record.to_value() else {
        return None;
    };
    Some(
        if entry.collection.id == warren_schema::system::SUPERUSERS_ID {
            Caller::Superuser {
                record: record.into(),
            }
        } else {
            Caller::Record {
                record: record.into(),
            }
        },
    )
}

/// Reads one record's data by id (all fields, hidden ones and the password hash included).
pub fn load_data(
    conn: &warren_store::sql::Connection,
    entry: &Entry,
    id: &str,
) -> Result<Option<RecordData>> {
    let row = verified::read_row(conn, &load_statement(entry), id)?;
    Ok(row.map(|row| record_from_row(&entry.collection, &row_map(entry, &row))))
}

/// The statement that reads one record of `entry` by id: every field, in field order, then
/// its rowid.
fn load_statement(entry: &Entry) -> String {
    format!("{} WHERE id = ?1", select_with_rowid(entry))
}

/// [`load_statement`]'s columns for the record at a rowid.
fn recheck_statement(entry: &Entry) -> String {
    format!("{} WHERE _rowid_ = ?1", select_with_rowid(entry))
}

fn select_with_rowid(entry: &Entry) -> String {
    let columns = entry
        .collection
        .fields
        .iter()
        .map(|f| sql::quote(&f.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}, _rowid_ FROM {}",
        sql::quote(&entry.collection.name)
    )
}

/// A raw row of [`load_statement`] as named values, the way [`sql::read_row`] reads them.
fn row_map(entry: &Entry, row: &[Raw]) -> BTreeMap<String, warren_schema::SqlValue> {
    use warren_schema::SqlValue;
    entry
        .collection
        .fields
        .iter()
        .zip(row)
        .map(|(field, value)| {
            let value = match value {
                Raw::Null => SqlValue::Null,
                Raw::Integer(n) => SqlValue::Integer(*n),
                Raw::Real(f) => SqlValue::Real(*f),
                Raw::Text(t) => SqlValue::Text(t.clone()),
                Raw::Blob(b) => SqlValue::Text(String::from_utf8_lossy(b).into_owned()),
            };
            (field.name.clone(), value)
        })
        .collect()
}

/// Whether `filter` admits record `id` of `entry` under `ctx` (an empty rule admits anyone).
pub async fn rule_admits(
    db: &Database,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    filter: &Filter,
    ctx: &RequestContext,
    id: &str,
) -> Result<bool> {
    if filter.expr().is_none() {
        return Ok(true);
    }
    let statement = crate::read::one_statement(catalog, entry, ctx, Some(filter), id)?;
    let check = entry.clone();
    Ok(db
        .read(move |c| crate::read::select_one(c, &check, &statement))
        .await?
        .is_some())
}

/// Forgets every auth origin of a record (its password changed: every location must sign in
/// anew). The origins themselves are remembered by `warren-auth`.
pub fn forget_origins(
    c: &warren_store::sql::Connection,
    collection: &str,
    record: &str,
) -> Result<()> {
    c.execute(
        &format!(
            "DELETE FROM {} WHERE collectionRef = ?1 AND recordRef = ?2",
            sql::quote(warren_schema::system::AUTH_ORIGINS)
        ),
        [collection, record],
    )?;
    Ok(())
}

impl From<warren_secrets::Error> for Error {
    fn from(e: warren_secrets::Error) -> Self {
        Error::Schema(e.to_string())
    }
}
