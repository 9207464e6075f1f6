//! `warren-bench dashboard`: the dashboard's weight and first-screen fetch time, Warren's beside
//! PocketBase 0.40.6's own `/_/`, and the records grid's first-page request on a large collection.
//!
//! The first screen is what `/_/` names (scripts, stylesheets, module preloads, icons) plus the
//! static imports of those scripts, fetched the way a browser without a cache does: the page,
//! then every file at once. Sizes are bytes on the wire with `Accept-Encoding: gzip`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use crate::load::{self, Bounds, OpError, Stats, Summary};
use crate::report::{Cell, Line};
use crate::scenarios::Measured;
use crate::target::{Target, json_ok};

/// The request `records.js` sends for a collection's first page (its defaults: newest first,
/// 20 rows, relations expanded).
pub const GRID_QUERY: &str = "sort=-created&page=1&perPage=20&expand=owner";

/// What to measure.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Posts seeded for the grid.
    pub records: usize,
    /// Users seeded (the posts' owners).
    pub users: usize,
    /// Concurrent clients while seeding.
    pub seed_concurrency: usize,
    /// First-screen loads per target.
    pub loads: usize,
    /// Seconds of grid requests per round and target.
    pub duration: Duration,
    /// Grid rounds (targets alternate within each).
    pub rounds: usize,
}

