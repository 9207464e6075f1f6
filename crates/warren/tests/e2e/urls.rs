//! Tenant URLs that match the server: the CLI prints the URL of the server running on its data
//! directory (its port, or the configured public URL), and the configured default, saying so,
//! when none runs — also after a server was killed and left its record behind.

use std::process::Output;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::support::{Server, TOKEN, send};

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stops the server with SIGTERM and waits (bounded) for it to exit.
fn terminate(server: &mut Server) {
    let pid = server.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn the_cli_prints_the_url_the_running_server_answers_on() {
    let server = Server::start(&[]);
    let port = server.addr.port();
    assert_ne!(port, 8090);
    let output = server.cli(&["tenant", "create", "alpha"]);
    assert_eq!(stdout(&output), format!("http://alpha.localhost:{port}\n"));
    assert!(!stderr(&output).contains("no server"), "{output:?}");
    // The URL works.
    let (status, _) = server.get("alpha.localhost", "/api/health").await;
    assert_eq!(status, 200);
    let listed = stdout(&server.cli(&["tenant", "list"]));
    assert!(
        listed.contains(&format!("\thttp://alpha.localhost:{port}\n")),
        "{listed}"
    );
    // A --http given to the CLI does not override what the running server answers on.
    let output = server.cli(&["--http", "127.0.0.1:9999", "tenant", "create", "beta"]);
    assert_eq!(stdout(&output), format!("http://beta.localhost:{port}\n"));

    // Behind a proxy: the configured public URL, in the CLI and in the operator API.
    let server = server.crash_and_restart(&["--public-url", "https://localhost:8443"]);
    let output = server.cli(&["tenant", "create", "gamma"]);
    assert_eq!(stdout(&output), "https://gamma.localhost:8443\n");
    let (status, body) = send(
        server
            .request(Method::POST, "localhost", "/v1/tenants")
            .bearer_auth(TOKEN)
            .json(&json!({ "slug": "delta" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["url"], "https://delta.localhost:8443");

    // Killed: its record stays behind but names a process that is gone, so the CLI uses the
    // configured defaults and says no server runs.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(server.data_dir().join("server.json").exists());
    let output = server.cli(&["tenant", "create", "epsilon"]);
    assert_eq!(stdout(&output), "http://epsilon.localhost:8090\n");
    assert!(
        stderr(&output).contains("no server is running"),
        "{output:?}"
    );
    let output = server.cli(&["--http", "127.0.0.1:9999", "tenant", "create", "zeta"]);
    assert_eq!(stdout(&output), "http://zeta.localhost:9999\n");
    let output = server.cli(&[
        "--public-url",
        "https://localhost",
        "tenant",
        "create",
        "eta",
    ]);
    assert_eq!(stdout(&output), "https://eta.localhost\n");
    // A public URL whose host is not the platform domain is refused, saying why.
    let output = server.cli(&["--public-url", "https://example.com", "tenant", "list"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("platform domain"), "{output:?}");

    // Stopped cleanly: the record goes away with the server.
    let mut server = server.crash_and_restart(&[]);
    let port = server.addr.port();
    let output = server.cli(&["tenant", "create", "theta"]);
    assert_eq!(stdout(&output), format!("http://theta.localhost:{port}\n"));
    terminate(&mut server);
    assert!(!server.data_dir().join("server.json").exists());
    let output = server.cli(&["tenant", "create", "iota"]);
    assert_eq!(stdout(&output), "http://iota.localhost:8090\n");
}
