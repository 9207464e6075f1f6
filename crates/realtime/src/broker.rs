//! The per-tenant broker: connected clients, their subscriptions and auth, and rule-checked
//! fan-out of committed record changes.
//!
//! Invariants:
//! - Publishing never waits on a client. Every client has a bounded queue; a client whose
//!   queue is full is disconnected (the SDKs reconnect and resubscribe), so one stalled reader
//!   can neither hold memory nor slow the others.
//! - Changes are delivered in commit order: `publish` appends to one queue per broker, drained
//!   by a single task that exists only while there is work (an idle tenant holds no task).
//! - A subscription's rule is compiled once per (catalog, auth state) and cached on it; an
//!   event only binds the record. Rules that need other tables are decided for all such
//!   subscribers of an event in one SQL statement.
//! - Client ids are random and live in this broker only, so one tenant's id means nothing to
//!   another tenant's broker.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use warren_filter::{Access, Filter, Query};
use warren_records::change::{admitted_by_sql, render_expanded, render_plain};
use warren_records::{Caller, Catalog, Change, ChangeAction, Entry};
use warren_store::Database;

use crate::topic::{Target, Topic};

/// Messages queued per client before the client is considered stalled and dropped.
pub const CLIENT_BUFFER: usize = 256;
/// Changes waiting for fan-out before the broker gives up on its clients (they reconnect).
pub const MAX_PENDING_CHANGES: usize = 100_000;
/// Subscriptions per client (PocketBase's limit).
pub const MAX_SUBSCRIPTIONS: usize = 1000;
/// Length of one subscription string (PocketBase's limit).
pub const MAX_SUBSCRIPTION_LEN: usize = 2500;
/// Length of a client id in a request (PocketBase's limit).
pub const MAX_CLIENT_ID_LEN: usize = 255;
/// Clients handled between two yields to the scheduler during one fan-out.
const YIELD_EVERY: usize = 512;
/// Rule checks per SQL statement (keeps statements and parameter lists small).
const CHECKS_PER_STATEMENT: usize = 64;

/// Applies a `fields` projection to a rendered record (the HTTP layer owns that syntax).
pub type Project = fn(Value, &str) -> Value;

/// One message for one client: the event name (the subscription as submitted) and its data.
#[derive(Debug, Clone)]
pub struct Message {
    /// Event name.
    pub topic: Arc<str>,
    /// One line of JSON.
    pub data: Arc<str>,
}

/// Errors of subscription calls, each one PocketBase outcome.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// 404: no such client in this tenant.
    #[error("Missing or invalid client id.")]
    UnknownClient,
    /// 403: the auth differs from the one the client was bound to.
    #[error("The current and the previous request authorization don't match.")]
    AuthMismatch,
}

/// A tenant's realtime broker. Cheap to create (no task, no allocation beyond its maps) and
/// cheap to clone.
#[derive(Clone, Default)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("clients", &self.client_count())
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    /// Connected clients by id.
    clients: RwLock<HashMap<Arc<str>, Arc<Client>>>,
    /// Changes waiting for fan-out, and whether a task drains them.
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    pending: usize,
    running: bool,
}

/// One publish call: changes committed together, and what rendering needs.
struct Job {
    db: Database,
    catalog: Arc<Catalog>,
    changes: Vec<Change>,
    project: Project,
}

struct Client {
    id: Arc<str>,
    tx: mpsc::Sender<Message>,
    state: Mutex<ClientState>,
}

struct ClientState {
    auth: Arc<AuthState>,
    subs: Vec<Arc<Subscription>>,
}

/// The auth a client was bound to by its last subscription call.
struct AuthState {
    caller: Caller,
    /// The auth record's token key when bound; a different one later unsets the auth.
    token_key: Option<String>,
}

impl AuthState {
    fn guest() -> Arc<Self> {
        Arc::new(AuthState {
            caller: Caller::Guest,
            token_key: None,
        })
    }
}

struct Subscription {
    topic: Topic,
    /// The compiled check for the catalog and auth state it was made for.
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    catalog: Weak<Catalog>,
    auth: Weak<AuthState>,
    check: Arc<Check>,
}

/// What decides whether a subscriber may see a record.
#[derive(Debug)]
enum Check {
    /// Always (superuser without filter, empty rule).
    Allow,
    /// Never (`null` rule for a non-superuser, a refused or broken filter).
    Deny,
    /// Decided on the record alone.
    Memory(Query),
    /// Needs SQLite (joins).
    Sql(Query),
}

