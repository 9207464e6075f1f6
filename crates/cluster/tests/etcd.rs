//! Membership, ownership and the directory against a real three-member etcd cluster on
//! loopback (Debian's `etcd-server`; `tests/suites/cluster` installs it and runs these with
//! `WARREN_ETCD` set). Ignored in the plain test run.

use std::time::{Duration, Instant};

use warren_cluster::etcd::Etcd;
use warren_cluster::ownership::{self, Claim};
use warren_cluster::{Directory, Error, Keys, Member, MemberConfig};

#[path = "support/etcd_cluster.rs"]
mod etcd_cluster;
use etcd_cluster::{Cluster, Proxy};

fn keys() -> Keys {
    Keys::new(&format!("test{}", std::process::id())).unwrap()
}

async fn join(etcd: Etcd, keys: &Keys, node: &str) -> Member {
    join_for(etcd, keys, node, Duration::from_secs(2)).await
}

async fn join_for(etcd: Etcd, keys: &Keys, node: &str, ttl: Duration) -> Member {
    Member::join(
        etcd,
        keys.clone(),
        MemberConfig {
            node: node.into(),
            advertise: format!("{node}.test:8080"),
            ttl,
        },
    )
    .await
    .unwrap()
}

/// Polls `done` every 10 ms for at most `limit`; the time it took.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn one_owner_per_tenant_and_every_node_sees_it() {
    let cluster = Cluster::start();
    let keys = keys();
    let a = join(cluster.client(), &keys, "a").await;
    let b = join(cluster.client(), &keys, "b").await;
    let seen_by_b = Directory::follow(cluster.client(), keys.clone())
        .await
        .unwrap();
    until(Duration::from_secs(5), || seen_by_b.nodes().len() == 2).await;
    assert_eq!(seen_by_b.nodes()[0].advertise, "a.test:8080");

    let Claim::Granted(first) = ownership::claim(&a, "t1").await.unwrap() else {
        panic!("a free tenant is granted");
    };
    assert_eq!((first.node.as_str(), first.generation), ("a", 1));
    assert_eq!(
        ownership::claim(&b, "t1").await.unwrap(),
        Claim::Held(first.clone())
    );
    // Claiming again is idempotent.
    assert_eq!(
        ownership::claim(&a, "t1").await.unwrap(),
        Claim::Granted(first.clone())
    );
    until(Duration::from_secs(5), || {
        seen_by_b.owner("t1").map(|(o, _)| o) == Some(first.clone())
    })
    .await;
    let (_, node) = seen_by_b.owner("t1").unwrap();
    assert_eq!(node.unwrap().advertise, "a.test:8080");
    assert_eq!(seen_by_b.owned_by("a"), vec!["t1".to_string()]);

    // A planned hand-over: a releases, b claims with the next generation.
    assert!(ownership::release(&a, "t1", &first).await.unwrap());
    assert!(
        !ownership::release(&a, "t1", &first).await.unwrap(),
        "a stale record is not released twice"
    );
    let Claim::Granted(second) = ownership::claim(&b, "t1").await.unwrap() else {
        panic!("a released tenant is granted");
    };
    assert_eq!((second.node.as_str(), second.generation), ("b", 2));
    until(Duration::from_secs(5), || {
        seen_by_b.owner("t1").map(|(o, _)| o.node) == Some("b".into())
    })
    .await;

    // A move hands the tenant over in one step: never free, the next generation, under the
    // target's lease (when the target dies, the tenant comes free with it).
    let handed = ownership::hand_over(&b, "t1", &second, "a")
        .await
        .unwrap()
        .expect("the current owner hands over");
    assert_eq!(
        (handed.owner.node.as_str(), handed.owner.generation),
        ("a", 3)
    );
    assert_eq!(handed.owner.lease, a.lease());
    assert_eq!(
        ownership::claim(&a, "t1").await.unwrap(),
        Claim::Granted(handed.owner.clone()),
        "the target's claim finds itself the owner"
    );
    assert_eq!(
        ownership::claim(&b, "t1").await.unwrap(),
        Claim::Held(handed.owner.clone())
    );
    assert!(
        ownership::hand_over(&b, "t1", &second, "a")
            .await
            .unwrap()
            .is_none(),
        "a superseded record hands nothing over"
    );
    assert!(
        ownership::hand_over(&a, "t1", &handed.owner, "nobody")
            .await
            .unwrap()
            .is_none(),
        "a node without a membership receives nothing"
    );
    assert!(
        seen_by_b
            .caught_up(handed.revision, Duration::from_secs(5))
            .await
    );
    assert_eq!(
        seen_by_b.owner("t1").map(|(o, _)| o),
        Some(handed.owner.clone())
    );

    // Concurrent claims of one free tenant: exactly one wins.
    let (x, y) = tokio::join!(ownership::claim(&a, "t2"), ownership::claim(&b, "t2"));
    let granted = [x.unwrap(), y.unwrap()]
        .iter()
        .filter(|c| matches!(c, Claim::Granted(_)))
        .count();
    assert_eq!(granted, 1);

    // Bad ids never reach etcd.
    assert!(matches!(
        ownership::claim(&a, "../x").await,
        Err(Error::Config(_))
    ));
}

