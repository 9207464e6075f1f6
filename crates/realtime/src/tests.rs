//! Broker tests on a real tenant-shaped SQLite database: topic matching, rule evaluation in
//! memory and in SQL, rendering per subscriber, auth binding and maintenance, and the
//! disconnect of a client whose buffer overflows.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use warren_records::{Caller, Catalog, Change, ChangeAction};
use warren_schema::Collection;
use warren_schema::record::RecordData;
use warren_store::{Database, Options};

use crate::{Broker, CLIENT_BUFFER, Error, Message, Subscriber};

struct Fixture {
    _dir: tempfile::TempDir,
    db: Database,
    catalog: Arc<Catalog>,
    broker: Broker,
}

fn collection(body: Value) -> Collection {
    Collection::from_create_body(&body).unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("data.db"), Options::default())
        .await
        .unwrap();
    let users = collection(json!({
        "id": "_pb_users_auth_", "name": "users", "type": "auth",
        "listRule": "", "viewRule": "",
        "fields": [{"name": "name", "type": "text"}],
    }));
    let posts = collection(json!({
        "id": "pbc_posts", "name": "posts", "type": "base",
        // Guests see public posts; a signed-in user also sees their own.
        "listRule": "public = true || (@request.auth.id != '' && owner = @request.auth.id)",
        "viewRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "public", "type": "bool"},
            {"name": "secret", "type": "text", "hidden": true},
            {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
        ],
    }));
    let notes = collection(json!({
        "id": "pbc_notes", "name": "notes", "type": "base",
        // Needs a join: only notes whose owner is named "ann".
        "listRule": "owner.name = 'ann'",
        "viewRule": null,
        "fields": [
            {"name": "body", "type": "text"},
            {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
        ],
    }));
    let all = vec![users, posts, notes];
    let statements: Vec<String> = all
        .iter()
        .flat_map(warren_schema::ddl::create_statements)
        .collect();
    db.write(move |c| {
        for s in &statements {
            c.execute_batch(s)?;
        }
        c.execute_batch(
            "INSERT INTO users (id, email, name, tokenKey, password) VALUES
               ('ann000000000001', 'ann@x.io', 'ann', 'k1', 'h'),
               ('bob000000000001', 'bob@x.io', 'bob', 'k2', 'h');",
        )?;
        Ok::<_, warren_records::Error>(())
    })
    .await
    .unwrap();
    Fixture {
        _dir: dir,
        db,
        catalog: Arc::new(Catalog::new(all)),
        broker: Broker::new(),
    }
}

fn user(id: &str) -> Caller {
    let mut record = Map::new();
    record.insert("id".into(), json!(id));
    record.insert("collectionId".into(), json!("_pb_users_auth_"));
    record.insert("collectionName".into(), json!("users"));
    Caller::Record {
        record: record.into(),
    }
}

fn superuser() -> Caller {
    let mut record = Map::new();
    record.insert("id".into(), json!("su0000000000001"));
    record.insert("collectionId".into(), json!("pbc_3142635823"));
    record.insert("collectionName".into(), json!("_superusers"));
    Caller::Superuser {
        record: record.into(),
    }
}

fn data(value: Value) -> RecordData {
    match value {
        Value::Object(map) => map.into_iter().collect(),
        _ => RecordData::new(),
    }
}

fn no_projection(v: Value, fields: &str) -> Value {
    if fields.is_empty() {
        return v;
    }
    // Enough of a projection for tests: keep the listed top-level keys.
    let keep: Vec<&str> = fields.split(',').map(str::trim).collect();
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

impl Fixture {
    fn change(&self, collection: &str, action: ChangeAction, record: Value) -> Change {
        Change::new(
            self.catalog.get(collection).unwrap().clone(),
            action,
            data(record),
        )
    }

    async fn publish(&self, changes: Vec<Change>) {
        self.broker
            .publish(&self.db, self.catalog.clone(), changes, no_projection);
        self.broker.flush().await;
    }

    fn client(&self, caller: Caller, topics: &[&str]) -> Subscriber {
        let sub = self.broker.connect();
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        self.broker
            .subscribe(sub.id(), caller, Some("k1".into()), &topics, &self.catalog)
            .unwrap();
        sub
    }
}

/// Every message queued for `sub` right now.
fn drain(sub: &mut Subscriber) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while let Ok(Message { topic, data }) = sub.try_recv() {
        out.push((topic.to_string(), serde_json::from_str(&data).unwrap()));
    }
    out
}

