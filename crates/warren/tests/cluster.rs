//! Three `warren serve` nodes in cluster mode over a real three-member etcd on loopback: a
//! tenant created through one node answers through every node, realtime events reach SSE and
//! WebSocket subscribers on nodes that do not own the tenant, unknown hosts are refused everywhere, a
//! client cannot pass for a peer, and a node cut off from etcd refuses; with a shared backup
//! target, a tenant whose node is killed fails over to a survivor (timed; writes lost counted,
//! none under synchronous shipping), an operator's move, a rolling restart of all three
//! nodes under readers (unavailability per tenant timed), new tenants handed from the leader
//! to the node placement gives them (timed), a third node joining two that carry
//! many tenants taking its share of them (a pinned one staying), and the control plane's leader
//! killed without losing an account or a tenant (the platform's return timed), the leader cut
//! off from etcd under platform writes (refusing them before its lease can expire, every write
//! it acknowledged kept by the next leader, none sent to it later), and the usage and backup
//! runs of a tenant on a node that does not lead reaching the leader's control database,
//! counted once, also after the leader's death; platform actions on the data of a tenant
//! another node serves refused through the leader, not run on its stale copy, and the console's
//! superuser of such a project set on its owner. Ignored in the
//! plain run; `tests/suites/cluster` runs it
//! with `WARREN_ETCD` set.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "e2e/backup_s3.rs"]
#[allow(dead_code)]
mod backup_s3;
#[path = "../../cluster/tests/support/etcd_cluster.rs"]
mod etcd_cluster;
use etcd_cluster::{Cluster, Proxy, free_port};

const TOKEN: &str = "cluster-operator-token";
const EMAIL: &str = "root@example.com";
const PASSWORD: &str = "root-password-1";

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_warren")
}

/// One `warren serve` node, killed on drop.
struct Node {
    id: String,
    addr: SocketAddr,
    data_dir: tempfile::TempDir,
    child: Child,
    client: reqwest::Client,
    /// The etcd members and the extra flags it was started with (for a restart).
    etcd: Vec<String>,
    flags: Vec<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts node `id` on a free port, talking to etcd at `etcd`, and waits until it listens.
    fn start(id: &str, etcd: &[String]) -> Self {
        Self::start_with(id, etcd, &[])
    }

    /// [`Node::start`] with more flags for `warren serve`. New tenants are provisioned on the
    /// leader and stay there, where the tests look for them, unless `flags` say otherwise.
    fn start_with(id: &str, etcd: &[String], flags: &[String]) -> Self {
        let mut flags = flags.to_vec();
        if !etcd.is_empty() && !flags.iter().any(|f| f.starts_with("--cluster-place-new")) {
            flags.push("--cluster-place-new=false".to_string());
        }
        Self::start_as_given(id, etcd, &flags)
    }

    /// [`Node::start`] with exactly `flags` (cluster defaults otherwise, but rebalancing off).
    fn start_as_given(id: &str, etcd: &[String], flags: &[String]) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Self::spawn(id, addr, data_dir.path(), etcd, flags);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            id: id.to_string(),
            addr,
            data_dir,
            child,
            client,
            etcd: etcd.to_vec(),
            flags: flags.to_vec(),
        }
    }

    /// Stops the node cleanly (SIGTERM: it drains, ships and leaves the cluster), then starts
    /// it again on the same address and data directory, and waits until it listens.
    fn restart(&mut self) {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{} stopped with {status}", self.id);
        self.child = Self::spawn(
            &self.id,
            self.addr,
            self.data_dir.path(),
            &self.etcd,
            &self.flags,
        );
    }

    /// Starts `warren serve` as node `id` and waits until it listens.
    fn spawn(
        id: &str,
        addr: SocketAddr,
        data_dir: &Path,
        etcd: &[String],
        flags: &[String],
    ) -> Child {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--http", &addr.to_string()])
            .args(flags);
        // Without etcd members: a single node (a baseline to compare the cluster with).
        if !etcd.is_empty() {
            command
                .args(["--cluster-etcd", &etcd.join(",")])
                .args(["--node-id", id, "--advertise", &addr.to_string()])
                .args(["--cluster-name", "e2e", "--cluster-lease-ttl", "2"])
                // Tenants stay where the tests put them unless a test turns rebalancing on.
                .args(
                    (!flags.iter().any(|f| f.starts_with("--cluster-rebalance")))
                        .then_some("--cluster-rebalance=false"),
                );
        }
        let mut child = command
            .env("WARREN_OPERATOR_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("node exited before listening").unwrap();
            if line.starts_with("Warren listening on http://") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        child
    }

    fn request(&self, method: Method, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}{path}", self.addr))
            .header(
                reqwest::header::HOST,
                format!("{host}:{}", self.addr.port()),
            )
    }

    fn has_tenant(&self, id: &str) -> bool {
        self.data_dir.path().join("tenants").join(id).is_dir()
    }

    fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Polls `check` every 20 ms until it holds; fails the test after `limit`.
async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An open SSE stream and the bytes read from it so far.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The next `(event, data)` frame.
    async fn frame(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), Value::Null);
                for line in frame.lines() {
                    match line.split_once(':') {
                        Some(("event", v)) => event = v.to_string(),
                        Some(("data", v)) => data = serde_json::from_str(v).unwrap(),
                        _ => {}
                    }
                }
                return (event, data);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// The next WebSocket message from the server (one unmasked text frame) as JSON.
async fn ws_message(socket: &mut tokio::net::TcpStream) -> Value {
    let read = async {
        let mut head = [0u8; 2];
        socket.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], 0x81, "a final text frame");
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                socket.read_exact(&mut ext).await.unwrap();
                u16::from_be_bytes(ext) as usize
            }
            127 => {
                let mut ext = [0u8; 8];
                socket.read_exact(&mut ext).await.unwrap();
                u64::from_be_bytes(ext) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        socket.read_exact(&mut payload).await.unwrap();
        serde_json::from_slice(&payload).unwrap()
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a WebSocket message within 10 s")
}

