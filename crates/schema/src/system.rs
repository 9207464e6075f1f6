//! The system tables and collections every tenant database starts with, laid out exactly like a
//! fresh PocketBase 0.40 `data.db` so the file opens in stock PocketBase.

use crate::collection::{Collection, CollectionType};
use crate::ddl;
use crate::field::{Field, FieldKind, FileOptions, PasswordOptions, TextOptions};

/// `_migrations`, PocketBase's migration ledger.
pub const MIGRATIONS_DDL: &str =
    "CREATE TABLE `_migrations` (file VARCHAR(255) PRIMARY KEY NOT NULL, applied INTEGER NOT NULL)";

/// `_params`, holding the `settings` row.
pub const PARAMS_DDL: &str = "CREATE TABLE `_params` (\n\t\t\t`id`      TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,\n\t\t\t`value`   JSON DEFAULT NULL,\n\t\t\t`created` TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,\n\t\t\t`updated` TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL\n\t\t)";

/// `_collections`, one row per collection (see [`crate::CollectionRow`]).
pub const COLLECTIONS_DDL: &str = "CREATE TABLE `_collections` (\n\t\t\t\t`id`         TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,\n\t\t\t\t`system`     BOOLEAN DEFAULT FALSE NOT NULL,\n\t\t\t\t`type`       TEXT DEFAULT \"base\" NOT NULL,\n\t\t\t\t`name`       TEXT UNIQUE NOT NULL,\n\t\t\t\t`fields`     JSON DEFAULT \"[]\" NOT NULL,\n\t\t\t\t`indexes`    JSON DEFAULT \"[]\" NOT NULL,\n\t\t\t\t`listRule`   TEXT DEFAULT NULL,\n\t\t\t\t`viewRule`   TEXT DEFAULT NULL,\n\t\t\t\t`createRule` TEXT DEFAULT NULL,\n\t\t\t\t`updateRule` TEXT DEFAULT NULL,\n\t\t\t\t`deleteRule` TEXT DEFAULT NULL,\n\t\t\t\t`options`    JSON DEFAULT \"{}\" NOT NULL,\n\t\t\t\t`created`    TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,\n\t\t\t\t`updated`    TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL\n\t\t\t)";

/// The index PocketBase keeps on `_collections.type`.
pub const COLLECTIONS_TYPE_INDEX_DDL: &str =
    "CREATE INDEX idx__collections_type on `_collections` (`type`)";

/// The migrations a fresh PocketBase 0.40 database has applied; recording them in
/// `_migrations` (with `applied` in unix microseconds) keeps stock PocketBase from re-running
/// them on an exported database.
pub const APPLIED_MIGRATIONS: [&str; 8] = [
    "1640988000_aux_init.go",
    "1640988000_init.go",
    "1717233556_v0.23_migrate.go",
    "1717233557_v0.23_migrate2.go",
    "1717233558_v0.23_migrate3.go",
    "1717233559_v0.23_migrate4.go",
    "1763020353_update_default_auth_alert_templates.go",
    "1778828400_normalize_indexes.go",
];

/// Id of `_superusers`.
pub const SUPERUSERS_ID: &str = "pbc_3142635823";
/// Id of the default `users` collection.
pub const USERS_ID: &str = "_pb_users_auth_";
/// Id of `_mfas`.
pub const MFAS_ID: &str = "pbc_2279338944";
/// Id of `_otps`.
pub const OTPS_ID: &str = "pbc_1638494021";
/// Id of `_externalAuths`.
pub const EXTERNAL_AUTHS_ID: &str = "pbc_2281828961";
/// Id of `_authOrigins`.
pub const AUTH_ORIGINS_ID: &str = "pbc_4275539003";

/// Name of the superusers collection.
pub const SUPERUSERS: &str = "_superusers";
/// Name of the MFA sessions collection.
pub const MFAS: &str = "_mfas";
/// Name of the one-time passwords collection.
pub const OTPS: &str = "_otps";
/// Name of the OAuth2 links collection.
pub const EXTERNAL_AUTHS: &str = "_externalAuths";
/// Name of the known login origins collection.
pub const AUTH_ORIGINS: &str = "_authOrigins";

const OWNER_RULE: &str = "@request.auth.id != '' && recordRef = @request.auth.id && collectionRef = @request.auth.collectionId";

fn required_text(name: &str) -> Field {
    Field::new(name, FieldKind::Text(TextOptions::default()))
        .system()
        .required()
}

fn system_base(
    id: &str,
    name: &str,
    extra: Vec<Field>,
    indexes: &[&str],
    delete: bool,
) -> Collection {
    let mut c = Collection::new(CollectionType::Base, name);
    c.id = id.into();
    c.system = true;
    let mut fields = vec![
        Field::primary_key(),
        required_text("collectionRef"),
        required_text("recordRef"),
    ];
    fields.extend(extra);
    fields.push(Field::autodate("created", false).system());
    fields.push(Field::autodate("updated", true).system());
    c.fields = fields.into();
    c.indexes = indexes.iter().map(|s| (*s).to_owned()).collect();
    c.list_rule = Some(OWNER_RULE.into());
    c.view_rule = Some(OWNER_RULE.into());
    if delete {
        c.delete_rule = Some(OWNER_RULE.into());
    }
    c
}

