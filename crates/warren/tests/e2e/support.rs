//! Starting a real server and talking to it by hostname.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const TOKEN: &str = "test-operator-token";
/// The superuser the tests give their tenants.
pub const EMAIL: &str = "root@example.com";
pub const PASSWORD: &str = "root-password-1";

/// A running `warren serve`, killed on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub child: Child,
    pub client: reqwest::Client,
}

/// A `warren tenant hold` waiting for Enter; dropping it presses Enter and waits for the
/// release.
pub struct Held {
    child: Child,
    /// Read to its end as the command ends.
    stderr: BufReader<std::process::ChildStderr>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = std::io::Write::write_all(&mut stdin, b"\n");
        }
        let _ = std::io::Read::read_to_end(&mut self.stderr, &mut Vec::new());
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_warren")
}

impl Server {
    /// Starts the server with extra `serve` flags and waits for its "listening" line.
    pub fn start(flags: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), flags)
    }

    /// Kills the server with SIGKILL (no shutdown, no flush) and starts a new one on the same
    /// data directory.
    pub fn crash_and_restart(mut self, flags: &[&str]) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir().unwrap());
        Self::start_in(data_dir, flags)
    }

    fn start_in(data_dir: tempfile::TempDir, flags: &[&str]) -> Self {
        let mut child = Command::new(binary())
            .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .args(flags)
            .env("WARREN_OPERATOR_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("Warren listening on http://") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            addr,
            data_dir,
            child,
            client,
        }
    }

    /// Runs `serve` with `flags` expecting it to refuse them: its output once it exited (it is
    /// killed, and the test fails, if it is still running after ten seconds).
    pub fn start_output(flags: &[&str]) -> std::process::Output {
        let data_dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary())
            .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .args(flags)
            .env("WARREN_OPERATOR_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve {flags:?} kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Runs a CLI command against the same data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .output()
            .unwrap()
    }

    /// A request to `path` on `host` (the Host header decides where it goes).
    pub fn request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}{}", self.addr, path))
            .header(
                reqwest::header::HOST,
                format!("{host}:{}", self.addr.port()),
            )
    }

    /// `GET` returning status and JSON body.
    pub async fn get(&self, host: &str, path: &str) -> (u16, Value) {
        send(self.request(reqwest::Method::GET, host, path)).await
    }

    /// Makes [`EMAIL`] a superuser of tenant `slug` with the CLI and signs it in; its token.
    pub async fn superuser(&self, slug: &str) -> String {
        let output = self.cli(&["superuser", "upsert", slug, EMAIL, PASSWORD]);
        assert!(output.status.success(), "{output:?}");
        let (status, body) = send(
            self.request(
                reqwest::Method::POST,
                &format!("{slug}.localhost"),
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({ "identity": EMAIL, "password": PASSWORD })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Deploys `files` (name, text) as tenant `slug`'s `pb_hooks` through the operator API;
    /// the running server loads them at once.
    pub async fn deploy_hooks(&self, slug: &str, files: &[(&str, &str)]) {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (name, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            let path = format!("pb_hooks/{name}");
            builder
                .append_data(&mut header, path, text.as_bytes())
                .unwrap();
        }
        let archive = builder.into_inner().unwrap().finish().unwrap();
        let (status, body) = send(
            self.request(
                reqwest::Method::PUT,
                "localhost",
                &format!("/v1/tenants/{slug}/code"),
            )
            .bearer_auth(TOKEN)
            .header("content-type", "application/gzip")
            .body(archive),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Creates tenant `slug` with the CLI and a superuser in it; the superuser's token.
    pub async fn tenant_with_superuser(&self, slug: &str) -> String {
        assert!(self.cli(&["tenant", "create", slug]).status.success());
        self.superuser(slug).await
    }

    /// The directory of tenant `slug`, found through the operator API.
    pub async fn tenant_dir(&self, slug: &str) -> PathBuf {
        let (status, body) = operator(
            self,
            reqwest::Method::GET,
            &format!("/v1/tenants/{slug}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        self.data_dir()
            .join("tenants")
            .join(body["id"].as_str().unwrap())
    }

    /// Runs `f` on a connection to tenant `slug`'s `data.db`, with the tenant held closed by
    /// `warren tenant hold` (the server keeps a served tenant's database to itself); the
    /// tenant opens again, reading everything anew, at its next request.
    pub async fn with_tenant_db<T>(
        &self,
        slug: &str,
        f: impl FnOnce(&warren_store::sql::Connection) -> T,
    ) -> T {
        let path = self.tenant_dir(slug).await.join("data.db");
        let held = self.hold(slug);
        let db = warren_store::sql::Connection::open(path).unwrap();
        let out = f(&db);
        drop(db);
        drop(held);
        out
    }

    /// Tenant `slug` held closed by `warren tenant hold` until the guard drops.
    pub fn hold(&self, slug: &str) -> Held {
        let mut child = Command::new(binary())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["tenant", "hold", slug])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut said = String::new();
        let held = loop {
            let mut line = String::new();
            match stderr.read_line(&mut line) {
                Ok(0) | Err(_) => break false,
                Ok(_) if line.starts_with("Press Enter") => break true,
                Ok(_) => said.push_str(&line),
            }
        };
        if !held {
            let _ = child.wait();
            panic!("warren tenant hold {slug} did not hold it: {said}");
        }
        Held { child, stderr }
    }

    /// `GET path` on `host`: status and the body's bytes.
    pub async fn download(&self, host: &str, path: &str) -> (u16, Vec<u8>) {
        let response = self
            .request(reqwest::Method::GET, host, path)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }

    /// The directories of tenants whose database the server process has open now.
    pub fn open_tenant_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        let Ok(entries) = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())) else {
            return dirs;
        };
        for entry in entries.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path())
                && target.file_name().is_some_and(|n| n == "data.db")
                && let Some(dir) = target.parent()
                && dir.parent().is_some_and(|p| p.ends_with("tenants"))
                && !dirs.contains(&dir.to_path_buf())
            {
                dirs.push(dir.to_path_buf());
            }
        }
        dirs
    }
}

/// Sends a request, returning status and JSON body (Null when the body is empty).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

/// An operator API call on the platform host: status and JSON answer.
pub async fn operator(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.request(method, "localhost", path).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

/// `application/x-www-form-urlencoded` of `fields`.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(fields: &[(K, V)]) -> String {
    let escape = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k.as_ref()), escape(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

/// Polls `check` until it holds or `limit` passes (for effects that another process or a
/// background task brings about). Returns whether it held.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
