//! `$app.runInTransaction(fn)` and the calls that change a tenant's schema from JavaScript
//! (`$app.save(collection)`, `$app.delete(collection)`, `$app.db().newQuery(sql).execute()`).
//!
//! A transaction holds the tenant's writer ([`warren_store::Transaction`]) for the rest of
//! the call that began it, on the thread running the tenant's JavaScript; while it is open
//! every `$app` call of that thread runs inside it (finders see its writes; record writes use
//! the batch path's plan-and-apply functions, so rules, validation, unique constraints and
//! changes are the same). Nested `runInTransaction` joins the open one. Realtime events,
//! metering and file clean-up happen only after the commit. A [`Scope`] around every call
//! into tenant code rolls back whatever the call left open (a throw, an interrupt).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use warren_records::batch::{self, Action, Item};
use warren_records::collections::{self, CollectionError};
use warren_records::read::{self, ListQuery};
use warren_records::settings;
use warren_records::{Catalog, Entry};
use warren_store::Transaction;
use warren_tenant::{Tenant, ops};

use crate::app::{Refusal, bind, refuse, superuser};
use crate::native::Shared;

thread_local! {
    /// The transaction the JavaScript running on this thread holds, if any.
    static OPEN: RefCell<Option<Open>> = const { RefCell::new(None) };
    /// Until when a transaction begun by the running call may last (none: no call runs).
    static LIMIT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// An open transaction and what it did so far.
struct Open {
    tx: Transaction,
    tenant: Tenant,
    /// How many `runInTransaction` calls are inside each other.
    depth: u32,
    /// The collections as the transaction sees them (reloaded after each schema change).
    catalog: Arc<Catalog>,
    /// What to make visible after the commit.
    committed: ops::Committed,
}

/// The span of one call into tenant code: sets how long a transaction it begins may last and
/// rolls back whatever it leaves open.
pub(crate) struct Scope(Option<Instant>);

impl Scope {
    /// A call that may hold a transaction for at most `limit`.
    pub(crate) fn new(limit: Duration) -> Self {
        Self(LIMIT.replace(Some(Instant::now() + limit)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        // Dropping the transaction rolls it back; an outer scope (a nested call) keeps its own.
        if self.0.is_none() {
            OPEN.with(|open| open.borrow_mut().take());
        }
        LIMIT.set(self.0);
    }
}

/// Whether the JavaScript on this thread holds a transaction.
pub(crate) fn is_open() -> bool {
    OPEN.with(|open| open.borrow().is_some())
}

/// Answers the `$app` calls this module owns, and every call while a transaction is open;
/// `None` leaves the call to [`crate::app`].
pub(crate) fn call(
    shared: &Shared,
    tenant: &Tenant,
    method: &str,
    args: &[Value],
) -> Option<Result<Value, Refusal>> {
    match method {
        "__txBegin" => Some(begin(tenant).map(|()| Value::Null)),
        "__txEnd" => {
            let commit = args.first().and_then(Value::as_bool).unwrap_or(false);
            Some(end(shared, commit).map(|()| Value::Null))
        }
        _ if is_open() => Some(OPEN.with(|open| {
            let mut open = open.borrow_mut();
            match open.as_mut() {
                Some(open) => inside(open, shared, method, args),
                None => Err(refuse(500, "the transaction has ended")),
            }
        })),
        "saveCollection" | "deleteCollection" | "execute" | "settings" | "saveSettings" => Some(
            shared
                .handle
                .block_on(outside(shared, tenant, method, args)),
        ),
        _ => None,
    }
}

/// Begins a transaction, or joins the open one.
fn begin(tenant: &Tenant) -> Result<(), Refusal> {
    let joined = OPEN.with(|open| match open.borrow_mut().as_mut() {
        Some(open) => {
            open.depth += 1;
            true
        }
        None => false,
    });
    if joined {
        return Ok(());
    }
    let deadline = LIMIT
        .get()
        .ok_or_else(|| refuse(500, "runInTransaction is not available here"))?;
    let tx = tenant
        .db()
        .begin_blocking(deadline)
        .map_err(|e| refuse(400, format!("the transaction could not begin: {e}")))?;
    OPEN.with(|open| {
        *open.borrow_mut() = Some(Open {
            tx,
            tenant: tenant.clone(),
            depth: 1,
            catalog: tenant.catalog(),
            committed: ops::Committed::default(),
        });
    });
    Ok(())
}

/// Leaves one `runInTransaction`; the outermost commits (or rolls back) and then makes the
/// writes visible.
fn end(shared: &Shared, commit: bool) -> Result<(), Refusal> {
    let finished = OPEN.with(|open| {
        let mut slot = open.borrow_mut();
        match slot.as_mut() {
            Some(open) if open.depth > 1 => {
                open.depth -= 1;
                None
            }
            Some(_) => slot.take(),
            None => None,
        }
    });
    let Some(open) = finished else { return Ok(()) };
    if !commit {
        open.tx.rollback();
        return Ok(());
    }
    open.tx
        .commit()
        .map_err(|e| refuse(400, format!("the transaction failed: {e}")))?;
    if let Some(services) = shared.services.as_ref() {
        let after = ops::after_transaction(&open.tenant, services, open.committed);
        shared
            .handle
            .block_on(after)
            .map_err(|e| refuse(500, e.to_string()))?;
    } else {
        // Without services nothing was written through records; the schema may have changed.
        let _ = shared.handle.block_on(open.tenant.reload_catalog());
    }
    Ok(())
}

/// Runs one `$app` call inside the open transaction.
fn inside(
    open: &mut Open,
    shared: &Shared,
    method: &str,
    args: &[Value],
) -> Result<Value, Refusal> {
    let text = |i: usize| {
        args.get(i)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let number = |i: usize| args.get(i).and_then(Value::as_u64).unwrap_or(0);
    let params = |i: usize| {
        args.get(i)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let catalog = open.catalog.clone();
    match method {
        "findCollectionByNameOrId" => {
            let entry = read::collection(&catalog, &text(0))?;
            Ok(serde_json::from_str(&entry.collection.to_api_json()).unwrap_or_default())
        }
        "findRecordById" => {
            let entry = read::collection(&catalog, &text(0))?;
            let id = text(1);
            Ok(open
                .tx
                .run(move |c| read::view_in(c, &catalog, &entry, &superuser(), &id))?)
        }
        "findFirstRecordByData" => {
            let entry = read::collection(&catalog, &text(0))?;
            let field = text(1);
            if !field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                return Err(refuse(400, format!("invalid field name {field:?}")));
            }
            let mut values = Map::new();
            values.insert("value".into(), args.get(2).cloned().unwrap_or_default());
            let filter = bind(&format!("{field} = {{:value}}"), &values)?;
            first(open, entry, filter)
        }
        "findFirstRecordByFilter" => {
            let entry = read::collection(&catalog, &text(0))?;
            let filter = bind(&text(1), &params(2))?;
            first(open, entry, filter)
        }
        "findRecordsByFilter" => {
            let entry = read::collection(&catalog, &text(0))?;
            let filter = bind(&text(1), &params(5))?;
            let limit = match number(3) {
                0 => read::MAX_PER_PAGE,
                n => n.min(read::MAX_PER_PAGE),
            };
            let items = page(open, entry, filter, text(2), limit, number(4))?;
            Ok(Value::Array(items))
        }
        "countRecords" => {
            let entry = read::collection(&catalog, &text(0))?;
            let query = ListQuery {
                page: 1,
                per_page: 1,
                filter: bind(&text(1), &params(2))?,
                ..Default::default()
            };
            let page = open.tx.run(move |c| {
                read::list_on(
                    c,
                    &catalog,
                    &entry,
                    &superuser(),
                    Default::default(),
                    &query,
                    None,
                )
            })?;
            Ok(json!(page.total_items.max(0)))
        }
        "save" => save(open, shared, &text(0), args.get(1)),
        "delete" => {
            let entry = read::collection(&catalog, &text(0))?;
            write(open, shared, entry, Action::Delete(text(1)), Map::new())
        }
        "saveCollection" => {
            let body = args.first().cloned().unwrap_or_default();
            let existing = body
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| catalog.get(id).is_some())
                .map(str::to_string);
            let saved = open.tx.run(move |c| {
                let saved = match &existing {
                    Some(id) => collections::update_in(c, id, &body)?,
                    None => collections::create_in(c, &body)?,
                };
                let catalog = Catalog::load(c)?;
                Ok::<_, CollectionError>((saved, catalog))
            });
            let (saved, catalog) = saved.map_err(collection_refusal)?;
            open.catalog = Arc::new(catalog);
            open.committed.schema_changed = true;
            Ok(serde_json::from_str(&saved.to_api_json()).unwrap_or_default())
        }
        "deleteCollection" => {
            let key = text(0);
            let id = catalog.get(&key).map(|e| e.collection.id.clone());
            let catalog = open
                .tx
                .run(move |c| {
                    collections::delete_in(c, &key)?;
                    Ok::<_, CollectionError>(Catalog::load(c)?)
                })
                .map_err(collection_refusal)?;
            open.catalog = Arc::new(catalog);
            open.committed.schema_changed = true;
            open.committed.deleted_collections.extend(id);
            Ok(Value::Null)
        }
        "execute" => {
            let query = text(0);
            let (output, catalog) = open
                .tx
                .run(move |c| {
                    let output = warren_store::run_console(c, &query, &ops::SQL_LIMITS, true)
                        .map_err(|e| refuse(400, e.to_string()))?;
                    let catalog = Catalog::load(c).map_err(|e| refuse(400, e.to_string()))?;
                    Ok::<_, Refusal>((output, catalog))
                })
                .map_err(|e| refuse(e.status, e.message))?;
            open.catalog = Arc::new(catalog);
            open.committed.schema_changed = true;
            Ok(json!({ "rowsAffected": output.affected_rows }))
        }
        "settings" => Ok(open
            .tx
            .run(|c| settings::load_in(c).map_err(Refusal::from))?),
        "saveSettings" => {
            let patch = args.first().cloned().unwrap_or_default();
            let saved = open
                .tx
                .run(move |c| Ok::<_, SettingsRefusal>(settings::update_in(c, &patch)?))
                .map_err(|e| e.0)?;
            open.committed.schema_changed = true;
            Ok(saved)
        }
        _ => Err(refuse(
            500,
            format!("$app.{method}() is not supported inside a transaction by Warren yet"),
        )),
    }
}

/// `save(record)` inside the transaction: an update when the id exists there, else a create.
fn save(
    open: &mut Open,
    shared: &Shared,
    collection: &str,
    data: Option<&Value>,
) -> Result<Value, Refusal> {
    let entry = read::collection(&open.catalog, collection)?;
    let (mut body, id) = crate::app::save_body(data);
    let exists = match &id {
        None => false,
        Some(id) => {
            let (catalog, found, id) = (open.catalog.clone(), entry.clone(), id.clone());
            open.tx
                .run(move |c| read::view_in(c, &catalog, &found, &superuser(), &id))
                .is_ok()
        }
    };
    let action = match id {
        Some(id) if exists => {
            body.remove("id");
            Action::Update(id)
        }
        _ => Action::Create,
    };
    write(open, shared, entry, action, body)
}

/// Plans a record write (off the writer), then applies it inside the transaction.
fn write(
    open: &mut Open,
    shared: &Shared,
    entry: Arc<Entry>,
    action: Action,
    body: Map<String, Value>,
) -> Result<Value, Refusal> {
    let services = shared
        .services
        .as_ref()
        .ok_or_else(|| refuse(500, "this node does not let hooks write records"))?;
    let caller = superuser();
    let item = Item {
        entry,
        action,
        body,
        ctx: caller.context(),
        expand: String::new(),
        uploads: Default::default(),
    };
    let prepare = batch::prepare(
        open.tenant.db(),
        &open.catalog,
        &caller,
        item,
        &services.passwords,
    );
    let prepared = shared.handle.block_on(prepare)?;
    let catalog = open.catalog.clone();
    let (record, changes) = open
        .tx
        .run(move |c| batch::apply_prepared(c, &catalog, &superuser(), &prepared))?;
    open.committed.changes.extend(changes);
    Ok(record.unwrap_or(Value::Null))
}

fn first(open: &Open, entry: Arc<Entry>, filter: String) -> Result<Value, Refusal> {
    page(open, entry, filter, String::new(), 1, 0)?
        .into_iter()
        .next()
        .ok_or_else(|| refuse(404, "The requested resource wasn't found."))
}

/// Records `offset..offset+limit` of the filtered, sorted list, as the transaction sees them.
fn page(
    open: &Open,
    entry: Arc<Entry>,
    filter: String,
    sort: String,
    limit: u64,
    offset: u64,
) -> Result<Vec<Value>, Refusal> {
    let query = ListQuery {
        page: 1,
        per_page: offset.saturating_add(limit).min(read::MAX_PER_PAGE),
        sort,
        filter,
        skip_total: true,
        ..Default::default()
    };
    if offset.saturating_add(limit) > read::MAX_PER_PAGE {
        return Err(refuse(
            400,
            "inside a transaction a finder reads at most 1000 records",
        ));
    }
    let catalog = open.catalog.clone();
    let page = open.tx.run(move |c| {
        read::list_on(
            c,
            &catalog,
            &entry,
            &superuser(),
            Default::default(),
            &query,
            None,
        )
    })?;
    Ok(page
        .items
        .iter()
        .skip(offset as usize)
        .map(|record| record.to_value())
        .collect())
}

/// The schema-changing calls outside a transaction: through the tenant's collection change
/// path and SQL console, exactly as `/api/collections` and `/api/sql` run them.
async fn outside(
    shared: &Shared,
    tenant: &Tenant,
    method: &str,
    args: &[Value],
) -> Result<Value, Refusal> {
    let services = shared
        .services
        .as_ref()
        .ok_or_else(|| refuse(500, "this node does not let hooks write"))?;
    let text = |i: usize| {
        args.get(i)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match method {
        "saveCollection" => {
            let body = args.first().cloned().unwrap_or_default();
            let existing = body
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| tenant.catalog().get(id).is_some())
                .map(str::to_string);
            let change = match existing {
                Some(collection) => ops::CollectionChange::Update {
                    collection,
                    patch: body,
                },
                None => ops::CollectionChange::Create(body),
            };
            let saved = ops::change_collection(tenant, services, change)
                .await
                .map_err(ops_refusal)?;
            Ok(saved
                .map(|c| serde_json::from_str(&c.to_api_json()).unwrap_or_default())
                .unwrap_or_default())
        }
        "deleteCollection" => {
            let change = ops::CollectionChange::Delete(text(0));
            ops::change_collection(tenant, services, change)
                .await
                .map_err(ops_refusal)?;
            Ok(Value::Null)
        }
        "settings" => Ok(settings::load(tenant.db()).await?),
        "saveSettings" => {
            let patch = args.first().cloned().unwrap_or_default();
            let saved = settings::update(tenant.db(), patch)
                .await
                .map_err(|e| SettingsRefusal::from(e).0)?;
            tenant.forget_settings();
            Ok(saved)
        }
        _ => {
            let output = ops::run_sql(tenant, text(0))
                .await
                .map_err(|e| refuse(400, e.to_string()))?;
            Ok(json!({ "rowsAffected": output.affected_rows }))
        }
    }
}

/// A collection refusal with its field errors in the message (a migration's author reads it).
fn collection_refusal(e: CollectionError) -> Refusal {
    match e {
        CollectionError::NotFound => refuse(404, "The requested resource wasn't found."),
        CollectionError::Invalid { message, errors } => refuse(
            400,
            format!(
                "{message} {}",
                serde_json::to_string(&errors).unwrap_or_default()
            ),
        ),
        CollectionError::Rejected(message) => refuse(400, message),
        CollectionError::Records(e) => e.into(),
    }
}

fn ops_refusal(e: ops::Error) -> Refusal {
    match e {
        ops::Error::Collection(e) => collection_refusal(e),
        other => other.into(),
    }
}

/// Records migration `file` as applied (now, in unix microseconds) or removes it, inside the
/// open transaction.
pub(crate) fn record_migration(file: &str, applied: bool) -> Result<(), String> {
    let file = file.to_string();
    OPEN.with(|open| {
        let open = open.borrow();
        let Some(open) = open.as_ref() else {
            return Err("the transaction has ended".to_string());
        };
        open.tx
            .run(move |c| {
                c.execute(
                    "CREATE TABLE IF NOT EXISTS `_migrations` (file VARCHAR(255) PRIMARY KEY NOT NULL, applied INTEGER NOT NULL)",
                    [],
                )?;
                if applied {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_micros() as i64)
                        .unwrap_or(0);
                    c.execute(
                        "INSERT OR REPLACE INTO `_migrations` (file, applied) VALUES (?1, ?2)",
                        warren_store::sql::params![file, now],
                    )?;
                } else {
                    c.execute("DELETE FROM `_migrations` WHERE file = ?1", [file])?;
                }
                Ok::<_, warren_store::Error>(())
            })
            .map_err(|e| e.to_string())
    })
}

/// A refused settings change, as PocketBase words it (the field errors in the message).
struct SettingsRefusal(Refusal);

impl From<settings::UpdateError> for SettingsRefusal {
    fn from(e: settings::UpdateError) -> Self {
        Self(match e {
            settings::UpdateError::Invalid(errors) => refuse(
                400,
                format!(
                    "An error occurred while saving the new settings. {}",
                    serde_json::to_string(&errors).unwrap_or_default()
                ),
            ),
            settings::UpdateError::Failed(e) => e.into(),
        })
    }
}

impl From<warren_store::Error> for SettingsRefusal {
    fn from(e: warren_store::Error) -> Self {
        Self(e.into())
    }
}
