//! Multi-factor authentication: a first successful login opens an `_mfas` session instead of
//! issuing a token; a login with a different method that names the session completes it.

use std::sync::Arc;

use warren_filter::{Filter, RequestContext};
use warren_schema::record::RecordData;
use warren_schema::system::MFAS;
use warren_store::Database;
use warren_store::sql::OptionalExtension;

use crate::tokens::text;
use warren_records::catalog::{Catalog, Entry};
use warren_records::{Error, Result, sql};

const EXPIRED: &str = "Invalid or expired MFA session.";
const MISMATCH: &str = "Invalid MFA session.";
const SAME_METHOD: &str = "A different authentication method is required.";

/// Passes when no second factor is needed, or when `mfa_id` names a live session of this record
/// opened by another method (the session is then consumed). Otherwise opens a session and
/// fails with [`Error::MfaRequired`].
pub async fn gate(
    db: &Database,
    catalog: &Arc<Catalog>,
    entry: &Arc<Entry>,
    data: &RecordData,
    ctx: &RequestContext,
    method: &str,
    mfa_id: &str,
) -> Result<()> {
    let Some(options) = entry.collection.auth_options() else {
        return Ok(());
    };
    if !options.mfa.enabled {
        return Ok(());
    }
    let record_id = text(data, "id").to_string();
    if !options.mfa.rule.trim().is_empty() {
        let rule = Filter::parse(&options.mfa.rule)?;
        if !warren_records::auth::rule_admits(db, catalog, entry, &rule, ctx, &record_id).await? {
            return Ok(());
        }
    }
    let duration = if options.mfa.duration > 0 {
        options.mfa.duration
    } else {
        600
    };
    let (collection, method) = (entry.collection.id.clone(), method.to_string());
    if mfa_id.is_empty() {
        let id = warren_schema::id::new_record_id();
        let new_id = id.clone();
        db.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO {} (id, collectionRef, recordRef, method, created, updated)
                     VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%d %H:%M:%fZ'), strftime('%Y-%m-%d %H:%M:%fZ'))",
                    sql::quote(MFAS)
                ),
                [&new_id, &collection, &record_id, &method],
            )?;
            Ok::<_, Error>(())
        })
        .await?;
        return Err(Error::MfaRequired(id));
    }
    if mfa_id.len() > 255 {
        return Err(Error::BadRequest(EXPIRED));
    }
    let wanted = mfa_id.to_string();
    db.write(move |c| {
        let found: Option<(String, String, String)> = c
            .query_row(
                &format!(
                    "SELECT collectionRef, recordRef, method FROM {} WHERE id = ?1
                     AND created > strftime('%Y-%m-%d %H:%M:%fZ', 'now', ?2)",
                    sql::quote(MFAS)
                ),
                [wanted.as_str(), &format!("-{duration} seconds")],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((collection_ref, record_ref, first)) = found else {
            return Err(Error::BadRequest(EXPIRED));
        };
        if collection_ref != collection || record_ref != record_id {
            return Err(Error::BadRequest(MISMATCH));
        }
        if first == method {
            return Err(Error::BadRequest(SAME_METHOD));
        }
        c.execute(
            &format!("DELETE FROM {} WHERE id = ?1", sql::quote(MFAS)),
            [wanted.as_str()],
        )?;
        Ok(())
    })
    .await
}

/// Deletes the MFA sessions older than their collection's `mfa.duration`, in every auth
/// collection (whether MFA is on or not, so none is left behind); returns how many. The
/// hourly `__pbMFACleanup__` cron job runs this.
pub async fn delete_expired(db: &Database, catalog: &Catalog) -> Result<usize> {
    let limits: Vec<(String, i64)> = catalog
        .entries()
        .iter()
        .filter_map(|entry| {
            let options = entry.collection.auth_options()?;
            let seconds = if options.mfa.duration > 0 {
                options.mfa.duration
            } else {
                600
            };
            Some((entry.collection.id.clone(), seconds))
        })
        .collect();
    crate::otp::delete_older(db, MFAS, limits).await
}
