//! One-time passwords: `request-otp` stores a hashed numeric code in `_otps` and mails it;
//! `auth-with-otp` checks it (5 attempts per record per 3 minutes) and logs the record in.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use warren_filter::RequestContext;
use warren_mail::Email;
use warren_schema::record::RecordData;
use warren_schema::system::OTPS;
use warren_secrets::Passwords;
use warren_store::Database;
use warren_store::sql::OptionalExtension;

use crate::tokens::text;
use warren_records::catalog::{Catalog, Entry};
use warren_records::limits::Limiter;
use warren_records::{Error, Result, sql};

const DISABLED: &str = "The collection is not configured to allow OTP authentication.";
const INVALID: &str = "Invalid or expired OTP.";
const TOO_MANY: &str = "Too many attempts, please try again later with a new OTP.";
/// Unexpired codes a record may hold; past this, the newest is reused and nothing is sent.
const MAX_LIVE: i64 = 9;
/// Longest wait for a hashing permit before answering 429.
pub const HASH_WAIT: Duration = Duration::from_secs(2);

fn options(entry: &Entry) -> Result<&warren_schema::collection::OtpConfig> {
    let options = entry.collection.auth_options().ok_or(Error::NotFound(
        "Missing or invalid auth collection context.",
    ))?;
    if !options.otp.enabled {
        return Err(Error::Forbidden(DISABLED));
    }
    Ok(&options.otp)
}

/// Fails with 403 when the collection has OTP sign-in off.
pub fn require_enabled(entry: &Entry) -> Result<()> {
    options(entry).map(|_| ())
}

fn duration(otp: &warren_schema::collection::OtpConfig) -> i64 {
    if otp.duration > 0 { otp.duration } else { 180 }
}

/// A numeric code of `length` digits (PocketBase's default is 8).
pub fn new_code(length: i64) -> String {
    let length = length.clamp(4, 20) as usize;
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// `request-otp`: always returns an id; only an existing record gets a code and an email
/// (an unknown email gets a random id that matches nothing).
pub async fn request(
    db: &Database,
    entry: &Arc<Entry>,
    email: &str,
    settings: &Value,
    passwords: &Passwords,
) -> Result<(String, Option<Email>)> {
    let otp = options(entry)?.clone();
    let Some(data) = crate::login::find_by_email(db, entry, email).await? else {
        return Ok((warren_schema::id::new_record_id(), None));
    };
    let record_id = text(&data, "id").to_string();
    let (collection, seconds) = (entry.collection.id.clone(), duration(&otp));
    let live = {
        let (collection, record_id) = (collection.clone(), record_id.clone());
        db.read(move |c| {
            Ok::<_, Error>(c.query_row(
                &format!(
                    "SELECT count(*), max(id) FROM {} WHERE collectionRef = ?1 AND recordRef = ?2
                         AND created > strftime('%Y-%m-%d %H:%M:%fZ', 'now', ?3)",
                    sql::quote(OTPS)
                ),
                [&collection, &record_id, &format!("-{seconds} seconds")],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
            )?)
        })
        .await?
    };
    if live.0 > MAX_LIVE
        && let Some(newest) = live.1
    {
        return Ok((newest, None));
    }
    let code = new_code(otp.length);
    let hash = passwords.try_hash(&code, HASH_WAIT).await.map_err(busy)?;
    let id = warren_schema::id::new_record_id();
    let sent_to = text(&data, "email").to_string();
    {
        let (id, sent_to) = (id.clone(), sent_to.clone());
        db.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO {} (id, collectionRef, recordRef, password, sentTo, created, updated)
                     VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%d %H:%M:%fZ'), strftime('%Y-%m-%d %H:%M:%fZ'))",
                    sql::quote(OTPS)
                ),
                [&id, &collection, &record_id, &hash, &sent_to],
            )?;
            Ok::<_, Error>(())
        })
        .await?;
    }
    let email = crate::account::compose(
        entry,
        &data,
        settings,
        &otp.email_template,
        &sent_to,
        &[("OTP", &code), ("OTP_ID", &id)],
    );
    Ok((id, Some(email)))
}

/// Maps a saturated hasher to 429.
pub(crate) fn busy(e: warren_secrets::Error) -> Error {
    match e {
        warren_secrets::Error::Busy => Error::TooManyRequests("Too Many Requests."),
        other => other.into(),
    }
}

