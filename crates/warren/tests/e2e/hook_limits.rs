//! The plan's limits of a tenant's code on the real server: CPU time per call, the hourly CPU
//! budget (metered into usage, refused with a 429 past it), plan changes reaching loaded code,
//! and a busy tenant's calls spread over several runtimes.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, eventually, operator, send};

const CODE: &str = r#"
// Each runtime of the tenant loads this file: the id tells them apart.
const runtime = String(Math.random());
routerAdd("GET", "/api/spin/{ms}", (e) => {
  const until = Date.now() + Number(e.request.pathValue("ms"));
  let n = 0;
  while (Date.now() < until) n++;
  return e.json(200, { runtime, n });
});
routerAdd("GET", "/api/loop", (e) => { for (;;) {} });
"#;

async fn tenant_with_code(server: &Server, slug: &str) -> String {
    let token = server.tenant_with_superuser(slug).await;
    server.deploy_hooks(slug, &[("main.pb.js", CODE)]).await;
    token
}

async fn get(server: &Server, host: &str, path: &str) -> (u16, Value) {
    send(server.request(Method::GET, host, path)).await
}

async fn usage_totals(server: &Server, slug: &str) -> Value {
    let (status, body) = operator(
        server,
        Method::GET,
        &format!("/v1/tenants/{slug}/usage"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["totals"].clone()
}

async fn logs(server: &Server, host: &str, token: &str) -> String {
    let request = server
        .request(Method::GET, host, "/api/logs?perPage=200")
        .header("Authorization", token);
    send(request).await.1.to_string()
}

#[tokio::test]
async fn code_cpu_is_metered_capped_by_the_plan_and_plan_changes_apply_at_once() {
    let server = Server::start(&["--metering-interval", "150ms"]);
    let token = tenant_with_code(&server, "spender").await;
    let host = "spender.localhost";
    let (status, body) = operator(
        &server,
        Method::POST,
        "/v1/plans",
        Some(json!({"name": "tight-code", "hookCpuMs": 150, "hookCpuMsPerHour": 300})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hookMemoryBytes"], 64 << 20, "{body}");
    let (status, body) = operator(
        &server,
        Method::PATCH,
        "/v1/tenants/spender",
        Some(json!({"plan": "tight-code"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The plan's 150 ms per call stops an endless loop well before the node's 1 s.
    let started = Instant::now();
    assert_eq!(get(&server, host, "/api/loop").await.0, 500);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // Busy calls spend the hour's 300 CPU ms, then calls into the code are refused.
    let mut refused = None;
    for _ in 0..40 {
        let (status, body) = get(&server, host, "/api/spin/40").await;
        if status == 429 {
            refused = Some(body);
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let refused = refused.expect("the hourly budget never closed");
    assert_eq!(refused["status"], 429);
    assert_eq!(refused["data"], json!({}));
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("CPU time for this hour"),
        "{refused}"
    );
    // The tenant's own API still answers; only its code waits for the next hour.
    assert_eq!(get(&server, host, "/api/health").await.0, 200);
    let logged = eventually(Duration::from_secs(5), async || {
        logs(&server, host, &token)
            .await
            .contains("CPU ms for this hour")
    })
    .await;
    assert!(logged, "the refusal is in the tenant's logs");
    let mut last = Value::Null;
    let metered = eventually(Duration::from_secs(5), async || {
        last = usage_totals(&server, "spender").await;
        last["hookCpuMs"].as_u64().unwrap_or(0) >= 300
    })
    .await;
    assert!(metered, "usage shows the code's CPU milliseconds: {last}");
    assert!(server.cli(&["usage", "spender"]).status.success());

    // Lifting the budget reopens the loaded code at its next call, without a reload.
    let (status, body) = operator(
        &server,
        Method::PATCH,
        "/v1/plans/tight-code",
        Some(json!({"hookCpuMsPerHour": 0})),
    )
    .await;
    assert_eq!(
        (status, &body["hookCpuMsPerHour"]),
        (200, &json!(0)),
        "{body}"
    );
    assert_eq!(get(&server, host, "/api/spin/1").await.0, 200);
}

#[tokio::test]
async fn a_busy_tenant_runs_on_several_runtimes() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return;
    }
    let server = Server::start(&[]);
    tenant_with_code(&server, "parallel").await;
    let host = "parallel.localhost";
    assert_eq!(get(&server, host, "/api/spin/1").await.0, 200);
    // Calls that overlap do not wait for one another's runtime: a second one is made.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let request = server.request(Method::GET, host, "/api/spin/150");
            tokio::spawn(send(request))
        })
        .collect();
    let mut runtimes = std::collections::HashSet::new();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
        runtimes.insert(body["runtime"].as_str().unwrap().to_string());
    }
    assert!(runtimes.len() >= 2, "{runtimes:?}");
}

/// A request hook waits in `e.next()` for the request's write while holding a runtime, and
/// that write runs the record's model hooks on another: with more such requests at once than
/// the tenant may have runtimes, every one is still written, with both hooks run.
#[tokio::test]
async fn request_hooks_waiting_in_next_leave_room_for_the_model_hooks() {
    const NESTED: &str = r#"
onRecordCreateRequest((e) => {
  const until = Date.now() + 40;
  while (Date.now() < until) {}
  e.next();
  if (e.record.id.length !== 15) throw new BadRequestError("no id after next");
}, "notes");
onRecordCreate((e) => {
  e.record.set("stamp", "model hook");
  e.next();
}, "notes");
"#;
    let server = Server::start(&[]);
    let token = server.tenant_with_superuser("nested").await;
    server
        .deploy_hooks("nested", &[("main.pb.js", NESTED)])
        .await;
    let host = "nested.localhost";
    let collection = json!({"name": "notes", "type": "base", "createRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "stamp", "type": "text"}]});
    let request = server
        .request(Method::POST, host, "/api/collections")
        .header("Authorization", &token)
        .json(&collection);
    let (status, body) = send(request).await;
    assert_eq!(status, 200, "{body}");

    // Four times the most runtimes a tenant gets on this machine, all at once.
    let calls: Vec<_> = (0..4 * hooks_runtimes())
        .map(|n| {
            let request = server
                .request(Method::POST, host, "/api/collections/notes/records")
                .json(&json!({ "title": format!("note {n}") }));
            tokio::spawn(send(request))
        })
        .collect();
    let all = async {
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        answers
    };
    let answers = tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("creates waiting in e.next() did not finish");
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["stamp"], "model hook", "{body}");
    }
}

/// The most runtimes one tenant's code gets on this machine (the engine's default).
fn hooks_runtimes() -> usize {
    warren_hooks::Limits::default().runtimes
}
