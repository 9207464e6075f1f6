//! The status of every certificate the edge holds, for operators: issuer, expiry, next
//! renewal, last error and counters of orders, failures and renewals.

use serde::Serialize;
use warren_store::Database;
use warren_store::sql::{self, Row};

use crate::{Error, Result};

/// One host's certificate status. In [`record`], `orders`, `failures` and `renewals` are
/// increments; in [`list`], totals.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRecord {
    /// The host name.
    pub host: String,
    /// The issuer's common name.
    pub issuer: String,
    /// End of validity, Unix seconds (0: none yet).
    pub not_after: i64,
    /// Next renewal or retry, Unix seconds (0: none planned).
    pub next_renewal: i64,
    /// Last error, empty after a success.
    pub last_error: String,
    /// Challenge type of the last success.
    pub challenge: String,
    /// Orders placed.
    pub orders: i64,
    /// Failed attempts.
    pub failures: i64,
    /// Renewals.
    pub renewals: i64,
    /// Last update.
    pub updated: String,
}

/// Stores the outcome of one attempt for `record.host`, adding its counters to the totals.
/// An empty issuer or a zero expiry keeps the previous one.
pub async fn record(db: &Database, record: CertificateRecord) -> Result<()> {
    db.write(move |c| {
        c.prepare_cached(
            "INSERT INTO certificates
               (host, issuer, not_after, next_renewal, last_error, challenge, orders, failures, renewals)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (host) DO UPDATE SET
               issuer = CASE excluded.issuer WHEN '' THEN issuer ELSE excluded.issuer END,
               not_after = CASE excluded.not_after WHEN 0 THEN not_after ELSE excluded.not_after END,
               next_renewal = excluded.next_renewal,
               last_error = excluded.last_error,
               challenge = CASE excluded.challenge WHEN '' THEN challenge ELSE excluded.challenge END,
               orders = orders + excluded.orders,
               failures = failures + excluded.failures,
               renewals = renewals + excluded.renewals,
               updated = strftime('%Y-%m-%d %H:%M:%fZ')",
        )?
        .execute(sql::params![
            record.host,
            record.issuer,
            record.not_after,
            record.next_renewal,
            record.last_error,
            record.challenge,
            record.orders,
            record.failures,
            record.renewals,
        ])?;
        Ok::<_, Error>(())
    })
    .await
}

fn from_row(row: &Row<'_>) -> sql::Result<CertificateRecord> {
    Ok(CertificateRecord {
        host: row.get(0)?,
        issuer: row.get(1)?,
        not_after: row.get(2)?,
        next_renewal: row.get(3)?,
        last_error: row.get(4)?,
        challenge: row.get(5)?,
        orders: row.get(6)?,
        failures: row.get(7)?,
        renewals: row.get(8)?,
        updated: row.get(9)?,
    })
}

/// Every host's certificate status, by host.
pub async fn list(db: &Database) -> Result<Vec<CertificateRecord>> {
    db.read(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT host, issuer, not_after, next_renewal, last_error, challenge, orders,
                    failures, renewals, updated
               FROM certificates ORDER BY host",
        )?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<sql::Result<Vec<_>>>()?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counters_add_up_and_facts_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::open_control_db(dir.path()).await.unwrap();
        let host = "a.example.com".to_string();
        record(
            &db,
            CertificateRecord {
                host: host.clone(),
                issuer: "CA".into(),
                not_after: 10,
                orders: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        record(
            &db,
            CertificateRecord {
                host: host.clone(),
                last_error: "down".into(),
                orders: 1,
                failures: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let all = list(&db).await.unwrap();
        assert_eq!(all.len(), 1);
        let one = &all[0];
        assert_eq!((one.issuer.as_str(), one.not_after), ("CA", 10));
        assert_eq!((one.orders, one.failures, one.renewals), (2, 1, 0));
        assert_eq!(one.last_error, "down");
    }
}