/// One target's dashboard weight and first-screen time.
#[derive(Debug, Serialize)]
pub struct Weight {
    pub target: String,
    /// Files the first screen fetches, `/_/` included.
    pub first_screen_files: usize,
    /// Their bytes on the wire.
    pub first_screen_bytes: u64,
    /// Every JS and CSS file of the dashboard, gzipped.
    pub all_js_css_bytes: u64,
    /// Time to fetch the first screen's files.
    pub load: Summary,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct DashboardReport {
    pub weights: Vec<Weight>,
    /// The grid's request, and each target's latency for it.
    pub grid_request: String,
    pub grid: Vec<(String, Summary)>,
}

/// Measures `targets` (name, target), printing as it goes.
pub async fn run(
    targets: &[(String, Target)],
    cfg: &DashboardConfig,
) -> anyhow::Result<DashboardReport> {
    let mut weights = Vec::new();
    for (name, target) in targets {
        let first = crawl(target, false).await?;
        let all = if name == "warren" {
            warren_js_css()
        } else {
            let every = crawl(target, true).await?;
            every
                .iter()
                .filter(|a| is_js_css(&a.path))
                .map(|a| a.wire)
                .sum()
        };
        weights.push((name.clone(), first, all));
    }
    let mut loads: Vec<Stats> = targets.iter().map(|_| Stats::new("loads/s")).collect();
    for _ in 0..cfg.loads.max(1) {
        for (k, (_, target)) in targets.iter().enumerate() {
            let paths: Vec<String> = weights[k].1.iter().map(|a| a.path.clone()).collect();
            let begun = Instant::now();
            match load_first_screen(target, &paths).await {
                Ok(()) => loads[k].record(begun.elapsed()),
                Err(err) => loads[k].record_error(&err),
            }
            loads[k].elapsed += begun.elapsed();
        }
    }
    let weights: Vec<Weight> = weights
        .into_iter()
        .zip(loads)
        .map(|((target, first, all), stats)| Weight {
            target,
            first_screen_files: first.len(),
            first_screen_bytes: first.iter().map(|a| a.wire).sum(),
            all_js_css_bytes: all,
            load: stats.summary(),
        })
        .collect();
    for w in &weights {
        println!("{}", format_weight(w));
    }
    let grid = grid(targets, cfg).await;
    Ok(DashboardReport {
        weights,
        grid_request: format!("GET /api/collections/posts/records?{GRID_QUERY}"),
        grid,
    })
}

fn format_weight(w: &Weight) -> String {
    format!(
        "{:<11} first screen {} files, {:.1} KiB; all JS+CSS {:.1} KiB gzipped; \
         first-screen fetch p50 {:.2} ms p99 {:.2} ms (err {})",
        w.target,
        w.first_screen_files,
        w.first_screen_bytes as f64 / 1024.0,
        w.all_js_css_bytes as f64 / 1024.0,
        w.load.p50_ms,
        w.load.p99_ms,
        w.load.errors
    )
}

/// Seeds each target and times the grid's first-page request, one client at a time.
async fn grid(targets: &[(String, Target)], cfg: &DashboardConfig) -> Vec<(String, Summary)> {
    let mut tokens = Vec::new();
    for (name, target) in targets {
        eprintln!("seeding {name}: {} users, {} posts", cfg.users, cfg.records);
        let seeded = crate::seed::seed(target, cfg.users, cfg.records, cfg.seed_concurrency).await;
        let token = match seeded {
            Ok(_) => target.superuser_token().await.map_err(|e| e.message),
            Err(e) => Err(format!("seed failed: {}", e.message)),
        };
        tokens.push(token);
    }
    let bounds = Bounds {
        concurrency: 1,
        duration: cfg.duration,
        max_ops: u64::MAX,
    };
    let mut cells: Vec<Cell> = targets
        .iter()
        .map(|(name, _)| Cell {
            target: name.clone(),
            result: Err("not run".into()),
            rss_kib: None,
        })
        .collect();
    for round in 0..cfg.rounds.max(1) {
        for (k, (name, target)) in targets.iter().enumerate() {
            eprintln!("grid: round {} on {name}", round + 1);
            let result = match &tokens[k] {
                Err(reason) => Err(reason.clone()),
                Ok(token) => {
                    let (target, token) = (target.clone(), token.clone());
                    let stats = load::run(bounds, "req/s", move |_, _| {
                        grid_page(target.clone(), token.clone())
                    })
                    .await;
                    Ok(Measured {
                        stats,
                        bytes_per_conn: None,
                    })
                }
            };
            if round == 0 {
                cells[k].result = result;
            } else {
                cells[k].merge(result, None);
            }
            cells[k].rss_kib = target.rss_kib();
        }
    }
    let line = Line {
        scenario: "records-grid".into(),
        cells,
    };
    println!("{}", crate::report::format_line(&line));
    let mut out = Vec::new();
    for cell in line.cells {
        if let Ok(m) = cell.result {
            let s = m.stats.summary();
            let verdict = if s.p99_ms < 100.0 { "met" } else { "missed" };
            println!(
                "{:<11} grid p99 {:.2} ms: goal < 100 ms {verdict}",
                cell.target, s.p99_ms
            );
            out.push((cell.target, s));
        }
    }
    out
}

async fn grid_page(target: Target, token: String) -> load::OpResult {
    let url = target.url(&format!("/api/collections/posts/records?{GRID_QUERY}"));
    let resp = target
        .client
        .get(url)
        .header("Authorization", token)
        .send()
        .await?;
    let page = json_ok(resp).await?;
    let rows = page["items"].as_array().map_or(0, Vec::len);
    if rows == 0 {
        return Err(OpError::other("the grid's first page is empty"));
    }
    Ok(())
}

/// Every JS and CSS file Warren's dashboard embeds, gzipped (from the same sources the binary
/// embeds).
fn warren_js_css() -> u64 {
    warren_dashboard::sizes()
        .iter()
        .filter(|(name, ..)| is_js_css(name))
        .map(|(_, _, gzip)| *gzip as u64)
        .sum()
}

fn is_js_css(path: &str) -> bool {
    path.ends_with(".js") || path.ends_with(".mjs") || path.ends_with(".css")
}

/// One fetched file: its path and bytes on the wire.
#[derive(Debug, Clone)]
struct Asset {
    path: String,
    wire: u64,
}

/// The first screen's files (`dynamic` adds what literal `import("…")` calls reach).
async fn crawl(target: &Target, dynamic: bool) -> anyhow::Result<Vec<Asset>> {
    let mut seen = BTreeSet::new();
    let mut queue = vec!["/_/".to_string()];
    let mut assets = Vec::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let text = fetch_text(target, &path).await?;
        let wire = fetch_wire(target, &path).await.map_err(anyhow_of)?;
        assets.push(Asset {
            path: path.clone(),
            wire,
        });
        let found = if path.ends_with('/') || path.ends_with(".html") {
            references(&text, &["src=\"", "href=\""])
        } else if path.ends_with(".js") || path.ends_with(".mjs") {
            let mut marks = vec![
                "from\"",
                "from \"",
                "from '",
                "import\"",
                "import \"",
                "import '",
            ];
            if dynamic {
                marks.extend(["import(\"", "import('"]);
            }
            references(&text, &marks)
        } else {
            Vec::new()
        };
        queue.extend(found.iter().filter_map(|r| resolve(&path, r)));
    }
    Ok(assets)
}

