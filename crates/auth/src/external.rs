//! `_externalAuths`: links between a record and an OAuth2 provider's user id.

use std::sync::Arc;

use warren_schema::record::RecordData;
use warren_schema::system::EXTERNAL_AUTHS;
use warren_store::Database;
use warren_store::sql::OptionalExtension;

use warren_records::catalog::Entry;
use warren_records::{Error, Result, sql};

/// The record of `entry` linked to (`provider`, `provider_id`), if any.
pub async fn find_linked(
    db: &Database,
    entry: &Arc<Entry>,
    provider: &str,
    provider_id: &str,
) -> Result<Option<RecordData>> {
    let (lookup, provider, provider_id) =
        (entry.clone(), provider.to_string(), provider_id.to_string());
    db.read(move |c| {
        let id: Option<String> = c
            .query_row(
                &format!(
                    "SELECT recordRef FROM {} WHERE collectionRef = ?1 AND provider = ?2 AND providerId = ?3",
                    sql::quote(EXTERNAL_AUTHS)
                ),
                [&lookup.collection.id, &provider, &provider_id],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => warren_records::auth::load_data(c, &lookup, &id),
            None => Ok(None),
        }
    })
    .await
}

/// Links record `id` to the provider user (no-op when already linked); with `verify`, also
/// marks the record verified.
pub async fn link(
    db: &Database,
    entry: &Arc<Entry>,
    id: &str,
    provider: &str,
    provider_id: &str,
    verify: bool,
) -> Result<()> {
    let (target, id, provider, provider_id) = (
        entry.clone(),
        id.to_string(),
        provider.to_string(),
        provider_id.to_string(),
    );
    db.write(move |c| {
        c.execute(
            &format!(
                "INSERT OR IGNORE INTO {} (id, collectionRef, recordRef, provider, providerId, created, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%d %H:%M:%fZ'), strftime('%Y-%m-%d %H:%M:%fZ'))",
                sql::quote(EXTERNAL_AUTHS)
            ),
            [
                &warren_schema::id::new_record_id(),
                &target.collection.id,
                &id,
                &provider,
                &provider_id,
            ],
        )?;
        if verify {
            crate::login::set_columns(c, &target, &id, &[("verified", 1i64.into())])?;
        }
        Ok::<_, Error>(())
    })
    .await
}
