//! What every successful login shares (authRule, MFA, the `{record, token}` answer) and the
//! token-only flows: auth-refresh and impersonation.

use std::sync::Arc;

use serde_json::{Value, json};
use warren_filter::RequestContext;
use warren_schema::record::RecordData;
use warren_secrets::TokenKind;
use warren_store::Database;

use crate::tokens::{Extra, issue_kind, text};
use warren_records::catalog::{Catalog, Entry};
use warren_records::{Caller, Error, Result, sql};

const AUTH_RULE_FAILED: &str =
    "The request doesn't satisfy the collection requirements to authenticate.";

/// The collection's `authRule` for record `data` (`null`: nobody may authenticate).
pub async fn admit(
    db: &Database,
    catalog: &Arc<Catalog>,
    entry: &Arc<Entry>,
    data: &RecordData,
    ctx: &RequestContext,
) -> Result<()> {
    match &entry.rules.auth {
        None => Err(Error::Forbidden(AUTH_RULE_FAILED)),
        Some(rule) => {
            if warren_records::auth::rule_admits(db, catalog, entry, rule, ctx, text(data, "id"))
                .await?
            {
                Ok(())
            } else {
                Err(Error::Forbidden(AUTH_RULE_FAILED))
            }
        }
    }
}

/// Signs a refreshable auth token for the record.
pub fn auth_token(entry: &Entry, data: &RecordData) -> Result<String> {
    issue_kind(
        &entry.collection,
        data,
        TokenKind::Auth,
        Extra {
            refreshable: Some(true),
            ..Extra::default()
        },
    )
}

/// `{"record": …, "token": …}` with the record as its owner sees it, expanded on request.
pub async fn respond(
    db: &Database,
    catalog: Arc<Catalog>,
    entry: Arc<Entry>,
    data: RecordData,
    token: String,
    expand: &str,
) -> Result<Value> {
    let caller = Caller::Record {
        record: match warren_records::auth::caller_for(&entry, &data) {
            Some(Caller::Superuser { record } | Caller::Record { record }) => record,
            _ => Default::default(),
        },
    };
    let record = warren_records::write::respond(db, catalog, entry, &caller, data, expand).await?;
    Ok(json!({ "record": record, "token": token }))
}

/// `{"record": …, "token": …}` for auth record `id` of `entry`, signed in without a credential:
/// only for sign-ins the platform vouches for (a project owner's one-time dashboard link).
pub async fn vouched(
    db: &Database,
    catalog: &Arc<Catalog>,
    entry: &Arc<Entry>,
    id: &str,
) -> Result<Value> {
    let data = load(db, entry, id)
        .await?
        .ok_or(Error::NotFound("The requested resource wasn't found."))?;
    let token = auth_token(entry, &data)?;
    respond(db, catalog.clone(), entry.clone(), data, token, "").await
}

/// Completes a first-factor login: authRule, then MFA (which may answer 401 `{mfaId}`).
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    db: &Database,
    catalog: &Arc<Catalog>,
    entry: &Arc<Entry>,
    data: &RecordData,
    ctx: &RequestContext,
    method: &str,
    mfa_id: &str,
) -> Result<()> {
    admit(db, catalog, entry, data, ctx).await?;
    crate::mfa::gate(db, catalog, entry, data, ctx, method, mfa_id).await
}

/// Reads a record of `entry` by id (hidden fields included).
pub async fn load(db: &Database, entry: &Arc<Entry>, id: &str) -> Result<Option<RecordData>> {
    let (lookup, id) = (entry.clone(), id.to_string());
    db.read(move |c| warren_records::auth::load_data(c, &lookup, &id))
        .await
}

/// Finds a record of `entry` by email (case-insensitively, as identity lookups do).
pub async fn find_by_email(
    db: &Database,
    entry: &Arc<Entry>,
    email: &str,
) -> Result<Option<RecordData>> {
    let (lookup, email) = (entry.clone(), email.to_string());
    db.read(move |c| {
        let statement = format!(
            "SELECT id FROM {} WHERE \"email\" = ?1 COLLATE NOCASE LIMIT 1",
            sql::quote(&lookup.collection.name)
        );
        let id: Option<String> = {
            let mut stmt = c.prepare_cached(&statement)?;
            let mut rows = stmt.query([&email])?;
            match rows.next()? {
                Some(row) => Some(row.get(0)?),
                None => None,
            }
        };
        match id {
            Some(id) => warren_records::auth::load_data(c, &lookup, &id),
            None => Ok(None),
        }
    })
    .await
}

