//! Realtime over SSE at scale: thousands of subscribers across two tenants, every event
//! delivered exactly once to the right tenant's subscribers and to no one else.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{Server, send};

/// Subscribers per tenant.
const PER_TENANT: usize = 2000;
/// Records created in the busy tenant.
const EVENTS: usize = 20;

/// Creates a tenant with a superuser and an open `posts` collection; returns the token.
async fn tenant(server: &Server, slug: &str) -> String {
    let host = format!("{slug}.localhost");
    let token = server.tenant_with_superuser(slug).await;
    let (status, body) = send(
        server
            .request(Method::POST, &host, "/api/collections")
            .header("Authorization", &token)
            .json(&json!({
                "name": "posts", "type": "base", "listRule": "", "viewRule": "",
                "fields": [{ "name": "title", "type": "text" }],
            })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    token
}

/// One SSE connection and the bytes read from it so far.
struct Stream {
    response: reqwest::Response,
    buffer: String,
    client_id: String,
}

impl Stream {
    /// Reads the next `(id, event, data)` frame.
    async fn frame(&mut self) -> (String, String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut fields = (String::new(), String::new(), Value::Null);
                for line in frame.lines() {
                    match line.split_once(':') {
                        Some(("id", v)) => fields.0 = v.to_string(),
                        Some(("event", v)) => fields.1 = v.to_string(),
                        Some(("data", v)) => fields.2 = serde_json::from_str(v).unwrap(),
                        None if line.is_empty() => {}
                        _ => panic!("unexpected SSE line {line:?}"),
                    }
                }
                return fields;
            }
            let chunk = self.response.chunk().await.unwrap().expect("stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// Connects, reads `PB_CONNECT` and subscribes to `posts/*` as a guest.
async fn subscribe(client: reqwest::Client, base: String, host: String) -> Stream {
    let response = client
        .get(format!("{base}/api/realtime"))
        .header(reqwest::header::HOST, &host)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "SSE content type"
    );
    let mut stream = Stream {
        response,
        buffer: String::new(),
        client_id: String::new(),
    };
    let (id, event, data) = stream.frame().await;
    assert_eq!(event, "PB_CONNECT");
    assert_eq!(data["clientId"], id.as_str());
    assert_eq!(id.len(), 40);
    stream.client_id = id;
    let status = client
        .post(format!("{base}/api/realtime"))
        .header(reqwest::header::HOST, &host)
        .json(&json!({ "clientId": stream.client_id, "subscriptions": ["posts/*"] }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    stream
}

async fn create(server: &Server, slug: &str, token: &str, title: &str) -> String {
    let (status, body) = send(
        server
            .request(
                Method::POST,
                &format!("{slug}.localhost"),
                "/api/collections/posts/records",
            )
            .header("Authorization", token)
            .json(&json!({ "title": title })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Reads events until the one for record `last`; returns the record ids in arrival order.
async fn read_until(stream: &mut Stream, last: &str) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let (id, event, data) = stream.frame().await;
        assert_eq!(id, stream.client_id);
        assert_eq!(event, "posts/*");
        assert_eq!(data["action"], "create");
        let record = data["record"]["id"].as_str().unwrap().to_string();
        let done = record == last;
        ids.push(record);
        if done {
            return ids;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_subscribers_get_every_event_of_their_tenant_once() {
    let server = Server::start(&[]);
    let alpha = tenant(&server, "alpha").await;
    let beta = tenant(&server, "beta").await;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .unwrap();

    // Connect everyone, a bounded number at a time.
    let mut streams: Vec<(&str, Stream)> = Vec::with_capacity(2 * PER_TENANT);
    let mut pending = JoinSet::new();
    let slugs: Vec<&'static str> = (0..2 * PER_TENANT)
        .map(|i| if i % 2 == 0 { "alpha" } else { "beta" })
        .collect();
    for (i, slug) in slugs.iter().enumerate() {
        if i >= 64 {
            let (slug, stream) = pending.join_next().await.unwrap().unwrap();
            streams.push((slug, stream));
        }
        let (client, base, host) = (
            client.clone(),
            base.clone(),
            format!("{slug}.localhost:{}", server.addr.port()),
        );
        let slug: &'static str = slug;
        pending.spawn(async move { (slug, subscribe(client, base, host).await) });
    }
    while let Some(done) = pending.join_next().await {
        streams.push(done.unwrap());
    }
    assert_eq!(streams.len(), 2 * PER_TENANT);

    // Events in alpha, then one in beta, then a last one in alpha.
    let mut expected = Vec::new();
    for i in 0..EVENTS {
        expected.push(create(&server, "alpha", &alpha, &format!("a{i}")).await);
    }
    let beta_only = create(&server, "beta", &beta, "b").await;
    let alpha_last = create(&server, "alpha", &alpha, "last").await;
    expected.push(alpha_last.clone());

    let mut readers = JoinSet::new();
    for (slug, mut stream) in streams {
        let (expected, beta_only, alpha_last) =
            (expected.clone(), beta_only.clone(), alpha_last.clone());
        readers.spawn(async move {
            if slug == "alpha" {
                let got = read_until(&mut stream, &alpha_last).await;
                assert_eq!(got, expected, "alpha subscriber {}", stream.client_id);
            } else {
                let got = read_until(&mut stream, &beta_only).await;
                assert_eq!(got.len(), 1, "beta subscriber {}", stream.client_id);
                assert_eq!(got[0], beta_only);
            }
        });
    }
    let all_read = async {
        while let Some(done) = readers.join_next().await {
            done.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all_read)
        .await
        .expect("every subscriber got its events in time");
}

#[tokio::test]
async fn subscription_errors_are_pocketbase_shaped_and_ids_are_per_tenant() {
    let server = Server::start(&[]);
    tenant(&server, "alpha").await;
    tenant(&server, "beta").await;
    let base = format!("http://{}", server.addr);
    let host = |slug: &str| format!("{slug}.localhost:{}", server.addr.port());
    let stream = subscribe(server.client.clone(), base.clone(), host("alpha")).await;
    // The alpha client id means nothing in beta.
    let (status, body) = send(
        server
            .request(Method::POST, "beta.localhost", "/api/realtime")
            .json(&json!({ "clientId": stream.client_id, "subscriptions": ["posts"] })),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({ "data": {}, "message": "Missing or invalid client id.", "status": 404 })
    );
    let (status, body) = send(
        server
            .request(Method::POST, "alpha.localhost", "/api/realtime")
            .json(&json!({ "clientId": "x".repeat(256) })),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["clientId"]["code"],
        "validation_length_out_of_range"
    );
    let (status, body) = send(
        server
            .request(Method::POST, "alpha.localhost", "/api/realtime")
            .json(&json!({ "clientId": stream.client_id, "subscriptions": ["x".repeat(2501)] })),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["subscriptions"]["0"]["code"],
        "validation_length_too_long"
    );
    let (status, _) = send(
        server
            .request(Method::POST, "alpha.localhost", "/api/realtime")
            .json(&json!({ "clientId": stream.client_id, "subscriptions": "nope" })),
    )
    .await;
    assert_eq!(status, 400);
}

/// Reads one unmasked server frame (text or close) from a WebSocket.
async fn ws_frame(socket: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(60), read_ws_frame(socket))
        .await
        .expect("a WebSocket frame within 60 s")
}

async fn read_ws_frame(socket: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    socket.read_exact(&mut head).await.unwrap();
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
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let mut payload = vec![0u8; len];
    socket.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

#[tokio::test]
async fn websocket_clients_subscribe_like_sse_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(&[]);
    let token = tenant(&server, "alpha").await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let handshake = format!(
        "GET /api/realtime/ws HTTP/1.1\r\nHost: alpha.localhost:{}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        server.addr.port()
    );
    socket.write_all(handshake.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.unwrap();
        response.push(byte[0]);
    }
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert!(
        response.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{response}"
    );

    let (opcode, payload) = ws_frame(&mut socket).await;
    assert_eq!(opcode, 0x81, "a final text frame");
    let hello: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(hello["event"], "PB_CONNECT");
    let client_id = hello["data"]["clientId"].as_str().unwrap().to_string();
    assert_eq!(client_id.len(), 40);

    let (status, _) = send(
        server
            .request(Method::POST, "alpha.localhost", "/api/realtime")
            .json(&json!({ "clientId": client_id, "subscriptions": ["posts/*"] })),
    )
    .await;
    assert_eq!(status, 204);
    let id = create(&server, "alpha", &token, "over ws").await;
    let (opcode, payload) = ws_frame(&mut socket).await;
    assert_eq!(opcode, 0x81);
    let event: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(event["event"], "posts/*");
    assert_eq!(event["data"]["action"], "create");
    assert_eq!(event["data"]["record"]["id"], id.as_str());
    assert_eq!(event["data"]["record"]["title"], "over ws");
}

/// Sends one masked text frame (clients must mask).
async fn ws_send(socket: &mut tokio::net::TcpStream, text: &str) {
    use tokio::io::AsyncWriteExt;
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let payload = text.as_bytes();
    let mut frame = vec![0x81u8];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    socket.write_all(&frame).await.unwrap();
}

/// Sends an in-band command and returns the reply's `(event, data)`.
async fn ws_command(socket: &mut tokio::net::TcpStream, command: Value) -> (String, Value) {
    eprintln!("ws command: {command}");
    ws_send(socket, &command.to_string()).await;
    let (opcode, payload) = ws_frame(socket).await;
    assert_eq!(opcode, 0x81);
    let reply: Value = serde_json::from_slice(&payload).unwrap();
    (
        reply["event"].as_str().unwrap().to_string(),
        reply["data"].clone(),
    )
}

/// Opens a WebSocket to tenant `slug`'s realtime endpoint; returns it and the client id.
async fn ws_connect(server: &Server, slug: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let handshake = format!(
        "GET /api/realtime/ws HTTP/1.1\r\nHost: {slug}.localhost:{}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        server.addr.port()
    );
    socket.write_all(handshake.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.unwrap();
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"));
    let (_, payload) = ws_frame(&mut socket).await;
    let hello: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(hello["event"], "PB_CONNECT");
    let id = hello["data"]["clientId"].as_str().unwrap().to_string();
    (socket, id)
}

#[tokio::test]
async fn websocket_clients_subscribe_and_unsubscribe_in_band() {
    let server = Server::start(&[]);
    let token = tenant(&server, "alpha").await;
    let (mut socket, _) = ws_connect(&server, "alpha").await;

    let (event, data) = ws_command(
        &mut socket,
        json!({ "type": "subscribe", "id": 1, "subscriptions": ["posts/*"] }),
    )
    .await;
    assert_eq!(event, "PB_SUBSCRIPTIONS");
    assert_eq!(data, json!({ "id": 1, "subscriptions": ["posts/*"] }));
    let first = create(&server, "alpha", &token, "one").await;
    eprintln!("created {first}");
    let (_, payload) = ws_frame(&mut socket).await;
    let got: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(got["event"], "posts/*");
    assert_eq!(got["data"]["record"]["id"], first.as_str());

    // Add a record topic, then drop the collection topic: only the record's events remain.
    let record_topic = format!("posts/{first}");
    let (_, data) = ws_command(
        &mut socket,
        json!({ "type": "subscribe", "id": "b", "subscriptions": [record_topic, "posts/*"] }),
    )
    .await;
    assert_eq!(data["subscriptions"], json!(["posts/*", record_topic]));
    let (_, data) = ws_command(
        &mut socket,
        json!({ "type": "unsubscribe", "subscriptions": ["posts/*"] }),
    )
    .await;
    assert_eq!(data, json!({ "id": null, "subscriptions": [record_topic] }));
    create(&server, "alpha", &token, "not followed").await;
    eprintln!("created a post nobody follows");
    let (status, _) = send(
        server
            .request(
                Method::PATCH,
                "alpha.localhost",
                &format!("/api/collections/posts/records/{first}"),
            )
            .header("Authorization", &token)
            .json(&json!({ "title": "changed" })),
    )
    .await;
    assert_eq!(status, 200);
    let (_, payload) = ws_frame(&mut socket).await;
    let got: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        got["event"],
        record_topic.as_str(),
        "the unfollowed create never came"
    );
    assert_eq!(got["data"]["action"], "update");
    assert_eq!(got["data"]["record"]["title"], "changed");

    // Errors come back in PocketBase's envelope; the connection stays usable.
    let (event, data) = ws_command(&mut socket, json!({ "type": "nope" })).await;
    assert_eq!(event, "PB_ERROR");
    assert_eq!(data["status"], 400);
    assert_eq!(data["data"]["type"]["code"], "validation_in_invalid");
    let (event, data) = ws_command(
        &mut socket,
        json!({ "type": "set", "subscriptions": ["x".repeat(2501)] }),
    )
    .await;
    assert_eq!(event, "PB_ERROR");
    assert_eq!(
        data["data"]["subscriptions"]["0"]["code"],
        "validation_length_too_long"
    );
    let (event, data) = ws_command(&mut socket, json!("not an object")).await;
    assert_eq!(
        (event.as_str(), data["status"].clone()),
        ("PB_ERROR", json!(400))
    );

    // In-band auth binds like POST: a superuser first, then a guest is refused.
    let (event, data) = ws_command(
        &mut socket,
        json!({ "type": "set", "subscriptions": ["posts"], "authorization": token }),
    )
    .await;
    assert_eq!(event, "PB_SUBSCRIPTIONS", "{data}");
    let (event, data) = ws_command(
        &mut socket,
        json!({ "type": "unsubscribe", "authorization": "" }),
    )
    .await;
    assert_eq!(event, "PB_ERROR");
    assert_eq!(data["status"], 403);
    let (event, data) = ws_command(
        &mut socket,
        json!({ "type": "unsubscribe", "authorization": token }),
    )
    .await;
    assert_eq!(event, "PB_SUBSCRIPTIONS");
    assert_eq!(data["subscriptions"], json!([]));
}

#[tokio::test]
async fn open_streams_do_not_hold_up_shutdown() {
    let mut server = Server::start(&[]);
    tenant(&server, "alpha").await;
    let base = format!("http://{}", server.addr);
    let host = format!("alpha.localhost:{}", server.addr.port());
    let mut stream = subscribe(server.client.clone(), base, host).await;
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    // The stream ends, then the process exits, well within the bound.
    let ended = tokio::time::timeout(Duration::from_secs(20), stream.response.chunk())
        .await
        .expect("the stream ended at shutdown");
    assert!(matches!(ended, Ok(None) | Err(_)));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if server.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "server still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The name and niceness of each of process `pid`'s threads, its main thread first.
fn thread_niceness(pid: u32) -> Vec<(String, i32)> {
    let mut tasks: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| task.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    tasks.sort_by_key(|&tid| (tid != pid, tid));
    let mut threads = Vec::new();
    for tid in tasks {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
            continue; // the thread ended meanwhile
        };
        // `tid (name) state ppid …`: the name may hold spaces; nice is field 19.
        let open = stat.find('(').unwrap();
        let close = stat.rfind(')').unwrap();
        let name = stat[open + 1..close].to_string();
        let nice: i32 = stat[close + 2..]
            .split(' ')
            .nth(16)
            .unwrap()
            .parse()
            .unwrap();
        threads.push((name, nice));
    }
    threads
}

#[tokio::test]
async fn events_are_delivered_by_threads_that_yield_to_request_handling() {
    let server = Server::start(&[]);
    let token = tenant(&server, "alpha").await;
    // A stream on the delivery threads gets its events.
    let base = format!("http://{}", server.addr);
    let host = format!("alpha.localhost:{}", server.addr.port());
    let mut stream = subscribe(server.client.clone(), base, host).await;
    let id = create(&server, "alpha", &token, "first").await;
    assert_eq!(read_until(&mut stream, &id).await, vec![id]);

    assert_delivery_niceness(&server, 10);
    // Operators choose how far below requests delivery runs.
    let server = Server::start(&["--delivery-niceness", "3"]);
    assert_delivery_niceness(&server, 3);
}

/// Delivery threads of `server` run `nicer` levels below its other threads.
fn assert_delivery_niceness(server: &Server, nicer: i32) {
    // The main thread's niceness is the server's; request threads (Tokio's workers) keep it.
    let threads = thread_niceness(server.child.id());
    let base = threads[0].1;
    let delivery = threads
        .iter()
        .filter(|(name, _)| name == "warren-delivery")
        .count();
    assert!(delivery > 0, "no delivery threads in {threads:?}");
    let workers = threads
        .iter()
        .filter(|(name, _)| name.starts_with("tokio-"))
        .count();
    assert!(workers > 0, "no request threads in {threads:?}");
    for (name, nice) in &threads {
        if name == "warren-delivery" {
            assert_eq!(*nice, (base + nicer).min(19), "{threads:?}");
        } else {
            assert_eq!(*nice, base, "{threads:?}");
        }
    }
}
