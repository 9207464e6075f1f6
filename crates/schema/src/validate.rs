//! Validation of a collection created or updated through the API, producing PocketBase-shaped
//! errors (`name`, `fields.N.name`, `listRule`, `passwordAuth.identityFields`…). Rule syntax
//! belongs to the `filter` crate and comes in through [`RuleChecker`].

use std::sync::LazyLock;

use regex::Regex;

use crate::collection::{AUTH_SYSTEM_FIELDS, AuthOptions, Collection, CollectionOptions};
use crate::error::{FieldError, ValidationErrors};
use crate::field::{
    DEFAULT_PASSWORD_MAX, Field, FieldKind, FileOptions, PasswordOptions, RelationOptions,
    SelectOptions, TextOptions,
};
use crate::index::Index;

/// Checks rule expressions against a collection (implemented by the `filter` crate).
pub trait RuleChecker {
    /// `Err(raw message)` when `rule` is not valid for `collection`.
    fn check(&self, collection: &Collection, rule: &str) -> Result<(), String>;
}

/// Accepts every rule (for callers that check rules elsewhere, and for tests).
pub struct AcceptAllRules;

impl RuleChecker for AcceptAllRules {
    fn check(&self, _: &Collection, _: &str) -> Result<(), String> {
        Ok(())
    }
}

static WORD_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^\w+$").ok());
static THUMB_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(\d+)x(\d+)(t|b|f)?$").ok());

fn is_word(s: &str) -> bool {
    s.is_ascii() && WORD_RE.as_ref().is_some_and(|re| re.is_match(s))
}

/// Field names no collection may use.
pub const RESERVED_FIELD_NAMES: [&str; 7] = [
    "null",
    "true",
    "false",
    "_rowid_",
    "collectionId",
    "collectionName",
    "expand",
];

/// Internal tables a collection can't be named after (besides other collections).
pub const INTERNAL_TABLES: [&str; 4] = ["_migrations", "_params", "_collections", "_logs"];

/// Validates `new` (the collection after the merge) against its previous version `old`
/// (`None` on create) and the tenant's other collections. Every failure is collected.
pub fn validate_collection(
    new: &Collection,
    old: Option<&Collection>,
    others: &[Collection],
    rules: &dyn RuleChecker,
) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let others: Vec<&Collection> = others.iter().filter(|c| c.id != new.id).collect();
    check_id(&mut errs, new, old, &others);
    check_name(&mut errs, new, old, &others);
    check_unchanged_kind(&mut errs, new, old);
    check_rules(&mut errs, new, old, rules);
    check_fields_and_indexes(&mut errs, new, old, &others);
    match &new.options {
        CollectionOptions::View { view_query } => {
            if view_query.trim().is_empty() {
                errs.add("viewQuery", FieldError::required());
            }
        }
        CollectionOptions::Auth(o) => check_auth_options(&mut errs, new, o, rules),
        CollectionOptions::Base => {}
    }
    errs.into_result()
}

/// `id`: unchanged on update; on create a unique word of 1 to 100 characters.
fn check_id(
    errs: &mut ValidationErrors,
    new: &Collection,
    old: Option<&Collection>,
    others: &[&Collection],
) {
    if let Some(old) = old {
        if old.id != new.id {
            errs.add(
                "id",
                FieldError::new(
                    "validation_collection_id_change",
                    "Collection id cannot be changed",
                ),
            );
        }
    } else if new.id.is_empty() || new.id.len() > 100 {
        errs.add("id", FieldError::length_out_of_range(1, 100));
    } else if !is_word(&new.id) {
        errs.add("id", FieldError::match_invalid());
    } else if others.iter().any(|c| c.id.eq_ignore_ascii_case(&new.id)) {
        errs.add(
            "id",
            FieldError::new("validation_id_exists", "Collection id must be unique"),
        );
    }
}