/// `auth-refresh`: the caller must be a record of `entry`. A refreshable token is renewed;
/// any other (impersonation) is echoed back unchanged.
pub async fn refresh(
    db: &Database,
    catalog: &Arc<Catalog>,
    entry: &Arc<Entry>,
    caller: &Caller,
    presented: &str,
    ctx: &RequestContext,
) -> Result<(RecordData, String)> {
    let id = require_own(entry, caller)?;
    let data = load(db, entry, id)
        .await?
        .ok_or(Error::NotFound("Missing auth record context."))?;
    admit(db, catalog, entry, &data, ctx).await?;
    let refreshable = warren_secrets::token::peek(presented)
        .ok()
        .and_then(|c| c.refreshable)
        .unwrap_or(false);
    let token = if refreshable {
        auth_token(entry, &data)?
    } else {
        presented.to_string()
    };
    Ok((data, token))
}

/// 401 for guests: routes that act on the caller's own record answer this before looking at
/// the collection, as PocketBase's auth middleware does.
pub fn require_auth(caller: &Caller) -> Result<()> {
    match caller {
        Caller::Guest => Err(Error::Unauthorized(
            "The request requires valid record authorization token.",
        )),
        _ => Ok(()),
    }
}

/// The caller's id when it is a record of `entry`: 401 for guests, 403 for others.
pub fn require_own<'a>(entry: &Entry, caller: &'a Caller) -> Result<&'a str> {
    match caller {
        Caller::Guest => Err(Error::Unauthorized(
            "The request requires valid record authorization token.",
        )),
        _ if caller.collection_id() == Some(entry.collection.id.as_str()) => {
            Ok(caller.id().unwrap_or_default())
        }
        _ => Err(Error::ForbiddenOwned(format!(
            "The request requires auth record from {} collection.",
            entry.collection.name
        ))),
    }
}

/// `impersonate/{id}`: a non-refreshable token for any record, for `duration` seconds (0: the
/// collection's auth token lifetime). Only superusers get here.
pub async fn impersonate(
    db: &Database,
    entry: &Arc<Entry>,
    id: &str,
    duration: i64,
) -> Result<(RecordData, String)> {
    let data = load(db, entry, id)
        .await?
        .ok_or(Error::NotFound("The requested resource wasn't found."))?;
    let token = issue_kind(
        &entry.collection,
        &data,
        TokenKind::Auth,
        Extra {
            refreshable: Some(false),
            duration: Some(duration),
            ..Extra::default()
        },
    )?;
    Ok((data, token))
}

/// `auth-methods`: which sign-in methods the collection offers (OAuth2 providers are added by
/// the caller, which knows their authorization URLs).
pub fn methods(entry: &Entry, providers: Vec<Value>) -> Result<Value> {
    let options = entry.collection.auth_options().ok_or(Error::NotFound(
        "Missing or invalid auth collection context.",
    ))?;
    let password = &options.password_auth;
    let identity_fields: Vec<&String> = if password.enabled {
        password.identity_fields.iter().collect()
    } else {
        Vec::new()
    };
    let legacy: Vec<Value> = providers
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if let Some(map) = p.as_object_mut() {
                map.insert("logo".into(), json!(""));
            }
            p
        })
        .collect();
    let oauth2_enabled = options.oauth2.enabled;
    Ok(json!({
        "password": {"identityFields": identity_fields, "enabled": password.enabled},
        "oauth2": {"providers": providers, "enabled": oauth2_enabled},
        "mfa": {"enabled": options.mfa.enabled, "duration": if options.mfa.enabled { options.mfa.duration } else { 0 }},
        "otp": {"enabled": options.otp.enabled, "duration": if options.otp.enabled { options.otp.duration } else { 0 }},
        "authProviders": legacy,
        "usernamePassword": password.enabled && password.identity_fields.iter().any(|f| f == "username"),
        "emailPassword": password.enabled && password.identity_fields.iter().any(|f| f == "email"),
    }))
}

/// Sets columns of one record on the writer's connection, bumping `updated` when the
/// collection has it. Column names come from the collection, never from a request.
pub(crate) fn set_columns(
    c: &warren_store::sql::Connection,
    entry: &Entry,
    id: &str,
    values: &[(&str, warren_store::sql::Value)],
) -> Result<usize> {
    let mut sets: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{} = ?{}", sql::quote(name), i + 2))
        .collect();
    if entry.collection.field("updated").is_some() {
        sets.push("\"updated\" = strftime('%Y-%m-%d %H:%M:%fZ')".into());
    }
    let statement = format!(
        "UPDATE {} SET {} WHERE id = ?1",
        sql::quote(&entry.collection.name),
        sets.join(", ")
    );
    let mut params: Vec<warren_store::sql::Value> = vec![id.to_string().into()];
    params.extend(values.iter().map(|(_, v)| v.clone()));
    Ok(c.execute(
        &statement,
        warren_store::sql::params_from_iter(params.iter()),
    )?)
}
