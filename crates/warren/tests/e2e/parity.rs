//! PocketBase's own API test tables (its `apis/*_test.go`), ported as data in `tests/parity/`:
//! the fixture they assume is rebuilt through the API, then every case's status and error codes
//! must match exactly. The JS SDK suite runs the same tables against the real PocketBase, which
//! keeps the expectations honest.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Map, Value};

use crate::support::{Server, send};

const FIXTURE: &str = include_str!("../../../../tests/parity/fixture.json");
const COLLECTIONS: &str = include_str!("../../../../tests/parity/collections.json");
const RECORDS: &str = include_str!("../../../../tests/parity/records.json");
const AUTH: &str = include_str!("../../../../tests/parity/auth.json");
const ADMIN: &str = include_str!("../../../../tests/parity/admin.json");

const HOST: &str = "parity.localhost";
const EMAIL: &str = "parity@example.com";
const PASSWORD: &str = "parity-password-1";

/// A tenant holding the fixture, and the saved responses the cases refer to.
struct Run {
    server: Server,
    /// `s` (the name suffix) and every fixture step's saved response.
    vars: BTreeMap<String, Value>,
}

impl Run {
    async fn start() -> Self {
        let server = Server::start(&[]);
        assert!(server.cli(&["tenant", "create", "parity"]).status.success());
        let output = server.cli(&["superuser", "upsert", "parity", EMAIL, PASSWORD]);
        assert!(output.status.success(), "{output:?}");
        let (status, body) = send(
            server
                .request(
                    Method::POST,
                    HOST,
                    "/api/collections/_superusers/auth-with-password",
                )
                .json(&serde_json::json!({ "identity": EMAIL, "password": PASSWORD })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let mut vars = BTreeMap::new();
        vars.insert("s".to_string(), Value::String("e2erun".into()));
        vars.insert("superuser".to_string(), body);
        let mut run = Run { server, vars };
        let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
        for step in fixture["steps"].as_array().unwrap() {
            let (status, body) = run.send(step, "superuser").await;
            assert!(
                status < 300,
                "fixture {} {} → {status} {body}",
                step["method"],
                run.fill_str(step["url"].as_str().unwrap())
            );
            if let Some(name) = step["save"].as_str() {
                run.vars.insert(name.to_string(), body);
            }
        }
        run
    }

    /// `{{name}}` or `{{name.path}}` replaced by the saved value.
    fn fill_str(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("closing }}") + start;
            let path = &rest[start + 2..end];
            let mut parts = path.split('.');
            let mut value = &self.vars[parts.next().unwrap()];
            for key in parts {
                value = &value[key];
            }
            match value {
                Value::String(s) => out.push_str(s),
                Value::Null => panic!("no fixture value {path}"),
                other => out.push_str(&other.to_string()),
            }
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    fn fill(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.fill_str(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.fill(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.fill(v)))
                    .collect::<Map<_, _>>(),
            ),
            other => other.clone(),
        }
    }

    async fn send(&self, step: &Value, default_auth: &str) -> (u16, Value) {
        let method = Method::from_bytes(step["method"].as_str().unwrap().as_bytes()).unwrap();
        let url = self.fill_str(step["url"].as_str().unwrap());
        let mut request = self.server.request(method, HOST, &url);
        let auth = step["auth"].as_str().unwrap_or(default_auth);
        if auth != "none" {
            let token = self.vars[auth]["token"].as_str().expect("a token");
            request = request.header("Authorization", token);
        }
        for (name, value) in step["headers"].as_object().into_iter().flatten() {
            request = request.header(name, self.fill_str(value.as_str().expect("a header value")));
        }
        if let Some(raw) = step["rawBody"].as_str() {
            request = request
                .header("Content-Type", "application/json")
                .body(raw.to_string());
        } else if !step["body"].is_null() {
            request = request.json(&self.fill(&step["body"]));
        }
        send(request).await
    }

    /// Runs every case of a table; returns one line per case that did not answer as expected.
    async fn table(&self, table: &str) -> Vec<String> {
        let table: Value = serde_json::from_str(table).unwrap();
        let mut failures = Vec::new();
        for case in table["cases"].as_array().unwrap() {
            let (status, body) = self.send(case, "none").await;
            if let Err(why) = self.check(case, status, &body) {
                failures.push(format!(
                    "{}: {why}\n    got {status} {body}",
                    case["name"].as_str().unwrap()
                ));
            }
        }
        failures
    }

    fn check(&self, case: &Value, status: u16, body: &Value) -> Result<(), String> {
        if Some(u64::from(status)) != case["status"].as_u64() {
            return Err(format!("status {status}, expected {}", case["status"]));
        }
        if !case["data"].is_null() {
            let expected = self.fill(&case["data"]);
            let got = codes(&body["data"]);
            if got != expected {
                return Err(format!("data {got}, expected {expected}"));
            }
        }
        if !case["dataSubset"].is_null() {
            contains(
                &codes(&body["data"]),
                &self.fill(&case["dataSubset"]),
                "data",
            )?;
        }
        if !case["json"].is_null() {
            contains(body, &self.fill(&case["json"]), "")?;
        }
        if let Some(prefix) = case["jsonPrefix"].as_array() {
            // The answer is a list that starts with these items (it may go on).
            let got = body.as_array().ok_or("the answer is not a list")?;
            if got.len() < prefix.len() {
                return Err(format!(
                    "{} items, expected at least {}",
                    got.len(),
                    prefix.len()
                ));
            }
            for (i, (a, e)) in got.iter().zip(prefix).enumerate() {
                contains(a, &self.fill(e), &format!("[{i}]"))?;
            }
        }
        for key in case["absent"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap();
            if body.get(key).is_some() {
                return Err(format!("{key} should be absent"));
            }
        }
        for want in case["fieldsInclude"].as_array().into_iter().flatten() {
            let want = self.fill(want);
            let field = body["fields"]
                .as_array()
                .and_then(|fields| fields.iter().find(|f| f["name"] == want["name"]))
                .ok_or_else(|| format!("no field {}", want["name"]))?;
            contains(field, &want, &format!("fields[{}]", want["name"]))?;
        }
        for name in case["indexesInclude"].as_array().into_iter().flatten() {
            let name = self.fill_str(name.as_str().unwrap());
            let found = body["indexes"]
                .as_array()
                .is_some_and(|all| all.iter().any(|i| i.as_str().unwrap_or("").contains(&name)));
            if !found {
                return Err(format!("no index {name}"));
            }
        }
        Ok(())
    }
}

/// The error data with each `{code, message}` reduced to `{code}`.
fn codes(data: &Value) -> Value {
    match data {
        Value::Object(map) if map.get("code").is_some_and(Value::is_string) => {
            serde_json::json!({ "code": map["code"] })
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), codes(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// `expected` is inside `actual`: objects key by key, arrays element by element and of equal
/// length, `"<any>"` for any present, non-empty value.
fn contains(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match expected {
        Value::String(s) if s == "<any>" => match actual {
            Value::Null => Err(format!("{path} missing")),
            Value::String(a) if a.is_empty() => Err(format!("{path} empty")),
            _ => Ok(()),
        },
        Value::Array(items) => {
            let got = actual
                .as_array()
                .ok_or_else(|| format!("{path} is not an array"))?;
            if got.len() != items.len() {
                return Err(format!(
                    "{path} has {} items, expected {}",
                    got.len(),
                    items.len()
                ));
            }
            for (i, (a, e)) in got.iter().zip(items).enumerate() {
                contains(a, e, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, e) in map {
                contains(&actual[k], e, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        other if other == actual => Ok(()),
        other => Err(format!("{path} is {actual}, expected {other}")),
    }
}

async fn run_table(table: &str) {
    let run = Run::start().await;
    let failures = run.table(table).await;
    assert!(
        failures.is_empty(),
        "{} case(s) differ from PocketBase:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn collection_validation_answers_as_pocketbase_tests_expect() {
    run_table(COLLECTIONS).await;
}

#[tokio::test]
async fn record_writes_answer_as_pocketbase_tests_expect() {
    run_table(RECORDS).await;
}

#[tokio::test]
async fn auth_methods_otp_and_email_change_answer_as_pocketbase_tests_expect() {
    run_table(AUTH).await;
}

#[tokio::test]
async fn admin_routes_answer_as_pocketbase_tests_expect() {
    run_table(ADMIN).await;
}