/// `name`: a unique word of 1 to 255 characters, not an internal table or another
/// collection's id, never renamed for a system collection.
fn check_name(
    errs: &mut ValidationErrors,
    new: &Collection,
    old: Option<&Collection>,
    others: &[&Collection],
) {
    if new.name.is_empty() {
        errs.add("name", FieldError::required());
    } else if new.name.chars().count() > 255 {
        errs.add("name", FieldError::length_out_of_range(1, 255));
    } else if !is_word(&new.name) {
        errs.add("name", FieldError::match_invalid());
    } else if new.name.to_ascii_lowercase().contains("_via_") {
        errs.add("name", FieldError::found_via());
    } else if old.is_some_and(|o| o.system && o.name != new.name) {
        errs.add(
            "name",
            FieldError::new(
                "validation_collection_system_name_change",
                "System collection name cannot be changed",
            ),
        );
    } else if others
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(&new.name))
    {
        errs.add(
            "name",
            FieldError::new(
                "validation_collection_name_exists",
                "Collection name must be unique (case insensitive)",
            ),
        );
    } else if INTERNAL_TABLES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&new.name))
        || others.iter().any(|c| c.id.eq_ignore_ascii_case(&new.name))
    {
        errs.add(
            "name",
            FieldError::new(
                "validation_collection_name_invalid",
                "The name shouldn't match with an existing collection id or internal table",
            ),
        );
    }
}

/// `type` and `system` never change on update.
fn check_unchanged_kind(errs: &mut ValidationErrors, new: &Collection, old: Option<&Collection>) {
    if let Some(old) = old {
        if old.kind() != new.kind() {
            errs.add(
                "type",
                FieldError::new(
                    "validation_collection_type_change",
                    "Collection type cannot be changed",
                ),
            );
        }
        if old.system != new.system {
            errs.add(
                "system",
                FieldError::new(
                    "validation_collection_system_flag_change",
                    "System collection state cannot be changed",
                ),
            );
        }
    }
}

/// The API rules: unchanged on system collections, unset for a view's writes, and compiling.
fn check_rules(
    errs: &mut ValidationErrors,
    new: &Collection,
    old: Option<&Collection>,
    rules: &dyn RuleChecker,
) {
    let mut rule_keys = vec![
        "listRule",
        "viewRule",
        "createRule",
        "updateRule",
        "deleteRule",
    ];
    if new.is_auth() {
        rule_keys.extend(["authRule", "manageRule"]);
    }
    for key in rule_keys {
        let Some(rule) = new.rule(key) else { continue };
        if let Some(old) = old
            && old.system
            && old.rule(key) != Some(rule)
        {
            errs.add(
                key,
                FieldError::new(
                    "validation_collection_system_rule_change",
                    "System collection rules cannot be changed",
                ),
            );
            continue;
        }
        if new.is_view()
            && matches!(key, "createRule" | "updateRule" | "deleteRule")
            && rule.is_some()
        {
            errs.add(key, FieldError::must_be_nil());
            continue;
        }
        if let Some(r) = rule
            && !r.is_empty()
            && let Err(raw) = rules.check(new, r)
        {
            errs.add(key, FieldError::invalid_rule(&raw));
        }
    }
}

/// `fields` and `indexes`, each a tree of per-item errors.
fn check_fields_and_indexes(
    errs: &mut ValidationErrors,
    new: &Collection,
    old: Option<&Collection>,
    others: &[&Collection],
) {
    // Collection-level field problems (a deleted system field…) sit under the "" key of the
    // per-field tree; PocketBase reports them as a plain error of `fields`.
    let mut fields = validate_fields(new, old, others);
    match fields.0.remove("") {
        Some(crate::error::ValidationNode::Error(e)) if fields.is_empty() => errs.add("fields", e),
        _ => errs.add_nested("fields", fields),
    }
    if new.is_view() && !new.indexes.is_empty() {
        errs.add(
            "indexes",
            FieldError::new(
                "validation_indexes_not_supported",
                "View collections don't support indexes",
            ),
        );
    } else {
        errs.add_nested("indexes", validate_indexes(new, others));
    }
}

