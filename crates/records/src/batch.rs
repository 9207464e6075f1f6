//! The batch API's engine: several record writes in one transaction, all or nothing.
//!
//! Each item is planned first (403s, auth pseudo-fields, password hashing — off the writer),
//! then every item runs in order inside one closure on the tenant's writer. The first failing
//! item fails the closure, whose savepoint rolls back everything the batch did.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use warren_filter::RequestContext;
use warren_secrets::Passwords;
use warren_store::Database;

use crate::catalog::{Catalog, Entry};
use crate::change::{Change, ChangeAction};
use crate::write::{self, Plan};
use crate::{Caller, Error};

/// What one batch item does.
#[derive(Debug, Clone)]
pub enum Action {
    /// `POST …/records`
    Create,
    /// `PATCH …/records/{id}`
    Update(String),
    /// `PUT …/records`: update when `body.id` exists, else create.
    Upsert,
    /// `DELETE …/records/{id}`
    Delete(String),
}

/// One batch item.
#[derive(Debug, Clone)]
pub struct Item {
    /// The collection it writes to.
    pub entry: Arc<Entry>,
    /// What it does.
    pub action: Action,
    /// Its body (ignored by deletes).
    pub body: Map<String, Value>,
    /// Its request context (the batch's caller and headers, its own query).
    pub ctx: RequestContext,
    /// Its `expand` parameter.
    pub expand: String,
    /// Stored names of the files uploaded for it (already in storage), by body key.
    pub uploads: write::Uploads,
}

/// The result of one item: a record, or nothing (a delete).
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The written record as the caller sees it.
    Record(Value),
    /// A deleted record.
    Deleted,
}

/// A failed batch. Nothing of the batch was written.
#[derive(Debug)]
pub enum Failure {
    /// Item `index` failed with `error`.
    Item {
        /// Index of the failing item.
        index: usize,
        /// Its error.
        error: Error,
    },
    /// The batch did not finish before its deadline (`settings.batch.timeout`).
    TimedOut,
}

/// Errors inside the writer closure: an item's failure, the deadline, or the store's.
enum Inner {
    Item(usize, Error),
    TimedOut,
    Store(Error),
}

impl From<warren_store::Error> for Inner {
    fn from(e: warren_store::Error) -> Self {
        Inner::Store(e.into())
    }
}

/// Decides whether one item may run (rate limits): given its index and its action, with an
/// upsert already resolved to a create or an update.
pub type Admit<'a> = &'a (dyn Fn(usize, &Action) -> Result<(), Error> + Send + Sync);

/// What bounds a batch: a deadline for the whole transaction, and who admits each item.
pub struct Bounds<'a> {
    /// Past this instant the batch fails and rolls back (checked between items, inside the
    /// transaction too, so a late batch never commits).
    pub deadline: Instant,
    /// Called for each item, in order, before it is planned.
    pub admit: Admit<'a>,
}

/// Runs `items` as one transaction; returns each item's outcome and every committed change.
pub async fn run(
    db: &Database,
    catalog: Arc<Catalog>,
    caller: &Caller,
    items: Vec<Item>,
    passwords: &Passwords,
    bounds: Bounds<'_>,
) -> Result<(Vec<Outcome>, Vec<Change>), Failure> {
    let deadline = bounds.deadline;
    let mut planned: Vec<(Item, Action, Plan)> = Vec::with_capacity(items.len());
    for (index, mut item) in items.into_iter().enumerate() {
        if Instant::now() >= deadline {
            return Err(Failure::TimedOut);
        }
        let fail = |error| Failure::Item { index, error };
        let action = match &item.action {
            Action::Upsert => {
                let id = item
                    .body
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if !id.is_empty() && exists(db, &item.entry, &id).await.map_err(fail)? {
                    Action::Update(id)
                } else {
                    Action::Create
                }
            }
            other => other.clone(),
        };
        (bounds.admit)(index, &action).map_err(fail)?;
        let mut plan = match &action {
            Action::Create | Action::Upsert => {
                write::plan_create(caller, &item.entry, &item.body, passwords).await
            }
            Action::Update(id) => {
                item.ctx.body = item.body.clone();
                let target = write::Target {
                    db,
                    catalog: &catalog,
                    caller,
                    entry: &item.entry,
                    ctx: &item.ctx,
                };
                write::plan_update(&target, id, passwords).await
            }
            Action::Delete(_) => write::plan_delete(caller, &item.entry),
        }
        .map_err(fail)?;
        plan.uploads = std::mem::take(&mut item.uploads);
        item.ctx.body = item.body.clone();
        planned.push((item, action, plan));
    }
    let superuser = caller.is_superuser();
    let scope = catalog.clone();
    let shared = Arc::new(planned);
    let work = shared.clone();
    let written = db
        .write(move |c| {
            let mut out = Vec::with_capacity(work.len());
            let mut changes = Vec::new();
            for (index, (item, action, plan)) in work.iter().enumerate() {
                if Instant::now() >= deadline {
                    return Err(Inner::TimedOut);
                }
                let target = write::Applied {
                    catalog: &scope,
                    entry: &item.entry,
                    ctx: &item.ctx,
                    superuser,
                };
                let result = match action {
                    Action::Create | Action::Upsert => {
                        write::apply_create(c, &target, plan, &item.body, None)
                            .map(|data| Some((ChangeAction::Create, data)))
                    }
                    Action::Update(id) => write::apply_update(c, &target, plan, id, &item.body)
                        .map(|data| Some((ChangeAction::Update, data))),
                    Action::Delete(id) => {
                        write::apply_delete(c, &scope, &item.entry, &item.ctx, plan, id).map(
                            |deleted| {
                                changes.extend(deleted);
                                None
                            },
                        )
                    }
                };
                let written = result.map_err(|e| Inner::Item(index, e))?;
                if let Some((action, data)) = &written {
                    changes.push(Change::new(item.entry.clone(), *action, data.clone()));
                }
                out.push(written.map(|(_, data)| data));
            }
            // Returning an error here rolls the whole batch back: a late batch never commits.
            if Instant::now() >= deadline {
                return Err(Inner::TimedOut);
            }
            Ok::<_, Inner>((out, changes))
        })
        .await
        .map_err(|e| match e {
            Inner::Item(index, error) => Failure::Item { index, error },
            Inner::TimedOut => Failure::TimedOut,
            Inner::Store(error) => Failure::Item { index: 0, error },
        })?;
    let (written, changes) = written;
    let mut outcomes = Vec::with_capacity(written.len());
    for (index, data) in written.into_iter().enumerate() {
        let (item, _, _) = &shared[index];
        outcomes.push(match data {
            None => Outcome::Deleted,
            Some(data) => Outcome::Record(
                write::respond(
                    db,
                    catalog.clone(),
                    item.entry.clone(),
                    caller,
                    data,
                    &item.expand,
                )
                .await
                .map_err(|error| Failure::Item { index, error })?,
            ),
        });
    }
    Ok((outcomes, changes))
}