/// `auth-with-otp`: checks the code, then authRule and MFA; on success the code is consumed
/// and an unverified record whose code went to its own address becomes verified.
#[allow(clippy::too_many_arguments)]
pub async fn authenticate(
    db: &Database,
    catalog: &Arc<Catalog>,
    entry: &Arc<Entry>,
    tenant: &str,
    otp_id: &str,
    code: &str,
    ctx: &RequestContext,
    mfa_id: &str,
    passwords: &Passwords,
    limiter: &Limiter,
) -> Result<RecordData> {
    let otp = options(entry)?.clone();
    let (collection, seconds) = (entry.collection.id.clone(), duration(&otp));
    let wanted = otp_id.to_string();
    let row: Option<(String, String, String)> = db
        .read(move |c| {
            Ok::<_, Error>(
                c.query_row(
                    &format!(
                        "SELECT recordRef, password, sentTo FROM {} WHERE id = ?1 AND collectionRef = ?2
                         AND created > strftime('%Y-%m-%d %H:%M:%fZ', 'now', ?3)",
                        sql::quote(OTPS)
                    ),
                    [&wanted, &collection, &format!("-{seconds} seconds")],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?,
            )
        })
        .await?;
    let Some((record_id, hash, sent_to)) = row else {
        return Err(Error::BadRequest(INVALID));
    };
    if !limiter.allow(
        &format!("{tenant}\0otp\0{}\0{record_id}", entry.collection.id),
        5,
        Duration::from_secs(180),
    ) {
        return Err(Error::TooManyRequests(TOO_MANY));
    }
    if !passwords
        .try_verify(code, &hash, HASH_WAIT)
        .await
        .map_err(busy)?
    {
        return Err(Error::BadRequest(INVALID));
    }
    let Some(mut data) = crate::login::load(db, entry, &record_id).await? else {
        return Err(Error::BadRequest(INVALID));
    };
    crate::login::finish(db, catalog, entry, &data, ctx, "otp", mfa_id).await?;
    let verify = data.get("verified") != Some(&Value::Bool(true))
        && !sent_to.is_empty()
        && sent_to == text(&data, "email");
    let (target, id, otp_row) = (entry.clone(), record_id.clone(), otp_id.to_string());
    db.write(move |c| {
        c.execute(
            &format!("DELETE FROM {} WHERE id = ?1", sql::quote(OTPS)),
            [&otp_row],
        )?;
        if verify {
            crate::login::set_columns(c, &target, &id, &[("verified", 1i64.into())])?;
        }
        Ok::<_, Error>(())
    })
    .await?;
    if verify {
        data.insert("verified".into(), Value::Bool(true));
    }
    Ok(data)
}

/// Deletes the one-time passwords older than their collection's `otp.duration`, in every auth
/// collection (whether OTP is on or not); returns how many. The hourly `__pbOTPCleanup__` cron
/// job runs this.
pub async fn delete_expired(db: &Database, catalog: &Catalog) -> Result<usize> {
    let limits: Vec<(String, i64)> = catalog
        .entries()
        .iter()
        .filter_map(|entry| {
            let options = entry.collection.auth_options()?;
            Some((entry.collection.id.clone(), duration(&options.otp)))
        })
        .collect();
    delete_older(db, OTPS, limits).await
}

/// Deletes the rows of `table` (`_otps` or `_mfas`) of each collection older than its limit
/// in seconds, in one write.
pub(crate) async fn delete_older(
    db: &Database,
    table: &'static str,
    limits: Vec<(String, i64)>,
) -> Result<usize> {
    if limits.is_empty() {
        return Ok(0);
    }
    db.write(move |c| {
        let statement = format!(
            "DELETE FROM {} WHERE collectionRef = ?1
             AND created < strftime('%Y-%m-%d %H:%M:%fZ', 'now', ?2)",
            sql::quote(table)
        );
        let mut deleted = 0;
        for (collection, seconds) in &limits {
            deleted += c.execute(
                &statement,
                [collection.as_str(), &format!("-{seconds} seconds")],
            )?;
        }
        Ok::<_, Error>(deleted)
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_digits_of_the_configured_length() {
        let code = super::new_code(8);
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(super::new_code(1).len(), 4);
    }
}
