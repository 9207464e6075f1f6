//! Creating, updating and deleting records under the create, update and delete rules, with
//! auth-collection password handling and relation clean-up on delete.
//!
//! Every write is one closure on the tenant's writer: it validates against committed data,
//! writes, and checks the rule in the same savepoint, so a rejected write leaves nothing behind.
//! Password hashing happens before, off the writer, so it never holds the write lock, and so
//! does a create's validation: the writer then only checks the relation ids it named.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use warren_filter::{Filter, RequestContext};
use warren_schema::FieldKind;
use warren_schema::error::{FieldError, ValidationErrors};
use warren_schema::record::{
    PrepareOptions, PreparedRecord, RecordData, RecordJson, RelationChecker, prepare_record,
};
use warren_secrets::Passwords;
use warren_store::Database;
use warren_store::sql::{Connection, params, params_from_iter};

use crate::catalog::{Catalog, Entry};
use crate::change::{Change, ChangeAction};
use crate::form::{self, AccountForm};
use crate::read::{NOT_FOUND, one_statement, passes, render, rule, select_one};
use crate::{Caller, Error, Result, expand, sql};

const UNSUPPORTED: &str = "Unsupported collection type.";
const CREATE_FAILED: &str = "Failed to create record.";
const UPDATE_FAILED: &str = "Failed to update record.";
const REQUIRED_REFERENCE: &str = "Failed to delete record. Make sure that the record is not part of a required relation reference.";

/// One record create or update as the caller asked for it.
pub struct Save<'a> {
    /// The tenant's database.
    pub db: &'a Database,
    /// The tenant's collections.
    pub catalog: Arc<Catalog>,
    /// The collection written to.
    pub entry: Arc<Entry>,
    /// Who writes.
    pub caller: &'a Caller,
    /// The request as the rules see it (its body is set from `body`).
    pub ctx: RequestContext,
    /// The submitted fields.
    pub body: Map<String, Value>,
    /// Stored names of the files uploaded with the request (already in storage).
    pub uploads: Uploads,
    /// The password hasher, for auth collections.
    pub passwords: &'a Passwords,
    /// The `expand` parameter of the answer.
    pub expand: &'a str,
}

/// Creates a record from `save.body`; returns its JSON as the caller sees it and the committed
/// change.
pub async fn create(save: Save<'_>) -> Result<(Value, Vec<Change>)> {
    save_record(save, None).await
}

/// Updates record `id` with `save.body`; returns its JSON as the caller sees it and the
/// committed change.
pub async fn update(save: Save<'_>, id: &str) -> Result<(Value, Vec<Change>)> {
    save_record(save, Some(id)).await
}

/// Creates (no `id`) or updates a record: plans off the writer, then writes and checks the rule
/// in one closure on the writer.
async fn save_record(save: Save<'_>, id: Option<&str>) -> Result<(Value, Vec<Change>)> {
    let Save {
        db,
        catalog,
        entry,
        caller,
        mut ctx,
        body,
        uploads,
        passwords,
        expand,
    } = save;
    // The rules see the body as submitted; the write reads it from there too.
    ctx.body = body;
    let mut plan = match id {
        None => plan_create(caller, &entry, &ctx.body, passwords).await?,
        Some(id) => {
            let target = Target {
                db,
                catalog: &catalog,
                caller,
                entry: &entry,
                ctx: &ctx,
            };
            plan_update(&target, id, passwords).await?
        }
    };
    plan.uploads = uploads;
    let superuser = caller.is_superuser();
    let early = match id {
        None => Early::prepare(&entry, &ctx.body, &plan, superuser)?,
        Some(_) => None,
    };
    let (scope, id) = ((catalog.clone(), entry.clone()), id.map(str::to_string));
    let action = match id {
        None => ChangeAction::Create,
        Some(_) => ChangeAction::Update,
    };
    let data = db
        .write(move |c| {
            let (catalog, entry) = scope;
            let target = Applied {
                catalog: &catalog,
                entry: &entry,
                ctx: &ctx,
                superuser,
            };
            match &id {
                None => apply_create(c, &target, &plan, &ctx.body, early),
                Some(id) => apply_update(c, &target, &plan, id, &ctx.body),
            }
        })
        .await?;
    let value = match answer_without_reading(caller, &entry, &data, expand) {
        Some(value) => value,
        None => respond(db, catalog, entry.clone(), caller, data.clone(), expand).await?,
    };
    Ok((value, vec![Change::new(entry, action, data)]))
}

