//! Bringing collections written by an older PocketBase (0.23 on) to the 0.40 shape: the data
//! migrations PocketBase itself runs at start-up when its `_migrations` ledger lacks them.
//!
//! The option shapes of 0.23 … 0.40 decode as they are (missing options take their defaults,
//! `null` ones too); what an upgrade changes is data: the default login-alert email and the
//! index list of each collection. Each step is named after PocketBase's migration file, so an
//! upgraded database records it as applied and stock PocketBase does not run it again.

use crate::collection::Collection;
use crate::datetime::DateTime;
use crate::index::Index;

/// The migration that replaced the default login-alert email with one naming the location.
pub const AUTH_ALERT_MIGRATION: &str = "1763020353_update_default_auth_alert_templates.go";
/// The migration that adds indexes found in the database but missing from a collection.
pub const INDEXES_MIGRATION: &str = "1778828400_normalize_indexes.go";

/// The login-alert body PocketBase wrote by default before [`AUTH_ALERT_MIGRATION`].
pub const OLD_AUTH_ALERT_BODY: &str = "<p>Hello,</p>\n<p>We noticed a login to your {APP_NAME} account from a new location.</p>\n<p>If this was you, you may disregard this email.</p>\n<p><strong>If this wasn't you, you should immediately change your {APP_NAME} account password to revoke access from all other locations.</strong></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>";

/// An index of the database file itself (`sqlite_master`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableIndex {
    /// Index name.
    pub name: String,
    /// Its `CREATE INDEX` statement.
    pub sql: String,
}

/// What upgrading one collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upgraded {
    /// The collection changed and must be saved.
    pub changed: bool,
    /// Database indexes to drop: they duplicate one the collection already defines.
    pub drop_indexes: Vec<String>,
}

/// Upgrades `collection` for each migration of `pending` (file names missing from the
/// source's `_migrations`). `table_indexes` are the indexes the database holds on its table.
/// A changed collection gets `updated` set to now, as PocketBase's re-save does.
pub fn upgrade(
    collection: &mut Collection,
    pending: &[&str],
    table_indexes: &[TableIndex],
) -> Upgraded {
    let mut out = Upgraded::default();
    if pending.contains(&AUTH_ALERT_MIGRATION)
        && let Some(auth) = collection.auth_options_mut()
        && auth.auth_alert.email_template.body == OLD_AUTH_ALERT_BODY
    {
        auth.auth_alert.email_template.body = crate::AuthOptions::new_default()
            .auth_alert
            .email_template
            .body;
        out.changed = true;
    }
    if pending.contains(&INDEXES_MIGRATION) && !collection.system && !collection.is_view() {
        out.drop_indexes = adopt_table_indexes(collection, table_indexes);
        // PocketBase re-saves every such collection to normalise its indexes.
        out.changed = true;
    }
    if out.changed {
        collection.updated = DateTime::now().format();
    }
    out
}