/// An auth collection's options: token secrets and durations, OTP, MFA, and then the
/// identity fields of password auth.
fn check_auth_options(
    errs: &mut ValidationErrors,
    new: &Collection,
    o: &AuthOptions,
    rules: &dyn RuleChecker,
) {
    let errors_before_options = errs.0.len();
    for (key, token) in o.tokens() {
        let mut t = ValidationErrors::new();
        let len = i64::try_from(token.secret.chars().count()).unwrap_or(i64::MAX);
        if token.secret.is_empty() {
            t.add("secret", FieldError::required());
        } else if !(30..=255).contains(&len) {
            t.add("secret", FieldError::length_out_of_range(30, 255));
        }
        check_range(&mut t, "duration", token.duration, 10, 94_670_856);
        errs.add_nested(key, t);
    }
    let mut otp = ValidationErrors::new();
    check_range(&mut otp, "duration", o.otp.duration, 10, 86_400);
    if o.otp.length < 4 {
        otp.add("length", FieldError::min_threshold(4));
    }
    errs.add_nested("otp", otp);
    let mut mfa = ValidationErrors::new();
    check_range(&mut mfa, "duration", o.mfa.duration, 10, 86_400);
    if o.mfa.enabled {
        let methods = [o.password_auth.enabled, o.oauth2.enabled, o.otp.enabled]
            .iter()
            .filter(|m| **m)
            .count();
        if methods < 2 {
            mfa.add(
                "enabled",
                FieldError::new(
                    "validation_mfa_not_enough_auths",
                    "MFA requires at least 2 auth methods to be enabled",
                ),
            );
        }
    }
    if !o.mfa.rule.is_empty()
        && let Err(raw) = rules.check(new, &o.mfa.rule)
    {
        mfa.add("rule", FieldError::invalid_rule(&raw));
    }
    errs.add_nested("mfa", mfa);
    // PocketBase checks the identity fields only once the other options are valid, and
    // reports the first bad one for the whole list.
    if o.password_auth.enabled
        && errs.0.len() == errors_before_options
        && let Some(error) = identity_fields_error(new, o)
    {
        let mut pa = ValidationErrors::new();
        pa.add("identityFields", error);
        errs.add_nested("passwordAuth", pa);
    }
}

/// The first identity field of password auth that is missing or has no unique index.
fn identity_fields_error(new: &Collection, o: &AuthOptions) -> Option<FieldError> {
    o.password_auth.identity_fields.iter().find_map(|name| {
        if new.field(name).is_none() {
            Some(
                FieldError::new(
                    "validation_missing_field",
                    format!("Invalid or missing field {name}"),
                )
                .param("fieldName", name.clone()),
            )
        } else if !has_unique_index(new, name) {
            Some(
                FieldError::new(
                    "validation_missing_unique_constraint",
                    format!("The field {name} doesn't have a UNIQUE constraint"),
                )
                .param("fieldName", name.clone()),
            )
        } else {
            None
        }
    })
}

fn check_range(errs: &mut ValidationErrors, key: &str, v: i64, min: i64, max: i64) {
    if v < min {
        errs.add(key, FieldError::min_threshold(min));
    } else if v > max {
        errs.add(key, FieldError::max_threshold(max));
    }
}

fn has_unique_index(c: &Collection, column: &str) -> bool {
    c.indexes
        .iter()
        .filter_map(|raw| Index::parse(raw))
        .any(|i| i.unique && i.columns.len() == 1 && i.columns[0].name.eq_ignore_ascii_case(column))
}

/// The `fields` checks in PocketBase's order, the first failing one alone reported:
/// duplicates, the fields every collection needs, system fields kept, types kept, reserved auth
/// names, then each field's own settings.
fn validate_fields(
    new: &Collection,
    old: Option<&Collection>,
    others: &[&Collection],
) -> ValidationErrors {
    let mut errs = ValidationErrors::new();
    if let Some((i, key, error)) = duplicated_field(new) {
        let mut fe = ValidationErrors::new();
        fe.add(key, error);
        errs.add_nested(i.to_string(), fe);
        return errs;
    }
    if let Some(error) = missing_required_fields(new) {
        errs.add("", error);
        return errs;
    }
    if let Some(old) = old.filter(|_| !new.is_view()) {
        let changed = old.fields.iter().filter(|f| f.system).any(|prev| {
            new.field_by_id(&prev.id)
                .is_none_or(|f| f.name != prev.name)
        });
        if changed {
            errs.add(
                "",
                FieldError::new(
                    "validation_system_field_change",
                    "System fields cannot be deleted or renamed",
                ),
            );
            return errs;
        }
        for (i, field) in new.fields.iter().enumerate() {
            if old
                .field_by_id(&field.id)
                .is_some_and(|prev| prev.type_name() != field.type_name())
            {
                errs.add(
                    i.to_string(),
                    FieldError::new(
                        "validation_field_type_change",
                        "Field type cannot be changed",
                    ),
                );
            }
        }
        if !errs.is_empty() {
            return errs;
        }
    }
    if new.is_auth() {
        for (i, field) in new.fields.iter().enumerate() {
            if matches!(field.name.as_str(), "passwordConfirm" | "oldPassword") {
                let mut fe = ValidationErrors::new();
                fe.add(
                    "name",
                    FieldError::new(
                        "validation_reserved_field_name",
                        "The field name is reserved and cannot be used",
                    ),
                );
                errs.add_nested(i.to_string(), fe);
            }
        }
        if !errs.is_empty() {
            return errs;
        }
    }
    for (i, field) in new.fields.iter().enumerate() {
        let mut fe = ValidationErrors::new();
        validate_field_settings(field, new, old, others, &mut fe);
        errs.add_nested(i.to_string(), fe);
    }
    errs
}

