//! The per-tenant broker: connected clients, their subscriptions and auth, and rule-checked
//! fan-out of committed record changes.
//!
//! Invariants:
//! - Publishing never waits on a client. Every client has a bounded queue; a client whose
//!   queue is full is disconnected (the SDKs reconnect and resubscribe), so one stalled reader
//!   can neither hold memory nor slow the others.
//! - Changes are delivered in commit order: `publish` appends to one queue per broker, drained
//!   by a single task that exists only while there is work (an idle tenant holds no task).
//! - Subscriptions are interned: clients with the same auth state and the same subscription
//!   string share one [`Subscription`], whose rule is compiled once per catalog. An event is
//!   decided and rendered once per distinct subscription, never once per client, and each
//!   client only receives `Arc`s of the shared bytes.
//! - Rules that need other tables are decided for all such subscriptions of an event in one
//!   SQL statement.
//! - Client ids are random and live in this broker only, so one tenant's id means nothing to
//!   another tenant's broker.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use serde_json::{Map, Value};
use tokio::sync::Notify;
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
const YIELD_EVERY: usize = 1024;
/// Rule checks per SQL statement (keeps statements and parameter lists small).
const CHECKS_PER_STATEMENT: usize = 64;
/// A drained client queue larger than this gives its memory back.
const KEEP_QUEUE_CAPACITY: usize = 8;

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
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("clients", &self.client_count())
            .finish()
    }
}

pub(crate) struct Inner {
    /// Connected clients by id.
    clients: RwLock<HashMap<Arc<str>, Arc<Client>>>,
    /// Changes waiting for fan-out, and whether a task drains them.
    queue: Mutex<Queue>,
    /// Shared auth states, topics and subscriptions.
    interned: Mutex<Interned>,
    /// The one guest auth state.
    guest: Arc<AuthState>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            clients: RwLock::default(),
            queue: Mutex::default(),
            interned: Mutex::default(),
            guest: Arc::new(AuthState {
                caller: Caller::Guest,
                token_key: None,
            }),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let clients = self.clients.get_mut().unwrap_or_else(|p| p.into_inner());
        for client in clients.values() {
            client.shut();
        }
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    pending: usize,
    running: bool,
}

/// Weak handles to what clients share, so equal things are built and compiled once.
#[derive(Default)]
struct Interned {
    /// Auth states by (collection id, record id).
    auths: HashMap<(String, String), Weak<AuthState>>,
    /// Parsed subscription strings.
    topics: HashMap<Arc<str>, Weak<Topic>>,
    /// Subscriptions by (subscription string, auth state address).
    subs: HashMap<(Arc<str>, usize), Weak<Subscription>>,
    /// Entries at the last sweep of dead handles.
    swept_at: usize,
}

impl Interned {
    /// Drops dead handles once the maps have doubled since the last sweep.
    fn sweep(&mut self) {
        let size = self.auths.len() + self.topics.len() + self.subs.len();
        if size < 2 * self.swept_at + 1024 {
            return;
        }
        self.auths.retain(|_, w| w.strong_count() > 0);
        self.topics.retain(|_, w| w.strong_count() > 0);
        self.subs.retain(|_, w| w.strong_count() > 0);
        self.swept_at = self.auths.len() + self.topics.len() + self.subs.len();
    }
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
    /// Messages not yet taken by the connection; allocated only while non-empty.
    outbox: Mutex<Outbox>,
    /// Wakes the connection when a message arrives or the client is shut.
    ready: Notify,
    state: Mutex<ClientState>,
}

#[derive(Default)]
struct Outbox {
    messages: VecDeque<Message>,
    /// No more messages will come (dropped by the broker).
    shut: bool,
}

impl Client {
    /// Marks the client disconnected; its connection ends after reading what is queued.
    fn shut(&self) {
        lock(&self.outbox).shut = true;
        self.ready.notify_one();
    }
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

/// One subscription string under one auth state, shared by every client that has both.
pub(crate) struct Subscription {
    topic: Arc<Topic>,
    auth: Arc<AuthState>,
    /// The compiled check for the catalog it was made for.
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    catalog: Weak<Catalog>,
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
    client: Arc<Client>,
    broker: Weak<Inner>,
}

impl Subscriber {
    /// The client id (40 alphanumeric characters).
    pub fn id(&self) -> &str {
        &self.client.id
    }