/// A connected client's end: its id and its messages. Dropping it unregisters the client.
pub struct Subscriber {
    id: Arc<str>,
    pub(crate) rx: mpsc::Receiver<Message>,
    broker: Weak<Inner>,
}

impl Subscriber {
    /// The client id (40 alphanumeric characters).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next message; `None` once the broker dropped this client (stalled, tenant closed).
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(inner) = self.broker.upgrade() {
            inner.write_clients().remove(&self.id);
        }
    }
}

impl Broker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a new client with a fresh random id.
    pub fn connect(&self) -> Subscriber {
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let id: Arc<str> = Arc::from(warren_auth::random::secret(40));
        let client = Arc::new(Client {
            id: id.clone(),
            tx,
            state: Mutex::new(ClientState {
                auth: AuthState::guest(),
                subs: Vec::new(),
            }),
        });
        self.inner.write_clients().insert(id.clone(), client);
        Subscriber {
            id,
            rx,
            broker: Arc::downgrade(&self.inner),
        }
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        self.inner.read_clients().len()
    }

    /// Whether client `id` is connected.
    pub fn has_client(&self, id: &str) -> bool {
        self.inner.read_clients().contains_key(id)
    }

    /// Replaces client `id`'s subscriptions and binds `caller` (with its record's token key)
    /// as its auth. A client bound to a record keeps that record: another record or a guest
    /// is refused. Callers check the size limits first. The subscriptions' rules are compiled
    /// here against `catalog`, so the first event after a subscription pays nothing for it.
    pub fn subscribe(
        &self,
        id: &str,
        caller: Caller,
        token_key: Option<String>,
        subscriptions: &[String],
        catalog: &Arc<Catalog>,
    ) -> Result<(), Error> {
        let client = self
            .inner
            .read_clients()
            .get(id)
            .cloned()
            .ok_or(Error::UnknownClient)?;
        check_binding(&lock(&client.state).auth.caller, &caller)?;
        let auth = Arc::new(AuthState { caller, token_key });
        let subs: Vec<Arc<Subscription>> = subscriptions
            .iter()
            .map(|raw| {
                Arc::new(Subscription {
                    topic: Topic::parse(raw),
                    cached: Mutex::new(None),
                })
            })
            .collect();
        for sub in &subs {
            let collection = match &sub.topic.target {
                Target::Collection(c) | Target::Record(c, _) => c,
                Target::Nothing => continue,
            };
            if let Some(entry) = catalog.get(collection) {
                sub.check(catalog, entry, &auth);
            }
        }
        let mut state = lock(&client.state);
        // Checked again: another call may have bound the client meanwhile.
        check_binding(&state.auth.caller, &auth.caller)?;
        state.auth = auth;
        state.subs = subs;
        Ok(())
    }

    /// Sends `data` to client `id` as event `topic` if it subscribed to exactly that topic
    /// (PocketBase's `@oauth2` messages). Returns whether it was queued.
    pub fn send(&self, id: &str, topic: &str, data: &str) -> bool {
        let Some(client) = self.inner.read_clients().get(id).cloned() else {
            return false;
        };
        let subscribed = lock(&client.state)
            .subs
            .iter()
            .any(|s| &*s.topic.raw == topic);
        subscribed
            && self.inner.offer(
                &client,
                Message {
                    topic: Arc::from(topic),
                    data: Arc::from(data),
                },
            )
    }

    /// Disconnects every client (the tenant is closing).
    pub fn close(&self) {
        let dropped = std::mem::take(&mut *self.inner.write_clients());
        if !dropped.is_empty() {
            tracing::debug!(clients = dropped.len(), "realtime clients disconnected");
        }
    }

    /// Queues committed `changes` for fan-out and returns at once. Must run inside a Tokio
    /// runtime. Without clients this is a no-op.
    pub fn publish(
        &self,
        db: &Database,
        catalog: Arc<Catalog>,
        changes: Vec<Change>,
        project: Project,
    ) {
        if changes.is_empty() || self.inner.read_clients().is_empty() {
            return;
        }
        let mut queue = lock(&self.inner.queue);
        if queue.pending + changes.len() > MAX_PENDING_CHANGES {
            // Fan-out cannot keep up: dropping everyone is better than losing events silently
            // or growing without bound; clients reconnect and resubscribe.
            drop(queue);
            tracing::warn!("realtime fan-out overloaded; disconnecting all clients");
            self.close();
            return;
        }
        queue.pending += changes.len();
        queue.jobs.push_back(Job {
            db: db.clone(),
            catalog,
            changes,
            project,
        });
        if !queue.running {
            queue.running = true;
            tokio::spawn(drain(self.inner.clone()));
        }
    }

    /// Waits until every published change has been fanned out (tests and benchmarks).
    pub async fn flush(&self) {
        loop {
            if !lock(&self.inner.queue).running {
                return;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// A client bound to a record accepts only that record again.
fn check_binding(bound: &Caller, caller: &Caller) -> Result<(), Error> {
    match bound.id() {
        Some(id) if caller.id() != Some(id) || caller.collection_id() != bound.collection_id() => {
            Err(Error::AuthMismatch)
        }
        _ => Ok(()),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn read_clients(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Client>>> {
        self.clients.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_clients(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Client>>> {
        self.clients.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message; a full or closed queue disconnects the client.
    fn offer(&self, client: &Arc<Client>, message: Message) -> bool {
        match client.tx.try_send(message) {
            Ok(()) => true,
            Err(e) => {
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    tracing::debug!(client = %client.id, "realtime client too slow; disconnected");
                }
                let mut clients = self.write_clients();
                if clients
                    .get(&client.id)
                    .is_some_and(|c| Arc::ptr_eq(c, client))
                {
                    clients.remove(&client.id);
                }
                false
            }
        }
    }
}

/// Drains the broker's queue, one job at a time, then ends.
async fn drain(inner: Arc<Inner>) {
    loop {
        let job = {
            let mut queue = lock(&inner.queue);
            match queue.jobs.pop_front() {
                Some(job) => job,
                None => {
                    queue.running = false;
                    return;
                }
            }
        };
        let count = job.changes.len();
        for change in &job.changes {
            deliver(&inner, &job, change).await;
        }
        lock(&inner.queue).pending -= count;
    }
}

/// One subscriber of one change.
struct Target_ {
    client: Arc<Client>,
    sub: Arc<Subscription>,
    auth: Arc<AuthState>,
    check: Arc<Check>,
}

/// Fans one change out to every client whose subscriptions and rules admit it.
async fn deliver(inner: &Arc<Inner>, job: &Job, change: &Change) {
    let entry = &change.entry;
    let clients: Vec<Arc<Client>> = inner.read_clients().values().cloned().collect();
    if entry.collection.is_auth() {
        maintain_auth(&clients, change);
    }
    let record_id = change.id();
    let mut targets = Vec::new();
    for (n, client) in clients.into_iter().enumerate() {
        if n % YIELD_EVERY == YIELD_EVERY - 1 {
            // A large fan-out must not starve request handling on this worker thread.
            tokio::task::yield_now().await;
        }
        let state = lock(&client.state);
        for sub in &state.subs {
            let collection = match &sub.topic.target {
                Target::Collection(c) => c,
                Target::Record(c, id) if id == record_id => c,
                _ => continue,
            };
            if collection != &entry.collection.id
                && !collection.eq_ignore_ascii_case(&entry.collection.name)
            {
                continue;
            }
            let check = sub.check(&job.catalog, entry, &state.auth);
            if matches!(*check, Check::Deny) {
                continue;
            }
            targets.push(Target_ {
                client: client.clone(),
                sub: sub.clone(),
                auth: state.auth.clone(),
                check,
            });
        }
    }
    if targets.is_empty() {
        return;
    }
    let admitted = decide(job, change, &targets).await;
    let targets: Vec<Target_> = targets
        .into_iter()
        .zip(admitted)
        .filter_map(|(t, ok)| ok.then_some(t))
        .collect();
    let payloads = render(job, change, &targets).await;
    for (n, (target, data)) in targets.iter().zip(payloads).enumerate() {
        if n % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
        let Some(data) = data else { continue };
        inner.offer(
            &target.client,
            Message {
                topic: target.sub.topic.raw.clone(),
                data,
            },
        );
    }
}

/// Applies an auth record's update or delete to the clients bound to it: a deleted record or
/// a new token key makes them guests; otherwise their record is refreshed.
fn maintain_auth(clients: &[Arc<Client>], change: &Change) {
    let collection = &change.entry.collection.id;
    let id = change.id();
    for client in clients {
        let mut state = lock(&client.state);
        let bound = &state.auth.caller;
        if bound.id() != Some(id) || bound.collection_id() != Some(collection.as_str()) {
            continue;
        }
        let key = change.data.get("tokenKey").and_then(Value::as_str);
        state.auth = match change.action {
            ChangeAction::Create => continue,
            ChangeAction::Delete => AuthState::guest(),
            ChangeAction::Update if key != state.auth.token_key.as_deref() => AuthState::guest(),
            ChangeAction::Update => {
                let record = match render_plain(bound, &change.entry, &change.data) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                let caller = match bound {
                    Caller::Superuser { .. } => Caller::Superuser { record },
                    _ => Caller::Record { record },
                };
                Arc::new(AuthState {
                    caller,
                    token_key: key.map(str::to_string),
                })
            }
        };
    }
}

impl Subscription {
    /// The compiled check for `catalog` and `auth`, compiled on first use.
    fn check(&self, catalog: &Arc<Catalog>, entry: &Entry, auth: &Arc<AuthState>) -> Arc<Check> {
        let mut cached = lock(&self.cached);
        if let Some(c) = cached.as_ref()
            && c.catalog.as_ptr() == Arc::as_ptr(catalog)
            && c.auth.as_ptr() == Arc::as_ptr(auth)
        {
            return c.check.clone();
        }
        let check = Arc::new(compile(catalog, entry, &auth.caller, &self.topic));
        *cached = Some(Cached {
            catalog: Arc::downgrade(catalog),
            auth: Arc::downgrade(auth),
            check: check.clone(),
        });
        check
    }
}

/// Compiles the topic's rule (list or view) and its `filter` option for `caller`.
fn compile(catalog: &Catalog, entry: &Entry, caller: &Caller, topic: &Topic) -> Check {
    let rule = match &topic.target {
        Target::Collection(_) => &entry.rules.list,
        Target::Record(..) => &entry.rules.view,
        Target::Nothing => return Check::Deny,
    };
    let query: Map<String, Value> = topic
        .query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut ctx = warren_records::read::context(caller, "GET", &query, topic.headers.clone());
    ctx.context = "realtime".into();
    let mut q = Query::for_collection(entry.info.clone());
    let mut conditions = false;
    if !caller.is_superuser() {
        match rule {
            None => return Check::Deny,
            Some(rule) if rule.expr().is_some() => {
                if q.and_where(catalog, &ctx, rule, Access::Trusted).is_err() {
                    return Check::Deny;
                }
                conditions = true;
            }
            Some(_) => {}
        }
    }
    let filter = topic.option("filter");
    if !filter.trim().is_empty() {
        // Client restrictions apply to the filter even for superusers, as in PocketBase.
        let Ok(filter) = Filter::parse(filter) else {
            return Check::Deny;
        };
        if q.and_where(catalog, &ctx, &filter, Access::Client).is_err() {
            return Check::Deny;
        }
        conditions = true;
    }
    if !conditions {
        Check::Allow
    } else if q.evaluable_in_memory() {
        Check::Memory(q)
    } else {
        Check::Sql(q)
    }
}

/// Decides each target: in memory where possible, all SQL checks in one read.
async fn decide(job: &Job, change: &Change, targets: &[Target_]) -> Vec<bool> {
    let record: Map<String, Value> = change
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut admitted = vec![false; targets.len()];
    // Distinct SQL checks → the targets waiting on them.
    let mut distinct: Vec<(Arc<Check>, Vec<usize>)> = Vec::new();
    let mut by_sql: HashMap<String, usize> = HashMap::new();
    for (i, target) in targets.iter().enumerate() {
        match &*target.check {
            Check::Allow => admitted[i] = true,
            Check::Deny => {}
            Check::Memory(q) => admitted[i] = q.matches(&record).unwrap_or(false),
            Check::Sql(q) => {
                let sql = q.to_sql();
                let key = format!(
                    "{}\u{0}{}\u{0}{:?}",
                    sql.joins, sql.where_clause, sql.params
                );
                let slot = *by_sql.entry(key).or_insert_with(|| {
                    distinct.push((target.check.clone(), Vec::new()));
                    distinct.len() - 1
                });
                distinct[slot].1.push(i);
            }
        }
    }
    if distinct.is_empty() {
        return admitted;
    }
    let checks: Vec<Arc<Check>> = distinct.iter().map(|(c, _)| c.clone()).collect();
    let (entry, data) = (change.entry.clone(), change.data.clone());
    let results = job
        .db
        .read(move |c| {
            let mut out = Vec::with_capacity(checks.len());
            for chunk in checks.chunks(CHECKS_PER_STATEMENT) {
                let queries: Vec<&Query> = chunk
                    .iter()
                    .filter_map(|c| match &**c {
                        Check::Sql(q) => Some(q),
                        _ => None,
                    })
                    .collect();
                out.extend(admitted_by_sql(c, &entry, &data, &queries)?);
            }
            Ok::<_, warren_records::Error>(out)
        })
        .await;
    match results {
        Ok(results) => {
            for ((_, waiting), ok) in distinct.iter().zip(results) {
                for &i in waiting {
                    admitted[i] = ok;
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "realtime rule check failed; event withheld"),
    }
    admitted
}

/// What a rendered payload depends on; targets with equal keys share one payload.
#[derive(Hash, PartialEq, Eq)]
struct RenderKey {
    superuser: bool,
    /// The subscriber is the changed auth record (sees its email).
    own: bool,
    /// The viewer's id when expanding (related records pass the viewer's rules).
    viewer: Option<String>,
    expand: String,
    fields: String,
}

/// Renders each target's payload, once per distinct [`RenderKey`].
async fn render(job: &Job, change: &Change, targets: &[Target_]) -> Vec<Option<Arc<str>>> {
    let entry = &change.entry;
    let record_id = change.id();
    let mut keys: HashMap<RenderKey, usize> = HashMap::new();
    let mut groups: Vec<(RenderKey, usize)> = Vec::new();
    let mut slots = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        let caller = &target.auth.caller;
        let own = entry.collection.is_auth()
            && caller.collection_id() == Some(entry.collection.id.as_str())
            && caller.id() == Some(record_id);
        let expand = target.sub.topic.option("expand").trim().to_string();
        let key = RenderKey {
            superuser: caller.is_superuser(),
            own,
            viewer: (!expand.is_empty()).then(|| caller.id().unwrap_or("").to_string()),
            expand,
            fields: target.sub.topic.option("fields").to_string(),
        };
        let slot = match keys.get(&key) {
            Some(&slot) => slot,
            None => {
                groups.push((
                    RenderKey {
                        superuser: key.superuser,
                        own: key.own,
                        viewer: key.viewer.clone(),
                        expand: key.expand.clone(),
                        fields: key.fields.clone(),
                    },
                    i,
                ));
                keys.insert(key, groups.len() - 1);
                groups.len() - 1
            }
        };
        slots.push(slot);
    }
    let mut records: Vec<Option<Value>> = vec![None; groups.len()];
    let mut expanding = Vec::new();
    for (g, (key, first)) in groups.iter().enumerate() {
        if key.expand.is_empty() {
            records[g] = Some(render_plain(
                &targets[*first].auth.caller,
                entry,
                &change.data,
            ));
        } else {
            let target = &targets[*first];
            let query: Map<String, Value> = target
                .sub
                .topic
                .query
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let mut ctx = warren_records::read::context(
                &target.auth.caller,
                "GET",
                &query,
                target.sub.topic.headers.clone(),
            );
            ctx.context = "realtime".into();
            expanding.push((g, target.auth.caller.clone(), ctx, key.expand.clone()));
        }
    }
    if !expanding.is_empty() {
        let (catalog, entry, data) = (job.catalog.clone(), entry.clone(), change.data.clone());
        let rendered = job
            .db
            .read(move |c| {
                Ok::<_, warren_records::Error>(
                    expanding
                        .into_iter()
                        .map(|(g, caller, ctx, expand)| {
                            let value =
                                render_expanded(c, &catalog, &entry, &caller, &ctx, &data, &expand)
                                    .unwrap_or_else(|_| render_plain(&caller, &entry, &data));
                            (g, value)
                        })
                        .collect::<Vec<_>>(),
                )
            })
            .await;
        match rendered {
            Ok(rendered) => {
                for (g, value) in rendered {
                    records[g] = Some(value);
                }
            }
            Err(e) => tracing::warn!(error = %e, "realtime expand failed"),
        }
    }
    let action = change.action.as_str();
    let payloads: Vec<Option<Arc<str>>> = groups
        .iter()
        .zip(records)
        .map(|((key, _), record)| {
            let record = (job.project)(record?, &key.fields);
            // PocketBase writes `record` before `action`.
            Some(Arc::from(format!(
                "{{\"record\":{record},\"action\":\"{action}\"}}"
            )))
        })
        .collect();
    slots.into_iter().map(|g| payloads[g].clone()).collect()
}