#[tokio::test]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_dead_nodes_tenants_come_free_when_its_lease_expires() {
    let cluster = Cluster::start();
    let keys = keys();
    let a = join(cluster.client(), &keys, "a").await;
    let b = join(cluster.client(), &keys, "b").await;
    let directory = Directory::follow(cluster.client(), keys.clone())
        .await
        .unwrap();
    let mut freed_events = directory.freed();
    for t in 0..10 {
        assert!(matches!(
            ownership::claim(&a, &format!("t{t}")).await.unwrap(),
            Claim::Granted(_)
        ));
    }
    until(Duration::from_secs(5), || {
        directory.owned_by("a").len() == 10
    })
    .await;

    // A crash: renewals stop, the lease is not given back.
    let ttl = a.ttl();
    drop(a);
    let freed = until(Duration::from_secs(10), || {
        directory.owned_by("a").is_empty()
    })
    .await;
    assert!(
        freed >= ttl / 2,
        "freed after {freed:?}, before the lease could expire"
    );
    assert!(directory.nodes().iter().all(|n| n.id != "a"));
    // Each freed tenant is announced once, with the record that was deleted.
    let mut announced = Vec::new();
    while let Ok(one) = freed_events.try_recv() {
        assert_eq!(one.owner.node, "a");
        assert_eq!(one.owner.generation, 1);
        announced.push(one.tenant);
    }
    announced.sort();
    let mut expected: Vec<String> = (0..10).map(|t| format!("t{t}")).collect();
    expected.sort();
    assert_eq!(announced, expected);
    let Claim::Granted(taken) = ownership::claim(&b, "t3").await.unwrap() else {
        panic!("a dead node's tenant is granted");
    };
    assert_eq!(taken.generation, 2, "generations outlive their owner");

    // A node that leaves gives its tenants back at once.
    let left = Instant::now();
    b.leave().await.unwrap();
    until(Duration::from_secs(2), || {
        directory.owned_by("b").is_empty()
    })
    .await;
    assert!(left.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_node_cut_off_from_etcd_stops_writing_before_its_lease_expires() {
    let cluster = Cluster::start();
    let keys = keys();
    let proxy = Proxy::start(&cluster.clients[0]).await;
    let cut_off = Etcd::new(
        std::slice::from_ref(&proxy.addr),
        Duration::from_millis(500),
    )
    .unwrap();
    let a = join(cut_off, &keys, "a").await;
    let b = join(cluster.client(), &keys, "b").await;
    let directory = Directory::follow(cluster.client(), keys.clone())
        .await
        .unwrap();
    let Claim::Granted(first) = ownership::claim(&a, "t1").await.unwrap() else {
        panic!("granted");
    };
    // Renewals go through for a while.
    tokio::time::sleep(a.ttl() * 2).await;
    assert!(a.can_write());

    proxy.cut();
    let cut = Instant::now();
    let fenced = until(Duration::from_secs(10), || !a.can_write()).await;
    // The owner record is still there when a stops writing: its lease has not expired.
    assert_eq!(
        directory.owner("t1").map(|(o, _)| o),
        Some(first.clone()),
        "a stopped writing {fenced:?} after the cut, after its lease expired"
    );
    assert!(matches!(
        ownership::claim(&a, "t9").await,
        Err(Error::Fenced)
    ));
    until(Duration::from_secs(10), || directory.owner("t1").is_none()).await;
    let expired = cut.elapsed();
    assert!(
        fenced < expired,
        "fenced {fenced:?}, lease gone {expired:?}"
    );
    let Claim::Granted(second) = ownership::claim(&b, "t1").await.unwrap() else {
        panic!("granted after expiry");
    };
    assert_eq!(second.generation, first.generation + 1);

    // Reconnected, a learns its lease is gone and never writes again.
    proxy.mend();
    tokio::time::sleep(a.ttl()).await;
    assert!(!a.can_write());
    assert!(matches!(
        ownership::claim(&a, "t1").await,
        Err(Error::Fenced)
    ));
    assert_eq!(directory.owner("t1").unwrap().0, second);
}

#[tokio::test]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn losing_one_etcd_member_changes_nothing() {
    let mut cluster = Cluster::start();
    let keys = keys();
    // A longer lease: the members elect a new leader when the killed one led.
    let a = join_for(cluster.client(), &keys, "a", Duration::from_secs(6)).await;
    let directory = Directory::follow(cluster.client(), keys.clone())
        .await
        .unwrap();
    cluster.kill(0);
    // For three TTLs the lease keeps being renewed through the other members.
    let start = Instant::now();
    while start.elapsed() < a.ttl() * 3 {
        assert!(
            a.can_write(),
            "fenced {:?} after a member died",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(
        ownership::claim(&a, "t1").await.unwrap(),
        Claim::Granted(_)
    ));
    until(Duration::from_secs(10), || directory.owner("t1").is_some()).await;
}

#[tokio::test]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn one_leader_writes_the_host_mirror_and_a_former_leader_cannot() {
    use warren_cluster::hosts::{self, Change, HostRecord};
    use warren_cluster::{Leader, leader};
    let cluster = Cluster::start();
    let keys = keys();
    let a = join(cluster.client(), &keys, "a").await;
    let b = join(cluster.client(), &keys, "b").await;
    let seen = Directory::follow(cluster.client(), keys.clone())
        .await
        .unwrap();
    assert!(leader::try_lead(&a, "a.test:8080").await.unwrap());
    assert!(
        leader::try_lead(&a, "a.test:8080").await.unwrap(),
        "still leads"
    );
    assert!(!leader::try_lead(&b, "b.test:8080").await.unwrap());
    // Each lead has a term of its own: a's is the first; b, not leading, has none.
    assert_eq!(leader::term(&a, "a.test:8080").await.unwrap(), Some(1));
    assert_eq!(leader::term(&b, "b.test:8080").await.unwrap(), None);
    let as_a = Leader::of(&a, "a.test:8080");
    until(Duration::from_secs(5), || {
        seen.leader() == Some(as_a.clone())
    })
    .await;

    let record = HostRecord {
        tenant: "t1".into(),
        info: serde_json::json!({ "id": "t1", "slug": "app" }),
        control: "a".into(),
    };
    let put = [Change::Put("app.example.com".into(), record.clone())];
    assert!(hosts::apply(&a, &as_a, &put).await.unwrap().is_some());
    until(Duration::from_secs(5), || {
        seen.host("app.example.com").as_deref() == Some(&record)
    })
    .await;
    // b does not lead: its writes to the mirror are refused.
    let as_b = Leader::of(&b, "b.test:8080");
    let delete = [Change::Delete("app.example.com".into())];
    assert_eq!(hosts::apply(&b, &as_b, &delete).await.unwrap(), None);
    // Names that are not plain DNS names are refused before anything is written.
    let bad = [Change::Put("../x".into(), record.clone())];
    assert!(hosts::apply(&a, &as_a, &bad).await.is_err());

    // a leaves: b takes the lead, and a's record no longer lets a write.
    a.leave().await.unwrap();
    until(Duration::from_secs(5), || seen.leader().is_none()).await;
    assert!(hosts::apply(&a, &as_a, &delete).await.is_err(), "a left");
    assert!(leader::try_lead(&b, "b.test:8080").await.unwrap());
    assert_eq!(
        leader::term(&b, "b.test:8080").await.unwrap(),
        Some(2),
        "the next lead's term is higher"
    );
    assert!(hosts::apply(&b, &as_b, &delete).await.unwrap().is_some());
    until(Duration::from_secs(5), || {
        seen.host("app.example.com").is_none()
    })
    .await;
    assert!(seen.hosts().is_empty());

    // A first claim is granted once, with generation 1; never for a tenant owned before.
    let first = ownership::claim_new(&b, "t2").await.unwrap().unwrap();
    assert_eq!(first.generation, 1);
    assert_eq!(ownership::claim_new(&b, "t2").await.unwrap(), None);
    assert!(ownership::release(&b, "t2", &first).await.unwrap());
    assert_eq!(ownership::claim_new(&b, "t2").await.unwrap(), None);
}