/// What must be known before a create reaches the writer: the rule and a hashed password.
pub(crate) struct Plan {
    /// The action's rule (`None`: no condition).
    rule: Option<Filter>,
    /// The new password's hash, for auth collections.
    hash: Option<String>,
    /// A create that sets `verified` without superuser rights: allowed only when the
    /// collection's manage rule admits the caller, checked against the inserted record.
    verified_needs_manager: bool,
    /// Stored names of the files uploaded with the request, by body key.
    pub(crate) uploads: Uploads,
}

/// Stored names of uploaded files keyed by the body key they came with (`field`, `field+`,
/// `+field`); the files are in storage before the write runs.
pub type Uploads = BTreeMap<String, Vec<String>>;

/// Checks a create up front (views, 403 for a `null` rule, the account keys of an auth body)
/// and hashes the password off the writer.
pub(crate) async fn plan_create(
    caller: &Caller,
    entry: &Entry,
    body: &Map<String, Value>,
    passwords: &Passwords,
) -> Result<Plan> {
    if entry.collection.is_view() {
        return Err(Error::BadRequest(UNSUPPORTED));
    }
    let rule = rule(caller, &entry.rules.create)?.cloned();
    let mut hash = None;
    let mut verified_needs_manager = false;
    if entry.collection.is_auth() {
        let form = AccountForm::read(body);
        let manager = caller.is_superuser();
        // Whether the manage rule admits the caller depends on the record being created, so
        // a `verified` it would allow is checked once the record is inserted.
        verified_needs_manager =
            !manager && form::sets_verified(body) && form::may_manage(caller, entry);
        let errors = form::check(&form, body, None, manager, !verified_needs_manager);
        if !errors.is_empty() {
            return Err(Error::Validation {
                message: CREATE_FAILED,
                errors,
            });
        }
        if let Some(plain) = form.new_password() {
            hash = Some(passwords.hash(plain).await?);
        }
    }
    Ok(Plan {
        rule,
        hash,
        verified_needs_manager,
        uploads: Uploads::new(),
    })
}

/// A create validated before it reaches the writer, with the relation ids it must find there.
pub(crate) struct Early {
    prepared: PreparedRecord,
    /// Each relation field's ids with the collection they must exist in.
    relations: Vec<(String, Vec<String>)>,
}

impl Early {
    /// Validates a create off the writer, taking every relation id as existing and noting it.
    /// A body that does not validate fails here when it names no relation id (the writer
    /// could add no error to those), and nothing reaches the writer; one that names some is
    /// `None`: the writer prepares it again with its relations checked, so the caller gets
    /// every error at once.
    pub(crate) fn prepare(
        entry: &Entry,
        body: &Map<String, Value>,
        plan: &Plan,
        superuser: bool,
    ) -> Result<Option<Self>> {
        let noted = Noted::default();
        let options = PrepareOptions {
            is_superuser: superuser,
            relations: &noted,
            uploads: plan.uploads.clone(),
        };
        let prepared = prepare_record(&entry.collection, body, None, &options);
        let relations = noted.0.into_inner();
        match prepared {
            Ok(prepared) => Ok(Some(Self {
                prepared,
                relations,
            })),
            Err(errors) if relations.is_empty() => Err(Error::Validation {
                message: CREATE_FAILED,
                errors,
            }),
            Err(_) => Ok(None),
        }
    }

    /// The prepared record when every relation id it names exists on `checker`'s connection.
    fn checked(self, checker: &Relations<'_>) -> Option<PreparedRecord> {
        self.relations
            .iter()
            .all(|(collection, ids)| checker.all_exist(collection, ids))
            .then_some(self.prepared)
    }
}

