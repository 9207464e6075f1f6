//! A served tenant's database belongs to the server's process: other processes are locked out
//! until `warren tenant hold` has the server close the tenant, which then answers 503 and
//! serves again, reading what changed, once released.

use reqwest::Method;
use serde_json::json;

use crate::support::{Server, send};

#[tokio::test]
async fn a_served_tenant_is_locked_to_other_processes_until_held() {
    let server = Server::start(&[]);
    let su = server.tenant_with_superuser("alpha").await;
    let (status, body) = send(
        server
            .request(Method::POST, "alpha.localhost", "/api/collections")
            .bearer_auth(&su)
            .json(&json!({"name": "notes", "type": "base", "listRule": "",
                "fields": [{"name": "title", "type": "text"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let list = || {
        send(
            server
                .request(
                    Method::GET,
                    "alpha.localhost",
                    "/api/collections/notes/records",
                )
                .bearer_auth(&su),
        )
    };
    assert_eq!(list().await.0, 200);

    // The tenant is open: another process cannot read its database.
    let path = server.tenant_dir("alpha").await.join("data.db");
    let outside = warren_store::sql::Connection::open(&path).unwrap();
    outside.busy_timeout(std::time::Duration::ZERO).unwrap();
    let read = outside.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0));
    let err = read.expect_err("the served database was readable by another process");
    assert!(err.to_string().contains("locked"), "{err}");
    drop(outside);

    // Held: requests get PocketBase's error envelope with 503, and the files are free.
    let held = server.hold("alpha");
    let (status, body) = list().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], 503, "{body}");
    let outside = warren_store::sql::Connection::open(&path).unwrap();
    outside
        .execute(
            "INSERT INTO notes (id, title) VALUES ('heldheldheld123', 'from sqlite')",
            [],
        )
        .unwrap();
    drop(outside);
    drop(held);

    // Released: served again, with what was written meanwhile.
    let (status, body) = list().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["title"], "from sqlite", "{body}");

    // A command run under the hold gets the tenant's directory and its exit status counts.
    let output = server.cli(&[
        "tenant",
        "hold",
        "alpha",
        "--",
        "sh",
        "-c",
        "test -f data.db",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("alpha is held closed") && stderr.contains("Released alpha."),
        "{stderr}"
    );
    let output = server.cli(&["tenant", "hold", "alpha", "--", "false"]);
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(list().await.0, 200);

    // CLI commands that open the tenant's files hold it themselves.
    let output = server.cli(&[
        "superuser",
        "upsert",
        "alpha",
        "second@example.com",
        "second-password-1",
    ]);
    assert!(output.status.success(), "{output:?}");
    let to = tempfile::tempdir().unwrap();
    let output = server.cli(&[
        "tenant",
        "export",
        "alpha",
        "--to",
        to.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(list().await.0, 200);
    let (status, body) = send(
        server
            .request(
                Method::POST,
                "alpha.localhost",
                "/api/collections/_superusers/auth-with-password",
            )
            .json(&json!({"identity": "second@example.com", "password": "second-password-1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // With no server (this one killed, its server.json left behind), a hold has nothing to
    // ask and the files are free.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let output = server.cli(&["tenant", "hold", "alpha", "--", "true"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no server is running"),
        "{output:?}"
    );
}
