//! A three-member etcd cluster on loopback ports, and a proxy that cuts a client off from it,
//! for the tests that need a real etcd (`WARREN_ETCD` names the binary). Shared by the
//! warren-cluster tests, warren's cluster test and the edge's ACME cluster test (included with
//! `#[path]`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use warren_cluster::etcd::Etcd;

/// A three-member etcd cluster in a temporary directory, killed when dropped.
pub struct Cluster {
    members: Vec<Option<Child>>,
    pub clients: Vec<String>,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Starts the three members and waits until each answers; on a loaded machine (or a port
    /// taken meanwhile) a cluster that does not come up is started once more on fresh ports.
    pub fn start() -> Self {
        match Self::try_start() {
            Ok(cluster) => cluster,
            Err(report) => {
                eprintln!("etcd did not come up, starting it again on other ports: {report}");
                Self::try_start().unwrap_or_else(|report| panic!("{report}"))
            }
        }
    }

    fn try_start() -> Result<Self, String> {
        let etcd = std::env::var("WARREN_ETCD")
            .expect("WARREN_ETCD names the etcd binary (tests/suites/cluster sets it)");
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("warren-test-{}", std::process::id());
        let mut members = Vec::new();
        let mut clients = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).unwrap();
            let child = Command::new(&etcd)
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("m{i}")))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("etcd starts");
            members.push(Some(child));
            clients.push(client_url);
        }
        let cluster = Self {
            members,
            clients,
            _dir: dir,
        };
        match cluster.healthy_within(Duration::from_secs(30)) {
            Ok(()) => Ok(cluster),
            Err(url) => Err(format!(
                "etcd at {url} did not come up; members' logs:\n{}",
                cluster.log_tails()
            )),
        }
    }

    pub fn wait_healthy(&self) {
        if let Err(url) = self.healthy_within(Duration::from_secs(30)) {
            panic!("etcd at {url} did not come up");
        }
    }

    /// Waits until every member answers; the first that did not within `limit`.
    fn healthy_within(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        for url in &self.clients {
            let addr = url.trim_start_matches("http://").to_string();
            while !health(&addr) {
                if Instant::now() >= deadline {
                    return Err(url.clone());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// The last lines of each member's log.
    fn log_tails(&self) -> String {
        (0..self.members.len())
            .map(|i| {
                let log = std::fs::read_to_string(self._dir.path().join(format!("m{i}.log")))
                    .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                format!(
                    "m{i}: {}",
                    lines[lines.len().saturating_sub(5)..].join("\n    ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn client(&self) -> Etcd {
        Etcd::new(&self.clients, Duration::from_secs(2)).unwrap()
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// `GET /health` answers `"health":"true"` (a leader is elected).
pub fn health(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

/// A TCP proxy in front of one etcd member that can cut the node behind it off: connections
/// are dropped and new ones are held open without an answer, as a partition would.
pub struct Proxy {
    pub addr: String,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let target = target.trim_start_matches("http://").to_string();
        let flag = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                let flag = flag.clone();
                tokio::spawn(async move {
                    if flag.load(Ordering::SeqCst) {
                        // Held open, never answered.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                                if flag.load(Ordering::SeqCst) {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Self { addr, cut }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    pub fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