/// Takes every relation id as existing and notes it, for the writer to check.
#[derive(Default)]
struct Noted(RefCell<Vec<(String, Vec<String>)>>);

impl RelationChecker for Noted {
    fn all_exist(&self, collection_id: &str, ids: &[String]) -> bool {
        self.0
            .borrow_mut()
            .push((collection_id.to_owned(), ids.to_vec()));
        true
    }
}

/// Inserts a record on the writer's connection and checks the create rule against it. With
/// `early`, the record was validated before and only its relation ids are checked here; should
/// one be missing, the body is prepared again so that the caller gets every error.
pub(crate) fn apply_create(
    c: &Connection,
    target: &Applied<'_>,
    plan: &Plan,
    body: &Map<String, Value>,
    early: Option<Early>,
) -> Result<RecordData> {
    let Applied {
        catalog,
        entry,
        ctx,
        superuser,
    } = *target;
    let checker = Relations { conn: c, catalog };
    let early = early.and_then(|early| early.checked(&checker));
    let mut prepared = match early {
        Some(prepared) => prepared,
        None => {
            let options = PrepareOptions {
                is_superuser: superuser,
                relations: &checker,
                uploads: plan.uploads.clone(),
            };
            prepare_record(&entry.collection, body, None, &options).map_err(|errors| {
                Error::Validation {
                    message: CREATE_FAILED,
                    errors,
                }
            })?
        }
    };
    if let Some(hash) = &plan.hash {
        prepared.set_password_hash(hash);
    }
    let id = prepared
        .data
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if entry.collection.is_auth() && id_used_by_another_auth_collection(c, entry, &id)? {
        let mut errors = ValidationErrors::new();
        errors.add(
            "id",
            FieldError::new(
                "validation_invalid_auth_id",
                "Invalid or duplicated auth record id.",
            ),
        );
        return Err(Error::Validation {
            message: CREATE_FAILED,
            errors,
        });
    }
    insert(c, entry, &prepared)?;
    if let Some(rule) = &plan.rule
        && !passes(c, catalog, entry, ctx, Some(rule), &id)?
    {
        return Err(Error::BadRequest(CREATE_FAILED));
    }
    if plan.verified_needs_manager && !admitted_by_manage_rule(c, catalog, entry, ctx, &id)? {
        let mut errors = ValidationErrors::new();
        errors.add("verified", form::mismatch());
        return Err(Error::Validation {
            message: CREATE_FAILED,
            errors,
        });
    }
    Ok(prepared.data)
}

/// Where an update is planned: the collection, the caller and the request (its body set).
pub(crate) struct Target<'a> {
    /// The tenant's database.
    pub(crate) db: &'a Database,
    /// The tenant's collections.
    pub(crate) catalog: &'a Arc<Catalog>,
    /// Who writes.
    pub(crate) caller: &'a Caller,
    /// The collection written to.
    pub(crate) entry: &'a Arc<Entry>,
    /// The request as the rules see it, with the submitted body.
    pub(crate) ctx: &'a RequestContext,
}

/// Checks an update up front: views, 403 for a `null` rule, 404 for a record the update rule
/// hides, then the account keys of an auth body (`target.ctx.body`, with the old password
/// verified off the writer) and hashes a new password.
pub(crate) async fn plan_update(
    target: &Target<'_>,
    id: &str,
    passwords: &Passwords,
) -> Result<Plan> {
    let Target {
        db,
        catalog,
        caller,
        entry,
        ctx,
    } = *target;
    let body = &ctx.body;
    if entry.collection.is_view() {
        return Err(Error::BadRequest(UNSUPPORTED));
    }
    let rule = rule(caller, &entry.rules.update)?.cloned();
    let mut hash = None;
    if entry.collection.is_auth() {
        let (original, manager) =
            account_of(db, catalog, caller, entry, ctx, rule.as_ref(), id).await?;
        let form = AccountForm::read(body);
        let mut errors = form::check(&form, body, Some(&original), manager, true);
        if form.needs_old_password(false, manager) && !form.old_password.is_empty() {
            let stored = original
                .get("password")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let valid = !stored.is_empty()
                && passwords
                    .verify(&form.old_password, stored)
                    .await
                    .unwrap_or(false);
            if !valid {
                errors.add("oldPassword", form::wrong_old_password());
            }
        }
        if !errors.is_empty() {
            return Err(Error::Validation {
                message: UPDATE_FAILED,
                errors,
            });
        }
        if let Some(plain) = form.new_password() {
            hash = Some(passwords.hash(plain).await?);
        }
    }
    Ok(Plan {
        rule,
        hash,
        verified_needs_manager: false,
        uploads: Uploads::new(),
    })
}