#[test]
fn cluster_flags_come_all_together() {
    let output = Command::new(binary())
        .args(["serve", "--http", "127.0.0.1:0", "--node-id", "n1"])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--cluster-etcd, --node-id and --advertise"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn three_nodes_serve_every_tenant_through_every_node() {
    let etcd = Cluster::start();
    // Node 3 reaches etcd only through a proxy the test can cut.
    let proxy = Proxy::start(&etcd.clients[0]).await;
    let n1 = Node::start("n1", &etcd.clients);
    // n1 leads the control plane before the others join (the test knows who owns what).
    let client = etcd.client();
    let control = "/warren/e2e/control";
    eventually(Duration::from_secs(10), "n1 leads", async || {
        client
            .get(control)
            .await
            .ok()
            .flatten()
            .is_some_and(|kv| String::from_utf8_lossy(&kv.value).contains("\"n1\""))
    })
    .await;
    let n2 = Node::start("n2", &etcd.clients);
    let n3 = Node::start("n3", std::slice::from_ref(&proxy.addr));
    let nodes = [&n1, &n2, &n3];

    // A tenant created through n2's operator API: the leader (n1) provisions and owns it.
    let (status, body) = send(
        n2.request(Method::POST, "localhost", "/v1/tenants")
            .bearer_auth(TOKEN)
            .json(&json!({ "slug": "orbit" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    assert!(n1.has_tenant(&id), "the leader provisions the tenant");
    assert!(!n2.has_tenant(&id) && !n3.has_tenant(&id));
    // The operator API answers the same through every node (the leader's database).
    for node in nodes {
        let (status, body) = send(
            node.request(Method::GET, "localhost", "/v1/tenants/orbit")
                .bearer_auth(TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{}: {body}", node.id);
        assert_eq!(body["id"], id.as_str());
    }

    // Through n2's operator API: forwarded to the leader, which owns the tenant.
    let (status, body) = send(
        n2.request(Method::PUT, "localhost", "/v1/tenants/orbit/superuser")
            .bearer_auth(TOKEN)
            .json(&json!({ "email": EMAIL, "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Signed in through n3, a collection made through n2: both forwarded to the owner.
    let (status, body) = send(
        n3.request(
            Method::POST,
            "orbit.localhost",
            "/api/collections/_superusers/auth-with-password",
        )
        .json(&json!({ "identity": EMAIL, "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let (status, body) = send(
        n2.request(Method::POST, "orbit.localhost", "/api/collections")
            .header("Authorization", &token)
            .json(&json!({
                "name": "notes", "type": "base",
                "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{ "name": "title", "type": "text" }],
            })),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A realtime subscriber on n2 (not the owner) ...
    let response = n2
        .request(Method::GET, "orbit.localhost", "/api/realtime")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = Events {
        response,
        buffer: String::new(),
    };
    let (event, data) = events.frame().await;
    assert_eq!(event, "PB_CONNECT");
    let client_id = data["clientId"].as_str().unwrap().to_string();
    let (status, body) = send(
        n2.request(Method::POST, "orbit.localhost", "/api/realtime")
            .json(&json!({ "clientId": client_id, "subscriptions": ["notes"] })),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    // A WebSocket subscriber on n3 (not the owner either), subscribed through n2.
    let mut socket = tokio::net::TcpStream::connect(n3.addr).await.unwrap();
    let handshake = format!(
        "GET /api/realtime/ws HTTP/1.1\r\nHost: orbit.localhost:{}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        n3.addr.port()
    );
    socket.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let hello = ws_message(&mut socket).await;
    assert_eq!(hello["event"], "PB_CONNECT");
    let (status, body) = send(
        n2.request(Method::POST, "orbit.localhost", "/api/realtime")
            .json(&json!({ "clientId": hello["data"]["clientId"], "subscriptions": ["notes"] })),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    // ... and records created, listed and viewed through every node.
    let mut ids = Vec::new();
    for node in nodes {
        let (status, body) = send(
            node.request(
                Method::POST,
                "orbit.localhost",
                "/api/collections/notes/records",
            )
            .json(&json!({ "title": format!("from {}", node.id) })),
        )
        .await;
        assert_eq!(status, 200, "{}: {body}", node.id);
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    for node in nodes {
        let (status, body) = send(node.request(
            Method::GET,
            "orbit.localhost",
            "/api/collections/notes/records",
        ))
        .await;
        assert_eq!(status, 200, "{}: {body}", node.id);
        assert_eq!(body["totalItems"], 3, "{}: {body}", node.id);
        for record in &ids {
            let (status, body) = send(node.request(
                Method::GET,
                "orbit.localhost",
                &format!("/api/collections/notes/records/{record}"),
            ))
            .await;
            assert_eq!(status, 200, "{}: {body}", node.id);
            assert_eq!(body["id"], record.as_str());
        }
    }
    // The subscriber on n2 saw the write sent to n3 (and the others), owner n1 in between.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (event, data) = events.frame().await;
        assert_eq!(event, "notes");
        assert_eq!(data["action"], "create");
        seen.push(data["record"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ids);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let message = ws_message(&mut socket).await;
        assert_eq!(message["event"], "notes");
        seen.push(
            message["data"]["record"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(seen, ids, "the WebSocket subscriber on n3 saw every write");
    drop(socket);

    // Unknown hosts are refused on every node.
    for node in nodes {
        for host in ["nobody.localhost", "example.org"] {
            let (status, body) = send(node.request(Method::GET, host, "/api/health")).await;
            assert_eq!(status, 404, "{} {host}: {body}", node.id);
        }
    }

    // A client that marks its request as a peer's, with or without a made-up secret, is a
    // client: n3 forwards it as any other request (not refused as a second hop).
    for secret in [None, Some("not-the-cluster-secret-at-all")] {
        let mut request = n3
            .request(
                Method::GET,
                "orbit.localhost",
                "/api/collections/notes/records",
            )
            .header("x-warren-forwarded-by", "n1");
        if let Some(secret) = secret {
            request = request.header("x-warren-cluster-secret", secret);
        }
        let (status, body) = send(request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["totalItems"], 3);
    }

    // The owner sees the client's own address: through a peer, the one the peer saw (here
    // 127.0.0.2); from a client marking its request as a peer's, the socket's (127.0.0.3),
    // whatever X-Forwarded-For it sends.
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let response = from("127.0.0.2")
        .get(format!("http://{}/api/health?via=peer", n2.addr))
        .header(reqwest::header::HOST, "orbit.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = from("127.0.0.3")
        .get(format!("http://{}/api/health?via=spoof", n1.addr))
        .header(reqwest::header::HOST, "orbit.localhost")
        .header("x-warren-forwarded-by", "n2")
        .header("x-warren-cluster-secret", "not-the-cluster-secret-at-all")
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for (via, ip) in [("peer", "127.0.0.2"), ("spoof", "127.0.0.3")] {
        let filter = format!("data.url = '/api/health?via={via}'");
        let mut found = Value::Null;
        eventually(Duration::from_secs(10), "the request's log", async || {
            let (status, body) = send(
                n3.request(Method::GET, "orbit.localhost", "/api/logs")
                    .header("Authorization", &token)
                    .query(&[("filter", filter.as_str())]),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            found = body["items"][0]["data"].clone();
            !found.is_null()
        })
        .await;
        assert_eq!(found["remoteIP"], ip, "{via}: {found}");
    }

    // n3 cut off from etcd refuses within half its lease (1 s) plus a renewal period, while
    // n1 and n2 go on serving.
    proxy.cut();
    let cut = Instant::now();
    eventually(Duration::from_secs(3), "n3 refuses", async || {
        let (status, _) = send(n3.request(Method::GET, "orbit.localhost", "/api/health")).await;
        status == 503
    })
    .await;
    assert!(
        cut.elapsed() < Duration::from_secs(2),
        "{:?}",
        cut.elapsed()
    );
    let (status, body) = send(n3.request(
        Method::POST,
        "orbit.localhost",
        "/api/collections/notes/records",
    ))
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], 503);
    let (status, _) = send(
        n3.request(Method::GET, "localhost", "/v1/tenants")
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 503, "the fenced node refuses the platform too");
    for node in [&n1, &n2] {
        let (status, body) = send(node.request(
            Method::GET,
            "orbit.localhost",
            "/api/collections/notes/records",
        ))
        .await;
        assert_eq!(status, 200, "{}: {body}", node.id);
    }
    drop(events);

    // Back in contact once its lease has expired, n3 learns it is gone and stops with an
    // error (a supervisor restarting it makes it join again).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    proxy.mend();
    let mut n3 = n3;
    let mut exit = None;
    eventually(Duration::from_secs(10), "n3 stops", async || {
        exit = n3.child.try_wait().unwrap();
        exit.is_some()
    })
    .await;
    assert!(!exit.unwrap().success());

    // n1 (leader and owner) shuts down cleanly: its lease is revoked, n2 leads at once, and
    // the tenant, still routed by the mirror, is claimed by n2 under the next generation. Its
    // data is on n1's disk, so n2 answers "moving" (the restore from the backup target is the
    // next step).
    let mut n1 = n1;
    let stopped = Command::new("kill")
        .args(["-TERM", &n1.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let exit = n1.child.wait().unwrap();
    assert!(exit.success(), "a clean shutdown ends well: {exit:?}");
    eventually(Duration::from_secs(5), "n2 leads", async || {
        let (status, _) = send(
            n2.request(Method::GET, "localhost", "/v1/tenants")
                .bearer_auth(TOKEN),
        )
        .await;
        status == 200
    })
    .await;
    let (status, body) = send(n2.request(Method::GET, "orbit.localhost", "/api/health")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["message"],
        "The project is moving between servers; try again shortly."
    );
    let generation =
        std::fs::read_to_string(n2.data_dir().join("cluster").join("generations").join(&id))
            .unwrap();
    assert_eq!(generation, "2");
}

/// The shared backup target's flags, shipping each tenant's WAL every second: the SeaweedFS
/// bucket `tests/suites/cluster` starts (`WARREN_TEST_S3_*`), under a prefix of this test's own,
/// or, run by hand without those, directory `target`.
fn backup_flags(target: &Path) -> Vec<String> {
    let mut flags = match std::env::var("WARREN_TEST_S3_ENDPOINT") {
        Ok(endpoint) => {
            let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
            let name = target.file_name().unwrap().to_string_lossy();
            let prefix = name.trim_start_matches('.');
            vec![
                format!(
                    "--backup-url=s3://{}/{}",
                    var("WARREN_TEST_S3_BUCKET"),
                    prefix
                ),
                format!("--backup-s3-endpoint={endpoint}"),
                format!(
                    "--backup-s3-access-key={}",
                    var("WARREN_TEST_S3_ACCESS_KEY")
                ),
                format!("--backup-s3-secret={}", var("WARREN_TEST_S3_SECRET")),
            ]
        }
        Err(_) => vec![format!("--backup-url=file://{}", target.display())],
    };
    flags.push("--backup-wal-every=1s".to_string());
    flags
}

/// The operator's `POST /v1/tenants/{slug}/move` through `node` (the body still to add).
fn move_request(node: &Node, slug: &str) -> reqwest::RequestBuilder {
    node.request(
        Method::POST,
        "localhost",
        &format!("/v1/tenants/{slug}/move"),
    )
    .bearer_auth(TOKEN)
}

/// Waits until node `leader` leads the control plane (its id in etcd's `control` key) and
/// serves the platform (a new leader restores the control database first).
async fn wait_leads(etcd: &Cluster, leader: &Node) {
    let client = etcd.client();
    let quoted = format!("\"{}\"", leader.id);
    eventually(
        Duration::from_secs(10),
        &format!("{} leads", leader.id),
        async || {
            client
                .get("/warren/e2e/control")
                .await
                .ok()
                .flatten()
                .is_some_and(|kv| String::from_utf8_lossy(&kv.value).contains(&quoted))
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        &format!("{} serves the platform", leader.id),
        async || listing(leader, "/v1/tenants").await.0 == 200,
    )
    .await;
}

/// The names directly under `dir` in the backup target [`backup_flags`] gives for `target`:
/// the SeaweedFS bucket's keys under the test's prefix, or the directory's entries.
async fn target_entries(target: &Path, dir: &str) -> Vec<String> {
    let flags = backup_flags(target);
    if !flags.iter().any(|f| f.starts_with("--backup-url=s3://")) {
        return std::fs::read_dir(target.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    }
    let under = format!("{dir}/");
    let mut names: Vec<String> = backup_s3::list(&flags, &under)
        .await
        .iter()
        .filter_map(|key| {
            key.strip_prefix(&under)?
                .split('/')
                .next()
                .map(str::to_string)
        })
        .collect();
    names.dedup();
    names
}

/// Starts etcd and nodes n1 (leading the control plane), n2 and n3 sharing one backup target.
async fn three_nodes_with_backups(etcd: &Cluster, target: &Path) -> [Node; 3] {
    three_nodes_with_backups_and(etcd, target, &[]).await
}

/// [`three_nodes_with_backups`] with more flags for every node.
async fn three_nodes_with_backups_and(etcd: &Cluster, target: &Path, extra: &[&str]) -> [Node; 3] {
    let mut flags = backup_flags(target);
    flags.extend(extra.iter().map(|f| f.to_string()));
    let n1 = Node::start_with("n1", &etcd.clients, &flags);
    wait_leads(etcd, &n1).await;
    let n2 = Node::start_with("n2", &etcd.clients, &flags);
    let n3 = Node::start_with("n3", &etcd.clients, &flags);
    [n1, n2, n3]
}

/// Creates tenant `slug` through `leader` (which provisions and owns it) with a `notes`
/// collection anyone may write, and waits until the snapshot starting its WAL chain is in the
/// backup target. Returns the tenant's id.
async fn tenant_with_notes(leader: &Node, slug: &str) -> String {
    let id = tenant_with_notes_unshipped(leader, slug).await;
    first_snapshot(leader, slug).await;
    id
}

/// Creates tenant `slug` through `leader` with a `notes` collection anyone may write; the
/// tenant's id.
async fn tenant_with_notes_unshipped(leader: &Node, slug: &str) -> String {
    let (status, body) = send(
        leader
            .request(Method::POST, "localhost", "/v1/tenants")
            .bearer_auth(TOKEN)
            .json(&json!({ "slug": slug })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    // On a cluster node's data directory the CLI refuses: its copy may be stale.
    let output = Command::new(binary())
        .arg("--data-dir")
        .arg(leader.data_dir())
        .args(["superuser", "upsert", slug, EMAIL, PASSWORD])
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("/v1/tenants/"),
        "{output:?}"
    );
    let (status, body) = send(
        leader
            .request(
                Method::PUT,
                "localhost",
                &format!("/v1/tenants/{slug}/superuser"),
            )
            .bearer_auth(TOKEN)
            .json(&json!({ "email": EMAIL, "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let host = format!("{slug}.localhost");
    let (status, body) = send(
        leader
            .request(
                Method::POST,
                &host,
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({ "identity": EMAIL, "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        leader
            .request(Method::POST, &host, "/api/collections")
            .header("Authorization", body["token"].as_str().unwrap())
            .json(&json!({
                "name": "notes", "type": "base",
                "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{ "name": "title", "type": "text" }],
            })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    id
}

/// Waits until the snapshot starting tenant `slug`'s WAL chain is in the backup target.
async fn first_snapshot(leader: &Node, slug: &str) {
    eventually(
        Duration::from_secs(30),
        "the snapshot starting the chain",
        async || {
            let (_, body) = send(
                leader
                    .request(
                        Method::GET,
                        "localhost",
                        &format!("/v1/tenants/{slug}/backups"),
                    )
                    .bearer_auth(TOKEN),
            )
            .await;
            body["items"]
                .as_array()
                .is_some_and(|items| !items.is_empty())
        },
    )
    .await;
}

/// Titles of acknowledged writes, with the moment of each acknowledgement.
type Acked = std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>;

/// Writers creating `notes` records in tenant `slug` through `node` until it stops answering;
/// each acknowledged title is kept with the moment of its acknowledgement.
fn writers(node: &Node, slug: &str, count: usize) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let handles = (0..count)
        .map(|w| {
            let acked = acked.clone();
            let request = node.request(
                Method::POST,
                &format!("{slug}.localhost"),
                "/api/collections/notes/records",
            );
            tokio::spawn(async move {
                for k in 0.. {
                    let title = format!("w{w}-{k}");
                    let sent = request
                        .try_clone()
                        .unwrap()
                        .json(&json!({ "title": title }))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            acked.lock().unwrap().push((title, Instant::now()))
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    (acked, handles)
}

/// Every `notes` title of tenant `slug` as `node` serves it.
async fn titles(node: &Node, slug: &str) -> HashSet<String> {
    let mut all = HashSet::new();
    for page in 1.. {
        let (status, body) = send(
            node.request(
                Method::GET,
                &format!("{slug}.localhost"),
                "/api/collections/notes/records",
            )
            .query(&[("perPage", "500"), ("page", &page.to_string())]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().unwrap();
        all.extend(
            items
                .iter()
                .map(|i| i["title"].as_str().unwrap().to_string()),
        );
        if items.len() < 500 {
            break;
        }
    }
    all
}

/// What a failover did: the writes acknowledged before the kill, those lost, the age (before
/// the kill) of the oldest lost one, the time from the kill to the first answer with data, and
/// the same time for each of the dead node's other tenants (sorted).
struct Failover {
    acked: usize,
    lost: usize,
    oldest_lost: Option<Duration>,
    took: Duration,
    others: Vec<Duration>,
}

/// Tenant `slug` on n1 (on `shipping`: "async" or "sync") under sixteen writers (as issue #21 measures it) for `writing`;
/// n1 is killed with SIGKILL, and n2 and n3 are asked for the tenant until one of them has
/// claimed it (after n1's lease expired) and restored it from the backup target. n1 also owns
/// `others` quieter tenants (a record each), asked for through the survivors after the kill
/// too: each one's time until it serves its record again is measured.
async fn fail_over(shipping: &str, writing: Duration, others: usize) -> Failover {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [mut n1, n2, n3] = three_nodes_with_backups(&etcd, target.path()).await;
    let slug = format!("fail{shipping}");
    let id = tenant_with_notes(&n1, &slug).await;
    let quiet: Vec<String> = (0..others).map(|i| format!("quiet{i}")).collect();
    for other in &quiet {
        tenant_with_notes_unshipped(&n1, other).await;
        let (status, body) = send(
            n1.request(
                Method::POST,
                &format!("{other}.localhost"),
                "/api/collections/notes/records",
            )
            .json(&json!({ "title": "kept" })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    for other in &quiet {
        first_snapshot(&n1, other).await;
    }
    if shipping == "sync" {
        let (status, body) = send(
            n1.request(Method::PATCH, "localhost", &format!("/v1/tenants/{slug}"))
                .bearer_auth(TOKEN)
                .json(&json!({ "shipping": "sync" })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["limits"]["shipping"], "sync", "{body}");
    }

    let (acked, handles) = writers(&n1, &slug, 16);
    tokio::time::sleep(writing).await;
    n1.child.kill().unwrap();
    let killed = Instant::now();
    n1.child.wait().unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 4, "the writers wrote: {}", acked.len());

    // Until a survivor has the tenant, every answer is a 503 envelope: "cannot be reached"
    // while n1's owner record lives, then "moving" while the new owner restores.
    let host = format!("{slug}.localhost");
    let mut moving = 0;
    let mut serving = None;
    let deadline = killed + Duration::from_secs(30);
    'wait: while Instant::now() < deadline {
        for node in [&n2, &n3] {
            let (status, body) = send(
                node.request(Method::GET, &host, "/api/collections/notes/records")
                    .query(&[("perPage", "1")]),
            )
            .await;
            if status == 200 {
                assert!(body["totalItems"].as_u64().unwrap() > 0, "{body}");
                serving = Some(node);
                break 'wait;
            }
            assert_eq!(status, 503, "{}: {body}", node.id);
            assert_eq!(body["status"], 503, "{body}");
            moving += u32::from(
                body["message"] == "The project is moving between servers; try again shortly.",
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let took = killed.elapsed();
    assert!(serving.is_some(), "no survivor served {slug} within 30 s");
    assert!(moving > 0, "the survivors answered 'moving' meanwhile");
    let owner = [&n2, &n3].into_iter().find(|n| n.has_tenant(&id)).unwrap();
    let generation = std::fs::read_to_string(
        owner
            .data_dir()
            .join("cluster")
            .join("generations")
            .join(&id),
    )
    .unwrap();
    assert_eq!(generation, "2", "the new owner claimed the next generation");

    // Each quieter tenant serves its record again through a survivor.
    let mut pending: Vec<&String> = quiet.iter().collect();
    let mut others = Vec::new();
    let mut turn = 0usize;
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} tenants not served within 30 s",
            pending.len()
        );
        let mut still = Vec::new();
        for other in pending {
            turn += 1;
            let node = if turn.is_multiple_of(2) { &n2 } else { &n3 };
            let (status, body) = send(node.request(
                Method::GET,
                &format!("{other}.localhost"),
                "/api/collections/notes/records",
            ))
            .await;
            if status == 200 && body["totalItems"] == 1 {
                others.push(killed.elapsed());
            } else {
                assert!(matches!(status, 200 | 503), "{other}: {status} {body}");
                still.push(other);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    others.sort();

    // Both survivors serve the same records; the lost ones are counted.
    let present = titles(&n2, &slug).await;
    assert_eq!(present, titles(&n3, &slug).await);
    let lost: Vec<&(String, Instant)> = acked
        .iter()
        .filter(|(title, _)| !present.contains(title))
        .collect();
    let oldest_lost = lost.iter().map(|(_, at)| killed - *at).max();

    // The new owner takes writes and ships them under its own chain.
    let (status, body) = send(
        n2.request(Method::POST, &host, "/api/collections/notes/records")
            .json(&json!({ "title": "after failover" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    Failover {
        acked: acked.len(),
        lost: lost.len(),
        oldest_lost,
        took,
        others,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_tenant_fails_over_to_a_survivor_when_its_node_dies() {
    let interval = Duration::from_secs(1);
    let failover = fail_over("async", Duration::from_secs(4), 8).await;
    let others = &failover.others;
    let (p50, p99) = (
        others[others.len() / 2],
        others[(others.len() * 99 / 100).min(others.len() - 1)],
    );
    println!(
        "failover (async shipping every {interval:?}, lease TTL 2 s): {:?} from kill -9 to the \
         first answer with the data; {} acknowledged writes, {} lost (oldest lost acknowledged \
         {:?} before the kill); the node's {} other tenants served again after p50 {p50:?}, \
         p99 {p99:?}",
        failover.took,
        failover.acked,
        failover.lost,
        failover.oldest_lost,
        others.len()
    );
    assert!(
        failover.took < Duration::from_secs(15),
        "{:?}",
        failover.took
    );
    assert!(p99 < Duration::from_secs(15), "p99 {p99:?}");
    // Only writes of the last shipping interval (plus a pass on a busy machine) may be lost.
    if let Some(oldest) = failover.oldest_lost {
        assert!(oldest <= interval + Duration::from_secs(3), "{oldest:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_tenant_on_synchronous_shipping_fails_over_without_losing_a_write() {
    let failover = fail_over("sync", Duration::from_secs(3), 0).await;
    println!(
        "failover (sync shipping, lease TTL 2 s): {:?} from kill -9 to the first answer with \
         the data; {} acknowledged writes, {} lost",
        failover.took, failover.acked, failover.lost
    );
    assert_eq!(failover.lost, 0, "every acknowledged write survives");
    assert!(
        failover.took < Duration::from_secs(15),
        "{:?}",
        failover.took
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn an_operator_moves_a_tenant_between_live_nodes_under_a_reader() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [n1, n2, n3] = three_nodes_with_backups(&etcd, target.path()).await;
    let slug = "mover";
    let host = format!("{slug}.localhost");
    let id = tenant_with_notes(&n1, slug).await;
    let mut titles_written = HashSet::new();
    for k in 0..20 {
        let title = format!("before-{k}");
        let (status, body) = send(
            n3.request(Method::POST, &host, "/api/collections/notes/records")
                .json(&json!({ "title": title })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        titles_written.insert(title);
    }
    // A realtime client of the tenant, through n3: the move's close disconnects it.
    let response = n3
        .request(Method::GET, &host, "/api/realtime")
        .send()
        .await
        .unwrap();
    let mut events = Events {
        response,
        buffer: String::new(),
    };
    assert_eq!(events.frame().await.0, "PB_CONNECT");

    // A reader through n3 for the whole move, keeping every answer's status and time.
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let reading = reading.clone();
        let request = n3.request(Method::GET, &host, "/api/collections/notes/records");
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, body) = send(request.try_clone().unwrap()).await;
                if status != 200 {
                    assert_eq!(status, 503, "{body}");
                    assert_eq!(body["status"], 503, "{body}");
                }
                answers.push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The move, asked through n2 (forwarded to the leader, n1, which owns the tenant).
    let (status, body) = send(move_request(&n2, slug).json(&json!({ "node": "n2" }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node"], "n2");
    assert_eq!(body["generation"], 2);
    eventually(
        Duration::from_secs(15),
        "n2 serves the tenant",
        async || {
            let (status, _) = send(n2.request(Method::GET, &host, "/api/health")).await;
            status == 200
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    let answers = reader.await.unwrap();
    let first_out = answers.iter().position(|(_, s)| *s != 200);
    let unavailable = match first_out {
        Some(first) => {
            let back = answers[first..]
                .iter()
                .find(|(_, s)| *s == 200)
                .expect("the reader is served again");
            back.0 - answers[first].0
        }
        None => Duration::ZERO,
    };
    println!(
        "planned move n1 -> n2: the reader saw {} answers, {} of them 503, unavailable for {unavailable:?}",
        answers.len(),
        answers.iter().filter(|(_, s)| *s != 200).count()
    );
    assert!(answers.last().unwrap().1 == 200);
    assert!(n2.has_tenant(&id));
    let generation =
        std::fs::read_to_string(n2.data_dir().join("cluster").join("generations").join(&id))
            .unwrap();
    assert_eq!(generation, "2");

    // The realtime client was disconnected by the close.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = events.response.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the realtime stream ended");

    // Every record is on the new owner, through every node; writes go on there.
    for node in [&n1, &n2, &n3] {
        assert_eq!(titles(node, slug).await, titles_written, "{}", node.id);
    }
    let (status, body) = send(
        n1.request(Method::POST, &host, "/api/collections/notes/records")
            .json(&json!({ "title": "after the move" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(titles(&n3, slug).await.len(), 21);

    // Back to n1, whose copy on disk is now older than the tenant: restored over, it serves
    // the write made on n2 too (generation 3).
    let (status, body) = send(move_request(&n3, slug).json(&json!({ "node": "n1" }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generation"], 3);
    eventually(
        Duration::from_secs(15),
        "n1 serves the tenant again",
        async || {
            let (status, _) = send(n1.request(Method::GET, &host, "/api/health")).await;
            status == 200
        },
    )
    .await;
    let back = titles(&n1, slug).await;
    assert_eq!(back.len(), 21);
    assert!(back.contains("after the move"));
    titles_written.insert("after the move".to_string());

    // Without the operator token, or to a node that is not there, nothing moves.
    let (status, _) = send(
        n3.request(
            Method::POST,
            "localhost",
            &format!("/v1/tenants/{slug}/move"),
        )
        .json(&json!({ "node": "n1" })),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = send(move_request(&n3, slug).json(&json!({ "node": "n9" }))).await;
    assert_eq!(status, 400, "{body}");
    // A malformed or oversized body, or a project that does not exist: an envelope, no move.
    let move_of = |slug: &str| move_request(&n3, slug);
    for body in [
        "{\"node\":",
        "[]",
        &format!("{{\"node\":\"{}\"}}", "n".repeat(4096)),
    ] {
        let (status, answer) = send(move_of(slug).body(body.to_string())).await;
        assert_eq!((status, &answer["status"]), (400, &json!(400)), "{answer}");
    }
    let (status, answer) = send(move_of("nosuchproject").json(&json!({ "node": "n1" }))).await;
    assert_eq!((status, &answer["status"]), (404, &json!(404)), "{answer}");
    // Pins: the operator's token is needed, and an unknown project is a 404.
    let (status, answer) = send(n3.request(
        Method::DELETE,
        "localhost",
        &format!("/v1/tenants/{slug}/pin"),
    ))
    .await;
    assert_eq!((status, &answer["status"]), (401, &json!(401)), "{answer}");
    let (status, answer) = send(
        n3.request(Method::GET, "localhost", "/v1/tenants/nosuchproject/pin")
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!((status, &answer["status"]), (404, &json!(404)), "{answer}");
    // The node-to-node steps are for peers only, operator token or not.
    for path in [
        format!("/v1/cluster/claim/{id}"),
        format!("/v1/cluster/handoff/{id}/n3"),
        format!("/v1/cluster/act/{id}/backups"),
        "/v1/cluster/relay".to_string(),
    ] {
        let (status, _) = send(
            n3.request(Method::POST, "localhost", &path)
                .bearer_auth(TOKEN)
                .json(&json!({ "origin": "n3", "seq": 1, "records": [] })),
        )
        .await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(titles(&n2, slug).await, titles_written);
}

/// A rolling restart of all three nodes (each stopped cleanly and started again, one after
/// another) under readers of several tenants: every tenant stays served through the nodes that
/// are up, with every record; the longest time a tenant answered nothing but 503 is printed
/// and bounded (about 0.3 s here; issue #21 asks under 1 s, the bound leaves CI room).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd: tests/suites/cluster"]
async fn a_rolling_restart_keeps_every_tenant_served() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let mut nodes = three_nodes_with_backups(&etcd, target.path()).await;
    let slugs: Vec<String> = (0..4).map(|i| format!("roll{i}")).collect();
    for slug in &slugs {
        tenant_with_notes(&nodes[0], slug).await;
        for k in 0..5 {
            let (status, body) = send(
                nodes[1]
                    .request(
                        Method::POST,
                        &format!("{slug}.localhost"),
                        "/api/collections/notes/records",
                    )
                    .json(&json!({ "title": format!("{slug}-{k}") })),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    }

    // One reader per tenant, through the nodes that are up (as a balancer's health check
    // would pick them), keeping the longest run of answers without the tenant's records.
    let down = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let readers: Vec<_> = slugs
        .iter()
        .map(|slug| {
            let requests: Vec<_> = nodes
                .iter()
                .map(|node| {
                    node.request(
                        Method::GET,
                        &format!("{slug}.localhost"),
                        "/api/collections/notes/records",
                    )
                })
                .collect();
            let (down, reading) = (down.clone(), reading.clone());
            tokio::spawn(async move {
                let (mut longest, mut since, mut turn) = (Duration::ZERO, None, 0usize);
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    turn += 1;
                    let pick = turn % 3;
                    if pick == down.load(std::sync::atomic::Ordering::Relaxed) {
                        continue;
                    }
                    let answer = requests[pick].try_clone().unwrap().send().await;
                    let served = match answer {
                        Ok(r) if r.status() == 200 => {
                            let body: Value = r.json().await.unwrap();
                            assert_eq!(body["totalItems"], 5, "{body}");
                            true
                        }
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body: Value = r.json().await.unwrap();
                            assert_eq!((status, &body["status"]), (503, &json!(503)), "{body}");
                            false
                        }
                        // The node went down between the pick and the send.
                        Err(_) => continue,
                    };
                    match (served, since) {
                        (true, Some(start)) => {
                            longest = longest.max(Instant::now() - start);
                            since = None;
                        }
                        (false, None) => since = Some(Instant::now()),
                        _ => {}
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                assert!(since.is_none(), "the tenant is served again at the end");
                longest
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, node) in nodes.iter_mut().enumerate() {
        down.store(i, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        node.restart();
        down.store(usize::MAX, std::sync::atomic::Ordering::Relaxed);
        println!(
            "rolling restart: {} back after {:?}",
            node.id,
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut gaps = Vec::new();
    for reader in readers {
        gaps.push(reader.await.unwrap());
    }
    gaps.sort();
    println!("rolling restart: longest time each tenant answered only 503: {gaps:?}");
    for slug in &slugs {
        for node in &nodes {
            assert_eq!(titles(node, slug).await.len(), 5, "{slug} on {}", node.id);
        }
    }
    let worst = gaps.last().copied().unwrap_or_default();
    assert!(
        worst < Duration::from_secs(5),
        "a tenant was unavailable for {worst:?}"
    );
}

/// Two nodes carrying many tenants (each new one handed to the node placement gives it as it
/// is created), every tenant read through both of them; a third node joins
/// and the leader moves it the share placement gives it (about a third), a few at a time, once
/// the nodes settled. Every tenant keeps answering (a 503 envelope while it moves); each moved
/// tenant's time without an answer is printed (p50/p99/max). A tenant pinned to n1 stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_joining_node_takes_its_share_of_tenants_under_readers() {
    const TENANTS: usize = 90;
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let mut flags = backup_flags(target.path());
    flags.push("--cluster-rebalance=true".to_string());
    let n1 = Node::start_with("n1", &etcd.clients, &flags);
    let client = etcd.client();
    wait_leads(&etcd, &n1).await;

    // Every tenant made while n1 is alone (one with records), each opened so it ships its
    // first snapshot (what a move restores from); then n2 joins and receives its share.
    let started = Instant::now();
    let mut slugs = vec!["sharenotes".to_string()];
    let mut ids = vec![tenant_with_notes(&n1, "sharenotes").await];
    for k in 0..5 {
        let (status, body) = send(
            n1.request(
                Method::POST,
                "sharenotes.localhost",
                "/api/collections/notes/records",
            )
            .json(&json!({ "title": format!("note-{k}") })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    for i in 1..TENANTS {
        let slug = format!("share{i:03}");
        let (status, body) = send(
            n1.request(Method::POST, "localhost", "/v1/tenants")
                .bearer_auth(TOKEN)
                .json(&json!({ "slug": slug })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
        let (status, body) =
            send(n1.request(Method::GET, &format!("{slug}.localhost"), "/api/health")).await;
        assert_eq!(status, 200, "{body}");
        slugs.push(slug);
    }
    eventually(
        Duration::from_secs(60),
        "every tenant's first snapshot",
        async || {
            for slug in &slugs {
                let (_, body) = send(
                    n1.request(
                        Method::GET,
                        "localhost",
                        &format!("/v1/tenants/{slug}/backups"),
                    )
                    .bearer_auth(TOKEN),
                )
                .await;
                if body["items"].as_array().is_none_or(|i| i.is_empty()) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let n2 = Node::start_with("n2", &etcd.clients, &flags);
    let two: Vec<String> = ["n1", "n2"].map(String::from).to_vec();
    let factor = warren_cluster::placement::DEFAULT_FACTOR;
    let owner_of = async |id: &str| -> Option<String> {
        let kv = client
            .get(&format!("/warren/e2e/owners/{id}"))
            .await
            .ok()
            .flatten()?;
        let owner: Value = serde_json::from_slice(&kv.value).ok()?;
        owner["node"].as_str().map(str::to_string)
    };
    // n2's join: it receives the share placement gives it over two nodes.
    let mut before = warren_cluster::placement::assign(&ids, &two, &Default::default(), factor);
    let mut loads = std::collections::HashMap::<String, usize>::new();
    for node in before.values() {
        *loads.entry(node.clone()).or_default() += 1;
    }
    eventually(Duration::from_secs(90), "n2 holds its share", async || {
        for (id, node) in &before {
            if owner_of(id).await.as_ref() != Some(node) || (node == "n2" && !n2.has_tenant(id)) {
                return false;
            }
        }
        true
    })
    .await;
    for slug in &slugs {
        let host = format!("{slug}.localhost");
        eventually(
            Duration::from_secs(30),
            "served after the join",
            async || send(n1.request(Method::GET, &host, "/api/health")).await.0 == 200,
        )
        .await;
    }
    println!(
        "rebalance: {TENANTS} tenants created, shipped and placed over two nodes ({loads:?}) in {:?}",
        started.elapsed()
    );

    // Which tenants placement gives a third node; one of them is pinned to n1 first (a move
    // to the node it is on, with "pin").
    let three: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
    let unpinned = warren_cluster::placement::assign(&ids, &three, &Default::default(), factor);
    let pinned_at = ids.iter().position(|id| unpinned[id] == "n3").unwrap();
    let (pinned_slug, pinned_id) = (slugs[pinned_at].clone(), ids[pinned_at].clone());
    let (status, body) =
        send(move_request(&n2, &pinned_slug).json(&json!({ "node": "n1", "pin": true }))).await;
    assert_eq!((status, &body["node"]), (200, &json!("n1")), "{body}");
    let (status, body) = send(
        n2.request(
            Method::GET,
            "localhost",
            &format!("/v1/tenants/{pinned_slug}/pin"),
        )
        .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!((status, &body["pin"]), (200, &json!("n1")), "{body}");
    before.insert(pinned_id.clone(), "n1".to_string());
    // Moved to n1 if it lived on n2: served once restored there.
    let pinned_host = format!("{pinned_slug}.localhost");
    eventually(
        Duration::from_secs(30),
        "the pinned tenant served",
        async || {
            send(n1.request(Method::GET, &pinned_host, "/api/health"))
                .await
                .0
                == 200
        },
    )
    .await;
    let pins = std::collections::HashMap::from([(pinned_id.clone(), "n1".to_string())]);
    let placed = warren_cluster::placement::assign(&ids, &three, &pins, factor);
    let expected: HashSet<String> = ids
        .iter()
        .filter(|id| placed[*id] == "n3")
        .cloned()
        .collect();
    let share = expected.len() as f64 / TENANTS as f64;
    assert!((0.2..0.45).contains(&share), "placement gives n3 {share}");

    // Readers: every tenant through n1 and n2 in turn, each tenant's longest run of answers
    // without a 200 kept (from its first refused answer to the next 200).
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let readers: Vec<_> = slugs
        .chunks(TENANTS.div_ceil(6))
        .map(|chunk| {
            let requests: Vec<[reqwest::RequestBuilder; 2]> = chunk
                .iter()
                .map(|slug| {
                    let host = format!("{slug}.localhost");
                    [&n1, &n2].map(|n| n.request(Method::GET, &host, "/api/health"))
                })
                .collect();
            let chunk = chunk.to_vec();
            let reading = reading.clone();
            tokio::spawn(async move {
                let mut since: Vec<Option<Instant>> = vec![None; chunk.len()];
                let mut longest = vec![Duration::ZERO; chunk.len()];
                let (mut passes, mut answers) = (0usize, 0usize);
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    for (i, pair) in requests.iter().enumerate() {
                        let (status, body) = send(pair[passes % 2].try_clone().unwrap()).await;
                        answers += 1;
                        if status == 200 {
                            if let Some(start) = since[i].take() {
                                longest[i] = longest[i].max(start.elapsed());
                            }
                        } else {
                            assert_eq!((status, &body["status"]), (503, &json!(503)), "{body}");
                            since[i].get_or_insert_with(Instant::now);
                        }
                    }
                    passes += 1;
                }
                for (i, s) in since.iter().enumerate() {
                    assert!(s.is_none(), "{} is served again at the end", chunk[i]);
                }
                (chunk, longest, passes, answers)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let joined = Instant::now();
    let n3 = Node::start_with("n3", &etcd.clients, &flags);
    let owners_on = async |node: &str| -> HashSet<String> {
        let (kvs, _) = client.list("/warren/e2e/owners/").await.unwrap();
        kvs.into_iter()
            .filter(|kv| String::from_utf8_lossy(&kv.value).contains(&format!("\"{node}\"")))
            .map(|kv| kv.key.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    eventually(
        Duration::from_secs(60),
        "n3 owns and serves its share",
        async || owners_on("n3").await == expected && expected.iter().all(|id| n3.has_tenant(id)),
    )
    .await;
    let settled = joined.elapsed();
    // The last moves' restores end and the readers see them served.
    tokio::time::sleep(Duration::from_secs(1)).await;
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut gaps = Vec::new();
    let (mut passes, mut answers) = (0, 0);
    for reader in readers {
        let (chunk, longest, p, a) = reader.await.unwrap();
        passes += p;
        answers += a;
        for (slug, gap) in chunk.iter().zip(longest) {
            let id = &ids[slugs.iter().position(|s| s == slug).unwrap()];
            if expected.contains(id) {
                gaps.push(gap);
            } else {
                assert_eq!(gap, Duration::ZERO, "{slug} did not move, yet answered 503");
            }
        }
    }
    gaps.sort();
    let at = |q: f64| gaps[((gaps.len() as f64 * q).ceil() as usize).clamp(1, gaps.len()) - 1];
    println!(
        "rebalance: n3 joined; {} of {TENANTS} tenants moved to it, all served there {settled:?} \
         after it started (settle 3 s); readers: {answers} answers in {passes} passes; per-tenant \
         unavailability p50 {:?}, p99 {:?}, max {:?}",
        expected.len(),
        at(0.5),
        at(0.99),
        gaps.last().unwrap()
    );
    // Nothing else moved; the pinned tenant stayed on n1.
    assert_eq!(owners_on("n3").await, expected);
    assert!(owners_on("n1").await.contains(&pinned_id));
    assert!(!expected.contains(&pinned_id));
    for (id, node) in &before {
        if !expected.contains(id) {
            assert_eq!(
                owner_of(id).await.as_ref(),
                Some(node),
                "{id} moves only to the node that joined"
            );
        }
    }
    let worst = *gaps.last().unwrap();
    assert!(
        worst < Duration::from_secs(5),
        "a tenant was unavailable for {worst:?}"
    );
    // The tenant with records has all of them, through every node.
    for node in [&n1, &n2, &n3] {
        assert_eq!(titles(node, "sharenotes").await.len(), 5, "{}", node.id);
    }
    // Unpinned, the tenant has no pin.
    let (status, body) = send(
        n3.request(
            Method::DELETE,
            "localhost",
            &format!("/v1/tenants/{pinned_slug}/pin"),
        )
        .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!((status, &body["pin"]), (200, &Value::Null), "{body}");
}

/// New tenants the leader provisions itself move where placement puts them: three nodes with
/// rebalancing on (the default), twelve tenants created one after another by `warren tenant
/// create` on the leader's data directory (provisioned and first claimed by the leader, n1,
/// as the CLI, imports and restores into a new tenant are), each handed in the background to the node
/// `placement::place` gives it — the same answers as placing them one by one over the three
/// empty nodes. Readers through every node see only 200 or a brief 503 "moving" meanwhile; at
/// the end every tenant is served through every node, and its placed node holds its data and
/// its claim (owner record in etcd, `cluster/generations/<id>`). The time from each creation
/// until the tenant is served from its node is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn new_tenants_move_to_their_placed_node() {
    const TENANTS: usize = 12;
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let mut flags = backup_flags(target.path());
    flags.push("--cluster-rebalance=true".to_string());
    flags.push("--cluster-place-new=true".to_string());
    let n1 = Node::start_with("n1", &etcd.clients, &flags);
    let client = etcd.client();
    wait_leads(&etcd, &n1).await;
    let n2 = Node::start_with("n2", &etcd.clients, &flags);
    let n3 = Node::start_with("n3", &etcd.clients, &flags);
    let nodes = [&n1, &n2, &n3];
    eventually(Duration::from_secs(10), "three live nodes", async || {
        client
            .list("/warren/e2e/nodes/")
            .await
            .is_ok_and(|(kvs, _)| kvs.len() == 3)
    })
    .await;
    // The rebalancer's pass for the two joins (settle 3 s) finds nothing to move; it is over
    // before the first tenant, so only new-tenant placement moves anything here.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Readers: every tenant created so far through the three nodes in turn; only 200 or a 503
    // "moving" may come back.
    let slugs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let requests: Vec<(reqwest::Client, SocketAddr)> =
            nodes.iter().map(|n| (n.client.clone(), n.addr)).collect();
        let slugs = slugs.clone();
        let reading = reading.clone();
        tokio::spawn(async move {
            let (mut ok, mut moving, mut turn) = (0usize, 0usize, 0usize);
            // (tenant, node) pairs that answered once: a node whose directory has not seen a
            // new host yet answers 404 before that, never after.
            let mut seen = HashSet::new();
            let mut unseen = 0usize;
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                let now: Vec<String> = slugs.lock().unwrap().clone();
                if now.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                for slug in now {
                    let (client, addr) = &requests[turn % requests.len()];
                    turn += 1;
                    let (status, body) =
                        send(client.get(format!("http://{addr}/api/health")).header(
                            reqwest::header::HOST,
                            format!("{slug}.localhost:{}", addr.port()),
                        ))
                        .await;
                    if status == 404 && !seen.contains(&(slug.clone(), *addr)) {
                        unseen += 1;
                        continue;
                    }
                    seen.insert((slug.clone(), *addr));
                    match status {
                        200 => ok += 1,
                        503 => {
                            assert!(
                                body["message"].as_str().unwrap_or("").contains("moving"),
                                "{slug}: {body}"
                            );
                            moving += 1;
                        }
                        _ => panic!("{slug} through {addr}: {status} {body}"),
                    }
                }
            }
            (ok, moving, unseen)
        })
    };

    // Made by `warren tenant create` on the leader's data directory: provisioned there (not
    // on their placed node, as the operator API's are), then moved by the leader's placer.
    let mut created = Vec::new();
    let mut ids = Vec::new();
    for i in 0..TENANTS {
        let slug = format!("fresh{i:02}");
        let output = Command::new(binary())
            .arg("--data-dir")
            .arg(n1.data_dir())
            .args(["tenant", "create", &slug])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        created.push(Instant::now());
        let (status, body) = send(
            n2.request(Method::GET, "localhost", &format!("/v1/tenants/{slug}"))
                .bearer_auth(TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
        slugs.lock().unwrap().push(slug);
    }

    // Placement over the three nodes, one tenant after another as they were created.
    let three: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
    let mut loads = std::collections::HashMap::new();
    let mut expected = Vec::new();
    for id in &ids {
        let node = warren_cluster::placement::place(
            id,
            &three,
            &loads,
            warren_cluster::placement::DEFAULT_FACTOR,
        )
        .unwrap()
        .to_string();
        *loads.entry(node.clone()).or_insert(0usize) += 1;
        expected.push(node);
    }
    let moved = expected.iter().filter(|n| *n != "n1").count();
    assert!(
        moved > 0,
        "placement keeps every tenant on the leader: {loads:?}"
    );

    let owner_of = async |id: &str| -> Option<(String, u64)> {
        let kv = client
            .get(&format!("/warren/e2e/owners/{id}"))
            .await
            .ok()
            .flatten()?;
        let owner: Value = serde_json::from_slice(&kv.value).ok()?;
        Some((
            owner["node"].as_str()?.to_string(),
            owner["generation"].as_u64()?,
        ))
    };
    let mut settled: Vec<Option<Duration>> = vec![None; TENANTS];
    eventually(
        Duration::from_secs(90),
        "every new tenant on its placed node",
        async || {
            for (i, id) in ids.iter().enumerate() {
                if settled[i].is_some() {
                    continue;
                }
                let node = nodes.iter().find(|n| n.id == expected[i]).unwrap();
                let owned = owner_of(id)
                    .await
                    .is_some_and(|(owner, _)| owner == expected[i]);
                if !owned || !node.has_tenant(id) {
                    continue;
                }
                let host = format!("fresh{i:02}.localhost");
                let (status, _) = send(node.request(Method::GET, &host, "/api/health")).await;
                if status == 200 {
                    settled[i] = Some(created[i].elapsed());
                }
            }
            settled.iter().all(Option::is_some)
        },
    )
    .await;
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    let (ok, moving, unseen) = reader.await.unwrap();

    for (i, id) in ids.iter().enumerate() {
        let (owner, generation) = owner_of(id).await.unwrap();
        assert_eq!(owner, expected[i], "{id}");
        // Claimed once by the leader at creation, once more by the node it moved to.
        let want = if owner == "n1" { 1 } else { 2 };
        assert_eq!(generation, want, "{id} on {owner}");
        let node = nodes.iter().find(|n| n.id == owner).unwrap();
        let recorded =
            std::fs::read_to_string(node.data_dir().join("cluster").join("generations").join(id))
                .unwrap();
        assert_eq!(recorded.trim(), want.to_string(), "{id} on {owner}");
        let host = format!("fresh{i:02}.localhost");
        for n in nodes {
            let (status, body) = send(n.request(Method::GET, &host, "/api/health")).await;
            assert_eq!(status, 200, "{host} through {}: {body}", n.id);
        }
    }
    // The moved tenants' times (one on the leader counts from its creation to the first look).
    let mut times: Vec<Duration> = settled
        .into_iter()
        .zip(&expected)
        .filter(|(_, node)| *node != "n1")
        .filter_map(|(time, _)| time)
        .collect();
    times.sort();
    println!(
        "new placement by moves: {TENANTS} tenants created on n1's directory, placed {loads:?} ({moved} moved \
         off the leader); creation to served from its node: min {:?}, p50 {:?}, max {:?}; \
         readers: {ok} answers 200, {moving} 503 moving, {unseen} 404 before a node knew the host",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

/// New tenants are provisioned directly on their placed node (the default flags): three nodes, a
/// burst of tenants created one after another through a follower's operator API, each one
/// answering 200 through every node right after its creation (never a 503), owned by the node
/// `placement::place` gives it placed one by one, under generation 1, its data only there. The
/// creation latencies of the tenants placed on other nodes (provisioned there) and of those
/// placed on the leader (provisioned locally) are printed, and how the tenants spread.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn new_tenants_are_provisioned_on_their_placed_node() {
    const TENANTS: usize = 24;
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    // The default placement of new tenants (no --cluster-place-new flag).
    let flags = backup_flags(target.path());
    let n1 = Node::start_as_given("n1", &etcd.clients, &flags);
    wait_leads(&etcd, &n1).await;
    let n2 = Node::start_as_given("n2", &etcd.clients, &flags);
    let n3 = Node::start_as_given("n3", &etcd.clients, &flags);
    let nodes = [&n1, &n2, &n3];
    let client = etcd.client();
    eventually(Duration::from_secs(10), "three live nodes", async || {
        client
            .list("/warren/e2e/nodes/")
            .await
            .is_ok_and(|(kvs, _)| kvs.len() == 3)
    })
    .await;

    let mut ids = Vec::new();
    let mut took = Vec::new();
    let mut not_yet = 0usize;
    for i in 0..TENANTS {
        let slug = format!("placed{i:02}");
        let started = Instant::now();
        let (status, body) = send(
            n2.request(Method::POST, "localhost", "/v1/tenants")
                .bearer_auth(TOKEN)
                .json(&json!({ "slug": slug })),
        )
        .await;
        took.push(started.elapsed());
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
        // Served at once through every node: a node whose directory has not seen the new host
        // yet may answer 404 for a moment, nothing else but a 200.
        let host = format!("{slug}.localhost");
        for n in nodes {
            let asked = Instant::now();
            loop {
                let (status, body) = send(n.request(Method::GET, &host, "/api/health")).await;
                if status == 200 {
                    break;
                }
                assert_eq!(status, 404, "{host} through {}: {body}", n.id);
                assert!(
                    asked.elapsed() < Duration::from_secs(2),
                    "{host} through {}",
                    n.id
                );
                not_yet += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    // Placement over the three nodes, one tenant after another as they were created.
    let three: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
    let mut loads = std::collections::BTreeMap::new();
    let mut expected = Vec::new();
    for id in &ids {
        let counted: std::collections::HashMap<String, usize> = loads
            .iter()
            .map(|(k, v): (&String, &usize)| (k.clone(), *v))
            .collect();
        let node = warren_cluster::placement::place(
            id,
            &three,
            &counted,
            warren_cluster::placement::DEFAULT_FACTOR,
        )
        .unwrap()
        .to_string();
        *loads.entry(node.clone()).or_insert(0usize) += 1;
        expected.push(node);
    }
    assert_eq!(
        loads.len(),
        3,
        "the tenants spread over the three nodes: {loads:?}"
    );
    for (i, id) in ids.iter().enumerate() {
        let kv = client
            .get(&format!("/warren/e2e/owners/{id}"))
            .await
            .unwrap()
            .expect("an owner record");
        let owner: Value = serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(owner["node"], expected[i].as_str(), "{id}: {owner}");
        assert_eq!(owner["generation"], 1, "{i} {id}: {owner}");
        for n in nodes {
            assert_eq!(
                n.has_tenant(id),
                n.id == expected[i],
                "{id} placed on {}: data on {}?",
                expected[i],
                n.id
            );
        }
        let owner_node = nodes.iter().find(|n| n.id == expected[i]).unwrap();
        let recorded = std::fs::read_to_string(
            owner_node
                .data_dir()
                .join("cluster")
                .join("generations")
                .join(id),
        )
        .unwrap();
        assert_eq!(recorded.trim(), "1", "{id}");
    }
    // A tenant provisioned on another node had its first snapshot stored before it was
    // recorded: were that node to die at once, the tenant would be restored elsewhere.
    for (id, node) in ids.iter().zip(&expected) {
        if node != "n1" {
            let stored = target_entries(target.path(), id).await;
            assert!(
                !stored.is_empty(),
                "{id} has no snapshot in the backup target"
            );
        }
    }

    let pick = |there: bool| -> Vec<Duration> {
        let mut times: Vec<Duration> = took
            .iter()
            .zip(&expected)
            .filter(|(_, node)| (*node != "n1") == there)
            .map(|(t, _)| *t)
            .collect();
        times.sort();
        times
    };
    let (direct, local) = (pick(true), pick(false));
    let quantile = |times: &[Duration], q: f64| -> Duration {
        times[((times.len() as f64 - 1.0) * q).round() as usize]
    };
    println!(
        "direct placement: {TENANTS} tenants created through n2, spread {loads:?}; creation \
         latency provisioned on the placed node ({} tenants): p50 {:?}, p99 {:?}; provisioned \
         on the leader ({} tenants): p50 {:?}, p99 {:?}; {not_yet} 404s before a node knew the \
         host, no 503",
        direct.len(),
        quantile(&direct, 0.5),
        quantile(&direct, 0.99),
        local.len(),
        quantile(&local, 0.5),
        quantile(&local, 0.99),
    );
    assert!(!direct.is_empty() && !local.is_empty(), "{loads:?}");
}

/// Signs `email` up on the console through `node` (a fresh visitor: the signup page for its
/// CSRF token and nonce cookie, then the form); the time the form's POST took.
async fn signup(node: &Node, email: &str) -> Duration {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let host = format!("localhost:{}", node.addr.port());
    let page = client
        .get(format!("http://{}/signup", node.addr))
        .header(reqwest::header::HOST, &host)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200, "{}: the signup page", node.id);
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("warren_csrf="))
        .expect("a nonce cookie");
    let body = page.text().await.unwrap();
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker).expect("a CSRF token") + marker.len();
    let csrf = &body[start..start + body[start..].find('"').unwrap()];
    let form = format!(
        "csrf={csrf}&email={}&password=correct-horse-1",
        email.replace('@', "%40")
    );
    let started = Instant::now();
    let answer = client
        .post(format!("http://{}/signup", node.addr))
        .header(reqwest::header::HOST, &host)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        answer.status().as_u16(),
        303,
        "{}: signup of {email}",
        node.id
    );
    took
}

/// Creates tenant `slug` through `node`'s operator API; the time the call took.
async fn create_tenant(node: &Node, slug: &str) -> Duration {
    let started = Instant::now();
    let (status, body) = send(
        node.request(Method::POST, "localhost", "/v1/tenants")
            .bearer_auth(TOKEN)
            .json(&json!({ "slug": slug })),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 201, "{}: {body}", node.id);
    took
}

/// A platform listing through `node`'s operator API, as text (`path` like `/v1/tenants`).
async fn listing(node: &Node, path: &str) -> (u16, Value) {
    send(
        node.request(Method::GET, "localhost", path)
            .query(&[("perPage", "500")])
            .bearer_auth(TOKEN),
    )
    .await
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Platform writes (console signups, tenants created through the operator API) made through the
/// leader survive its kill -9: the next leader restores the control database the dead one
/// shipped (synchronously, so every acknowledged write), answers 503 "leader is changing" until
/// then, and lists every account and tenant through every survivor, whose tenant still serves
/// its data. The added latency of a shipped platform write is measured against a single node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn the_control_plane_survives_its_leader() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [mut n1, n2, n3] = three_nodes_with_backups(&etcd, target.path()).await;
    let id = tenant_with_notes(&n1, "keeps").await;
    let host = "keeps.localhost";
    for i in 0..5 {
        let (status, body) = send(
            n2.request(Method::POST, host, "/api/collections/notes/records")
                .json(&json!({ "title": format!("note {i}") })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    // Platform writes through the leader (n3 forwards to it), timed.
    let (mut signups, mut creations) = (Vec::new(), Vec::new());
    for i in 0..4 {
        signups.push(signup(&n1, &format!("dev{i}@example.com")).await);
        creations.push(create_tenant(&n1, &format!("made{i}")).await);
    }
    create_tenant(&n3, "forwarded").await;
    // The same on a single node with the same backup flags (its control database not shipped).
    let solo_target = tempfile::tempdir().unwrap();
    let solo = Node::start_with("solo", &[], &backup_flags(solo_target.path()));
    eventually(
        Duration::from_secs(10),
        "the single node answers",
        async || listing(&solo, "/v1/tenants").await.0 == 200,
    )
    .await;
    let (mut solo_signups, mut solo_creations) = (Vec::new(), Vec::new());
    for i in 0..4 {
        solo_signups.push(signup(&solo, &format!("dev{i}@example.com")).await);
        solo_creations.push(create_tenant(&solo, &format!("made{i}")).await);
    }
    drop(solo);
    let (signup_p50, solo_signup_p50) = (median(signups), median(solo_signups));
    let (create_p50, solo_create_p50) = (median(creations), median(solo_creations));
    println!(
        "platform writes, p50 of 4: signup {signup_p50:?} on the cluster's leader against \
         {solo_signup_p50:?} on a single node; tenant creation {create_p50:?} against \
         {solo_create_p50:?} (the leader ships the control database synchronously)"
    );

    // The leader dies.
    n1.child.kill().unwrap();
    let killed = Instant::now();
    n1.child.wait().unwrap();
    let mut refusals = 0;
    let platform_back = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no survivor served the platform within 30 s"
        );
        let mut answered = None;
        for node in [&n2, &n3] {
            let (status, body) = listing(node, "/v1/tenants").await;
            if status == 200 {
                answered = Some(body);
                break;
            }
            // The dead leader's forwards fail, then the new one restores: 503 envelopes.
            assert!(
                status == 502 || status == 503,
                "{}: {status} {body}",
                node.id
            );
            refusals += 1;
        }
        if let Some(body) = answered {
            break (killed.elapsed(), body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (took, tenants) = platform_back;
    println!(
        "the platform answered again {took:?} after the leader's kill -9 (lease TTL 2 s; {refusals} \
         refusals meanwhile)"
    );
    assert!(refusals > 0, "the survivors refused while the lead changed");
    for slug in ["keeps", "made0", "made1", "made2", "made3", "forwarded"] {
        assert!(
            tenants.to_string().contains(&format!("\"{slug}\"")),
            "{slug} is listed: {tenants}"
        );
    }
    for node in [&n2, &n3] {
        let (status, accounts) = listing(node, "/v1/accounts").await;
        assert_eq!(status, 200, "{}: {accounts}", node.id);
        for i in 0..4 {
            assert!(
                accounts
                    .to_string()
                    .contains(&format!("dev{i}@example.com")),
                "{}: dev{i} is listed: {accounts}",
                node.id
            );
        }
        let (status, one) = send(
            node.request(Method::GET, "localhost", "/v1/tenants/keeps")
                .bearer_auth(TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{}: {one}", node.id);
        assert_eq!(one["id"], id.as_str());
    }

    // The tenant still serves its data through the survivors (restored on one of them).
    eventually(
        Duration::from_secs(30),
        "the tenant serves its notes",
        async || {
            let (status, body) =
                send(n3.request(Method::GET, host, "/api/collections/notes/records")).await;
            status == 200 && body["totalItems"] == 5
        },
    )
    .await;
    assert_eq!(titles(&n2, "keeps").await.len(), 5);

    // The new leader takes platform writes, shipped under its own term (2).
    signup(&n2, "after@example.com").await;
    create_tenant(&n3, "after").await;
    let chains = target_entries(target.path(), "control").await;
    assert!(
        chains.iter().any(|c| c.ends_with("-o0000000002")),
        "a snapshot of the control database under term 2: {chains:?}"
    );
    assert!(
        !chains.iter().any(|c| c.ends_with("-o0000000003")),
        "{chains:?}"
    );
}

/// One platform write sent straight to a node: what was asked, when, and the answer.
struct PlatformWrite {
    name: String,
    /// Since the proxy was cut (negative: before).
    sent_ms: i64,
    answered_ms: i64,
    status: u16,
    body: Value,
}

/// Creates plan `name` through `addr`'s operator API (no forwarding: the node answers itself
/// or refuses), timed against `cut`.
async fn create_plan(
    client: &reqwest::Client,
    addr: SocketAddr,
    name: &str,
    cut: &CutClock,
) -> PlatformWrite {
    let sent_ms = cut.ms();
    let response = client
        .post(format!("http://{addr}/v1/plans"))
        .header(reqwest::header::HOST, format!("localhost:{}", addr.port()))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    PlatformWrite {
        name: name.to_string(),
        sent_ms,
        answered_ms: cut.ms(),
        status,
        body,
    }
}

/// Milliseconds relative to the moment a proxy is cut (negative before, while not yet cut).
#[derive(Clone)]
struct CutClock {
    started: Instant,
    cut_at_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl CutClock {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            cut_at_ms: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX)),
        }
    }

    fn now(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Marks now as the cut.
    fn cut(&self) {
        self.cut_at_ms
            .store(self.now(), std::sync::atomic::Ordering::SeqCst);
    }

    fn ms(&self) -> i64 {
        let cut = self.cut_at_ms.load(std::sync::atomic::Ordering::SeqCst);
        if cut == i64::MAX {
            self.now() - i64::from(u32::MAX)
        } else {
            self.now() - cut
        }
    }
}

/// The plan names `node`'s operator API lists.
async fn plan_names(node: &Node) -> HashSet<String> {
    let (status, body) = listing(node, "/v1/plans").await;
    assert_eq!(status, 200, "{}: {body}", node.id);
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// The control plane's leader reaches etcd through a proxy that the test cuts while a client
/// sends it platform writes (plan creations) one after another: it refuses them with 503
/// envelopes within a second or so (before its lease can expire), a survivor takes the lead
/// and restores the control database, every write the old leader acknowledged is there, and
/// the writes sent to the old leader after the new one serves are all refused and never
/// appear. The timings are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_leader_cut_off_from_etcd_is_deposed_and_its_late_writes_never_count() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let flags = backup_flags(target.path());
    let proxy = Proxy::start(&etcd.clients[0]).await;
    let n1 = Node::start_with("n1", std::slice::from_ref(&proxy.addr), &flags);
    let client = etcd.client();
    let leader_is = async |node: &str| {
        client
            .get("/warren/e2e/control")
            .await
            .ok()
            .flatten()
            .is_some_and(|kv| String::from_utf8_lossy(&kv.value).contains(&format!("\"{node}\"")))
    };
    eventually(Duration::from_secs(10), "n1 leads", async || {
        leader_is("n1").await
    })
    .await;
    let n2 = Node::start_with("n2", &etcd.clients, &flags);
    let n3 = Node::start_with("n3", &etcd.clients, &flags);
    eventually(
        Duration::from_secs(30),
        "n1 serves the platform",
        async || listing(&n1, "/v1/tenants").await.0 == 200,
    )
    .await;
    let clock = CutClock::new();
    let direct = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let before = create_plan(&direct, n1.addr, "before", &clock).await;
    assert_eq!(before.status, 201, "{}", before.body);

    // A client writes to n1 without pause until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (direct, clock, stop, addr) = (direct.clone(), clock.clone(), stop.clone(), n1.addr);
        tokio::spawn(async move {
            let mut writes = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let write = create_plan(&direct, addr, &format!("w{i}"), &clock).await;
                if write.status != 201 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                writes.push(write);
                i += 1;
            }
            writes
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.cut();
    clock.cut();

    // n1 refuses; a survivor leads and serves the platform.
    let mut refused_ms = None;
    let (new_leader, serves_ms) = loop {
        assert!(
            clock.ms() < 30_000,
            "no survivor served the platform within 30 s"
        );
        if refused_ms.is_none() {
            let (status, _) = listing(&n1, "/v1/plans").await;
            if status == 503 {
                refused_ms = Some(clock.ms());
            }
        }
        let mut serving = None;
        for node in [&n2, &n3] {
            if listing(node, "/v1/plans").await.0 == 200 && !leader_is("n1").await {
                serving = Some(node);
                break;
            }
        }
        if let Some(node) = serving {
            break (node, clock.ms());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let refused_ms = refused_ms.expect("n1 refused before a survivor served");

    // Writes sent to n1 after the new leader serves: all refused.
    let mut late = Vec::new();
    for i in 0..10 {
        late.push(create_plan(&direct, n1.addr, &format!("late{i}"), &clock).await);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.await.unwrap();

    for write in writes.iter().chain(&late) {
        assert!(
            write.status == 201 || (write.status == 503 && write.body["status"] == 503),
            "{}: {} {}",
            write.name,
            write.status,
            write.body
        );
    }
    let first_refusal = writes
        .iter()
        .find(|w| w.status == 503)
        .expect("the writer met a refusal");
    let acknowledged: Vec<&PlatformWrite> = writes.iter().filter(|w| w.status == 201).collect();
    let last_ack = acknowledged
        .iter()
        .map(|w| w.answered_ms)
        .max()
        .unwrap_or(i64::MIN);
    // Once refused, n1 acknowledged nothing sent after that.
    for write in &writes {
        if write.sent_ms >= first_refusal.answered_ms {
            assert_eq!(
                write.status, 503,
                "{} sent after the first refusal",
                write.name
            );
        }
    }
    assert!(late.iter().all(|w| w.status == 503));
    println!(
        "deposed leader: {} writes sent to it, {} acknowledged ({} after the cut, the last \
         answered {last_ack} ms after it); it refused from {} ms (listing) / {} ms (writer) \
         after the cut; {} served the platform {serves_ms} ms after the cut (lease TTL 2 s)",
        writes.len() + late.len(),
        acknowledged.len(),
        acknowledged.iter().filter(|w| w.sent_ms >= 0).count(),
        refused_ms,
        first_refusal.answered_ms,
        new_leader.id,
    );
    assert!(
        refused_ms < 2_000 && first_refusal.sent_ms < 2_000,
        "n1 refused only {refused_ms} ms after the cut, when its lease can have expired"
    );
    assert!(
        refused_ms < serves_ms,
        "refused before the new leader served"
    );

    // The new leader holds every acknowledged write and none of the late ones, and takes
    // writes under its own term.
    let plans = plan_names(new_leader).await;
    assert!(plans.contains("before"));
    for write in &acknowledged {
        assert!(
            plans.contains(&write.name),
            "acknowledged {} is lost",
            write.name
        );
    }
    for write in &late {
        assert!(!plans.contains(&write.name), "{} came back", write.name);
    }
    let after = create_plan(&direct, new_leader.addr, "after", &clock).await;
    assert_eq!(after.status, 201, "{}", after.body);
    let other = if new_leader.id == "n2" { &n3 } else { &n2 };
    eventually(
        Duration::from_secs(10),
        "the other survivor forwards",
        async || {
            let (status, body) = listing(other, "/v1/plans").await;
            status == 200 && body.to_string().contains("\"after\"")
        },
    )
    .await;
    let plans = plan_names(other).await;
    for write in &late {
        assert!(!plans.contains(&write.name), "{} came back", write.name);
    }
}

/// The tenant's usage and backups as the first of `nodes` that answers sees them.
async fn survivors_usage(nodes: &[&Node], slug: &str) -> Option<(Value, Value)> {
    for node in nodes {
        if let Some(answer) = usage_and_backups(node, slug).await {
            return Some(answer);
        }
    }
    None
}

/// Tenant `slug`'s usage totals and backup status as the platform (through `node`) reports
/// them; `None` while it does not answer.
async fn usage_and_backups(node: &Node, slug: &str) -> Option<(Value, Value)> {
    let (status, usage) = send(
        node.request(
            Method::GET,
            "localhost",
            &format!("/v1/tenants/{slug}/usage"),
        )
        .bearer_auth(TOKEN),
    )
    .await;
    if status != 200 {
        return None;
    }
    let (status, backups) = send(
        node.request(
            Method::GET,
            "localhost",
            &format!("/v1/tenants/{slug}/backups/status"),
        )
        .bearer_auth(TOKEN),
    )
    .await;
    (status == 200).then(|| (usage["totals"].clone(), backups))
}

/// Writes `count` notes to tenant `slug` through `node`.
async fn write_notes(node: &Node, slug: &str, count: usize, label: &str) {
    let host = format!("{slug}.localhost");
    for k in 0..count {
        let (status, body) = send(
            node.request(Method::POST, &host, "/api/collections/notes/records")
                .json(&json!({ "title": format!("{label}-{k}") })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// A tenant moved to a node that does not lead: the usage that node meters and the snapshot it
/// takes (the one starting its WAL chain under the new generation) reach the leader's control
/// database, counted once; after the leader's kill -9 the next leader (which restored the
/// shipped control database) still shows them and takes the owner's usage from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_followers_usage_and_backup_runs_reach_the_leader() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [mut n1, n2, n3] =
        three_nodes_with_backups_and(&etcd, target.path(), &["--metering-interval=500ms"]).await;
    let slug = "metered";
    tenant_with_notes(&n1, slug).await;
    let (_, before) = usage_and_backups(&n1, slug).await.expect("n1 answers");
    let first_backup = before["lastBackup"].as_str().unwrap().to_string();
    assert!(!first_backup.is_empty(), "{before}");

    let (status, body) = send(move_request(&n3, slug).json(&json!({ "node": "n2" }))).await;
    assert_eq!(status, 200, "{body}");
    eventually(
        Duration::from_secs(15),
        "n2 serves the tenant",
        async || {
            let host = format!("{slug}.localhost");
            send(n2.request(Method::GET, &host, "/api/health")).await.0 == 200
        },
    )
    .await;

    // Writes through n3, served by n2, which does not lead.
    write_notes(&n3, slug, 25, "on-n2").await;
    let written = Instant::now();
    let mut seen = None;
    eventually(
        Duration::from_secs(30),
        "the leader shows n2's usage and snapshot",
        async || {
            let Some((totals, backups)) = usage_and_backups(&n1, slug).await else {
                return false;
            };
            let shown = totals["recordsWritten"] == 25
                && totals["requests"].as_u64().unwrap_or(0) >= 25
                && backups["lastStatus"] == "complete"
                && backups["lastBackup"].as_str() != Some(first_backup.as_str());
            if shown {
                seen = Some((totals, backups));
            }
            shown
        },
    )
    .await;
    let (totals, backups) = seen.unwrap();
    println!(
        "the leader showed n2's usage {:?} after its last write ({} requests, {} records \
         written, {} bytes in) and n2's snapshot {}",
        written.elapsed(),
        totals["requests"],
        totals["recordsWritten"],
        totals["bytesIn"],
        backups["lastBackup"]
    );
    let second_backup = backups["lastBackup"].clone();

    // The leader dies; the next one restored what it shipped.
    n1.child.kill().unwrap();
    let killed = Instant::now();
    n1.child.wait().unwrap();
    let mut after = None;
    eventually(
        Duration::from_secs(30),
        "a survivor serves the platform",
        async || {
            after = survivors_usage(&[&n2, &n3], slug).await;
            after.is_some()
        },
    )
    .await;
    let (totals, backups) = after.unwrap();
    println!(
        "the next leader answered {:?} after the kill -9 with {} records written and backup {}",
        killed.elapsed(),
        totals["recordsWritten"],
        backups["lastBackup"]
    );
    // What the dead leader showed but had not shipped yet (its write was not acknowledged)
    // comes again from the follower, which resends until a leader acknowledges it: the usage
    // is counted once (the later total below is exact), the snapshot's run is the same.
    eventually(
        Duration::from_secs(30),
        "the next leader counts n2's usage and snapshot",
        async || {
            survivors_usage(&[&n2, &n3], slug)
                .await
                .is_some_and(|(totals, backups)| {
                    totals["recordsWritten"] == 25 && backups["lastBackup"] == second_backup
                })
        },
    )
    .await;
    println!(
        "the next leader counted n2's usage once {:?} after the kill -9",
        killed.elapsed()
    );

    // The owner's usage from then on reaches the new leader (itself, or the other survivor).
    write_notes(&n3, slug, 5, "after").await;
    let leader = etcd
        .client()
        .get("/warren/e2e/control")
        .await
        .ok()
        .flatten()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .unwrap_or_default();
    eventually(
        Duration::from_secs(30),
        "the new leader shows the owner's later usage",
        async || {
            let Some((totals, _)) = usage_and_backups(&n3, slug).await else {
                return false;
            };
            totals["recordsWritten"] == 30
        },
    )
    .await;
    println!(
        "after the lead moved ({}), n2's later usage reached it too",
        if leader.contains("\"n2\"") {
            "to n2, the owner"
        } else {
            "to n3"
        }
    );
}

/// A tar.gz deploying `pb_public/index.html` holding `text`.
fn public_page(text: &str) -> Vec<u8> {
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive
        .append_data(&mut header, "pb_public/index.html", text.as_bytes())
        .unwrap();
    archive.into_inner().unwrap().finish().unwrap()
}

/// Whether the `data.db` of export zip `zip` holds the text `title` (SQLite keeps short
/// text as it is).
fn export_holds(zip: &[u8], title: &str) -> bool {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
    let mut db = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name("data.db").expect("data.db"), &mut db).unwrap();
    db.windows(title.len()).any(|w| w == title.as_bytes())
}

/// `request` sent again while it answers 503 "moving" (a tenant being claimed or restored),
/// for at most 30 s: the status, the body's bytes, and how many 503s came first.
async fn until_served(request: impl Fn() -> reqwest::RequestBuilder) -> (u16, Vec<u8>, u32) {
    let started = Instant::now();
    let mut moving = 0;
    loop {
        let response = request().send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap().to_vec();
        if status != 503 || started.elapsed() > Duration::from_secs(30) {
            return (status, body, moving);
        }
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("moving"), "a 503 other than moving: {text}");
        moving += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Through the leader's operator API, every action on the data of a tenant moved to n2 runs
/// on n2 and answers as on one node: a backup now (listed, its run shown on the leader), an
/// export holding the records written on n2 after the move, a code deploy and its summary, the
/// superuser, an in-place restore (the records still served through every node) and an import
/// into a second tenant on n3. A client cannot reach the node-to-node step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn platform_actions_on_a_tenant_served_elsewhere_run_on_its_node() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [n1, n2, n3] = three_nodes_with_backups(&etcd, target.path()).await;
    let slug = "elsewhere";
    let id = tenant_with_notes(&n1, slug).await;
    let operator = |method: Method, path: &str| {
        n1.request(method, "localhost", &format!("/v1/tenants/{slug}{path}"))
            .bearer_auth(TOKEN)
    };
    let backups = async || {
        let (status, body) = send(operator(Method::GET, "/backups")).await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().map_or(0, Vec::len)
    };
    let (status, body) = send(operator(Method::POST, "/move").json(&json!({ "node": "n2" }))).await;
    assert_eq!(status, 200, "{body}");
    let host = format!("{slug}.localhost");
    eventually(
        Duration::from_secs(15),
        "n2 serves the tenant",
        async || send(n2.request(Method::GET, &host, "/api/health")).await.0 == 200,
    )
    .await;
    write_notes(&n2, slug, 3, "after-move").await;
    let before = backups().await;

    // The node-to-node step answers peers only.
    let (status, body) = send(
        n2.request(
            Method::GET,
            "localhost",
            &format!("/v1/cluster/act/{id}/export"),
        )
        .header("x-warren-tenant", "00"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = send(n1.request(
        Method::POST,
        "localhost",
        &format!("/v1/tenants/{slug}/backups"),
    ))
    .await;
    assert_eq!(status, 401, "no token: {body}");

    let started = Instant::now();
    let (status, body) = send(operator(Method::POST, "/backups")).await;
    assert_eq!(status, 201, "backup now: {body}");
    let backup = body["id"].as_str().unwrap().to_string();
    let backup_took = started.elapsed();
    assert_eq!(backups().await, before + 1, "the backup is listed");
    eventually(
        Duration::from_secs(15),
        "the run shows on the leader",
        async || {
            usage_and_backups(&n1, slug)
                .await
                .is_some_and(|(_, status)| status["lastBackup"] == backup.as_str())
        },
    )
    .await;

    let started = Instant::now();
    let response = operator(Method::GET, "/export").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let zip = response.bytes().await.unwrap();
    let export_took = started.elapsed();
    assert!(
        export_holds(&zip, "after-move-2"),
        "the export holds what n2 wrote"
    );

    let (status, body) = send(
        operator(Method::PUT, "/code")
            .header("Content-Type", "application/gzip")
            .body(public_page("deployed while on n2")),
    )
    .await;
    assert_eq!(status, 200, "code deploy: {body}");
    let (status, body) = send(operator(Method::GET, "/code")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["folders"][0]["name"], "pb_public", "{body}");
    let (status, body) = send(
        operator(Method::PUT, "/superuser")
            .json(&json!({ "email": "ops@example.com", "password": "ops-password-1" })),
    )
    .await;
    assert_eq!(status, 200, "superuser: {body}");
    assert_eq!(body["email"], "ops@example.com");
    let (status, body) = send(
        operator(Method::PUT, "/superuser").json(&json!({ "email": "nope", "password": "x" })),
    )
    .await;
    assert_eq!(
        status, 400,
        "bad input comes back as the owner's 400: {body}"
    );
    for node in [&n1, &n2, &n3] {
        let response = node
            .request(Method::GET, &host, "/index.html")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "through {}", node.id);
        assert_eq!(response.text().await.unwrap(), "deployed while on n2");
        let (status, body) = send(
            node.request(
                Method::POST,
                &host,
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({ "identity": "ops@example.com", "password": "ops-password-1" })),
        )
        .await;
        assert_eq!(status, 200, "sign-in through {}: {body}", node.id);
    }

    let started = Instant::now();
    let (status, body) =
        send(operator(Method::POST, "/backups/restore").json(&json!({ "inPlace": true }))).await;
    assert_eq!(status, 200, "in-place restore: {body}");
    let restore_took = started.elapsed();
    for node in [&n1, &n2, &n3] {
        let titles = titles(node, slug).await;
        assert!(
            titles.contains("after-move-2"),
            "through {}: {titles:?}",
            node.id
        );
    }

    // An import into a second tenant, served by n3.
    let other = "imported";
    create_tenant(&n1, other).await;
    let other_host = format!("{other}.localhost");
    let (status, body) =
        send(n1.request(Method::GET, &other_host, "/api/collections/users/records")).await;
    assert_eq!(status, 200, "{body}");
    first_snapshot(&n1, other).await;
    let (status, body) = send(move_request(&n1, other).json(&json!({ "node": "n3" }))).await;
    assert_eq!(status, 200, "{body}");
    eventually(
        Duration::from_secs(15),
        "n3 serves the second tenant",
        async || {
            send(n3.request(Method::GET, &other_host, "/api/health"))
                .await
                .0
                == 200
        },
    )
    .await;
    let started = Instant::now();
    let (status, body) = send(
        n1.request(
            Method::POST,
            "localhost",
            &format!("/v1/tenants/{other}/import"),
        )
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/zip")
        .body(zip.to_vec()),
    )
    .await;
    assert_eq!(status, 200, "import: {body}");
    let import_took = started.elapsed();
    for node in [&n1, &n2, &n3] {
        let titles = titles(node, other).await;
        assert!(
            titles.contains("after-move-1"),
            "through {}: {titles:?}",
            node.id
        );
    }
    println!(
        "through the leader, on n2: backup {backup_took:?}, export of {} bytes {export_took:?}, \
         in-place restore {restore_took:?}; import on n3 {import_took:?}",
        zip.len()
    );
}

/// A tenant whose node died (kill -9) before anyone asked for it since: an export through the
/// leader runs on the node that claims it, on its restored data (the records written on the
/// dead node are in it), after 503 "moving" answers meanwhile; never on a stale copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn an_action_on_a_tenant_whose_node_died_runs_where_it_is_claimed() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [n1, mut n2, _n3] = three_nodes_with_backups(&etcd, target.path()).await;
    let slug = "orphan";
    tenant_with_notes(&n1, slug).await;
    let (status, body) = send(move_request(&n1, slug).json(&json!({ "node": "n2" }))).await;
    assert_eq!(status, 200, "{body}");
    let host = format!("{slug}.localhost");
    eventually(
        Duration::from_secs(15),
        "n2 serves the tenant",
        async || send(n2.request(Method::GET, &host, "/api/health")).await.0 == 200,
    )
    .await;
    write_notes(&n2, slug, 3, "on-n2").await;
    // Shipped within a second or so (--backup-wal-every=1s); then n2 dies.
    tokio::time::sleep(Duration::from_secs(3)).await;
    n2.child.kill().unwrap();
    let killed = Instant::now();
    n2.child.wait().unwrap();
    // Its lease (2 s) expires; nobody asked for the tenant since.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, zip, moving) = until_served(|| {
        n1.request(
            Method::GET,
            "localhost",
            &format!("/v1/tenants/{slug}/export"),
        )
        .bearer_auth(TOKEN)
    })
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));
    assert!(
        export_holds(&zip, "on-n2-2"),
        "the export is of the restored data, not n1's stale copy"
    );
    println!(
        "export of a tenant whose node died answered {:?} after the kill, after {moving} \
         503 'moving' answers",
        killed.elapsed()
    );
}

/// A console visitor through one node: cookies kept by name, forms posted with the CSRF token
/// of the page they are on.
struct ConsoleVisitor<'a> {
    node: &'a Node,
    client: reqwest::Client,
    cookies: std::collections::HashMap<String, String>,
    /// The `Location` of the last answer, if it had one.
    location: Option<String>,
}

impl<'a> ConsoleVisitor<'a> {
    fn new(node: &'a Node) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            node,
            client,
            cookies: Default::default(),
            location: None,
        }
    }

    /// `method path` with `form` (url-encoded, when not empty): status and body text.
    async fn send(&mut self, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut request = self
            .client
            .request(method, format!("http://{}{path}", self.node.addr))
            .header(
                reqwest::header::HOST,
                format!("localhost:{}", self.node.addr.port()),
            )
            .header("cookie", cookie.join("; "));
        if !form.is_empty() {
            let body: Vec<String> = form
                .iter()
                .map(|(k, v)| format!("{k}={}", v.replace('@', "%40")))
                .collect();
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.join("&"));
        }
        let response = request.send().await.unwrap();
        for cookie in response.headers().get_all("set-cookie") {
            let pair = cookie.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        self.location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Loads `page` for its CSRF token, then posts `form` with it to `path`.
    async fn submit(&mut self, page: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let (status, body) = self.send(Method::GET, page, &[]).await;
        assert_eq!(status, 200, "{page}: {body}");
        let marker = r#"name="csrf" value=""#;
        let start = body.find(marker).expect("a CSRF token") + marker.len();
        let csrf = body[start..start + body[start..].find('"').unwrap()].to_string();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.send(Method::POST, path, &fields).await
    }
    /// Loads `page` for its CSRF token, then posts `file` to `path` as a multipart upload
    /// (the token first, then the file).
    async fn upload(&mut self, page: &str, path: &str, file: &[u8]) -> (u16, String) {
        let (status, body) = self.send(Method::GET, page, &[]).await;
        assert_eq!(status, 200, "{page}: {body}");
        let marker = r#"name="csrf" value=""#;
        let start = body.find(marker).expect("a CSRF token") + marker.len();
        let csrf = &body[start..start + body[start..].find('"').unwrap()];
        let boundary = "warren-cluster-boundary-51c2";
        let mut multipart = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.zip\"\r\n\
             Content-Type: application/zip\r\n\r\n"
        )
        .into_bytes();
        multipart.extend_from_slice(file);
        multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let response = self
            .client
            .post(format!("http://{}{path}", self.node.addr))
            .header(
                reqwest::header::HOST,
                format!("localhost:{}", self.node.addr.port()),
            )
            .header("cookie", cookie.join("; "))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(multipart)
            .send()
            .await
            .unwrap();
        self.location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

/// The console's import of a PocketBase zip into an empty project moved to n2, through the
/// leader, runs on n2: the upload streams there, the progress page (on the leader) follows n2's
/// job until it is done, and the imported records are served through every node. A file that
/// is no zip comes back as the form's notice, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn the_console_imports_into_a_project_on_the_node_serving_it() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [n1, n2, n3] = three_nodes_with_backups(&etcd, target.path()).await;
    // The zip: a tenant with notes, exported as pb_data.
    tenant_with_notes_unshipped(&n1, "source").await;
    write_notes(&n1, "source", 3, "imported").await;
    let response = n1
        .request(Method::GET, "localhost", "/v1/tenants/source/export")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let zip = response.bytes().await.unwrap().to_vec();

    let mut visitor = ConsoleVisitor::new(&n1);
    let account = console_account(&mut visitor, &n1, "dev@example.com").await;
    let slug = "imported-here";
    let project = project_moved_to_n2(&n1, &n2, slug, &account, 1).await;

    let page = format!("/projects/{project}");
    let form = format!("{page}/import");
    // A file that is no zip is refused by n2, and says so on the form.
    let (status, body) = visitor
        .upload(&page, &form, b"this is not a zip file at all")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("The zip was refused"), "{body}");
    let (status, body) = visitor.upload(&page, &form, b"").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Choose a zip file to import."), "{body}");
    // Over the plan's upload limit: 413 with the limit named, the project left empty.
    let (status, body) = send(
        n1.request(Method::POST, "localhost", "/v1/plans")
            .bearer_auth(TOKEN)
            .json(&json!({ "name": "tiny", "maxUploadBytes": 4096 })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let plan = async |name: &str| {
        let (status, body) = send(
            n1.request(Method::PATCH, "localhost", &format!("/v1/tenants/{slug}"))
                .bearer_auth(TOKEN)
                .json(&json!({ "plan": name })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    };
    plan("tiny").await;
    assert!(zip.len() > 4096, "{} bytes", zip.len());
    let (status, body) = visitor.upload(&page, &form, &zip).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("larger than the plan allows (4096 bytes)"),
        "{body}"
    );
    plan("default").await;

    let started = Instant::now();
    let (status, body) = visitor.upload(&page, &form, &zip).await;
    let upload_took = started.elapsed();
    assert_eq!(status, 303, "{body}");
    assert_eq!(visitor.location.as_deref(), Some(form.as_str()));
    // The leader's progress page shows n2's job until it is done.
    let mut polls = 0;
    let done = loop {
        polls += 1;
        let (status, body) = visitor.send(Method::GET, &form, &[]).await;
        assert_eq!(status, 200, "{body}");
        if body.contains("Imported ") {
            break body;
        }
        assert!(
            body.contains(r#"id="import-status""#) && !body.contains("import failed"),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the import ends"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let import_took = started.elapsed();
    assert!(done.contains("serves them now"), "{done}");
    for node in [&n1, &n2, &n3] {
        let titles = titles(node, slug).await;
        assert!(
            titles.contains("imported-2"),
            "through {}: {titles:?}",
            node.id
        );
    }
    // Imported once: a second import into the (now full) project is refused by n2.
    let (status, body) = visitor.upload(&page, &form, &zip).await;
    assert_eq!(status, 409, "{body}");
    println!(
        "console import of {} bytes through the leader, on n2: upload answered in \
         {upload_took:?}, done after {import_took:?} ({polls} progress pages)",
        zip.len()
    );
}

/// Signs `email` up through `node`'s console as `visitor`; the account's id.
async fn console_account(visitor: &mut ConsoleVisitor<'_>, node: &Node, email: &str) -> String {
    let (status, body) = visitor
        .submit(
            "/signup",
            "/signup",
            &[("email", email), ("password", "correct-horse-1")],
        )
        .await;
    assert_eq!(status, 303, "signup: {body}");
    let query = format!("/v1/accounts?email={}", email.replace('@', "%40"));
    let (status, accounts) = listing(node, &query).await;
    assert_eq!(status, 200, "{accounts}");
    accounts["items"][0]["id"].as_str().unwrap().to_string()
}

/// Creates project `slug` of `account` through the leader `n1`, sends it `requests` requests
/// there (the first opens it, so its shipper stores the snapshot a move needs), and moves it
/// to `n2`, which serves it; the project's id.
async fn project_moved_to_n2(
    n1: &Node,
    n2: &Node,
    slug: &str,
    account: &str,
    requests: usize,
) -> String {
    let (status, body) = send(
        n1.request(Method::POST, "localhost", "/v1/tenants")
            .bearer_auth(TOKEN)
            .json(&json!({ "slug": slug, "account": account })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let project = body["id"].as_str().unwrap().to_string();
    let host = format!("{slug}.localhost");
    for _ in 0..requests.max(1) {
        let (status, body) =
            send(n1.request(Method::GET, &host, "/api/collections/users/records")).await;
        assert_eq!(status, 200, "{body}");
    }
    first_snapshot(n1, slug).await;
    let (status, body) = send(move_request(n1, slug).json(&json!({ "node": "n2" }))).await;
    assert_eq!(status, 200, "{body}");
    eventually(
        Duration::from_secs(15),
        "n2 serves the tenant",
        async || send(n2.request(Method::GET, &host, "/api/health")).await.0 == 200,
    )
    .await;
    project
}

/// The console's "set the project's superuser", through the leader, for a project moved to
/// n2 reaches n2: the superuser signs in through the project's host on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn the_console_sets_the_superuser_of_a_project_on_the_node_serving_it() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [n1, n2, n3] = three_nodes_with_backups(&etcd, target.path()).await;
    let mut visitor = ConsoleVisitor::new(&n1);
    let account = console_account(&mut visitor, &n1, "dev@example.com").await;
    let slug = "forwarded";
    let project = project_moved_to_n2(&n1, &n2, slug, &account, 1).await;
    let host = format!("{slug}.localhost");

    // The owner's step answers peers only: a client cannot plant a superuser through it.
    let (status, body) = send(
        n2.request(
            Method::PUT,
            "localhost",
            &format!("/v1/cluster/act/{project}/superuser"),
        )
        .json(&json!({ "email": "intruder@example.com", "password": "intruder-pass-1" })),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let page = format!("/projects/{project}");
    let form = format!("/projects/{project}/superuser");
    // Refused input comes back from the owner as the form's notice.
    let (status, body) = visitor
        .submit(
            &page,
            &form,
            &[("email", "not-an-email"), ("password", "pw")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let started = Instant::now();
    let (status, body) = visitor
        .submit(
            &page,
            &form,
            &[
                ("email", "boss@example.com"),
                ("password", "boss-password-1"),
            ],
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Superuser boss@example.com saved"), "{body}");
    for node in [&n1, &n2, &n3] {
        let (status, body) = send(
            node.request(
                Method::POST,
                &host,
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({ "identity": "boss@example.com", "password": "boss-password-1" })),
        )
        .await;
        assert_eq!(status, 200, "sign-in through {}: {body}", node.id);
    }
    let (status, _) = send(
        n3.request(
            Method::POST,
            &host,
            "/api/collections/_superusers/auth-with-password",
        )
        .json(&json!({ "identity": "intruder@example.com", "password": "intruder-pass-1" })),
    )
    .await;
    assert_eq!(status, 400, "the client's superuser was not planted");
    // The export form streams the zip n2 makes.
    let (status, body) = visitor
        .submit(&page, &format!("/projects/{project}/export"), &[])
        .await;
    assert_eq!(status, 200, "console export");
    assert!(body.starts_with("PK"), "a zip from the owner");
    println!("superuser set on n2 through the leader's console in {took:?}");
}

/// A project served by a node that does not lead asks the leader what only the leader knows:
/// the console's "Open dashboard" link (minted by the leader) signs its owner in through the
/// project's host on every node, once, and the project's own `/api/warren/usage` shows the
/// cluster's usage (what n1 metered before the move as well as n2's since), not n2's copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_project_on_a_follower_gets_its_dashboard_link_and_usage_from_the_leader() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [n1, n2, n3] =
        three_nodes_with_backups_and(&etcd, target.path(), &["--metering-interval=500ms"]).await;
    let mut visitor = ConsoleVisitor::new(&n1);
    let account = console_account(&mut visitor, &n1, "lead@example.com").await;
    let slug = "asksleader";
    let project = project_moved_to_n2(&n1, &n2, slug, &account, 10).await;
    let host = format!("{slug}.localhost");

    // The console's button, on the leader, mints a one-time code n2 redeems through the leader.
    let (status, body) = visitor
        .submit(
            &format!("/projects/{project}"),
            &format!("/projects/{project}/dashboard"),
            &[],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let location = visitor
        .location
        .clone()
        .expect("a redirect to the dashboard");
    let code = location
        .split_once("/_/#/link/")
        .map(|(_, code)| code.to_string())
        .expect("the code in the fragment");
    let redeem = |node: &Node, code: &str| {
        node.request(Method::POST, &host, "/api/warren/dashboard-link")
            .json(&json!({ "code": code }))
    };
    let started = Instant::now();
    let (status, session) = send(redeem(&n3, &code)).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "redeemed through n3, served by n2: {session}");
    assert_eq!(session["record"]["email"], "lead@example.com", "{session}");
    let token = session["token"].as_str().unwrap().to_string();
    // Used once, wherever it is tried again.
    for node in [&n1, &n2, &n3] {
        let (status, body) = send(redeem(node, &code)).await;
        assert_eq!(status, 400, "used again through {}: {body}", node.id);
    }
    let (status, body) = send(redeem(&n2, "not-a-code")).await;
    assert_eq!(status, 400, "{body}");
    // The question reaches the leader from peers only.
    let (status, body) = send(
        n1.request(Method::POST, "localhost", "/v1/cluster/platform/usage")
            .json(&json!({ "tenant": project })),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // n2 meters its own requests (into its copy and the leader's); the project's usage, asked
    // through n2, is the leader's: n1's ten requests before the move are in it.
    for _ in 0..5 {
        let (status, body) =
            send(n2.request(Method::GET, &host, "/api/collections/users/records")).await;
        assert_eq!(status, 200, "{body}");
    }
    eventually(
        Duration::from_secs(30),
        "the leader has metered n2's requests",
        async || {
            usage_and_backups(&n1, slug)
                .await
                .is_some_and(|(totals, _)| totals["requests"].as_u64().unwrap_or(0) >= 15)
        },
    )
    .await;
    let (status, shown) = send(
        n2.request(Method::GET, &host, "/api/warren/usage")
            .header("Authorization", token.as_str()),
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    // n2's own copy counts only the five (and a few of its own checks): at least 15 is the
    // leader's.
    assert!(
        shown["totals"]["requests"].as_u64().unwrap_or(0) >= 15,
        "{shown}"
    );
    let (status, body) = send(n2.request(Method::GET, &host, "/api/warren/usage")).await;
    assert_eq!(status, 401, "superusers only: {body}");
    println!(
        "dashboard link redeemed through n3 (served by n2, minted by the leader) in {took:?}; \
         the project's usage through n2: {} requests",
        shown["totals"]["requests"]
    );
}

/// The owner of an idle and of a busy tenant dies (kill -9): the busy one (requests through
/// n3 until the kill) is claimed and restored by a survivor as soon as the dead node's lease
/// ends, with no request asking for it, so its next request is served at once; the idle one
/// stays free until a request comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_dead_nodes_busy_tenants_are_restored_before_their_next_request() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [n1, mut n2, n3] = three_nodes_with_backups(&etcd, target.path()).await;
    let busy = tenant_with_notes(&n1, "busy").await;
    let idle = tenant_with_notes(&n1, "idle").await;
    for slug in ["busy", "idle"] {
        write_notes(&n1, slug, 3, slug).await;
        let (status, body) = send(move_request(&n1, slug).json(&json!({ "node": "n2" }))).await;
        assert_eq!(status, 200, "{body}");
    }
    // Requests for the busy tenant through n3, forwarded to n2, until the kill.
    eventually(
        Duration::from_secs(15),
        "n2 serves the busy tenant through n3",
        async || {
            let (status, body) = send(n3.request(
                Method::GET,
                "busy.localhost",
                "/api/collections/notes/records",
            ))
            .await;
            status == 200 && body["totalItems"] == 3
        },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "n2 serves the idle tenant",
        async || {
            send(n2.request(Method::GET, "idle.localhost", "/api/health"))
                .await
                .0
                == 200
        },
    )
    .await;

    n2.child.kill().unwrap();
    let killed = Instant::now();
    n2.child.wait().unwrap();
    let client = etcd.client();
    let owner_of = async |id: &str| -> Option<Value> {
        let kv = client
            .get(&format!("/warren/e2e/owners/{id}"))
            .await
            .ok()
            .flatten()?;
        serde_json::from_slice(&kv.value).ok()
    };
    // Nobody asks for either tenant now. The busy one gets a new owner by itself.
    let mut claimed = None;
    eventually(
        Duration::from_secs(20),
        "a survivor claims the busy tenant",
        async || match owner_of(&busy).await {
            Some(owner) if owner["node"] != "n2" => {
                claimed = Some((owner, killed.elapsed()));
                true
            }
            _ => false,
        },
    )
    .await;
    let (owner, claimed_after) = claimed.unwrap();
    assert_eq!(owner["generation"], 3, "{owner}");
    let idle_owner = owner_of(&idle).await;
    assert!(
        idle_owner.is_none(),
        "the idle tenant waits for a request: {idle_owner:?}"
    );
    // Its restore runs meanwhile; once done, its first request is served.
    let restorer = if owner["node"] == "n1" { &n1 } else { &n3 };
    eventually(
        Duration::from_secs(20),
        "the new owner has the busy tenant's data",
        async || restorer.has_tenant(&busy),
    )
    .await;
    let mut first = None;
    eventually(
        Duration::from_secs(20),
        "the busy tenant serves its records",
        async || {
            let (status, body) = send(n1.request(
                Method::GET,
                "busy.localhost",
                "/api/collections/notes/records",
            ))
            .await;
            first.get_or_insert(status);
            status == 200 && body["totalItems"] == 3
        },
    )
    .await;
    let served_after = killed.elapsed();
    // The idle tenant's first request claims it, and waits for its restore.
    let (status, body) = send(n1.request(Method::GET, "idle.localhost", "/api/health")).await;
    assert_eq!(status, 503, "restored on demand: {body}");
    println!(
        "busy tenant claimed by {} {claimed_after:?} after its node's kill -9 with no request \
         for it, its first request then answered {} (served at {served_after:?}); the idle \
         tenant's first request: {status}",
        owner["node"],
        first.unwrap_or_default()
    );
}

/// A code deploy's tar.gz holding `files` (path, content).
fn code_archive(files: &[(&str, &str)]) -> Vec<u8> {
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, path, text.as_bytes())
            .unwrap();
    }
    archive.into_inner().unwrap().finish().unwrap()
}

/// Hooks whose route `/env` answers `<version>:<the secret X>`.
fn env_hooks(version: &str) -> String {
    format!(
        "routerAdd(\"GET\", \"/env\", (e) => e.string(200, \"{version}:\" + $os.getenv(\"X\")));\n"
    )
}

/// A tenant's code and secrets travel with it: deployed and set while it is on n1, it is moved
/// to n2 and its hooks answer with the secret's value through every node; a second deploy and
/// secret change on n2 (asked through the leader and through n3, run on n2), then n2 is killed
/// with SIGKILL right after their 200s: the survivor that takes the tenant over serves the
/// newest code with the newest secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_tenants_code_and_secrets_travel_with_it() {
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let [n1, mut n2, n3] = three_nodes_with_backups(&etcd, target.path()).await;
    let slug = "carried";
    let host = format!("{slug}.localhost");
    let id = tenant_with_notes(&n1, slug).await;
    let operator = |node: &Node, method: Method, path: &str| {
        node.request(method, "localhost", &format!("/v1/tenants/{slug}{path}"))
            .bearer_auth(TOKEN)
    };
    let deploy = async |node: &Node, version: &str| {
        let started = Instant::now();
        let (status, body) = send(
            operator(node, Method::PUT, "/code")
                .header("Content-Type", "application/gzip")
                .body(code_archive(&[(
                    "pb_hooks/main.pb.js",
                    &env_hooks(version),
                )])),
        )
        .await;
        assert_eq!(status, 200, "deploy {version} through {}: {body}", node.id);
        started.elapsed()
    };
    let set_secret = async |node: &Node, value: &str| {
        let started = Instant::now();
        let (status, body) =
            send(operator(node, Method::PUT, "/secrets/X").json(&json!({ "value": value }))).await;
        assert_eq!(status, 204, "secret through {}: {body}", node.id);
        started.elapsed()
    };
    let env = async |node: &Node| {
        let (status, body) = send(node.request(Method::GET, &host, "/env")).await;
        (status, body.as_str().unwrap_or_default().to_string())
    };

    // On n1: code and a secret.
    deploy(&n1, "v1").await;
    set_secret(&n1, "one").await;
    assert_eq!(env(&n1).await, (200, "v1:one".to_string()));

    // Moved to n2: served through every node with the secret.
    let (status, body) = send(move_request(&n1, slug).json(&json!({ "node": "n2" }))).await;
    assert_eq!(status, 200, "{body}");
    eventually(
        Duration::from_secs(15),
        "n2 serves the tenant",
        async || send(n2.request(Method::GET, &host, "/api/health")).await.0 == 200,
    )
    .await;
    for node in [&n1, &n2, &n3] {
        assert_eq!(env(node).await, (200, "v1:one".to_string()), "{}", node.id);
    }
    // The secrets' names through the leader are n2's.
    let (status, body) = send(operator(&n1, Method::GET, "/secrets")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["names"], json!(["X"]));

    // On n2 (asked through the leader and through n3): newer code and secret, then n2 dies.
    let deploy_took = deploy(&n1, "v2").await;
    let secret_took = set_secret(&n3, "two").await;
    n2.child.kill().unwrap();
    let killed = Instant::now();
    n2.child.wait().unwrap();
    println!("on n2: deploy acknowledged in {deploy_took:?}, secret in {secret_took:?}");

    let mut served = None;
    let deadline = killed + Duration::from_secs(30);
    'wait: while Instant::now() < deadline {
        for node in [&n1, &n3] {
            let (status, text) = env(node).await;
            if status == 200 {
                served = Some((node.id.clone(), text));
                break 'wait;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (by, text) = served.expect("a survivor serves the tenant within 30 s");
    println!(
        "after the kill: served through {by} in {:?}: {text}",
        killed.elapsed()
    );
    assert_eq!(text, "v2:two", "the newest code and secret");
    for node in [&n1, &n3] {
        assert_eq!(env(node).await, (200, "v2:two".to_string()), "{}", node.id);
    }
    let owner = [&n1, &n3].into_iter().find(|n| n.has_tenant(&id)).unwrap();
    println!("taken over by {}", owner.id);
}

/// A placed node that stops answering (SIGSTOP, its lease still alive) never fails a creation:
/// the leader waits for it a bounded time, then provisions the tenant itself under a fresh id
/// and hands it on later; every new tenant of a burst made right after the freeze is created
/// and served by the live nodes, and the frozen node keeps no claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: run by tests/suites/cluster"]
async fn a_new_tenant_whose_placed_node_hangs_is_made_on_the_leader() {
    const TENANTS: usize = 9;
    let etcd = Cluster::start();
    let target = tempfile::tempdir().unwrap();
    let flags = backup_flags(target.path());
    let n1 = Node::start_as_given("n1", &etcd.clients, &flags);
    wait_leads(&etcd, &n1).await;
    let mut n2 = Node::start_as_given("n2", &etcd.clients, &flags);
    let n3 = Node::start_as_given("n3", &etcd.clients, &flags);
    let client = etcd.client();
    eventually(Duration::from_secs(10), "three live nodes", async || {
        client
            .list("/warren/e2e/nodes/")
            .await
            .is_ok_and(|(kvs, _)| kvs.len() == 3)
    })
    .await;

    let stopped = Command::new("kill")
        .args(["-STOP", &n2.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    // A burst right away, while n2 still counts as live: bounded-load placement gives it some.
    let creations = (0..TENANTS).map(|i| {
        let n1 = &n1;
        async move {
            let slug = format!("burst{i}");
            let started = Instant::now();
            let (status, body) = send(
                n1.request(Method::POST, "localhost", "/v1/tenants")
                    .bearer_auth(TOKEN)
                    // The leader waits up to 10 s for the placed node before it falls back.
                    .timeout(Duration::from_secs(60))
                    .json(&json!({ "slug": slug })),
            )
            .await;
            (slug, status, body, started.elapsed())
        }
    });
    let made = futures_util::future::join_all(creations).await;
    let mut slow = 0;
    for (slug, status, body, took) in &made {
        assert_eq!(*status, 201, "{slug}: {body}");
        slow += usize::from(*took >= Duration::from_secs(5));
    }
    assert!(
        slow >= 1,
        "some tenant was placed on the frozen node and waited for it: {:?}",
        made.iter().map(|m| m.3).collect::<Vec<_>>()
    );
    for (slug, _, _, _) in &made {
        let host = format!("{slug}.localhost");
        for node in [&n1, &n3] {
            eventually(
                Duration::from_secs(30),
                &format!("{slug} served through {}", node.id),
                async || {
                    send(node.request(Method::GET, &host, "/api/health"))
                        .await
                        .0
                        == 200
                },
            )
            .await;
        }
    }
    let (owners, _) = client.list("/warren/e2e/owners/").await.unwrap();
    for kv in &owners {
        let owner: Value = serde_json::from_slice(&kv.value).unwrap();
        assert_ne!(
            owner["node"], "n2",
            "the frozen node keeps no claim: {owner}"
        );
    }
    let times: Vec<u128> = made.iter().map(|m| m.3.as_millis()).collect();
    println!(
        "{TENANTS} tenants created while n2 was frozen: {slow} waited for it and were made on \
         the leader; creation times (ms) {times:?}"
    );
    n2.child.kill().unwrap();
    n2.child.wait().unwrap();
}