    /// The next message; `None` once the broker dropped this client (stalled, tenant closed).
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            match self.try_recv() {
                Ok(message) => return Some(message),
                Err(true) => return None,
                // A notification sent between the check and this wait is kept as a permit.
                Err(false) => self.client.ready.notified().await,
            }
        }
    }

    /// The next queued message; `Err(true)` when the client was dropped and nothing is left,
    /// `Err(false)` when nothing is queued yet.
    pub(crate) fn try_recv(&mut self) -> Result<Message, bool> {
        let mut outbox = lock(&self.client.outbox);
        match outbox.messages.pop_front() {
            Some(message) => {
                if outbox.messages.is_empty() && outbox.messages.capacity() > KEEP_QUEUE_CAPACITY {
                    outbox.messages = VecDeque::new();
                }
                Ok(message)
            }
            None => Err(outbox.shut),
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(inner) = self.broker.upgrade() {
            inner.remove(&self.client);
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
        let id: Arc<str> = Arc::from(warren_secrets::random::secret(40));
        let client = Arc::new(Client {
            id: id.clone(),
            outbox: Mutex::default(),
            ready: Notify::new(),
            state: Mutex::new(ClientState {
                auth: self.inner.guest.clone(),
                subs: Vec::new(),
            }),
        });
        self.inner.write_clients().insert(id, client.clone());
        Subscriber {
            client,
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

    /// Client `id`'s subscriptions as submitted, or `None` for an unknown client.
    pub fn subscriptions(&self, id: &str) -> Option<Vec<String>> {
        let client = self.inner.read_clients().get(id).cloned()?;
        let state = lock(&client.state);
        Some(state.subs.iter().map(|s| s.topic.raw.to_string()).collect())
    }

    /// Replaces client `id`'s subscriptions and binds `caller` (with its record's token key)
    /// as its auth. A client bound to a record keeps that record: another record or a guest
    /// is refused. Callers check the size limits first. The subscriptions' rules are compiled
    /// here against `catalog` (once per distinct subscription and auth), so the first event
    /// after a subscription pays nothing for it.
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
        let auth = self.inner.auth(caller, token_key);
        let subs: Vec<Arc<Subscription>> = {
            let mut interned = lock(&self.inner.interned);
            interned.sweep();
            subscriptions
                .iter()
                .map(|raw| {
                    let topic = topic(&mut interned, raw);
                    subscription(&mut interned, topic, &auth)
                })
                .collect()
        };
        for sub in &subs {
            if let Some(entry) = sub.topic.collection().and_then(|c| catalog.get(c)) {
                sub.check(catalog, entry);
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
        for client in dropped.values() {
            client.shut();
        }
        if !dropped.is_empty() {
            tracing::debug!(clients = dropped.len(), "realtime clients disconnected");
        }
    }

    /// Makes every client bound to a record of a collection that `catalog` no longer has as
    /// an auth collection a guest (the collection was deleted or changed type).
    pub fn catalog_changed(&self, catalog: &Catalog) {
        let clients: Vec<Arc<Client>> = self.inner.read_clients().values().cloned().collect();
        for client in clients {
            let mut state = lock(&client.state);
            let Some(collection) = state.auth.caller.collection_id() else {
                continue;
            };
            if catalog
                .get(collection)
                .is_some_and(|e| e.collection.is_auth())
            {
                continue;
            }
            self.inner.demote(&mut state);
        }
    }

    /// Makes every client bound to a record of auth collection `collection` (id) a guest (its
    /// records were removed without events, as by truncation).
    pub fn revoke_collection(&self, collection: &str) {
        let clients: Vec<Arc<Client>> = self.inner.read_clients().values().cloned().collect();
        for client in clients {
            let mut state = lock(&client.state);
            if state.auth.caller.collection_id() == Some(collection) {
                self.inner.demote(&mut state);
            }
        }
    }

    /// Queues committed `changes` for fan-out (on the delivery runtime) and returns at once.
    /// Must run inside a Tokio runtime unless the delivery runtime runs. Without clients this
    /// is a no-op.
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
            crate::delivery::spawn(drain(self.inner.clone()));
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

/// The same signed-in record in the same state.
fn same_caller(a: &Caller, b: &Caller) -> bool {
    match (a, b) {
        (Caller::Guest, Caller::Guest) => true,
        (Caller::Superuser { record: x }, Caller::Superuser { record: y })
        | (Caller::Record { record: x }, Caller::Record { record: y }) => x == y,
        _ => false,
    }
}

/// The shared parsed form of subscription string `raw`.
fn topic(interned: &mut Interned, raw: &str) -> Arc<Topic> {
    if let Some(topic) = interned.topics.get(raw).and_then(Weak::upgrade) {
        return topic;
    }
    let topic = Arc::new(Topic::parse(raw));
    interned
        .topics
        .insert(topic.raw.clone(), Arc::downgrade(&topic));
    topic
}

/// The shared subscription of `topic` under `auth`.
fn subscription(
    interned: &mut Interned,
    topic: Arc<Topic>,
    auth: &Arc<AuthState>,
) -> Arc<Subscription> {
    let key = (topic.raw.clone(), Arc::as_ptr(auth) as usize);
    if let Some(sub) = interned.subs.get(&key).and_then(Weak::upgrade) {
        // A live subscription holds its auth state, so the address cannot have been reused.
        if Arc::ptr_eq(&sub.auth, auth) {
            return sub;
        }
    }
    let sub = Arc::new(Subscription {
        topic,
        auth: auth.clone(),
        cached: Mutex::new(None),
    });
    interned.subs.insert(key, Arc::downgrade(&sub));
    sub
}

impl Inner {
    fn read_clients(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Client>>> {
        self.clients.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_clients(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Client>>> {
        self.clients.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Unregisters `client` (if it is still the one under its id) and shuts it.
    fn remove(&self, client: &Arc<Client>) {
        {
            let mut clients = self.write_clients();
            if clients
                .get(&client.id)
                .is_some_and(|c| Arc::ptr_eq(c, client))
            {
                clients.remove(&client.id);
            }
        }
        client.shut();
    }

    /// The shared auth state for `caller` with `token_key`.
    fn auth(&self, caller: Caller, token_key: Option<String>) -> Arc<AuthState> {
        let (Some(collection), Some(id)) = (caller.collection_id(), caller.id()) else {
            return self.guest.clone();
        };
        let key = (collection.to_string(), id.to_string());
        let mut interned = lock(&self.interned);
        if let Some(auth) = interned.auths.get(&key).and_then(Weak::upgrade)
            && auth.token_key == token_key
            && same_caller(&auth.caller, &caller)
        {
            return auth;
        }
        let auth = Arc::new(AuthState { caller, token_key });
        interned.auths.insert(key, Arc::downgrade(&auth));
        auth
    }

    /// Binds `state` to `auth`, moving its subscriptions to that auth.
    fn rebind(&self, state: &mut ClientState, auth: Arc<AuthState>) {
        let mut interned = lock(&self.interned);
        state.subs = state
            .subs
            .iter()
            .map(|s| subscription(&mut interned, s.topic.clone(), &auth))
            .collect();
        state.auth = auth;
    }

    /// Makes a client a guest.
    fn demote(&self, state: &mut ClientState) {
        self.rebind(state, self.guest.clone());
    }

    /// Queues a message; a full queue or a shut client disconnects the client.
    fn offer(&self, client: &Arc<Client>, message: Message) -> bool {
        {
            let mut outbox = lock(&client.outbox);
            if outbox.shut {
                // Already unregistered when it was shut.
                return false;
            }
            if outbox.messages.len() < CLIENT_BUFFER {
                outbox.messages.push_back(message);
                drop(outbox);
                client.ready.notify_one();
                return true;
            }
        }
        tracing::debug!(client = %client.id, "realtime client too slow; disconnected");
        self.remove(client);
        false
    }

    /// Applies an auth record's update or delete to the clients bound to it: a deleted record
    /// or a new token key makes them guests; otherwise their record is refreshed.
    fn maintain_auth(&self, clients: &[Arc<Client>], change: &Change) {
        if change.action == ChangeAction::Create {
            return;
        }
        let collection = change.entry.collection.id.as_str();
        let id = change.id();
        let key = change.data.get("tokenKey").and_then(Value::as_str);
        let mut refreshed: Option<Arc<AuthState>> = None;
        for client in clients {
            let mut state = lock(&client.state);
            let bound = &state.auth.caller;
            if bound.id() != Some(id) || bound.collection_id() != Some(collection) {
                continue;
            }
            if change.action == ChangeAction::Delete || key != state.auth.token_key.as_deref() {
                self.demote(&mut state);
                continue;
            }
            let auth = refreshed
                .get_or_insert_with(|| {
                    let record = match render_plain(bound, &change.entry, &change.data) {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    let caller = match bound {
                        Caller::Superuser { .. } => Caller::Superuser {
                            record: record.into(),
                        },
                        _ => Caller::Record {
                            record: record.into(),
                        },
                    };
                    self.auth(caller, key.map(str::to_string))
                })
                .clone();
            self.rebind(&mut state, auth);
        }
    }
}

#[cfg(test)]
impl Inner {
    /// Client `id`'s first subscription (tests compare sharing).
    pub(crate) fn shared(&self, id: &str) -> Arc<Subscription> {
        let client = self.read_clients().get(id).cloned().unwrap();
        let state = lock(&client.state);
        state.subs[0].clone()
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

/// Fans one change out to every client whose subscriptions and rules admit it: each distinct
/// subscription is decided and rendered once, then every client gets the shared bytes.
async fn deliver(inner: &Arc<Inner>, job: &Job, change: &Change) {
    let entry = &change.entry;
    let clients: Vec<Arc<Client>> = inner.read_clients().values().cloned().collect();
    if entry.collection.is_auth() {
        inner.maintain_auth(&clients, change);
    }
    let record_id = change.id();
    // Distinct matching subscriptions, and (client, subscription) pairs by index.
    let mut slots: HashMap<usize, u32> = HashMap::new();
    let mut subs: Vec<Arc<Subscription>> = Vec::new();
    let mut targets: Vec<(u32, u32)> = Vec::new();
    for (n, client) in clients.iter().enumerate() {
        if n % YIELD_EVERY == YIELD_EVERY - 1 {
            // A large fan-out must not starve request handling on this worker thread.
            tokio::task::yield_now().await;
        }
        let state = lock(&client.state);
        for sub in &state.subs {
            if !sub
                .topic
                .matches(&entry.collection.id, &entry.collection.name, record_id)
            {
                continue;
            }
            let slot = *slots.entry(Arc::as_ptr(sub) as usize).or_insert_with(|| {
                subs.push(sub.clone());
                (subs.len() - 1) as u32
            });
            targets.push((n as u32, slot));
        }
    }
    if targets.is_empty() {
        return;
    }
    let checks: Vec<Arc<Check>> = subs.iter().map(|s| s.check(&job.catalog, entry)).collect();
    let admitted = decide(job, change, &checks).await;
    let payloads = render(job, change, &subs, &admitted).await;
    for (n, &(client, slot)) in targets.iter().enumerate() {
        if n % (4 * YIELD_EVERY) == 4 * YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
        let slot = slot as usize;
        let Some(data) = &payloads[slot] else {
            continue;
        };
        inner.offer(
            &clients[client as usize],
            Message {
                topic: subs[slot].topic.raw.clone(),
                data: data.clone(),
            },
        );
    }
}

impl Subscription {
    /// The compiled check for `catalog`, compiled on first use.
    fn check(&self, catalog: &Arc<Catalog>, entry: &Entry) -> Arc<Check> {
        let mut cached = lock(&self.cached);
        if let Some(c) = cached.as_ref()
            && c.catalog.as_ptr() == Arc::as_ptr(catalog)
        {
            return c.check.clone();
        }
        let check = Arc::new(compile(catalog, entry, &self.auth.caller, &self.topic));
        *cached = Some(Cached {
            catalog: Arc::downgrade(catalog),
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
    let mut ctx = warren_records::read::context(
        caller,
        "GET",
        &query,
        topic.headers.iter().map(|(k, v)| (k, v.clone())).collect(),
    );
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

/// Decides each check: in memory where possible, all SQL checks in one read.
async fn decide(job: &Job, change: &Change, checks: &[Arc<Check>]) -> Vec<bool> {
    let mut admitted = vec![false; checks.len()];
    let mut record: Option<Map<String, Value>> = None;
    // Distinct SQL checks → the subscriptions waiting on them.
    let mut distinct: Vec<(Arc<Check>, Vec<usize>)> = Vec::new();
    let mut by_sql: HashMap<String, usize> = HashMap::new();
    for (i, check) in checks.iter().enumerate() {
        match &**check {
            Check::Allow => admitted[i] = true,
            Check::Deny => {}
            Check::Memory(q) => {
                let record = record.get_or_insert_with(|| {
                    change
                        .data
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                });
                admitted[i] = q.matches(record).unwrap_or(false);
            }
            Check::Sql(q) => {
                let sql = q.to_sql();
                let key = format!(
                    "{}\u{0}{}\u{0}{:?}",
                    sql.joins, sql.where_clause, sql.params
                );
                let slot = *by_sql.entry(key).or_insert_with(|| {
                    distinct.push((check.clone(), Vec::new()));
                    distinct.len() - 1
                });
                distinct[slot].1.push(i);
            }
        }
    }
    if distinct.is_empty() {
        return admitted;
    }
    let queries: Vec<Arc<Check>> = distinct.iter().map(|(c, _)| c.clone()).collect();
    let (entry, data) = (change.entry.clone(), change.data.clone());
    let results = job
        .db
        .read(move |c| {
            let mut out = Vec::with_capacity(queries.len());
            for chunk in queries.chunks(CHECKS_PER_STATEMENT) {
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

/// What a rendered payload depends on; subscriptions with equal keys share one payload.
#[derive(Hash, PartialEq, Eq)]
struct RenderKey<'a> {
    superuser: bool,
    /// The subscriber is the changed auth record (sees its email).
    own: bool,
    /// The viewer's id when expanding (related records pass the viewer's rules).
    viewer: Option<&'a str>,
    expand: &'a str,
    fields: &'a str,
}

/// Renders each admitted subscription's payload, once per distinct [`RenderKey`].
async fn render(
    job: &Job,
    change: &Change,
    subs: &[Arc<Subscription>],
    admitted: &[bool],
) -> Vec<Option<Arc<str>>> {
    let entry = &change.entry;
    let record_id = change.id();
    let mut keys: HashMap<RenderKey<'_>, usize> = HashMap::new();
    // Per group: its key and the first subscription in it.
    let mut groups: Vec<(&str, usize)> = Vec::new();
    let mut slots: Vec<Option<usize>> = Vec::with_capacity(subs.len());
    for (i, sub) in subs.iter().enumerate() {
        if !admitted[i] {
            slots.push(None);
            continue;
        }
        let caller = &sub.auth.caller;
        let own = entry.collection.is_auth()
            && caller.collection_id() == Some(entry.collection.id.as_str())
            && caller.id() == Some(record_id);
        let expand = sub.topic.option("expand").trim();
        let fields = sub.topic.option("fields");
        let key = RenderKey {
            superuser: caller.is_superuser(),
            own,
            viewer: (!expand.is_empty()).then(|| caller.id().unwrap_or("")),
            expand,
            fields,
        };
        let next = groups.len();
        let slot = *keys.entry(key).or_insert_with(|| {
            groups.push((fields, i));
            next
        });
        slots.push(Some(slot));
    }
    let mut records: Vec<Option<Value>> = vec![None; groups.len()];
    let mut expanding = Vec::new();
    for (g, &(_, first)) in groups.iter().enumerate() {
        let sub = &subs[first];
        let expand = sub.topic.option("expand").trim();
        if expand.is_empty() {
            records[g] = Some(render_plain(&sub.auth.caller, entry, &change.data));
        } else {
            let query: Map<String, Value> = sub
                .topic
                .query
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let mut ctx = warren_records::read::context(
                &sub.auth.caller,
                "GET",
                &query,
                sub.topic
                    .headers
                    .iter()
                    .map(|(k, v)| (k, v.clone()))
                    .collect(),
            );
            ctx.context = "realtime".into();
            expanding.push((g, sub.auth.caller.clone(), ctx, expand.to_string()));
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
        .map(|((fields, _), record)| {
            let record = (job.project)(record?, fields);
            // PocketBase writes `record` before `action`.
            Some(Arc::from(format!(
                "{{\"record\":{record},\"action\":\"{action}\"}}"
            )))
        })
        .collect();
    slots
        .into_iter()
        .map(|g| g.and_then(|g| payloads[g].clone()))
        .collect()
}