/// The stored auth record `id` as the update rule lets the caller reach it (404 otherwise), and
/// whether the caller manages it (a superuser, or the manage rule admits the caller).
async fn account_of(
    db: &Database,
    catalog: &Arc<Catalog>,
    caller: &Caller,
    entry: &Arc<Entry>,
    ctx: &RequestContext,
    rule: Option<&Filter>,
    id: &str,
) -> Result<(RecordData, bool)> {
    let (catalog, entry, ctx) = (catalog.clone(), entry.clone(), ctx.clone());
    let (rule, id) = (rule.cloned(), id.to_string());
    let superuser = caller.is_superuser();
    let may_manage = form::may_manage(caller, &entry);
    db.read(move |c| {
        let statement = one_statement(&catalog, &entry, &ctx, rule.as_ref(), &id)?;
        let original = select_one(c, &entry, &statement)?.ok_or(Error::NotFound(NOT_FOUND))?;
        let manager =
            superuser || (may_manage && admitted_by_manage_rule(c, &catalog, &entry, &ctx, &id)?);
        Ok((original, manager))
    })
    .await
}

/// Whether the collection's manage rule admits the request's caller for record `id`.
pub(crate) fn admitted_by_manage_rule(
    c: &Connection,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    ctx: &RequestContext,
    id: &str,
) -> Result<bool> {
    let Some(rule) = entry.rules.manage.as_ref().filter(|r| r.expr().is_some()) else {
        return Ok(false);
    };
    if ctx.auth.is_none() {
        return Ok(false);
    }
    passes(c, catalog, entry, ctx, Some(rule), id)
}

