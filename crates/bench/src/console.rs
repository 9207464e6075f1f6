//! The Warren-only `console` scenario: signup-to-live-project latency. Each simulated developer
//! signs up through the console's forms (password hashing happens here, untimed), is verified by
//! the operator API, then creates a project; the clock runs from the create post until the new
//! project's `GET /api/health` answers 200 by its hostname.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Client, Response, StatusCode, header};
use serde::Serialize;

use crate::server::{self, OPERATOR_TOKEN, WarrenOptions};

/// Settings of one console run.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Developers to sign up (one project each).
    pub accounts: usize,
    /// Developers signing up at once.
    pub concurrency: usize,
}

/// Latencies of one run, in milliseconds.
#[derive(Debug, Serialize)]
pub struct ConsoleReport {
    pub accounts: usize,
    pub concurrency: usize,
    /// Create post → first 200 from the project's hostname (the goal: p99 < 100 ms).
    pub signup_to_live: Latency,
    /// The project-creation post alone.
    pub create_request: Latency,
    /// The signup post, including its argon2id hash (context only).
    pub signup_request: Latency,
}

/// p50, p99 and max of a sample, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn latency(mut sample: Vec<Duration>) -> Latency {
    sample.sort();
    let at = |q: f64| {
        let i = ((sample.len() as f64 * q).ceil() as usize).clamp(1, sample.len()) - 1;
        sample[i].as_secs_f64() * 1000.0
    };
    Latency {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

/// One developer's timings.
struct Run {
    signup: Duration,
    create: Duration,
    live: Duration,
}

/// A cookie-keeping client of the console, talking to `localhost:<port>` without following
/// redirects.
struct Browser {
    http: Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &Response) {
        for value in response.headers().get_all(header::SET_COOKIE) {
            let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()) else {
                continue;
            };
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    /// `GET path`; returns the page's first CSRF token.
    async fn csrf(&mut self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await?;
        self.keep_cookies(&response);
        let body = response.text().await?;
        let marker = r#"name="csrf" value=""#;
        let start = body.find(marker).context("no CSRF token on the page")? + marker.len();
        let end = body[start..].find('"').context("unterminated CSRF token")?;
        Ok(body[start..start + end].to_string())
    }

    /// Posts a form; expects a 303 redirect and returns its location.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<String> {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        self.keep_cookies(&response);
        if response.status() != StatusCode::SEE_OTHER {
            bail!("POST {path} answered {}", response.status());
        }
        Ok(response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string())
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn client() -> anyhow::Result<Client> {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

async fn one(port: u16, i: usize) -> anyhow::Result<Run> {
    let http = client()?;
    let mut browser = Browser {
        http: http.clone(),
        base: format!("http://localhost:{port}"),
        cookies: Vec::new(),
    };
    let email = format!("bench{i}@example.com");
    let slug = format!("bench-{i}");

    let csrf = browser.csrf("/signup").await?;
    let started = Instant::now();
    browser
        .post(
            "/signup",
            &[
                ("csrf", &csrf),
                ("email", &email),
                ("password", "bench-password-1"),
            ],
        )
        .await?;
    let signup = started.elapsed();

    let found: serde_json::Value = http
        .get(format!(
            "http://localhost:{port}/v1/accounts?email={}",
            encode(&email)
        ))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let id = found["items"][0]["id"]
        .as_str()
        .context("the new account is not listed")?;
    let verified = http
        .post(format!("http://localhost:{port}/v1/accounts/{id}/verify"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await?;
    if !verified.status().is_success() {
        bail!("verifying the account answered {}", verified.status());
    }

    let csrf = browser.csrf("/projects").await?;
    let started = Instant::now();
    browser
        .post("/projects", &[("csrf", &csrf), ("slug", &slug)])
        .await?;
    let create = started.elapsed();
    // The project's own hostname, over 127.0.0.1 with its Host header.
    let health = http
        .get(format!("http://127.0.0.1:{port}/api/health"))
        .header(header::HOST, format!("{slug}.localhost:{port}"))
        .send()
        .await?;
    let live = started.elapsed();
    if health.status() != StatusCode::OK {
        bail!("the new project answered {}", health.status());
    }
    Ok(Run {
        signup,
        create,
        live,
    })
}

/// Starts Warren (signup limits lifted), runs the scenario, stops Warren.
pub async fn run(warren: &Path, cfg: &ConsoleConfig) -> anyhow::Result<ConsoleReport> {
    let accounts = cfg.accounts.max(1);
    let opts = WarrenOptions {
        extra_args: vec![
            "--signup-limit-ip".into(),
            (accounts + 1).to_string(),
            "--signup-limit-email".into(),
            "10".into(),
        ],
        ..WarrenOptions::default()
    };
    let server = server::start_warren(warren, &opts).await?;
    let port = server.port;
    let concurrency = cfg.concurrency.max(1);
    let mut runs = Vec::with_capacity(accounts);
    let mut next = 0;
    let mut failure = None;
    while next < accounts && failure.is_none() {
        let batch: Vec<_> = (next..(next + concurrency).min(accounts))
            .map(|i| tokio::spawn(one(port, i)))
            .collect();
        next += batch.len();
        for task in batch {
            match task.await {
                Ok(Ok(run)) => runs.push(run),
                Ok(Err(e)) => failure = Some(e),
                Err(e) => failure = Some(anyhow::anyhow!(e)),
            }
        }
    }
    server.stop().await;
    if let Some(e) = failure {
        return Err(e.context("a console run failed"));
    }
    Ok(ConsoleReport {
        accounts,
        concurrency,
        signup_to_live: latency(runs.iter().map(|r| r.live).collect()),
        create_request: latency(runs.iter().map(|r| r.create).collect()),
        signup_request: latency(runs.iter().map(|r| r.signup).collect()),
    })
}

/// The report as lines for the terminal.
pub fn format(report: &ConsoleReport) -> Vec<String> {
    let line = |name: &str, l: &Latency| {
        format!(
            "{name:<28} p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
            l.p50_ms, l.p99_ms, l.max_ms
        )
    };
    vec![
        format!(
            "console: {} developers, {} at once",
            report.accounts, report.concurrency
        ),
        line("signup-to-live (no hashing)", &report.signup_to_live),
        line("  create-project request", &report.create_request),
        line("  signup request (argon2id)", &report.signup_request),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_from_the_sorted_sample() {
        let sample = (1..=100).map(Duration::from_millis).collect();
        let l = latency(sample);
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        let one = latency(vec![Duration::from_millis(7)]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
    }
}