/// The first field whose id or (case-insensitive) name an earlier field already has.
fn duplicated_field(c: &Collection) -> Option<(usize, &'static str, FieldError)> {
    let mut ids: Vec<&str> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, field) in c.fields.iter().enumerate() {
        if ids.contains(&field.id.as_str()) {
            return Some((
                i,
                "id",
                FieldError::new(
                    "validation_duplicated_field_id",
                    format!("Duplicated or invalid field id {:?}", field.id),
                ),
            ));
        }
        let lower = field.name.to_ascii_lowercase();
        if names.contains(&lower) {
            return Some((
                i,
                "name",
                FieldError::new(
                    "validation_duplicated_field_name",
                    format!("Duplicated or invalid field name {}", field.name),
                )
                .param("fieldName", field.name.clone()),
            ));
        }
        ids.push(&field.id);
        names.push(lower);
    }
    None
}

/// No fields, no `id` primary key, or a missing auth system field.
fn missing_required_fields(c: &Collection) -> Option<FieldError> {
    if c.fields.is_empty() {
        return Some(FieldError::required());
    }
    if !c
        .field("id")
        .is_some_and(|f| matches!(&f.kind, FieldKind::Text(o) if o.primary_key))
    {
        return Some(FieldError::new(
            "validation_missing_primary_key",
            "Missing or invalid \"id\" PK field",
        ));
    }
    if c.is_auth() {
        for name in AUTH_SYSTEM_FIELDS {
            if c.field(name).is_none() {
                return Some(FieldError::new(
                    &format!("validation_missing_{name}_field"),
                    format!("System \"{name}\" field is required"),
                ));
            }
        }
    }
    None
}

/// One field's own settings: id, name, help, a relation's target kept, the type's options.
fn validate_field_settings(
    field: &Field,
    new: &Collection,
    old: Option<&Collection>,
    others: &[&Collection],
    fe: &mut ValidationErrors,
) {
    if field.id.is_empty() || field.id.len() > 100 {
        fe.add("id", FieldError::length_out_of_range(1, 100));
    }
    if field.name.is_empty() {
        fe.add("name", FieldError::required());
    } else if field.name.chars().count() > 100 {
        fe.add("name", FieldError::length_out_of_range(1, 100));
    } else if !is_word(&field.name) {
        fe.add("name", FieldError::match_invalid());
    } else if RESERVED_FIELD_NAMES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(&field.name))
    {
        fe.add("name", FieldError::not_in_invalid());
    } else if field.name.to_ascii_lowercase().contains("_via_") {
        fe.add("name", FieldError::found_via());
    }
    if field.help.chars().count() > 300 {
        fe.add("help", FieldError::length_too_long(300));
    }
    if let Some(prev) = old.and_then(|o| o.field_by_id(&field.id))
        && let (FieldKind::Relation(a), FieldKind::Relation(b)) = (&prev.kind, &field.kind)
        && a.collection_id != b.collection_id
    {
        fe.add(
            "collectionId",
            FieldError::new(
                "validation_field_collection_id_change",
                "The relation collection cannot be changed",
            ),
        );
    }
    validate_options(field, new, others, fe);
}