/// Adds to the collection the database indexes it does not name (made outside PocketBase, say
/// with the sqlite3 shell); returns those to drop instead: the auth collections' own unique
/// `tokenKey`/`email` indexes under another name, and copies of a defined index.
fn adopt_table_indexes(collection: &mut Collection, table_indexes: &[TableIndex]) -> Vec<String> {
    let named = |name: &str| {
        collection
            .indexes
            .iter()
            .filter_map(|raw| Index::parse(raw))
            .any(|i| !i.name.is_empty() && i.name.eq_ignore_ascii_case(name))
    };
    let mut drop = Vec::new();
    let mut adopt = Vec::new();
    for table_index in table_indexes {
        if named(&table_index.name) {
            continue;
        }
        let Some(mut found) = Index::parse(&table_index.sql) else {
            continue;
        };
        found.schema_name.clear();
        found.table.clone_from(&collection.name);
        let auth_own = collection.is_auth()
            && found.unique
            && found.columns.len() == 1
            && ["tokenKey", "email"]
                .iter()
                .any(|c| found.columns[0].name.eq_ignore_ascii_case(c));
        let built = found.build();
        let duplicate = collection.indexes.iter().any(|raw| {
            Index::parse(raw).is_some_and(|mut mine| {
                mine.name.clone_from(&found.name);
                mine.schema_name.clone_from(&found.schema_name);
                mine.table.clone_from(&found.table);
                mine.build() == built
            })
        });
        if auth_own || duplicate {
            drop.push(table_index.name.clone());
        } else {
            adopt.push(built);
        }
    }
    collection.indexes.extend(adopt);
    drop
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::CollectionType;

    fn index(name: &str, sql: &str) -> TableIndex {
        TableIndex {
            name: name.into(),
            sql: sql.into(),
        }
    }

    #[test]
    fn the_old_default_login_alert_becomes_the_new_one_and_custom_ones_stay() {
        let mut old = Collection::new(CollectionType::Auth, "users");
        old.auth_options_mut()
            .unwrap()
            .auth_alert
            .email_template
            .body = OLD_AUTH_ALERT_BODY.into();
        old.updated = "2024-01-01 00:00:00.000Z".into();
        let mut custom = old.clone();
        custom
            .auth_options_mut()
            .unwrap()
            .auth_alert
            .email_template
            .body = "<p>mine</p>".into();
        custom.system = true;

        assert!(upgrade(&mut old, &[AUTH_ALERT_MIGRATION], &[]).changed);
        assert!(
            old.auth_options()
                .unwrap()
                .auth_alert
                .email_template
                .body
                .contains("{ALERT_INFO}")
        );
        assert_ne!(old.updated, "2024-01-01 00:00:00.000Z");

        assert!(!upgrade(&mut custom, &[AUTH_ALERT_MIGRATION], &[]).changed);
        assert_eq!(custom.updated, "2024-01-01 00:00:00.000Z");
        // Nothing pending, nothing changes.
        let before = old.clone();
        assert!(!upgrade(&mut old, &[], &[]).changed);
        assert_eq!(old, before);
    }

    #[test]
    fn indexes_made_outside_pocketbase_are_adopted_and_duplicates_dropped() {
        let mut posts = Collection::new(CollectionType::Base, "posts");
        posts.indexes = vec!["CREATE INDEX `idx_title` ON `posts` (`title`)".into()];
        let table = [
            index("idx_title", "CREATE INDEX `idx_title` ON `posts` (`title`)"),
            index("by_views", "CREATE INDEX by_views ON posts (views)"),
            index("title_again", "CREATE INDEX title_again ON posts (title)"),
        ];
        let done = upgrade(&mut posts, &[INDEXES_MIGRATION], &table);
        assert!(done.changed);
        assert_eq!(done.drop_indexes, vec!["title_again".to_string()]);
        assert_eq!(posts.indexes.len(), 2);
        assert!(
            posts.indexes[1].contains("`by_views`"),
            "{:?}",
            posts.indexes
        );

        let mut users = Collection::new(CollectionType::Auth, "users");
        let before = users.indexes.clone();
        let table = [index(
            "old_email",
            "CREATE UNIQUE INDEX old_email ON users (email)",
        )];
        let done = upgrade(&mut users, &[INDEXES_MIGRATION], &table);
        assert_eq!(done.drop_indexes, vec!["old_email".to_string()]);
        assert_eq!(users.indexes, before);
    }

    #[test]
    fn system_collections_and_views_keep_their_indexes() {
        let mut view = Collection::new(CollectionType::View, "v");
        assert!(!upgrade(&mut view, &[INDEXES_MIGRATION], &[]).changed);
        let mut system = Collection::new(CollectionType::Base, "_sys");
        system.system = true;
        let table = [index("x", "CREATE INDEX x ON _sys (a)")];
        assert_eq!(
            upgrade(&mut system, &[INDEXES_MIGRATION], &table),
            Upgraded::default()
        );
    }
}