/// Whether record `id` exists in `entry`'s collection (how an upsert is resolved).
pub async fn exists(db: &Database, entry: &Arc<Entry>, id: &str) -> Result<bool, Error> {
    let (entry, id) = (entry.clone(), id.to_string());
    db.read(move |c| Ok(crate::auth::load_data(c, &entry, &id)?.is_some()))
        .await
}

/// One record write prepared for a transaction its caller holds (`$app.runInTransaction`,
/// migrations): planned like a batch item, applied with the same functions, so rules,
/// validation, unique constraints and the [`Change`]s are the batch's.
pub struct Prepared {
    item: Item,
    action: Action,
    plan: Plan,
}

impl Prepared {
    /// The collection it writes to.
    pub fn entry(&self) -> &Arc<Entry> {
        &self.item.entry
    }
}

/// Plans `item` (its action resolved: no [`Action::Upsert`]) off the writer: rules that need
/// no record, auth fields, password hashing. An update's auth checks read committed data.
pub async fn prepare(
    db: &Database,
    catalog: &Arc<Catalog>,
    caller: &Caller,
    mut item: Item,
    passwords: &Passwords,
) -> Result<Prepared, Error> {
    let action = item.action.clone();
    item.ctx.body = item.body.clone();
    let mut plan = match &action {
        Action::Create | Action::Upsert => {
            write::plan_create(caller, &item.entry, &item.body, passwords).await?
        }
        Action::Update(id) => {
            let target = write::Target {
                db,
                catalog,
                caller,
                entry: &item.entry,
                ctx: &item.ctx,
            };
            write::plan_update(&target, id, passwords).await?
        }
        Action::Delete(_) => write::plan_delete(caller, &item.entry)?,
    };
    plan.uploads = std::mem::take(&mut item.uploads);
    Ok(Prepared { item, action, plan })
}

/// Applies a prepared write on `c` (the writer, inside the caller's transaction): the record
/// written (`None` for a delete) and every change it made.
pub fn apply_prepared(
    c: &warren_store::sql::Connection,
    catalog: &Catalog,
    caller: &Caller,
    prepared: &Prepared,
) -> Result<(Option<Value>, Vec<Change>), Error> {
    let superuser = caller.is_superuser();
    let Prepared { item, action, plan } = prepared;
    let target = write::Applied {
        catalog,
        entry: &item.entry,
        ctx: &item.ctx,
        superuser,
    };
    let (action, data) = match action {
        Action::Create | Action::Upsert => (
            ChangeAction::Create,
            write::apply_create(c, &target, plan, &item.body, None)?,
        ),
        Action::Update(id) => (
            ChangeAction::Update,
            write::apply_update(c, &target, plan, id, &item.body)?,
        ),
        Action::Delete(id) => {
            let changes = write::apply_delete(c, catalog, &item.entry, &item.ctx, plan, id)?;
            return Ok((None, changes));
        }
    };
    let change = Change::new(item.entry.clone(), action, data.clone());
    let value = crate::read::render(caller, &item.entry, &data).into_value();
    Ok((Some(value), vec![change]))
}