/// Whether another auth collection has a record with `id` (PocketBase keeps auth ids unique
/// across auth collections, so a token's id never names two accounts). The auth collections
/// are read on the writer's connection, not from the request's catalog, which may name a
/// collection another request has dropped since.
fn id_used_by_another_auth_collection(c: &Connection, entry: &Entry, id: &str) -> Result<bool> {
    let names: Vec<String> = {
        let mut stmt = c.prepare_cached(
            "SELECT `name` FROM `_collections` WHERE `type` = 'auth' AND `id` != ?1",
        )?;
        stmt.query_map([&entry.collection.id], |row| row.get(0))?
            .collect::<warren_store::sql::Result<_>>()?
    };
    for name in names {
        let statement = format!("SELECT 1 FROM {} WHERE id = ?1 LIMIT 1", sql::quote(&name));
        if c.prepare_cached(&statement)?.exists([id])? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A write as it runs on the writer's connection: the collection, the request and whether a
/// superuser makes it.
pub(crate) struct Applied<'a> {
    /// The tenant's collections.
    pub(crate) catalog: &'a Catalog,
    /// The collection written to.
    pub(crate) entry: &'a Arc<Entry>,
    /// The request as the rules see it.
    pub(crate) ctx: &'a RequestContext,
    /// Whether a superuser writes.
    pub(crate) superuser: bool,
}

/// Updates a record on the writer's connection (the update rule selects it first).
pub(crate) fn apply_update(
    c: &Connection,
    target: &Applied<'_>,
    plan: &Plan,
    id: &str,
    body: &Map<String, Value>,
) -> Result<RecordData> {
    let Applied {
        catalog,
        entry,
        ctx,
        superuser,
    } = *target;
    let statement = one_statement(catalog, entry, ctx, plan.rule.as_ref(), id)?;
    let existing = select_one(c, entry, &statement)?.ok_or(Error::NotFound(NOT_FOUND))?;
    let checker = Relations { conn: c, catalog };
    let options = PrepareOptions {
        is_superuser: superuser,
        relations: &checker,
        uploads: plan.uploads.clone(),
    };
    let mut prepared =
        prepare_record(&entry.collection, body, Some(&existing), &options).map_err(|errors| {
            Error::Validation {
                message: UPDATE_FAILED,
                errors,
            }
        })?;
    if let Some(hash) = &plan.hash {
        prepared.set_password_hash(hash);
    }
    if entry.collection.is_auth() && (plan.hash.is_some() || prepared.changed("email")) {
        // A new password or email invalidates every token issued before it.
        let key = warren_secrets::random::secret(50);
        prepared
            .data
            .insert("tokenKey".into(), Value::String(key.clone()));
        for (column, value) in &mut prepared.columns {
            if column == "tokenKey" {
                *value = warren_schema::SqlValue::Text(key.clone());
            }
        }
    }
    update_row(c, entry, id, &prepared)?;
    if entry.collection.is_auth() && plan.hash.is_some() {
        crate::auth::forget_origins(c, &entry.collection.id, id)?;
    }
    Ok(prepared.data)
}

/// Deletes record `id`, clearing or cascading the relations that point at it; returns every
/// committed change (cascaded deletes and cleared references included).
pub async fn delete(
    db: &Database,
    catalog: Arc<Catalog>,
    entry: Arc<Entry>,
    caller: &Caller,
    ctx: RequestContext,
    id: &str,
) -> Result<Vec<Change>> {
    let plan = plan_delete(caller, &entry)?;
    let id = id.to_string();
    db.write(move |c| apply_delete(c, &catalog, &entry, &ctx, &plan, &id))
        .await
}

/// Checks a delete up front (403 for a `null` rule, views).
pub(crate) fn plan_delete(caller: &Caller, entry: &Entry) -> Result<Plan> {
    if entry.collection.is_view() {
        return Err(Error::BadRequest(UNSUPPORTED));
    }
    let rule = rule(caller, &entry.rules.delete)?.cloned();
    Ok(Plan {
        rule,
        hash: None,
        verified_needs_manager: false,
        uploads: Uploads::new(),
    })
}

/// Deletes a record on the writer's connection (the delete rule selects it first); returns
/// the changes it made.
pub(crate) fn apply_delete(
    c: &Connection,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    ctx: &RequestContext,
    plan: &Plan,
    id: &str,
) -> Result<Vec<Change>> {
    if !passes(c, catalog, entry, ctx, plan.rule.as_ref(), id)? {
        return Err(Error::NotFound(NOT_FOUND));
    }
    if entry.collection.id == warren_schema::system::SUPERUSERS_ID {
        let count: i64 = c.query_row("SELECT COUNT(*) FROM `_superusers`", [], |r| r.get(0))?;
        if count <= 1 {
            return Err(Error::BadRequest(
                "You can't delete the only existing superuser.",
            ));
        }
    }
    let mut visited = HashSet::new();
    let mut changes = Vec::new();
    delete_cascading(c, catalog, entry, id, &mut visited, &mut changes)?;
    Ok(changes)
}

/// Renders written data for the caller, expanding when asked (a separate read, after commit).
pub async fn respond(
    db: &Database,
    catalog: Arc<Catalog>,
    entry: Arc<Entry>,
    caller: &Caller,
    data: RecordData,
    expand_param: &str,
) -> Result<Value> {
    if let Some(value) = answer_without_reading(caller, &entry, &data, expand_param) {
        return Ok(value);
    }
    let tree = expand::Tree::parse(expand_param);
    let (viewer, ctx) = (caller.clone(), caller.context());
    db.read(move |c| {
        let mut items = expand::render_rows(
            c,
            &catalog,
            &entry,
            &viewer,
            &ctx,
            vec![data],
            tree.as_ref(),
        )?;
        items
            .pop()
            .map(RecordJson::into_value)
            .ok_or(Error::NotFound(NOT_FOUND))
    })
    .await
}

/// The answer of [`respond`] when it needs no read: nothing to expand and a caller who sees
/// the record as stored (not its manager, whose view reads the manage rule).
fn answer_without_reading(
    caller: &Caller,
    entry: &Entry,
    data: &RecordData,
    expand_param: &str,
) -> Option<Value> {
    (expand::Tree::parse(expand_param).is_none() && !form::may_manage(caller, entry))
        .then(|| render(caller, entry, data).into_value())
}

/// The collection's `INSERT` and `UPDATE … WHERE id = ?` statements, each binding every field
/// in field order (the columns a [`PreparedRecord`] carries), built once per collection version.
fn statements(entry: &Entry) -> &(String, String) {
    entry.writes.get_or_init(|| {
        let table = sql::quote(&entry.collection.name);
        let names: Vec<String> = entry
            .collection
            .fields
            .iter()
            .map(|f| sql::quote(&f.name))
            .collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            vec!["?"; names.len()].join(", ")
        );
        let sets: Vec<String> = names.iter().map(|n| format!("{n} = ?")).collect();
        let update = format!("UPDATE {table} SET {} WHERE id = ?", sets.join(", "));
        (insert, update)
    })
}

