//! Who a token belongs to: verifies PocketBase auth tokens against the tenant's own records
//! and secrets, for every auth collection (superusers included).

use serde_json::Value;
use warren_schema::record::{RecordJson, Visibility, record_from_row};
use warren_secrets::TokenKind;
use warren_store::Database;

use crate::catalog::{Catalog, Entry};
use crate::{Caller, Error, Result, sql};

/// Resolves an `Authorization` token to a caller. As in PocketBase, a token that is malformed,
/// expired, of another kind, of another tenant or badly signed makes a guest, not an error.
pub async fn authenticate(db: &Database, catalog: &Catalog, token: &str) -> Result<Caller> {
    match Token::peek(catalog, token) {
        None => Ok(Caller::Guest),
        Some(token) => db.read(move |c| token.resolve(c)).await,
    }
}

/// A token whose claims name an auth collection of the tenant, not yet checked against its
/// record: [`Token::resolve`] does that on a database connection, so a request can check its
/// token inside the same read as the rest of its work.
#[derive(Debug, Clone)]
pub struct Token {
    token: String,
    id: String,
    secret: String,
    entry: std::sync::Arc<Entry>,
}

impl Token {
    /// Reads the claims (unverified) and finds the collection they name; `None` when the token
    /// cannot belong to any auth record of this tenant (the caller is then a guest).
    pub fn peek(catalog: &Catalog, token: &str) -> Option<Self> {
        let claims = warren_secrets::token::peek(token).ok()?;
        if claims.kind != TokenKind::Auth {
            return None;
        }
        let entry = catalog.get(&claims.collection_id)?.clone();
        // Only an exact id match counts (a name would let a token pick a collection by name).
        if entry.collection.id != claims.collection_id {
            return None;
        }
        let secret = entry.collection.auth_options()?.auth_token.secret.clone();
        Some(Self {
            token: token.to_string(),
            id: claims.id,
            secret,
            entry,
        })
    }

    /// The name of the auth collection the token claims.
    pub fn collection_name(&self) -> &str {
        &self.entry.collection.name
    }

    /// Loads the record the token claims and verifies the token with its key: the caller, or a
    /// guest when the record is gone or the token does not verify.
    pub fn resolve(&self, conn: &warren_store::rusqlite::Connection) -> Result<Caller> {
        let entry = &self.entry;
        let Some(data) = load_data(conn, entry, &self.id)? else {
            return Ok(Caller::Guest);
        };
        let token_key = data
            .get("tokenKey")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if token_key.is_empty()
            || warren_secrets::token::verify(&self.token, TokenKind::Auth, token_key, &self.secret)
                .is_err()
        {
            return Ok(Caller::Guest);
        }
        let record = RecordJson::build(
            &entry.collection,
            &data,
            Visibility {
                show_hidden: true,
                show_email: true,
            },
        );
        let Value::Object(record) = record.to_value() else {
            return Ok(Caller::Guest);
        };
        Ok(
            if entry.collection.id == warren_schema::system::SUPERUSERS_ID {
                Caller::Superuser { record }
            } else {
                Caller::Record { record }
            },
        )
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
    /// The caller, checking the token on `conn` when there is one.
    pub fn resolve(&self, conn: &warren_store::rusqlite::Connection) -> Result<Caller> {
        match self {
            Self::Known(caller) => Ok(caller.clone()),
            Self::Token(token) => token.resolve(conn),
        }
    }
}

/// Reads one record's data by id (all fields, hidden ones and the password hash included).
pub fn load_data(
    conn: &warren_store::rusqlite::Connection,
    entry: &Entry,
    id: &str,
) -> Result<Option<warren_schema::record::RecordData>> {
    let names: Vec<String> = entry
        .collection
        .fields
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let columns = names
        .iter()
        .map(|n| sql::quote(n))
        .collect::<Vec<_>>()
        .join(", ");
    let statement = format!(
        "SELECT {columns} FROM {} WHERE id = ?1",
        sql::quote(&entry.collection.name)
    );
    let mut stmt = conn.prepare_cached(&statement)?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => Ok(Some(record_from_row(
            &entry.collection,
            &sql::read_row(row, &names)?,
        ))),
        None => Ok(None),
    }
}

impl From<warren_secrets::Error> for Error {
    fn from(e: warren_secrets::Error) -> Self {
        Error::Schema(e.to_string())
    }
}

/// A successful authentication: the record's JSON (email shown) and a fresh auth token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The record as its owner sees it.
    pub record: Value,
    /// A signed auth token.
    pub token: String,
    /// The record's data (hidden fields included), for the steps after the password check.
    pub data: warren_schema::record::RecordData,
}

/// Longest a login waits for a password hashing permit; past it the login flood bound answers
/// 429 instead of queueing for seconds.
pub const LOGIN_HASH_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// 400 for any wrong identity or password, alike, so responses never tell which was wrong.
const FAILED: &str = "Failed to authenticate.";

