//! Signed tokens of every kind PocketBase issues (auth, file, verification, password reset,
//! email change) and the lookup of the record a token belongs to. A token is only ever checked
//! against the current tenant's catalog, records and secrets, so one tenant's token is nobody
//! in another tenant.

use std::sync::Arc;

use serde_json::Value;
use warren_schema::Collection;
use warren_schema::record::RecordData;
use warren_secrets::{Claims, TokenKind};
use warren_store::Database;

use warren_records::auth::load_data;
use warren_records::catalog::{Catalog, Entry};
use warren_records::{Error, Result};

const NOT_AUTH: &str = "Missing or invalid auth collection context.";

/// The collection secret and lifetime for a token kind.
fn config(collection: &Collection, kind: TokenKind) -> Result<(&str, i64)> {
    let options = collection.auth_options().ok_or(Error::NotFound(NOT_AUTH))?;
    let config = match kind {
        TokenKind::Auth => &options.auth_token,
        TokenKind::File => &options.file_token,
        TokenKind::Verification => &options.verification_token,
        TokenKind::PasswordReset => &options.password_reset_token,
        TokenKind::EmailChange => &options.email_change_token,
    };
    Ok((config.secret.as_str(), config.duration))
}

/// What a token is issued for besides its record.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// `email` claim (verification, password reset, email change).
    pub email: Option<String>,
    /// `newEmail` claim (email change).
    pub new_email: Option<String>,
    /// `refreshable` claim (auth tokens only).
    pub refreshable: Option<bool>,
    /// Lifetime in seconds instead of the collection's (impersonation).
    pub duration: Option<i64>,
}

/// Signs a token of `kind` for the record `data` of `collection`.
pub fn issue_kind(
    collection: &Collection,
    data: &RecordData,
    kind: TokenKind,
    extra: Extra,
) -> Result<String> {
    let (secret, duration) = config(collection, kind)?;
    let token_key = text(data, "tokenKey");
    let duration = extra.duration.filter(|d| *d > 0).unwrap_or(duration);
    let claims = Claims {
        collection_id: collection.id.clone(),
        email: extra.email,
        exp: warren_secrets::token::now() + duration.max(0) as u64,
        id: text(data, "id").to_string(),
        new_email: extra.new_email,
        refreshable: extra.refreshable,
        kind,
    };
    Ok(warren_secrets::token::sign(&claims, token_key, secret)?)
}

/// A `file` token for protected file downloads (`POST /api/files/token`).
pub fn issue_file_token(collection: &Collection, data: &RecordData) -> Result<String> {
    issue_kind(collection, data, TokenKind::File, Extra::default())
}

/// A record found by a verified token.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The record's collection.
    pub entry: Arc<Entry>,
    /// The record's data (hidden fields included).
    pub data: RecordData,
    /// The verified claims.
    pub claims: Claims,
}

/// Finds the record a token of `kind` belongs to in this tenant and verifies the token with
/// the record's `tokenKey` and the collection's secret for that kind. `None` for anything
/// malformed, expired, of another kind, collection, record or tenant.
pub async fn find_by_token(
    db: &Database,
    catalog: &Catalog,
    token: &str,
    kind: TokenKind,
) -> Result<Option<Holder>> {
    if token.len() > 4096 {
        return Ok(None);
    }
    let Ok(claims) = warren_secrets::token::peek(token) else {
        return Ok(None);
    };
    if claims.kind != kind {
        return Ok(None);
    }
    let Some(entry) = catalog.get(&claims.collection_id).cloned() else {
        return Ok(None);
    };
    if entry.collection.id != claims.collection_id || !entry.collection.is_auth() {
        return Ok(None);
    }
    let (secret, _) = config(&entry.collection, kind)?;
    let secret = secret.to_string();
    let (lookup, id) = (entry.clone(), claims.id.clone());
    let Some(data) = db.read(move |c| load_data(c, &lookup, &id)).await? else {
        return Ok(None);
    };
    let token_key = text(&data, "tokenKey");
    if token_key.is_empty() {
        return Ok(None);
    }
    match warren_secrets::token::verify(token, kind, token_key, &secret) {
        Ok(claims) => Ok(Some(Holder {
            entry,
            data,
            claims,
        })),
        Err(_) => Ok(None),
    }
}

/// A string field of a record, or "".
pub fn text<'a>(data: &'a RecordData, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn users() -> Collection {
        warren_schema::system::system_collections()
            .into_iter()
            .find(|c| c.name == "users")
            .unwrap()
    }

    fn record() -> RecordData {
        let mut data = RecordData::new();
        data.insert("id".into(), json!("abcdefghijklmno"));
        data.insert("tokenKey".into(), json!("k".repeat(50)));
        data
    }

    #[test]
    fn each_kind_is_signed_with_its_own_secret() {
        let users = users();
        let data = record();
        let options = users.auth_options().unwrap();
        let token = issue_kind(
            &users,
            &data,
            TokenKind::PasswordReset,
            Extra {
                email: Some("a@b.co".into()),
                ..Extra::default()
            },
        )
        .unwrap();
        let key = "k".repeat(50);
        let claims = warren_secrets::token::verify(
            &token,
            TokenKind::PasswordReset,
            &key,
            &options.password_reset_token.secret,
        )
        .unwrap();
        assert_eq!(claims.email.as_deref(), Some("a@b.co"));
        assert!(
            warren_secrets::token::verify(
                &token,
                TokenKind::PasswordReset,
                &key,
                &options.auth_token.secret
            )
            .is_err()
        );
        let now = warren_secrets::token::now();
        assert!(claims.exp > now + 1700 && claims.exp <= now + 1800);
    }

    #[test]
    fn file_tokens_have_no_extra_claims() {
        let users = users();
        let token = issue_file_token(&users, &record()).unwrap();
        let claims = warren_secrets::token::peek(&token).unwrap();
        assert_eq!(claims.kind, TokenKind::File);
        assert_eq!(claims.email, None);
        assert_eq!(claims.refreshable, None);
    }
}
