//! `_authOrigins`: where each auth record has signed in from (a fingerprint of client IP and
//! user agent), and the login alert mailed when a known record signs in from a new one.

use std::sync::Arc;

use md5::{Digest, Md5};
use serde_json::Value;
use warren_mail::Email;
use warren_schema::record::RecordData;
use warren_schema::system::AUTH_ORIGINS;
use warren_store::Database;
use warren_store::sql::Connection;

use crate::tokens::text;
use warren_records::catalog::Entry;
use warren_records::{Error, Result, sql};

/// Origins kept per record; the oldest beyond this are dropped when a new one is added.
const MAX_ORIGINS: usize = 5;
/// Longest user agent taken into a fingerprint (longer ones are cut and marked).
const MAX_USER_AGENT: usize = 200;

/// Where a login came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The client address.
    pub ip: String,
    /// The `User-Agent` header, as sent.
    pub user_agent: String,
}

impl Origin {
    /// The user agent as it enters the fingerprint: cut at 200 bytes, marked with `...`.
    fn agent(&self) -> String {
        let ua = &self.user_agent;
        if ua.len() <= MAX_USER_AGENT {
            return ua.clone();
        }
        let mut end = MAX_USER_AGENT;
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &ua[..end])
    }

    /// The hex MD5 of IP and user agent, as PocketBase computes it (so imported origins keep
    /// matching).
    pub fn fingerprint(&self) -> String {
        let digest = Md5::digest(format!("{}{}", self.ip, self.agent()).as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Records a successful login of `data` from `origin` and, when this origin is new and the
/// record signed in from elsewhere before, composes the collection's login alert. Callers run
/// this only when the collection's `authAlert` is enabled.
pub async fn remember(
    db: &Database,
    entry: &Arc<Entry>,
    data: &RecordData,
    origin: &Origin,
    settings: &Value,
) -> Result<Option<Email>> {
    let fingerprint = origin.fingerprint();
    let (collection, record) = (entry.collection.id.clone(), text(data, "id").to_string());
    let outcome = db
        .write(move |c| {
            let known = ids_newest_first(c, &collection, &record)?;
            let found = known
                .iter()
                .find(|(_, f)| *f == fingerprint)
                .map(|(id, _)| id);
            if let Some(id) = found {
                c.execute(
                    &format!(
                        "UPDATE {} SET updated = strftime('%Y-%m-%d %H:%M:%fZ') WHERE id = ?1",
                        sql::quote(AUTH_ORIGINS)
                    ),
                    [id],
                )?;
                return Ok::<_, Error>(None);
            }
            if known.len() >= MAX_ORIGINS {
                for (id, _) in &known[MAX_ORIGINS - 1..] {
                    c.execute(
                        &format!("DELETE FROM {} WHERE id = ?1", sql::quote(AUTH_ORIGINS)),
                        [id],
                    )?;
                }
            }
            let now: String =
                c.query_row("SELECT strftime('%Y-%m-%d %H:%M:%fZ')", [], |r| r.get(0))?;
            c.execute(
                &format!(
                    "INSERT INTO {} (id, collectionRef, recordRef, fingerprint, created, updated)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    sql::quote(AUTH_ORIGINS)
                ),
                [
                    &warren_schema::id::new_record_id(),
                    &collection,
                    &record,
                    &fingerprint,
                    &now,
                ],
            )?;
            Ok(Some((known.is_empty(), now)))
        })
        .await?;
    let Some((first_login, now)) = outcome else {
        return Ok(None);
    };
    let to = text(data, "email");
    if first_login || to.is_empty() {
        return Ok(None);
    }
    let Some(options) = entry.collection.auth_options() else {
        return Ok(None);
    };
    let info = warren_mail::escape_html(&format!("{now} - {} {}", origin.ip, origin.agent()));
    Ok(Some(crate::account::compose(
        entry,
        data,
        settings,
        &options.auth_alert.email_template,
        to,
        &[("ALERT_INFO", &info)],
    )))
}

/// The record's origins as `(id, fingerprint)`, newest first.
fn ids_newest_first(
    c: &Connection,
    collection: &str,
    record: &str,
) -> Result<Vec<(String, String)>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT id, fingerprint FROM {} WHERE collectionRef = ?1 AND recordRef = ?2
         ORDER BY created DESC, rowid DESC",
        sql::quote(AUTH_ORIGINS)
    ))?;
    let rows = stmt.query_map([collection, record], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_hash_ip_and_a_bounded_user_agent() {
        let a = Origin {
            ip: "127.0.0.1".into(),
            user_agent: "node".into(),
        };
        // md5("127.0.0.1node")
        assert_eq!(a.fingerprint(), "e1b2892a537c2611be478c298e10eabb");
        let long = Origin {
            ip: "10.0.0.1".into(),
            user_agent: "x".repeat(500),
        };
        assert_eq!(long.agent().len(), MAX_USER_AGENT + 3);
        assert_ne!(a.fingerprint(), long.fingerprint());
        assert_eq!(a.fingerprint().len(), 32);
    }
}
