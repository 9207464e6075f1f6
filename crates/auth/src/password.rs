//! `auth-with-password`: the identity lookup, the password check (rehashing imported bcrypt
//! hashes), `authRule`, and the auth token it issues.

use std::sync::Arc;

use serde_json::Value;
use warren_records::catalog::{Catalog, Entry};
use warren_records::{Caller, Error, Result, sql};
use warren_schema::record::{RecordJson, Visibility};
use warren_secrets::TokenKind;
use warren_store::Database;

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
    entry: &Arc<Entry>,
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
                    return warren_records::auth::load_data(c, &lookup, &id);
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
    let admitted = match &entry.rules.auth {
        None => false,
        Some(rule) => {
            warren_records::auth::rule_admits(
                db,
                catalog,
                entry,
                rule,
                &Caller::Guest.context(),
                &id,
            )
            .await?
        }
    };
    if !admitted {
        return Err(Error::Forbidden(
            "The request doesn't satisfy the collection requirements to authenticate.",
        ));
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