fn validate_options(
    field: &Field,
    c: &Collection,
    others: &[&Collection],
    fe: &mut ValidationErrors,
) {
    match &field.kind {
        FieldKind::Text(o) => text_options(field, o, fe),
        FieldKind::Editor(o) => {
            if o.max_size < 0 {
                fe.add("maxSize", FieldError::min_threshold(0));
            }
        }
        FieldKind::Json(o) => {
            if o.max_size < 0 {
                fe.add("maxSize", FieldError::min_threshold(0));
            }
        }
        FieldKind::Number(o) => {
            if let (Some(min), Some(max)) = (o.min, o.max)
                && max < min
            {
                fe.add(
                    "max",
                    FieldError::new(
                        "validation_min_greater_equal_than_required",
                        format!("Must be no less than {}", crate::field::number_value(min)),
                    )
                    .param("threshold", crate::field::number_value(min)),
                );
            }
        }
        FieldKind::Email(o) | FieldKind::Url(o) => {
            if !o.only_domains.is_empty() && !o.except_domains.is_empty() {
                fe.add("onlyDomains", FieldError::must_be_nil().clone());
                fe.add("exceptDomains", FieldError::must_be_nil());
            }
        }
        FieldKind::Date(o) => {
            if let (Some(min), Some(max)) = (
                crate::datetime::DateTime::parse(&o.min),
                crate::datetime::DateTime::parse(&o.max),
            ) && max < min
            {
                fe.add(
                    "max",
                    FieldError::new(
                        "validation_min_greater_equal_than_required",
                        format!("Must be no less than {}", min.format_go()),
                    )
                    .param("threshold", min.format_rfc3339()),
                );
            }
        }
        FieldKind::Autodate(o) => {
            if !o.on_create && !o.on_update {
                fe.add(
                    "onCreate",
                    FieldError::new(
                        "validation_required_on_create_or_update",
                        "Either onCreate or onUpdate must be enabled",
                    ),
                );
            }
        }
        FieldKind::Select(o) => select_options(o, fe),
        FieldKind::File(o) => file_options(o, fe),
        FieldKind::Relation(o) => relation_options(o, c, others, fe),
        FieldKind::Password(o) => password_options(o, fe),
        FieldKind::Bool | FieldKind::GeoPoint => {}
    }
}

/// A text field's min/max, patterns that compile, and a primary key only on `id`.
fn text_options(field: &Field, o: &TextOptions, fe: &mut ValidationErrors) {
    if o.min < 0 {
        fe.add("min", FieldError::min_threshold(0));
    }
    if o.max < 0 || (o.max > 0 && o.max < o.min) {
        fe.add("max", FieldError::min_threshold(o.min.max(0)));
    }
    for (key, pattern) in [
        ("pattern", &o.pattern),
        ("autogeneratePattern", &o.autogenerate_pattern),
    ] {
        if !pattern.is_empty() && Regex::new(pattern).is_err() {
            fe.add(
                key,
                FieldError::new("validation_invalid_regex", "Invalid regex pattern"),
            );
        }
    }
    if o.primary_key && field.name != "id" {
        fe.add(
            "primaryKey",
            FieldError::new(
                "validation_invalid_primary_key",
                "Only the id field can be a primary key",
            ),
        );
    }
}

/// A select field's values, and a maxSelect no larger than them.
fn select_options(o: &SelectOptions, fe: &mut ValidationErrors) {
    if o.values.is_empty() {
        fe.add("values", FieldError::required());
    }
    if o.max_select < 0 {
        fe.add("maxSelect", FieldError::min_threshold(0));
    } else if o.max_select > 1 && usize::try_from(o.max_select).is_ok_and(|m| m > o.values.len()) {
        fe.add(
            "maxSelect",
            FieldError::max_threshold(i64::try_from(o.values.len()).unwrap_or(i64::MAX)),
        );
    }
}

/// A file field's limits and thumb sizes (`WxH`, with `t`, `b` or `f`, not `0x0`).
fn file_options(o: &FileOptions, fe: &mut ValidationErrors) {
    if o.max_select < 0 {
        fe.add("maxSelect", FieldError::min_threshold(0));
    }
    if o.max_size < 0 {
        fe.add("maxSize", FieldError::min_threshold(0));
    }
    let mut thumbs = ValidationErrors::new();
    for (i, t) in o.thumbs.iter().enumerate() {
        let ok = THUMB_RE
            .as_ref()
            .and_then(|re| re.captures(t))
            .is_some_and(|caps| {
                !(caps
                    .get(1)
                    .is_some_and(|w| w.as_str().trim_start_matches('0').is_empty())
                    && caps
                        .get(2)
                        .is_some_and(|h| h.as_str().trim_start_matches('0').is_empty()))
            });
        if !ok {
            thumbs.add(
                i.to_string(),
                FieldError::new("validation_invalid_thumb_size", "Invalid thumb size format"),
            );
        }
    }
    fe.add_nested("thumbs", thumbs);
}