/// `auth-with-password`: finds the record by one of the collection's identity fields (email
/// first, skipped when the identity is not email-shaped), checks the password (argon2id, or
/// bcrypt from an import, which is then rehashed), checks `authRule`, and issues a token.
pub async fn with_password(
    db: &Database,
    catalog: &Catalog,
    entry: &std::sync::Arc<Entry>,
    identity: &str,
    identity_field: &str,
    password: &str,
    passwords: &warren_secrets::Passwords,
) -> Result<Authenticated> {
    let options = entry.collection.auth_options().ok_or(Error::NotFound(
        "Missing or invalid auth collection context.",
    ))?;
    if !options.password_auth.enabled {
        return Err(Error::Forbidden(
            "The collection is not configured to allow password authentication.",
        ));
    }
    let mut fields: Vec<String> = if identity_field.is_empty() {
        options.password_auth.identity_fields.clone()
    } else if options
        .password_auth
        .identity_fields
        .iter()
        .any(|f| f == identity_field)
    {
        vec![identity_field.to_string()]
    } else {
        let mut errors = warren_schema::ValidationErrors::new();
        errors.add("identityField", warren_schema::FieldError::in_invalid());
        return Err(Error::Validation {
            message: "An error occurred while validating the submitted data.",
            errors,
        });
    };
    fields.sort_by_key(|f| f != "email");
    if !identity.contains('@') {
        fields.retain(|f| f != "email");
    }
    let (lookup, wanted) = (entry.clone(), identity.to_string());
    let found = db
        .read(move |c| {
            for field in &fields {
                if lookup.collection.field(field).is_none() {
                    continue;
                }
                let sql = format!(
                    "SELECT id FROM {} WHERE {} = ?1 COLLATE NOCASE LIMIT 1",
                    sql::quote(&lookup.collection.name),
                    sql::quote(field)
                );
                let mut stmt = c.prepare_cached(&sql)?;
                let mut rows = stmt.query([&wanted])?;
                if let Some(row) = rows.next()? {
                    let id: String = row.get(0)?;
                    return load_data(c, &lookup, &id);
                }
            }
            Ok(None)
        })
        .await?;
    let Some(data) = found else {
        passwords
            .try_burn(password, LOGIN_HASH_WAIT)
            .await
            .map_err(crate::otp::busy)?;
        return Err(Error::BadRequest(FAILED));
    };
    let stored = data
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let matches = match passwords
        .try_verify(password, &stored, LOGIN_HASH_WAIT)
        .await
    {
        Ok(matches) => matches,
        Err(warren_secrets::Error::Busy) => {
            return Err(Error::TooManyRequests("Too Many Requests."));
        }
        Err(_) => false,
    };
    if stored.is_empty() || !matches {
        return Err(Error::BadRequest(FAILED));
    }
    let id = data
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // authRule: null lets nobody in; a non-empty rule must match the record.
    let caller = Caller::Guest;
    match &entry.rules.auth {
        None => {
            return Err(Error::Forbidden(
                "The request doesn't satisfy the collection requirements to authenticate.",
            ));
        }
        Some(rule) if rule.expr().is_some() => {
            let statement =
                crate::read::one_statement(catalog, entry, &caller.context(), Some(rule), &id)?;
            let check = entry.clone();
            let admitted = db
                .read(move |c| crate::read::select_one(c, &check, &statement))
                .await?;
            if admitted.is_none() {
                return Err(Error::Forbidden(
                    "The request doesn't satisfy the collection requirements to authenticate.",
                ));
            }
        }
        Some(_) => {}
    }
    if warren_secrets::password::needs_rehash(&stored) {
        // Imported bcrypt hashes become argon2id at the first successful login.
        let hash = passwords.hash(password).await?;
        let (table, record_id) = (entry.collection.name.clone(), id.clone());
        db.write(move |c| {
            c.execute(
                &format!(
                    "UPDATE {} SET \"password\" = ?1 WHERE id = ?2",
                    sql::quote(&table)
                ),
                [hash, record_id],
            )?;
            Ok::<_, Error>(())
        })
        .await?;
    }
    let token_key = data
        .get("tokenKey")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let token = issue(&entry.collection, &id, token_key, true)?;
    let record = RecordJson::build(
        &entry.collection,
        &data,
        Visibility {
            show_hidden: false,
            show_email: true,
        },
    )
    .to_value();
    Ok(Authenticated {
        record,
        token,
        data,
    })
}

/// Signs an auth token for record `id` of an auth collection.
pub fn issue(
    collection: &warren_schema::Collection,
    id: &str,
    token_key: &str,
    refreshable: bool,
) -> Result<String> {
    let options = collection.auth_options().ok_or(Error::NotFound(
        "Missing or invalid auth collection context.",
    ))?;
    let claims = warren_secrets::Claims {
        collection_id: collection.id.clone(),
        email: None,
        exp: warren_secrets::token::now() + options.auth_token.duration.max(0) as u64,
        id: id.to_string(),
        new_email: None,
        refreshable: Some(refreshable),
        kind: TokenKind::Auth,
    };
    Ok(warren_secrets::token::sign(
        &claims,
        token_key,
        &options.auth_token.secret,
    )?)
}