/// Whether `prepared` binds exactly the collection's fields, in order (always, for a record
/// prepared from `entry.collection`; checked so a mismatch can never bind a value to the
/// wrong column).
fn binds_every_field(entry: &Entry, prepared: &PreparedRecord) -> bool {
    prepared.columns.iter().map(|(name, _)| name).eq(entry
        .collection
        .fields
        .iter()
        .map(|f| &f.name))
}

fn insert(c: &Connection, entry: &Entry, prepared: &PreparedRecord) -> Result<()> {
    if !binds_every_field(entry, prepared) {
        return Err(Error::BadRequest(CREATE_FAILED));
    }
    let values = prepared.columns.iter().map(|(_, v)| sql::Bound(v));
    c.prepare_cached(&statements(entry).0)?
        .execute(params_from_iter(values))
        .map_err(|e| constraint(e, CREATE_FAILED))?;
    Ok(())
}

fn update_row(c: &Connection, entry: &Entry, id: &str, prepared: &PreparedRecord) -> Result<()> {
    if !binds_every_field(entry, prepared) {
        return Err(Error::BadRequest(UPDATE_FAILED));
    }
    let id = warren_schema::SqlValue::Text(id.to_string());
    let values = prepared
        .columns
        .iter()
        .map(|(_, v)| sql::Bound(v))
        .chain(std::iter::once(sql::Bound(&id)));
    c.prepare_cached(&statements(entry).1)?
        .execute(params_from_iter(values))
        .map_err(|e| constraint(e, UPDATE_FAILED))?;
    Ok(())
}

/// A UNIQUE violation becomes `validation_not_unique` on the involved fields.
fn constraint(e: warren_store::sql::Error, message: &'static str) -> Error {
    match warren_store::Error::from(e) {
        warren_store::Error::Unique { constraint, .. } => {
            let mut errors = ValidationErrors::new();
            for column in constraint.split(',') {
                let field = column.trim().rsplit('.').next().unwrap_or_default();
                if !field.is_empty() {
                    errors.add(
                        field,
                        FieldError::new("validation_not_unique", "Value must be unique."),
                    );
                }
            }
            Error::Validation { message, errors }
        }
        other => Error::Store(other),
    }
}

/// Checks relation ids against committed data, on the writer's connection.
struct Relations<'a> {
    conn: &'a Connection,
    catalog: &'a Catalog,
}

impl RelationChecker for Relations<'_> {
    fn all_exist(&self, collection_id: &str, ids: &[String]) -> bool {
        let Some(target) = self.catalog.get(collection_id) else {
            return false;
        };
        if let [id] = ids {
            // One id, as a single relation sets: the statement text is the collection's own.
            let statement = target.count_one.get_or_init(|| {
                format!(
                    "SELECT COUNT(*) FROM {} WHERE id = ?1",
                    sql::quote(&target.collection.name)
                )
            });
            let count = self
                .conn
                .prepare_cached(statement)
                .and_then(|mut s| s.query_row([id], |r| r.get::<_, i64>(0)));
            return matches!(count, Ok(1));
        }
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        if unique.is_empty() {
            return true;
        }
        if unique.len() > 1000 {
            return false;
        }
        let placeholders = vec!["?"; unique.len()].join(", ");
        let statement = format!(
            "SELECT COUNT(*) FROM {} WHERE id IN ({placeholders})",
            sql::quote(&target.collection.name)
        );
        let count = self
            .conn
            .prepare_cached(&statement)
            .and_then(|mut s| s.query_row(params_from_iter(unique.iter()), |r| r.get::<_, i64>(0)));
        matches!(count, Ok(n) if n as usize == unique.len())
    }
}

