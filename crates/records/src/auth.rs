//! Who a token belongs to: verifies PocketBase auth tokens against the tenant's own records
//! and secrets, for every auth collection (superusers included).

use serde_json::Value;
use warren_auth::TokenKind;
use warren_schema::record::{RecordJson, Visibility, record_from_row};
use warren_store::Database;

use crate::catalog::{Catalog, Entry};
use crate::{Caller, Error, Result, sql};

/// Resolves an `Authorization` token to a caller. As in PocketBase, a token that is malformed,
/// expired, of another kind, of another tenant or badly signed makes a guest, not an error.
pub async fn authenticate(db: &Database, catalog: &Catalog, token: &str) -> Result<Caller> {
    let Ok(claims) = warren_auth::token::peek(token) else {
        return Ok(Caller::Guest);
    };
    if claims.kind != TokenKind::Auth {
        return Ok(Caller::Guest);
    }
    let Some(entry) = catalog.get(&claims.collection_id).cloned() else {
        return Ok(Caller::Guest);
    };
    // Only an exact id match counts (a name would let a token pick a collection by name).
    if entry.collection.id != claims.collection_id {
        return Ok(Caller::Guest);
    }
    let Some(options) = entry.collection.auth_options() else {
        return Ok(Caller::Guest);
    };
    let secret = options.auth_token.secret.clone();
    let id = claims.id.clone();
    let lookup = entry.clone();
    let Some(data) = db.read(move |c| load_data(c, &lookup, &id)).await? else {
        return Ok(Caller::Guest);
    };
    let token_key = data
        .get("tokenKey")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token_key.is_empty()
        || warren_auth::token::verify(token, TokenKind::Auth, token_key, &secret).is_err()
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

impl From<warren_auth::Error> for Error {
    fn from(e: warren_auth::Error) -> Self {
        Error::Schema(e.to_string())
    }
}