fn anyhow_of(err: OpError) -> anyhow::Error {
    anyhow::anyhow!(err.message)
}

/// Quoted values after any of `marks` that name a file of the same origin.
fn references(text: &str, marks: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for mark in marks {
        let quote = mark.chars().last().unwrap_or('"');
        for (at, _) in text.match_indices(mark) {
            let rest = &text[at + mark.len()..];
            let Some(end) = rest.find(quote) else {
                continue;
            };
            let value = &rest[..end];
            let local = value.starts_with("./")
                || value.starts_with("../")
                || (value.starts_with('/') && !value.starts_with("//"))
                || (!value.contains(':') && !value.starts_with('#') && value.contains('.'));
            if local && !value.is_empty() && value.len() < 300 && !value.contains(['$', '{', ' ']) {
                out.push(value.to_string());
            }
        }
    }
    out
}

/// `reference` resolved against the file at `from` (both URL paths).
fn resolve(from: &str, reference: &str) -> Option<String> {
    let reference = reference.split(['?', '#']).next()?;
    let mut parts: Vec<&str> = if reference.starts_with('/') {
        Vec::new()
    } else {
        let dir = &from[..from.rfind('/')? + 1];
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in reference.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

async fn fetch_text(target: &Target, path: &str) -> anyhow::Result<String> {
    let resp = target.client.get(target.url(path)).send().await?;
    anyhow::ensure!(resp.status().is_success(), "GET {path}: {}", resp.status());
    Ok(resp.text().await?)
}

async fn fetch_wire(target: &Target, path: &str) -> Result<u64, OpError> {
    let resp = target
        .client
        .get(target.url(path))
        .header("Accept-Encoding", "gzip")
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(OpError::other(format!("GET {path}: {}", resp.status())));
    }
    Ok(resp.bytes().await?.len() as u64)
}

/// The page, then every other file at once, as a browser without a cache fetches them.
async fn load_first_screen(target: &Target, paths: &[String]) -> load::OpResult {
    let mut rest = paths.iter();
    if let Some(page) = rest.next() {
        fetch_wire(target, page).await?;
    }
    let mut set = JoinSet::new();
    for path in rest {
        let (target, path) = (target.clone(), path.clone());
        set.spawn(async move { fetch_wire(&target, &path).await });
    }
    while let Some(done) = set.join_next().await {
        done.map_err(|e| OpError::other(format!("fetch task failed: {e}")))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_against_the_importing_file() {
        assert_eq!(
            resolve("/_/", "./assets/a.js").as_deref(),
            Some("/_/assets/a.js")
        );
        assert_eq!(resolve("/_/", "app.css").as_deref(), Some("/_/app.css"));
        assert_eq!(
            resolve("/_/js/screens/login.js", "../api.js").as_deref(),
            Some("/_/js/api.js")
        );
        assert_eq!(
            resolve("/_/js/app.js", "/x.js?v=1").as_deref(),
            Some("/x.js")
        );
    }

    #[test]
    fn only_local_files_are_followed() {
        let html = r##"<a href="#main"></a><link href="app.css"><script src="https://cdn.example/x.js"></script><script src="./js/app.js"></script>"##;
        assert_eq!(
            references(html, &["src=\"", "href=\""]),
            vec!["./js/app.js", "app.css"]
        );
        let js = "import { a } from './api.js';import\"./b.js\";import(`./screens/${m}.js`);import('./c.js')";
        assert_eq!(
            references(js, &["from '", "import\"", "import('"]),
            vec!["./api.js", "./b.js", "./c.js"]
        );
    }
}
