//! ACME shared by the nodes of a cluster, against a real three-member etcd cluster and the real
//! Pebble CA (both started by `tests/suites/acme-cluster`, which passes them in `WARREN_ETCD`
//! and `WARREN_TEST_ACME_*`). Ignored in the plain test run.
//!
//! Two edges share one etcd and are asked for the same name at once: the CA must see one order,
//! the challenge must be answered by the edge that did not place it (a proxy on the CA's
//! validation port routes to that edge only), and both edges must then serve the certificate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use warren_cluster::etcd::Etcd;
use warren_edge::{AcmeConfig, CertStatus, Challenge, Edge, EtcdState, Hosts, TlsSettings};

#[path = "../../cluster/tests/support/etcd_cluster.rs"]
mod etcd_cluster;
use etcd_cluster::Cluster as EtcdCluster;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run tests/suites/acme-cluster"))
}

/// Serves every name under `.cluster.test`; keeps the statuses it is given.
#[derive(Default)]
struct TestHosts {
    statuses: Mutex<Vec<CertStatus>>,
}

impl Hosts for TestHosts {
    fn allowed<'a>(&'a self, name: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move { name.ends_with(".cluster.test") })
    }

    fn record(&self, status: CertStatus) -> BoxFuture<'_, ()> {
        self.statuses.lock().unwrap().push(status);
        Box::pin(async {})
    }
}

/// One node's edge: ACME state in etcd, a plain listener (HTTP-01) and an HTTPS listener.
struct Node {
    edge: Edge,
    plain: u16,
    https: u16,
    _data: tempfile::TempDir,
}

impl Node {
    /// A node of the long-lived CA, renewal checks hourly.
    async fn start(etcd: &Etcd, challenge: Challenge) -> Self {
        let directory = env("WARREN_TEST_ACME_DIRECTORY");
        Self::start_with(etcd, challenge, &directory, Duration::from_secs(3600)).await
    }

    async fn start_with(
        etcd: &Etcd,
        challenge: Challenge,
        directory: &str,
        renew_check: Duration,
    ) -> Self {
        let data = tempfile::tempdir().unwrap();
        let settings = TlsSettings {
            data_dir: data.path().to_path_buf(),
            domain: "warren.test".into(),
            operator_cert: None,
            acme: Some(AcmeConfig {
                directory: directory.to_string(),
                email: None,
                ca_root: Some(env("WARREN_TEST_ACME_CA_ROOT").into()),
                challenges: vec![challenge],
                state_dir: data.path().join("acme"),
                retry_base: Duration::from_secs(1),
            }),
            renew_check,
        };
        let state = Arc::new(EtcdState::new(etcd.clone(), "acme-test").unwrap());
        let edge = Edge::start_with(settings, Arc::new(TestHosts::default()), Some(state))
            .await
            .unwrap();
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (plain_port, https_port) = (
            plain.local_addr().unwrap().port(),
            tls.local_addr().unwrap().port(),
        );
        let router = edge.plain_router(https_port);
        tokio::spawn(warren_edge::serve(
            plain,
            warren_edge::App::new(router),
            std::future::pending(),
        ));
        let app = axum::Router::new().fallback(|| async { "served" });
        let listener = edge.listener(tls).unwrap();
        tokio::spawn(warren_edge::serve_tls(
            listener,
            warren_edge::App::new(app),
            std::future::pending(),
        ));
        Self {
            edge,
            plain: plain_port,
            https: https_port,
            _data: data,
        }
    }

    fn counter(
        &self,
        pick: fn(&warren_edge::acme::Counters) -> &std::sync::atomic::AtomicU64,
    ) -> u64 {
        pick(&self.edge.acme.as_ref().unwrap().counters).load(Ordering::SeqCst)
    }

    fn orders(&self) -> u64 {
        self.counter(|c| &c.orders)
    }
}

