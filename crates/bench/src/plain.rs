//! The `plain` collection: posts shaped and ruled like `posts` but with no index at all, as most
//! users leave their collections, for the `plain-*` scenarios (and `plain-list-indexed`, the
//! same list once an index on `created` exists).

use serde_json::{Value, json};

use crate::load::OpError;
use crate::seed::{self, Dataset};
use crate::target::{Target, json_ok, send_ok};

/// The collection's name.
pub const COLLECTION: &str = "plain";
/// The one index `plain-list-indexed` adds (and `plain-list` removes).
const CREATED_INDEX: &str = "CREATE INDEX idx_plain_created ON plain (created)";

/// Seeds `records` posts into `plain` (reusing an earlier seed of that size) and returns the
/// dataset with [`Dataset::plain`] set.
pub async fn seed(
    target: &Target,
    data: &Dataset,
    records: usize,
    concurrency: usize,
) -> Result<Dataset, OpError> {
    let su = target.superuser_token().await?;
    let existing = seed::count(target, &su, COLLECTION).await.unwrap_or(0);
    if existing < records {
        let users_id = seed::ensure_users_collection(target, &su).await?;
        let body = seed::posts_collection(COLLECTION, &users_id, &[]);
        seed::create_collection(target, &su, body).await?;
        let batch = seed::enable_batch(target, &su).await;
        let stats = seed::seed_posts(
            target,
            COLLECTION,
            &su,
            data.users,
            records,
            concurrency,
            batch,
        )
        .await;
        if stats.errors > 0 {
            return Err(OpError::other(format!(
                "seeding plain: {} inserts failed, first: {}",
                stats.errors,
                stats.first_error.unwrap_or_default()
            )));
        }
    }
    Ok(Dataset {
        plain: records,
        ..data.clone()
    })
}

/// Adds (`indexed`) or removes the index on `created`, only when it is not already so.
pub async fn set_created_index(target: &Target, indexed: bool) -> Result<(), OpError> {
    let su = target.superuser_token().await?;
    let url = target.url(&format!("/api/collections/{COLLECTION}"));
    let current = json_ok(
        target
            .client
            .get(&url)
            .header("Authorization", &su)
            .send()
            .await?,
    )
    .await?;
    let has = current
        .get("indexes")
        .and_then(Value::as_array)
        .is_some_and(|list| !list.is_empty());
    if has == indexed {
        return Ok(());
    }
    let indexes: Vec<&str> = if indexed { vec![CREATED_INDEX] } else { vec![] };
    let req = target
        .client
        .patch(&url)
        .header("Authorization", &su)
        .json(&json!({ "indexes": indexes }));
    send_ok(req).await?.bytes().await?;
    Ok(())
}