fn post(id: &str, public: bool, owner: &str) -> Value {
    json!({"id": id, "title": "t", "public": public, "secret": "s", "owner": owner,
           "collectionId": "pbc_posts", "collectionName": "posts",
           "created": "", "updated": ""})
}

#[tokio::test]
async fn list_rule_admits_per_subscriber_in_memory() {
    let f = fixture().await;
    let mut guest = f.client(Caller::Guest, &["posts/*"]);
    let mut ann = f.client(user("ann000000000001"), &["posts"]);
    let mut admin = f.client(superuser(), &["posts/*", "posts"]);
    f.publish(vec![
        f.change("posts", ChangeAction::Create, post("p1", true, "")),
        f.change(
            "posts",
            ChangeAction::Create,
            post("p2", false, "ann000000000001"),
        ),
        f.change("posts", ChangeAction::Update, post("p3", false, "")),
    ])
    .await;
    let ids = |msgs: Vec<(String, Value)>| -> Vec<String> {
        msgs.iter()
            .map(|(t, v)| format!("{t} {}", v["record"]["id"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(ids(drain(&mut guest)), ["posts/* p1"]);
    assert_eq!(ids(drain(&mut ann)), ["posts p1", "posts p2"]);
    let all = ids(drain(&mut admin));
    assert_eq!(all.len(), 6, "{all:?}");
}

#[tokio::test]
async fn payloads_hide_hidden_fields_and_carry_the_action() {
    let f = fixture().await;
    let mut guest = f.client(Caller::Guest, &["posts/*"]);
    let mut admin = f.client(superuser(), &["posts/*"]);
    let mut picky = f.client(
        Caller::Guest,
        &["posts/*?options=%7B%22query%22%3A%7B%22fields%22%3A%22id%22%7D%7D"],
    );
    f.publish(vec![f.change(
        "posts",
        ChangeAction::Delete,
        post("p1", true, ""),
    )])
    .await;
    let (_, g) = drain(&mut guest).pop().unwrap();
    assert_eq!(g["action"], "delete");
    assert!(g["record"].get("secret").is_none());
    let (_, a) = drain(&mut admin).pop().unwrap();
    assert_eq!(a["record"]["secret"], "s");
    let (topic, p) = drain(&mut picky).pop().unwrap();
    assert!(topic.starts_with("posts/*?options="));
    assert_eq!(p["record"], json!({"id": "p1"}));
}

#[tokio::test]
async fn record_topics_use_the_view_rule_and_match_only_their_record() {
    let f = fixture().await;
    let mut one = f.client(Caller::Guest, &["posts/p2", "POSTS/p9", "pbc_posts/p2"]);
    let mut notes = f.client(Caller::Guest, &["notes/n1"]);
    f.publish(vec![
        // Not public: the list rule would hide it, the view rule ("") does not.
        f.change("posts", ChangeAction::Update, post("p2", false, "")),
        f.change("posts", ChangeAction::Update, post("p3", false, "")),
        // notes' view rule is null: superusers only.
        f.change(
            "notes",
            ChangeAction::Create,
            json!({"id": "n1", "body": "b", "owner": ""}),
        ),
    ])
    .await;
    let got: Vec<String> = drain(&mut one).into_iter().map(|(t, _)| t).collect();
    assert_eq!(got, ["posts/p2", "pbc_posts/p2"]);
    assert!(drain(&mut notes).is_empty());
}

#[tokio::test]
async fn joined_rules_are_checked_in_sql_even_for_deleted_records() {
    let f = fixture().await;
    let mut guests: Vec<Subscriber> = (0..3)
        .map(|_| f.client(Caller::Guest, &["notes/*"]))
        .collect();
    let mut filtered = f.client(
        Caller::Guest,
        &["notes?options=%7B%22query%22%3A%7B%22filter%22%3A%22body%3D%27x%27%22%7D%7D"],
    );
    f.publish(vec![
        f.change(
            "notes",
            ChangeAction::Delete,
            json!({"id": "n1", "body": "x", "owner": "ann000000000001"}),
        ),
        f.change(
            "notes",
            ChangeAction::Create,
            json!({"id": "n2", "body": "y", "owner": "bob000000000001"}),
        ),
        f.change(
            "notes",
            ChangeAction::Create,
            json!({"id": "n3", "body": "y", "owner": "ann000000000001"}),
        ),
    ])
    .await;
    for guest in &mut guests {
        let got: Vec<Value> = drain(guest)
            .into_iter()
            .map(|(_, v)| v["record"]["id"].clone())
            .collect();
        assert_eq!(got, [json!("n1"), json!("n3")]);
    }
    let got: Vec<Value> = drain(&mut filtered)
        .into_iter()
        .map(|(_, v)| v["record"]["id"].clone())
        .collect();
    assert_eq!(got, [json!("n1")]);
}

#[tokio::test]
async fn superuser_only_filters_deliver_nothing_to_others() {
    let f = fixture().await;
    let topic =
        "posts?options=%7B%22query%22%3A%7B%22filter%22%3A%22%40request.auth.id%3D%27%27%22%7D%7D";
    let mut guest = f.client(Caller::Guest, &[topic]);
    f.publish(vec![f.change(
        "posts",
        ChangeAction::Create,
        post("p1", true, ""),
    )])
    .await;
    assert!(drain(&mut guest).is_empty());
}

#[tokio::test]
async fn a_full_buffer_disconnects_the_client() {
    let f = fixture().await;
    let mut slow = f.client(Caller::Guest, &["posts"]);
    let changes: Vec<Change> = (0..=CLIENT_BUFFER)
        .map(|i| {
            f.change(
                "posts",
                ChangeAction::Create,
                post(&format!("p{i}"), true, ""),
            )
        })
        .collect();
    f.publish(changes).await;
    assert!(!f.broker.has_client(slow.id()));
    // What was queued is still readable, then the stream ends.
    let mut read = 0;
    while tokio::time::timeout(Duration::from_secs(5), slow.recv())
        .await
        .unwrap()
        .is_some()
    {
        read += 1;
    }
    assert_eq!(read, CLIENT_BUFFER);
}

#[tokio::test]
async fn the_first_auth_binds_the_client() {
    let f = fixture().await;
    let sub = f.broker.connect();
    let none: Vec<String> = Vec::new();
    assert_eq!(
        f.broker
            .subscribe("nope", Caller::Guest, None, &none, &f.catalog),
        Err(Error::UnknownClient)
    );
    f.broker
        .subscribe(sub.id(), Caller::Guest, None, &none, &f.catalog)
        .unwrap();
    f.broker
        .subscribe(sub.id(), user("ann000000000001"), None, &none, &f.catalog)
        .unwrap();
    f.broker
        .subscribe(sub.id(), user("ann000000000001"), None, &none, &f.catalog)
        .unwrap();
    assert_eq!(
        f.broker
            .subscribe(sub.id(), Caller::Guest, None, &none, &f.catalog),
        Err(Error::AuthMismatch)
    );
    assert_eq!(
        f.broker
            .subscribe(sub.id(), user("bob000000000001"), None, &none, &f.catalog),
        Err(Error::AuthMismatch)
    );
    let id = sub.id().to_string();
    drop(sub);
    assert!(!f.broker.has_client(&id));
}

#[tokio::test]
async fn a_new_token_key_makes_the_client_a_guest() {
    let f = fixture().await;
    let mut ann = f.client(user("ann000000000001"), &["posts"]);
    let own = post("p1", false, "ann000000000001");
    f.publish(vec![f.change("posts", ChangeAction::Update, own.clone())])
        .await;
    assert_eq!(drain(&mut ann).len(), 1);
    let renamed = json!({"id": "ann000000000001", "name": "ann", "tokenKey": "k1",
                          "email": "ann@x.io", "collectionId": "_pb_users_auth_"});
    f.publish(vec![f.change("users", ChangeAction::Update, renamed)])
        .await;
    f.publish(vec![f.change("posts", ChangeAction::Update, own.clone())])
        .await;
    assert_eq!(drain(&mut ann).len(), 1, "same token key: still ann");
    let rekeyed = json!({"id": "ann000000000001", "name": "ann", "tokenKey": "k9",
                          "email": "ann@x.io", "collectionId": "_pb_users_auth_"});
    f.publish(vec![f.change("users", ChangeAction::Update, rekeyed)])
        .await;
    f.publish(vec![f.change("posts", ChangeAction::Update, own)])
        .await;
    assert!(drain(&mut ann).is_empty(), "now a guest");
    // A guest may sign in again.
    f.broker
        .subscribe(
            ann.id(),
            user("ann000000000001"),
            Some("k9".into()),
            &[],
            &f.catalog,
        )
        .unwrap();
}

#[tokio::test]
async fn closing_disconnects_everyone_and_brokers_are_separate() {
    let f = fixture().await;
    let other = Broker::new();
    let mut sub = f.client(Caller::Guest, &["posts"]);
    assert!(!other.has_client(sub.id()));
    assert_eq!(
        other.subscribe(sub.id(), Caller::Guest, None, &[], &f.catalog),
        Err(Error::UnknownClient)
    );
    f.broker.close();
    assert_eq!(f.broker.client_count(), 0);
    assert!(sub.recv().await.is_none());
}

#[tokio::test]
async fn equal_subscriptions_share_one_compiled_rule_and_one_payload() {
    let f = fixture().await;
    let mut anns: Vec<Subscriber> = (0..50)
        .map(|_| f.client(user("ann000000000001"), &["posts/*"]))
        .collect();
    let mut bob = f.client(user("bob000000000001"), &["posts/*"]);
    let first = f.broker.inner.shared(anns[0].id());
    for ann in &anns[1..] {
        assert!(Arc::ptr_eq(&first, &f.broker.inner.shared(ann.id())));
    }
    assert!(!Arc::ptr_eq(&first, &f.broker.inner.shared(bob.id())));
    f.publish(vec![f.change(
        "posts",
        ChangeAction::Create,
        post("p1", false, "ann000000000001"),
    )])
    .await;
    let payloads: Vec<Arc<str>> = anns
        .iter_mut()
        .map(|a| a.try_recv().unwrap().data)
        .collect();
    assert!(payloads.iter().all(|p| Arc::ptr_eq(p, &payloads[0])));
    assert!(
        bob.try_recv().is_err(),
        "bob's rule hides ann's private post"
    );
}

#[tokio::test]
async fn a_deleted_auth_record_or_collection_turns_its_clients_into_guests() {
    let f = fixture().await;
    let own = post("p1", false, "ann000000000001");
    let mut ann = f.client(user("ann000000000001"), &["posts"]);
    let mut bob = f.client(user("bob000000000001"), &["posts"]);
    let gone = json!({"id": "ann000000000001", "name": "ann", "tokenKey": "k1",
                      "email": "ann@x.io", "collectionId": "_pb_users_auth_"});
    f.publish(vec![
        f.change("users", ChangeAction::Delete, gone),
        f.change("posts", ChangeAction::Update, own.clone()),
    ])
    .await;
    assert!(drain(&mut ann).is_empty(), "ann's record is gone");
    // Bob's private post still reaches bob until his collection goes away.
    let bobs = post("p2", false, "bob000000000001");
    f.publish(vec![f.change("posts", ChangeAction::Update, bobs.clone())])
        .await;
    assert_eq!(drain(&mut bob).len(), 1);
    let without_users = Catalog::new(
        f.catalog
            .entries()
            .iter()
            .filter(|e| e.collection.name != "users")
            .map(|e| e.collection.clone())
            .collect(),
    );
    f.broker.catalog_changed(&without_users);
    f.publish(vec![f.change("posts", ChangeAction::Update, bobs)])
        .await;
    assert!(drain(&mut bob).is_empty(), "bob's collection is gone");
    // Truncation revokes too.
    let mut again = f.client(user("bob000000000001"), &["posts"]);
    f.broker.revoke_collection("_pb_users_auth_");
    f.publish(vec![f.change(
        "posts",
        ChangeAction::Update,
        post("p2", false, "bob000000000001"),
    )])
    .await;
    assert!(drain(&mut again).is_empty());
}