/// Deletes a record after removing it from every relation that points at it: referencing
/// records are deleted when the relation cascades and nothing else remains, a required
/// reference blocks the delete, other references are cleared. Every deleted and updated record
/// is pushed to `changes`.
fn delete_cascading(
    c: &Connection,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    id: &str,
    visited: &mut HashSet<(String, String)>,
    changes: &mut Vec<Change>,
) -> Result<()> {
    if !visited.insert((entry.collection.id.clone(), id.to_string())) {
        return Ok(());
    }
    for other in catalog.entries() {
        if other.collection.is_view() {
            continue;
        }
        for field in &other.collection.fields {
            let FieldKind::Relation(options) = &field.kind else {
                continue;
            };
            if options.collection_id != entry.collection.id {
                continue;
            }
            let table = sql::quote(&other.collection.name);
            let column = sql::quote(&field.name);
            let statement = format!(
                "SELECT id, {column} FROM {table} WHERE {column} = ?1 OR (json_valid({column}) AND EXISTS (SELECT 1 FROM json_each({column}) WHERE value = ?1))"
            );
            let referencing: Vec<(String, Option<String>)> = {
                let mut stmt = c.prepare_cached(&statement)?;
                let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<warren_store::sql::Result<_>>()?
            };
            for (other_id, raw) in referencing {
                if other.collection.id == entry.collection.id && other_id == id {
                    continue;
                }
                let remaining: Vec<String> = parse_ids(raw.as_deref())
                    .into_iter()
                    .filter(|v| v != id)
                    .collect();
                if remaining.is_empty() {
                    if options.cascade_delete {
                        delete_cascading(c, catalog, other, &other_id, visited, changes)?;
                        continue;
                    }
                    if field.required {
                        return Err(Error::BadRequest(REQUIRED_REFERENCE));
                    }
                }
                let value = if field.is_multiple() {
                    serde_json::to_string(&remaining).unwrap_or_else(|_| "[]".into())
                } else {
                    remaining.into_iter().next().unwrap_or_default()
                };
                c.prepare_cached(&format!("UPDATE {table} SET {column} = ?1 WHERE id = ?2"))?
                    .execute(params![value, other_id])?;
                if let Some(data) = crate::auth::load_data(c, other, &other_id)? {
                    changes.push(Change::new(other.clone(), ChangeAction::Update, data));
                }
            }
        }
    }
    if let Some(data) = crate::auth::load_data(c, entry, id)? {
        changes.push(Change::new(entry.clone(), ChangeAction::Delete, data));
    }
    c.prepare_cached(&format!(
        "DELETE FROM {} WHERE id = ?1",
        sql::quote(&entry.collection.name)
    ))?
    .execute([id])?;
    if entry.collection.is_auth() {
        // The record's sign-in links, sessions, codes and origins go with it.
        for table in crate::collections::AUTH_REF_TABLES {
            c.prepare_cached(&format!(
                "DELETE FROM {} WHERE collectionRef = ?1 AND recordRef = ?2",
                sql::quote(table)
            ))?
            .execute([&entry.collection.id, id])?;
        }
    }
    Ok(())
}