/// The collections PocketBase's init migration creates, in creation order: `_mfas`, `_otps`,
/// `_externalAuths`, `_authOrigins`, `_superusers`, `users`. Secrets are fresh random values.
pub fn system_collections() -> Vec<Collection> {
    let mfas = system_base(
        MFAS_ID,
        MFAS,
        vec![required_text("method")],
        &["CREATE INDEX `idx_mfas_collectionRef_recordRef` ON `_mfas` (collectionRef,recordRef)"],
        false,
    );
    let otps = system_base(
        OTPS_ID,
        OTPS,
        vec![
            Field::new(
                "password",
                FieldKind::Password(PasswordOptions {
                    cost: 8,
                    ..PasswordOptions::default()
                }),
            )
            .system()
            .hidden()
            .required(),
            Field::new("sentTo", FieldKind::Text(TextOptions::default()))
                .system()
                .hidden(),
        ],
        &["CREATE INDEX `idx_otps_collectionRef_recordRef` ON `_otps` (collectionRef, recordRef)"],
        false,
    );
    let external = system_base(
        EXTERNAL_AUTHS_ID,
        EXTERNAL_AUTHS,
        vec![required_text("provider"), required_text("providerId")],
        &[
            "CREATE UNIQUE INDEX `idx_externalAuths_record_provider` ON `_externalAuths` (collectionRef, recordRef, provider)",
            "CREATE UNIQUE INDEX `idx_externalAuths_collection_provider` ON `_externalAuths` (collectionRef, provider, providerId)",
        ],
        true,
    );
    let origins = system_base(
        AUTH_ORIGINS_ID,
        AUTH_ORIGINS,
        vec![required_text("fingerprint")],
        &[
            "CREATE UNIQUE INDEX `idx_authOrigins_unique_pairs` ON `_authOrigins` (collectionRef, recordRef, fingerprint)",
        ],
        true,
    );

    let mut superusers = Collection::new(CollectionType::Auth, SUPERUSERS);
    superusers.system = true;
    superusers
        .fields
        .push(Field::autodate("created", false).system());
    superusers
        .fields
        .push(Field::autodate("updated", true).system());
    if let Some(o) = superusers.auth_options_mut() {
        o.auth_token.duration = 86_400;
    }

    let mut users = Collection::new(CollectionType::Auth, "users");
    users.id = USERS_ID.into();
    users.indexes.clear();
    users.ensure_auth_indexes(USERS_ID);
    let owner = Some("id = @request.auth.id".to_owned());
    users.list_rule.clone_from(&owner);
    users.view_rule.clone_from(&owner);
    users.create_rule = Some(String::new());
    users.update_rule.clone_from(&owner);
    users.delete_rule = owner;
    users.fields.push(Field::new(
        "name",
        FieldKind::Text(TextOptions {
            max: 255,
            ..TextOptions::default()
        }),
    ));
    users.fields.push(Field::new(
        "avatar",
        FieldKind::File(FileOptions {
            max_select: 1,
            mime_types: [
                "image/jpeg",
                "image/png",
                "image/svg+xml",
                "image/gif",
                "image/webp",
            ]
            .map(String::from)
            .to_vec(),
            ..FileOptions::default()
        }),
    ));
    users.fields.push(Field::autodate("created", false));
    users.fields.push(Field::autodate("updated", true));
    if let Some(o) = users.auth_options_mut() {
        o.oauth2.mapped_fields.name = "name".into();
        o.oauth2.mapped_fields.avatar_url = "avatar".into();
    }

    vec![mfas, otps, external, origins, superusers, users]
}

/// Every statement that creates a fresh tenant database's schema, in order: `_migrations`,
/// `_params`, `_collections` (+ its index), then each system collection's table and indexes.
/// The `_collections` rows themselves come from [`crate::Collection::to_row`].
pub fn init_statements(collections: &[Collection]) -> Vec<String> {
    let mut out = vec![
        MIGRATIONS_DDL.to_owned(),
        PARAMS_DDL.to_owned(),
        COLLECTIONS_DDL.to_owned(),
        COLLECTIONS_TYPE_INDEX_DDL.to_owned(),
    ];
    for c in collections {
        out.extend(ddl::create_statements(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_collections_have_pocketbase_ids_and_rules() {
        let all = system_collections();
        let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                MFAS_ID,
                OTPS_ID,
                EXTERNAL_AUTHS_ID,
                AUTH_ORIGINS_ID,
                SUPERUSERS_ID,
                USERS_ID
            ]
        );
        assert!(all[..5].iter().all(|c| c.system));
        assert!(!all[5].system);
        let a = all[4].auth_options().unwrap();
        let b = all[5].auth_options().unwrap();
        assert_eq!(a.auth_token.duration, 86_400);
        assert_ne!(a.auth_token.secret, b.auth_token.secret);
    }
}