/// A relation's target (existing, and no view from a table) and its min/max selects.
fn relation_options(
    o: &RelationOptions,
    c: &Collection,
    others: &[&Collection],
    fe: &mut ValidationErrors,
) {
    if o.collection_id.is_empty() {
        fe.add("collectionId", FieldError::required());
    } else {
        let target = others
            .iter()
            .copied()
            .chain(std::iter::once(c))
            .find(|x| x.id == o.collection_id);
        match target {
            None => fe.add(
                "collectionId",
                FieldError::new(
                    "validation_missing_collection",
                    "The relation collection doesn't exist",
                ),
            ),
            Some(t) if t.is_view() && !c.is_view() => fe.add(
                "collectionId",
                FieldError::new(
                    "validation_relation_to_view",
                    "Non-view collections are not allowed to have a view relation",
                ),
            ),
            Some(_) => {}
        }
    }
    if o.min_select < 0 {
        fe.add("minSelect", FieldError::min_threshold(0));
    }
    if o.max_select < 0 || (o.max_select > 0 && o.max_select < o.min_select) {
        fe.add("maxSelect", FieldError::min_threshold(o.min_select.max(0)));
    }
}

/// A password field's length bounds, bcrypt cost and pattern.
fn password_options(o: &PasswordOptions, fe: &mut ValidationErrors) {
    if o.min < 0 || o.min > DEFAULT_PASSWORD_MAX {
        check_range(fe, "min", o.min, 0, DEFAULT_PASSWORD_MAX);
    }
    if o.max < 0 || o.max > DEFAULT_PASSWORD_MAX || (o.max > 0 && o.max < o.min) {
        check_range(fe, "max", o.max, o.min.max(0), DEFAULT_PASSWORD_MAX);
    }
    if o.cost != 0 && !(4..=31).contains(&o.cost) {
        check_range(fe, "cost", o.cost, 4, 31);
    }
    if !o.pattern.is_empty() && Regex::new(&o.pattern).is_err() {
        fe.add(
            "pattern",
            FieldError::new("validation_invalid_regex", "Invalid regex pattern"),
        );
    }
}