fn parse_ids(raw: Option<&str>) -> Vec<String> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Vec::new();
    };
    if raw.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(raw).unwrap_or_default();
    }
    vec![raw.to_string()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use warren_schema::Collection;

    use super::*;

    /// `notes` (one record, `n1`) and `links`, whose `note` relation points at `notes` and
    /// whose `title` is required.
    async fn linked(dir: &std::path::Path) -> (Database, Arc<Catalog>) {
        let notes = Collection::from_create_body(&json!({"name": "notes", "fields": []})).unwrap();
        let links = Collection::from_create_body(&json!({
            "name": "links",
            "fields": [
                {"name": "note", "type": "relation", "collectionId": notes.id, "maxSelect": 1},
                {"name": "title", "type": "text", "required": true}
            ]
        }))
        .unwrap();
        let db = crate::testing::database(dir, &[&notes, &links], |c| {
            c.execute("INSERT INTO notes (id) VALUES ('n1')", [])?;
            Ok(())
        })
        .await;
        (db, Arc::new(Catalog::new(vec![notes, links])))
    }

    /// Creates `body` in `links` as a superuser, validated before the writer or on it.
    async fn create(
        db: &Database,
        catalog: &Arc<Catalog>,
        body: Value,
        early: bool,
    ) -> Result<RecordData> {
        let entry = catalog.get("links").unwrap().clone();
        let body = body.as_object().unwrap().clone();
        let plan = Plan {
            rule: None,
            hash: None,
            verified_needs_manager: false,
            uploads: Uploads::new(),
        };
        let prepared = if early {
            Early::prepare(&entry, &body, &plan, true)?
        } else {
            None
        };
        let catalog = catalog.clone();
        db.write(move |c| {
            let target = Applied {
                catalog: &catalog,
                entry: &entry,
                ctx: &RequestContext::default(),
                superuser: true,
            };
            apply_create(c, &target, &plan, &body, prepared)
        })
        .await
    }

    /// The field error codes of a failed create.
    fn codes(result: Result<RecordData>) -> Vec<(String, String)> {
        match result {
            Err(Error::Validation { errors, .. }) => {
                let errors = serde_json::to_value(&errors).unwrap();
                let mut codes: Vec<(String, String)> = errors
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(field, e)| (field.clone(), e["code"].as_str().unwrap().to_owned()))
                    .collect();
                codes.sort();
                codes
            }
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_create_validated_before_the_writer_fails_and_succeeds_as_one_validated_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let (db, catalog) = linked(dir.path()).await;
        let missing = (
            "note".to_owned(),
            "validation_missing_rel_records".to_owned(),
        );
        let required = ("title".to_owned(), "validation_required".to_owned());
        for early in [false, true] {
            // A relation to nothing: checked on the writer either way.
            let result = create(&db, &catalog, json!({"note": "nope", "title": "t"}), early);
            assert_eq!(codes(result.await), vec![missing.clone()], "early: {early}");
            // With another error too, the caller gets both.
            let result = create(&db, &catalog, json!({"note": "nope"}), early);
            assert_eq!(
                codes(result.await),
                vec![missing.clone(), required.clone()],
                "early: {early}"
            );
            // No relation named: the same error, before the writer when validated early.
            let result = create(&db, &catalog, json!({"title": ""}), early);
            assert_eq!(
                codes(result.await),
                vec![required.clone()],
                "early: {early}"
            );
            // A relation that exists: written, every field in the record.
            let data = create(&db, &catalog, json!({"note": "n1", "title": "t"}), early)
                .await
                .unwrap();
            assert_eq!(data["note"], "n1");
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            assert_eq!(names, ["id", "note", "title"], "early: {early}");
        }
        // Validated early, a body whose errors no relation could add to fails before the
        // writer; one naming a relation goes on to it.
        let entry = catalog.get("links").unwrap().clone();
        let plan = Plan {
            rule: None,
            hash: None,
            verified_needs_manager: false,
            uploads: Uploads::new(),
        };
        let body = |v: Value| v.as_object().unwrap().clone();
        let early = Early::prepare(&entry, &body(json!({"title": ""})), &plan, true);
        assert!(matches!(early, Err(Error::Validation { .. })));
        let early = Early::prepare(&entry, &body(json!({"note": "n1"})), &plan, true);
        assert!(matches!(early, Ok(None)));
        let rows: i64 = db
            .read(|c| Ok::<_, Error>(c.query_row("SELECT count(*) FROM links", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(rows, 2);
    }
}