/// The CA's validation port: each connection goes to the node of `pair` that has placed no
/// order (`port` picks the plain or HTTPS listener); counts the connections each node got.
struct Validator {
    pair: Arc<Mutex<Option<[Arc<Node>; 2]>>>,
    reached: Arc<[AtomicUsize; 2]>,
}

impl Validator {
    async fn start(port: u16, https: bool) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let pair: Arc<Mutex<Option<[Arc<Node>; 2]>>> = Arc::default();
        let reached: Arc<[AtomicUsize; 2]> = Arc::default();
        let (p, r) = (pair.clone(), reached.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = {
                    let pair = p.lock().unwrap();
                    let Some(nodes) = pair.as_ref() else {
                        continue;
                    };
                    let i = usize::from(nodes[0].orders() > 0);
                    r[i].fetch_add(1, Ordering::SeqCst);
                    if https {
                        nodes[i].https
                    } else {
                        nodes[i].plain
                    }
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { pair, reached }
    }

    fn route_to(&self, nodes: [Arc<Node>; 2]) {
        *self.pair.lock().unwrap() = Some(nodes);
        for count in self.reached.iter() {
            count.store(0, Ordering::SeqCst);
        }
    }
}

/// Orders Pebble has received, from its log.
fn ca_orders() -> usize {
    std::fs::read_to_string(env("WARREN_TEST_PEBBLE_LOG"))
        .unwrap()
        .matches("Added order")
        .count()
}

/// The leaf certificate `port` presents for `name`, verified against the CA's root.
async fn served_leaf(port: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut pem = std::fs::read(env("WARREN_TEST_ACME_ROOT")).unwrap();
    pem.extend(std::fs::read(env("WARREN_TEST_ACME_SHORT_ROOT")).unwrap());
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(warren_edge::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    let chain = session.peer_certificates().ok_or("no certificate")?;
    Ok(chain[0].to_vec())
}

/// Waits until `node` serves a CA-signed certificate for `name`.
async fn wait_served(node: &Node, name: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match served_leaf(node.https, name).await {
            Ok(leaf) => return leaf,
            Err(e) => assert!(
                Instant::now() < deadline,
                "{name} was never served on :{}: {e}",
                node.https
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until both nodes' attempts for the name are over (one issued, one adopted).
async fn wait_settled(nodes: &[Arc<Node>; 2]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |n: &Node| n.counter(|c| &c.issued) + n.counter(|c| &c.adopted);
    while done(&nodes[0]) + done(&nodes[1]) < 2 {
        assert!(Instant::now() < deadline, "the second node never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks both nodes for `name` at once and checks one order, the other node validating, and
/// both serving the certificate.
async fn one_order_for_two_nodes(
    etcd: &Etcd,
    validator: &Validator,
    challenge: Challenge,
    name: &str,
) {
    let nodes = [
        Arc::new(Node::start(etcd, challenge).await),
        Arc::new(Node::start(etcd, challenge).await),
    ];
    validator.route_to(nodes.clone());
    let before = ca_orders();
    for node in &nodes {
        node.edge.acme.as_ref().unwrap().request(name);
    }
    let first = wait_served(&nodes[0], name).await;
    let second = wait_served(&nodes[1], name).await;
    wait_settled(&nodes).await;

    assert_eq!(first, second, "both nodes serve the one certificate");
    let orders: Vec<u64> = nodes.iter().map(|n| n.orders()).collect();
    assert_eq!(
        orders.iter().sum::<u64>(),
        1,
        "one order cluster-wide: {orders:?}"
    );
    assert_eq!(ca_orders() - before, 1, "the CA saw one order");
    let orderer = usize::from(orders[1] == 1);
    let other = 1 - orderer;
    assert_eq!(nodes[orderer].counter(|c| &c.issued), 1);
    assert_eq!(nodes[other].counter(|c| &c.adopted), 1);
    assert_eq!(
        validator.reached[orderer].load(Ordering::SeqCst),
        0,
        "the ordering node was never asked to validate"
    );
    assert!(
        validator.reached[other].load(Ordering::SeqCst) > 0,
        "the CA validated {} through the other node",
        challenge.name()
    );

    // The order lock is gone and the certificate is in etcd for nodes yet to come.
    let lock = format!("/warren/acme-test/acme/orders/{name}");
    assert!(etcd.get(&lock).await.unwrap().is_none());
    let cert = format!("/warren/acme-test/acme/certs/{name}");
    assert!(etcd.get(&cert).await.unwrap().is_some());
    let third = Node::start(etcd, challenge).await;
    assert_eq!(wait_served(&third, name).await, first);
    assert_eq!(third.orders(), 0, "a third node serves it without ordering");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and Pebble: tests/suites/acme-cluster"]
async fn an_order_is_made_once_per_name_and_any_node_answers_the_challenge() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = EtcdCluster::start();
    let etcd = cluster.client();
    let http = Validator::start(env("WARREN_TEST_ACME_HTTP_PORT").parse().unwrap(), false).await;
    let alpn = Validator::start(env("WARREN_TEST_ACME_HTTPS_PORT").parse().unwrap(), true).await;

    one_order_for_two_nodes(&etcd, &http, Challenge::Http01, "one.cluster.test").await;
    let accounts = etcd
        .list("/warren/acme-test/acme/accounts/")
        .await
        .unwrap()
        .0;
    assert_eq!(accounts.len(), 1, "one ACME account, stored for every node");

    one_order_for_two_nodes(&etcd, &alpn, Challenge::TlsAlpn01, "two.cluster.test").await;
    let accounts = etcd
        .list("/warren/acme-test/acme/accounts/")
        .await
        .unwrap()
        .0;
    assert_eq!(accounts.len(), 1, "the second pair used the stored account");
}

/// Polls `check` until it holds, for at most `limit`.
async fn eventually<F: std::future::Future<Output = bool>>(limit: Duration, check: impl Fn() -> F) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "the condition never held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs etcd: tests/suites/acme-cluster"]
async fn the_etcd_state_is_shared_by_nodes_and_kept_apart_by_cluster() {
    use warren_edge::AcmeState;
    use warren_edge::acme_state::StoredCert;

    let cluster = EtcdCluster::start();
    let etcd = cluster.client();
    let a = EtcdState::new(etcd.clone(), "shared").unwrap();
    let b = EtcdState::new(etcd.clone(), "shared").unwrap();
    let other = EtcdState::new(etcd.clone(), "elsewhere").unwrap();
    let name = "x.cluster.test";

    // The order lock: one holder at a time, across nodes; free again when released, or when
    // its holder's lease runs out; a stale holder's release leaves the new holder's lock.
    let long = Duration::from_secs(60);
    let held = a.lock_order(name, long).await.unwrap().expect("free");
    assert!(b.lock_order(name, long).await.unwrap().is_none());
    assert!(other.lock_order(name, long).await.unwrap().is_some());
    a.unlock_order(held).await;
    let short = b.lock_order(name, Duration::from_secs(1)).await.unwrap();
    let short = short.expect("released");
    eventually(Duration::from_secs(10), || async {
        a.lock_order(name, long).await.unwrap().is_some()
    })
    .await;
    b.unlock_order(short).await;
    assert!(
        b.lock_order(name, long).await.unwrap().is_none(),
        "a's lock stays"
    );

    // The account is created once: a second node's credentials lose to the first's.
    let dir = "https://ca.test/dir";
    assert_eq!(a.save_account(dir, b"first").await.unwrap(), b"first");
    assert_eq!(b.save_account(dir, b"second").await.unwrap(), b"first");
    assert_eq!(b.account(dir).await.unwrap().unwrap(), b"first");
    assert!(other.account(dir).await.unwrap().is_none());

    // Challenge answers: published by one node, answered by the other, gone when withdrawn
    // or when their lease ends.
    let ttl = Duration::from_secs(60);
    a.publish_challenge(Challenge::Http01, "tok-1", b"tok-1.thumb", ttl)
        .await
        .unwrap();
    assert_eq!(
        b.challenge(Challenge::Http01, "tok-1").await.unwrap(),
        b"tok-1.thumb"
    );
    assert!(b.challenge(Challenge::TlsAlpn01, "tok-1").await.is_none());
    assert!(other.challenge(Challenge::Http01, "tok-1").await.is_none());
    b.remove_challenge(Challenge::Http01, "tok-1").await;
    assert!(a.challenge(Challenge::Http01, "tok-1").await.is_none());
    a.publish_challenge(Challenge::TlsAlpn01, name, &[7; 32], Duration::from_secs(1))
        .await
        .unwrap();
    assert!(b.challenge(Challenge::TlsAlpn01, name).await.is_some());
    eventually(Duration::from_secs(10), || async {
        b.challenge(Challenge::TlsAlpn01, name).await.is_none()
    })
    .await;
    assert!(
        a.publish_challenge(Challenge::Http01, "../x", b"x", ttl)
            .await
            .is_err()
    );

    // Certificates with their validity, listed for renewals by every node.
    let cert = StoredCert {
        chain: "chain".into(),
        key: "key".into(),
    };
    let facts = warren_edge::x509::Facts {
        not_before: 1,
        not_after: 2,
        issuer: "Pebble".into(),
    };
    a.save_certificate(name, &cert, &facts).await.unwrap();
    assert_eq!(b.certificate(name).await.unwrap(), Some(cert));
    assert_eq!(
        b.certificates().await.unwrap(),
        vec![(name.to_string(), facts)]
    );
    assert!(other.certificates().await.unwrap().is_empty());
    b.remove_certificate(name).await.unwrap();
    assert!(a.certificate(name).await.unwrap().is_none());
    assert!(a.certificates().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd and Pebble: tests/suites/acme-cluster"]
async fn a_renewal_is_ordered_once_and_served_by_every_node() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = EtcdCluster::start();
    let etcd = cluster.client();
    let http = Validator::start(env("WARREN_TEST_ACME_HTTP_PORT").parse().unwrap(), false).await;
    // A CA issuing 30-second certificates: renewals fall due about 20 s after issuance.
    let directory = env("WARREN_TEST_ACME_SHORT_DIRECTORY");
    let every = Duration::from_secs(1);
    let nodes = [
        Arc::new(Node::start_with(&etcd, Challenge::Http01, &directory, every).await),
        Arc::new(Node::start_with(&etcd, Challenge::Http01, &directory, every).await),
    ];
    http.route_to(nodes.clone());
    let name = "renewed.cluster.test";
    for node in &nodes {
        node.edge.acme.as_ref().unwrap().request(name);
    }
    let first = wait_served(&nodes[0], name).await;
    assert_eq!(wait_served(&nodes[1], name).await, first);
    wait_settled(&nodes).await;

    // Both nodes find the certificate due; one orders, and both serve the new certificate
    // (the other adopts it under the lock, or its renewal check installs it).
    let total = |pick: fn(&warren_edge::acme::Counters) -> &std::sync::atomic::AtomicU64| {
        nodes.iter().map(|n| n.counter(pick)).sum::<u64>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let renewed = total(|c| &c.renewals) == 1;
        let leaves = [
            served_leaf(nodes[0].https, name).await,
            served_leaf(nodes[1].https, name).await,
        ];
        if renewed
            && let [Ok(a), Ok(b)] = &leaves
            && a != &first
            && a == b
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewal never reached both nodes: renewals {}",
            total(|c| &c.renewals)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(total(|c| &c.orders), 2, "one order to issue, one to renew");
    assert_eq!(total(|c| &c.issued), 2);
    assert_eq!(
        std::fs::read_to_string(env("WARREN_TEST_PEBBLE_SHORT_LOG"))
            .unwrap()
            .matches("Added order")
            .count(),
        2,
        "the CA saw two orders"
    );
}