/// The `indexes` checks in PocketBase's order, stopping at the first failing index: a
/// parseable statement, a name unique within the collection and unused by other collections, a
/// definition not repeated. Columns are checked when the index is created.
fn validate_indexes(c: &Collection, others: &[&Collection]) -> ValidationErrors {
    let mut errs = ValidationErrors::new();
    let mut names: Vec<String> = Vec::new();
    let mut definitions: Vec<String> = Vec::new();
    for (i, raw) in c.indexes.iter().enumerate() {
        let key = i.to_string();
        let Some(index) = Index::parse(raw) else {
            errs.add(
                key,
                FieldError::new(
                    "validation_invalid_index_expression",
                    "Invalid CREATE INDEX expression",
                ),
            );
            return errs;
        };
        let lower = index.name.to_ascii_lowercase();
        if names.contains(&lower) {
            errs.add(
                key,
                FieldError::new(
                    "validation_duplicated_index_name",
                    "The index name already exists",
                ),
            );
            return errs;
        }
        names.push(lower);
        let used_by = others.iter().find(|o| {
            o.indexes
                .iter()
                .filter_map(|r| Index::parse(r))
                .any(|x| x.name.eq_ignore_ascii_case(&index.name))
        });
        if let Some(used_by) = used_by {
            errs.add(
                key,
                FieldError::new(
                    "validation_existing_index_name",
                    format!(
                        "The index name is already used in {} collection",
                        used_by.name
                    ),
                )
                .param("usedTableName", used_by.name.clone()),
            );
            return errs;
        }
        let mut anonymous = index.clone();
        "validator".clone_into(&mut anonymous.schema_name);
        "validator".clone_into(&mut anonymous.name);
        "validator".clone_into(&mut anonymous.table);
        let definition = anonymous.build();
        if definitions.contains(&definition) {
            errs.add(
                key,
                FieldError::new(
                    "validation_duplicated_index_definition",
                    "The index definition already exists",
                ),
            );
            return errs;
        }
        definitions.push(definition);
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::CollectionType;
    use crate::field::*;
    use crate::system::system_collections;
    use serde_json::{Value, json};

    fn create(body: Value) -> Result<(), ValidationErrors> {
        let c = Collection::from_create_body(&body).unwrap();
        validate_collection(&c, None, &system_collections(), &AcceptAllRules)
    }

    fn code(errs: &ValidationErrors, path: &str) -> String {
        errs.get(path)
            .map(|e| e.code.clone())
            .unwrap_or_else(|| format!("no error at {path}: {errs}"))
    }

    #[test]
    fn field_and_name_errors_match_pocketbase() {
        let captured: Value = serde_json::from_str(include_str!(
            "../tests/fixtures/pocketbase-collection-invalid.json"
        ))
        .unwrap();
        let errs = create(json!({"name":"","fields":[{"name":"id","type":"text"},{"name":"a b","type":"text"},{"name":"expand","type":"bool"},{"name":"x_via_y","type":"bool"},{"name":"dup","type":"bool"},{"name":"dup","type":"bool"}]})).unwrap_err();
        let ours = errs.to_value();
        assert_eq!(ours["name"], captured["data"]["name"]);
        for i in ["1", "2", "3"] {
            assert_eq!(
                ours["fields"][i], captured["data"]["fields"][i],
                "field {i}"
            );
        }
        // The second `dup` (no id) replaced the first, as in PocketBase.
        assert_eq!(ours["fields"], captured["data"]["fields"]);
        let dup = create(json!({"name":"p","fields":[{"id":"a1","name":"dup","type":"bool"},{"id":"a2","name":"DUP","type":"bool"}]})).unwrap_err();
        assert_eq!(
            code(&dup, "fields.2.name"),
            "validation_duplicated_field_name"
        );
    }

    #[test]
    fn names_are_unique_case_insensitively() {
        let captured: Value = serde_json::from_str(include_str!(
            "../tests/fixtures/pocketbase-collection-name-exists.json"
        ))
        .unwrap();
        let errs = create(json!({"name":"USERS"})).unwrap_err();
        assert_eq!(errs.to_value(), captured["data"]);
        let errs = create(json!({"name":"_params"})).unwrap_err();
        assert_eq!(code(&errs, "name"), "validation_collection_name_invalid");
        let errs = create(json!({"name":"a_via_b"})).unwrap_err();
        assert_eq!(code(&errs, "name"), "validation_found_via");
        let errs = create(json!({"name":"x".repeat(256)})).unwrap_err();
        assert_eq!(code(&errs, "name"), "validation_length_out_of_range");
        assert!(create(json!({"name":"posts"})).is_ok());
    }

    struct RejectAll;
    impl RuleChecker for RejectAll {
        fn check(&self, _: &Collection, rule: &str) -> Result<(), String> {
            Err(format!("bad {rule}"))
        }
    }

    #[test]
    fn rules_go_through_the_checker() {
        let c = Collection::from_create_body(&json!({"name":"p","listRule":"x ="})).unwrap();
        let errs = validate_collection(&c, None, &[], &RejectAll).unwrap_err();
        assert_eq!(
            errs.get("listRule").unwrap().message,
            "Invalid rule. Raw error: bad x =."
        );
        assert!(errs.get("viewRule").is_none());
    }

    #[test]
    fn system_collections_are_protected() {
        let all = system_collections();
        let superusers = all[4].clone();
        let mut renamed = superusers.clone();
        renamed.name = "admins".into();
        renamed.list_rule = Some(String::new());
        renamed.fields.retain(|f| f.name != "verified");
        let errs =
            validate_collection(&renamed, Some(&superusers), &all, &AcceptAllRules).unwrap_err();
        assert_eq!(
            code(&errs, "name"),
            "validation_collection_system_name_change"
        );
        assert_eq!(
            code(&errs, "listRule"),
            "validation_collection_system_rule_change"
        );
        assert_eq!(code(&errs, "fields"), "validation_missing_verified_field");
        let mut renamed = superusers.clone();
        renamed.fields[1].name = "secret".into();
        let errs =
            validate_collection(&renamed, Some(&superusers), &all, &AcceptAllRules).unwrap_err();
        assert_eq!(code(&errs, "fields"), "validation_missing_password_field");
        let mut typed = all[5].clone();
        typed.options = CollectionOptions::Base;
        let errs = validate_collection(&typed, Some(&all[5]), &all, &AcceptAllRules).unwrap_err();
        assert_eq!(code(&errs, "type"), "validation_collection_type_change");
        for c in &all {
            assert!(
                validate_collection(c, Some(c), &all, &AcceptAllRules).is_ok(),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn option_ranges_are_checked() {
        let errs = create(json!({"name":"p","fields":[
            {"name":"s","type":"select","values":[],"maxSelect":-1},
            {"name":"r","type":"relation","collectionId":"nope"},
            {"name":"f","type":"file","thumbs":["0x0","100x50","bad"]},
            {"name":"a","type":"autodate"},
            {"name":"t","type":"text","pattern":"("},
            {"name":"pw","type":"password","cost":99}
        ]}))
        .unwrap_err();
        assert_eq!(code(&errs, "fields.1.values"), "validation_required");
        assert_eq!(
            code(&errs, "fields.1.maxSelect"),
            "validation_min_greater_equal_than_required"
        );
        assert_eq!(
            code(&errs, "fields.2.collectionId"),
            "validation_missing_collection"
        );
        assert_eq!(
            code(&errs, "fields.3.thumbs.0"),
            "validation_invalid_thumb_size"
        );
        assert!(errs.get("fields.3.thumbs.1").is_none());
        assert_eq!(
            code(&errs, "fields.3.thumbs.2"),
            "validation_invalid_thumb_size"
        );
        assert_eq!(
            code(&errs, "fields.4.onCreate"),
            "validation_required_on_create_or_update"
        );
        assert_eq!(code(&errs, "fields.5.pattern"), "validation_invalid_regex");
        assert_eq!(
            code(&errs, "fields.6.cost"),
            "validation_max_less_equal_than_required"
        );
    }

    #[test]
    fn auth_options_are_checked() {
        let c = Collection::from_create_body(&json!({"name":"members","type":"auth",
            "authToken":{"secret":"short","duration":5},"otp":{"length":2},
            "mfa":{"enabled":true},"passwordAuth":{"identityFields":["email","nope"]},
            "fields":[{"name":"passwordConfirm","type":"text"}]}))
        .unwrap();
        let errs = validate_collection(&c, None, &[], &AcceptAllRules).unwrap_err();
        assert_eq!(
            code(&errs, "authToken.secret"),
            "validation_length_out_of_range"
        );
        assert_eq!(
            code(&errs, "authToken.duration"),
            "validation_min_greater_equal_than_required"
        );
        assert_eq!(
            code(&errs, "otp.length"),
            "validation_min_greater_equal_than_required"
        );
        assert_eq!(
            code(&errs, "mfa.enabled"),
            "validation_mfa_not_enough_auths"
        );
        // Identity fields are checked once the other options are valid, the first bad one for
        // the whole list.
        assert!(errs.get("passwordAuth.identityFields").is_none());
        assert_eq!(
            code(&errs, "fields.1.name"),
            "validation_reserved_field_name"
        );
        let c = Collection::from_create_body(&json!({"name":"members","type":"auth",
            "passwordAuth":{"identityFields":["email","nope"]}}))
        .unwrap();
        let errs = validate_collection(&c, None, &[], &AcceptAllRules).unwrap_err();
        assert_eq!(
            code(&errs, "passwordAuth.identityFields"),
            "validation_missing_field"
        );
    }

    #[test]
    fn indexes_and_views_are_checked() {
        let mut c = Collection::new(CollectionType::Base, "p");
        c.fields
            .push(Field::new("title", FieldKind::Text(TextOptions::default())));
        let first_error = |indexes: &[&str]| {
            let mut c = c.clone();
            c.indexes = indexes.iter().map(|i| (*i).to_owned()).collect();
            let errs = validate_collection(&c, None, &system_collections(), &AcceptAllRules)
                .unwrap_err()
                .to_value();
            let indexes = errs["indexes"].as_object().unwrap().clone();
            assert_eq!(indexes.len(), 1, "one index error: {indexes:?}");
            let (i, e) = indexes.into_iter().next().unwrap();
            (i, e["code"].as_str().unwrap().to_owned())
        };
        let ok = "CREATE INDEX idx_b ON p (lower(title))";
        assert_eq!(
            first_error(&[ok, "nonsense", "CREATE INDEX x ON p (y)"]),
            ("1".into(), "validation_invalid_index_expression".into())
        );
        assert_eq!(
            first_error(&[
                ok,
                "CREATE INDEX idx_mfas_collectionRef_recordRef ON p (title)"
            ]),
            ("1".into(), "validation_existing_index_name".into())
        );
        assert_eq!(
            first_error(&[ok, "CREATE INDEX IDX_B ON p (title)"]),
            ("1".into(), "validation_duplicated_index_name".into())
        );
        assert_eq!(
            first_error(&[ok, "CREATE INDEX idx_c ON other (lower(title))"]),
            ("1".into(), "validation_duplicated_index_definition".into())
        );
        // Columns are checked by SQLite when the index is created.
        c.indexes = vec![ok.into(), "CREATE INDEX idx_a ON p (missing)".into()];
        assert!(validate_collection(&c, None, &system_collections(), &AcceptAllRules).is_ok());

        let mut v = Collection::new(CollectionType::View, "v");
        v.create_rule = Some(String::new());
        let errs = validate_collection(&v, None, &[], &AcceptAllRules).unwrap_err();
        assert_eq!(code(&errs, "createRule"), "validation_nil");
        assert_eq!(code(&errs, "viewQuery"), "validation_required");
    }
}
