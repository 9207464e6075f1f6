//! Smoke test of the harness against Warren alone: the `tenants` scenario with 50 tenants (each
//! used once first) and a 2 s health run must produce numbers and no errors. Keeps the harness
//! from rotting as Warren changes; the full PocketBase comparison is run by hand (see the crate
//! README).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The Warren binary: `WARREN_BIN`, else `warren` next to this test's own binaries
/// (`<target dir>/debug/warren`, built by `cargo build --workspace --bins`).
fn warren_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WARREN_BIN") {
        return PathBuf::from(path);
    }
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_warren-bench"));
    bench.with_file_name("warren")
}

/// Runs `warren-bench ARGS --warren <warren> --json <file>` ([`warren_bin`]) and checks it
/// succeeded; its JSON report and standard output.
fn run_bench(args: &[&str]) -> (Value, String) {
    let warren = warren_bin();
    assert!(
        warren.is_file(),
        "the warren binary is missing at {}: run `cargo build --workspace --bins` first, or set WARREN_BIN",
        warren.display()
    );
    run_bench_with(&warren, None, args)
}

/// [`run_bench`] against the given Warren binary, with the temporary directories of
/// warren-bench (the servers' data and backup targets) under `tmpdir` when given.
fn run_bench_with(warren: &Path, tmpdir: Option<&Path>, args: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json_path = dir.path().join("report.json");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_warren-bench"));
    if let Some(tmpdir) = tmpdir {
        bench.env("TMPDIR", tmpdir);
    }
    let output = bench
        .args(args)
        .arg("--warren")
        .arg(warren)
        .arg("--json")
        .arg(&json_path)
        .output()
        .expect("running warren-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "warren-bench {} failed\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args[0]
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("JSON report written"))
            .expect("JSON report parses");
    (report, stdout)
}

#[test]
fn tenants_scenario_against_warren_produces_numbers_and_no_errors() {
    let (report, stdout) = run_bench(&[
        "tenants",
        "--tenants",
        "50",
        "--max-open-tenants",
        "10",
        "--concurrency",
        "4",
        "--health-duration",
        "2",
        "--used",
    ]);

    for phase in [
        "provision",
        "use_pass",
        "first_request",
        "reopen_closed",
        "health",
    ] {
        let summary = &report[phase];
        assert_eq!(summary["errors"], 0, "{phase} had errors:\n{stdout}");
        assert!(
            summary["ok"].as_u64().unwrap_or(0) > 0,
            "{phase} measured nothing:\n{stdout}"
        );
        assert!(
            summary["p50_ms"].as_f64().unwrap_or(0.0) > 0.0,
            "{phase} has no latency:\n{stdout}"
        );
    }
    assert_eq!(report["provision"]["ok"], 50, "{stdout}");
    assert_eq!(report["use_pass"]["ok"], 50, "{stdout}");
    assert_eq!(report["first_request"]["ok"], 50, "{stdout}");
    assert!(
        report["rss_kib_idle"].as_u64().unwrap_or(0) > 0,
        "no RSS reading:\n{stdout}"
    );
    assert!(
        report["open_fds_idle"].as_u64().unwrap_or(0) > 0,
        "no fd count:\n{stdout}"
    );
}

#[test]
fn console_scenario_against_warren_produces_latencies() {
    let (report, stdout) = run_bench(&["console", "--accounts", "6", "--concurrency", "2"]);
    assert_eq!(report["accounts"], 6, "{stdout}");
    for phase in ["signup_to_live", "create_request", "signup_request"] {
        let p50 = report[phase]["p50_ms"].as_f64().unwrap_or(0.0);
        let p99 = report[phase]["p99_ms"].as_f64().unwrap_or(0.0);
        assert!(p50 > 0.0 && p99 >= p50, "{phase}: {stdout}");
    }
    // Live includes the create post.
    assert!(
        report["signup_to_live"]["p50_ms"].as_f64() >= report["create_request"]["p50_ms"].as_f64(),
        "{stdout}"
    );
}

#[test]
fn metering_scenario_runs_both_servers_and_reports_a_ratio() {
    let (report, stdout) = run_bench(&[
        "metering",
        "--duration",
        "1",
        "--rounds",
        "1",
        "--concurrency",
        "2",
        "--records",
        "100",
        "--users",
        "3",
    ]);
    for side in ["metered", "bare"] {
        assert_eq!(report[side]["errors"], 0, "{side}:\n{stdout}");
        assert!(
            report[side]["ok"].as_u64().unwrap_or(0) > 0,
            "{side}:\n{stdout}"
        );
    }
    let ratio = report["ratio"].as_f64().unwrap_or(0.0);
    assert!(ratio > 0.0 && ratio.is_finite(), "{stdout}");
    assert_eq!(report["round_ratios"].as_array().map(Vec::len), Some(1));
    assert!(
        stdout.contains("metered / bare view-by-id throughput"),
        "{stdout}"
    );
}

#[test]
fn import_scenario_imports_every_record_and_file_with_progress() {
    let (report, stdout) = run_bench(&[
        "import",
        "--records",
        "3000",
        "--files",
        "30",
        "--file-kib",
        "4",
    ]);
    assert_eq!(report["imported_records"], 3000, "{stdout}");
    assert!(
        report["imported_files"].as_u64().unwrap_or(0) >= 30,
        "{stdout}"
    );
    assert!(report["peak_rss_kib"].as_u64().unwrap_or(0) > 0, "{stdout}");
    assert!(
        report["import_seconds"].as_f64().unwrap_or(0.0) > 0.0,
        "{stdout}"
    );
    assert!(
        report["last_progress"]
            .as_str()
            .unwrap_or("")
            .starts_with("files: 30/30"),
        "{stdout}"
    );
}

#[test]
fn churn_scenario_against_warren_produces_both_figures_and_a_ratio() {
    // 30 tenants in rotation against a cap of 10: most requests open a closed tenant.
    let (report, stdout) = run_bench(&[
        "churn",
        "--tenants",
        "30",
        "--fitting",
        "5",
        "--max-open-tenants",
        "10",
        "--concurrency",
        "2",
        "--duration",
        "1",
    ]);
    // Every tenant is opened once before the phases: 30 first opens, none failed.
    assert_eq!(report["first_open"]["ok"], 30, "first opens:\n{stdout}");
    for phase in [
        "first_open",
        "fitting_health",
        "churn_health",
        "fitting_list",
        "churn_list",
    ] {
        assert_eq!(report[phase]["errors"], 0, "{phase} had errors:\n{stdout}");
        assert!(
            report[phase]["ok"].as_u64().unwrap_or(0) > 0,
            "{phase} measured nothing:\n{stdout}"
        );
    }
    for ratio in ["ratio", "list_ratio"] {
        assert!(
            report[ratio].as_f64().unwrap_or(0.0) > 0.0,
            "no {ratio}:\n{stdout}"
        );
    }
    assert!(stdout.contains("list ratio"), "{stdout}");
}

/// The `cluster` scenario on a short run: three nodes over one etcd member, forwarding figures
/// with no errors, two moves, twelve small tenants moved and a failover timed. Needs etcd: ignored in the plain run,
/// `tests/suites/cluster` runs it with `WARREN_ETCD` set.
#[test]
#[ignore = "needs etcd: run by tests/suites/cluster"]
fn cluster_scenario_times_forwarding_moves_and_a_failover() {
    let etcd = std::env::var("WARREN_ETCD").expect("WARREN_ETCD names the etcd binary");
    let (report, stdout) = run_bench(&[
        "cluster",
        "--duration",
        "1",
        "--rounds",
        "1",
        "--concurrency",
        "4",
        "--moves",
        "2",
        "--tenants",
        "12",
        "--etcd",
        &etcd,
    ]);
    let rows = report["forwarding"].as_array().expect("forwarding rows");
    assert_eq!(rows.len(), 4, "{stdout}");
    for row in rows {
        for route in ["direct", "forwarded"] {
            assert_eq!(row[route]["errors"], 0, "{stdout}");
            assert!(
                row[route]["p50_ms"].as_f64().unwrap_or(0.0) > 0.0,
                "{stdout}"
            );
        }
    }
    let moves = report["moves"].as_array().expect("move rows");
    assert_eq!(moves.len(), 2, "{stdout}");
    assert_eq!(
        (moves[0]["to"].as_str(), moves[1]["to"].as_str()),
        (Some("n2"), Some("n1"))
    );
    for m in moves {
        assert!(m["call_ms"].as_f64().unwrap_or(0.0) > 0.0, "{stdout}");
        assert!(m["served_ms"].as_f64() >= m["call_ms"].as_f64(), "{stdout}");
    }
    // Many small tenants moved n1 -> n2, each timed.
    let bulk = &report["bulk"];
    assert_eq!(bulk["tenants"], 12, "{stdout}");
    assert_eq!(bulk["unavailable"]["ok"], 12, "{stdout}");
    assert!(
        bulk["unavailable"]["p99_ms"].as_f64().unwrap_or(0.0) > 0.0,
        "{stdout}"
    );
    assert!(
        stdout.contains("12 small tenants moved n1 -> n2"),
        "{stdout}"
    );
    // The owner after two moves is n1 again; a survivor serves its record after the kill.
    assert_eq!(report["failover"]["killed"], "n1", "{stdout}");
    assert!(
        report["failover"]["ms"].as_f64().unwrap_or(0.0) > 0.0,
        "{stdout}"
    );
}

/// 1,000 small tenants moved from one node to another of a three-node cluster, four at a time,
/// against the release binary (`WARREN_BIN`, else `<target dir>/release/warren`, which
/// `tests/run` builds before the suites): every move succeeds and the per-tenant unavailability
/// (move call to the new owner's first answer) stays under 1 s at p99, issue #21's bound.
/// Forwarding, the planned moves of one tenant and the failover are skipped. The nodes' data
/// and the backup target live on tmpfs (`/dev/shm`) when there is one: on a disk mounted with
/// `discard`, deleting the 1,000 tenants' files afterwards took longer than the rest of the run.
/// Needs etcd: ignored in the plain run, `tests/suites/cluster` runs it with `WARREN_ETCD` set.
#[test]
#[ignore = "needs etcd: run by tests/suites/cluster"]
fn cluster_scenario_moves_a_thousand_tenants_under_a_second_each() {
    let etcd = std::env::var("WARREN_ETCD").expect("WARREN_ETCD names the etcd binary");
    let warren = std::env::var_os("WARREN_BIN").map_or_else(
        || {
            let bench = PathBuf::from(env!("CARGO_BIN_EXE_warren-bench"));
            bench
                .parent()
                .and_then(Path::parent)
                .expect("the target directory")
                .join("release")
                .join("warren")
        },
        PathBuf::from,
    );
    assert!(
        warren.is_file(),
        "the release warren binary is missing at {}: run `cargo build --release -p warren`, or set WARREN_BIN",
        warren.display()
    );
    let shm = Path::new("/dev/shm");
    let tmpdir = shm.is_dir().then_some(shm);
    let begun = std::time::Instant::now();
    let (report, stdout) = run_bench_with(
        &warren,
        tmpdir,
        &[
            "cluster",
            "--rounds",
            "0",
            "--moves",
            "0",
            "--no-failover",
            "--tenants",
            "1000",
            "--etcd",
            &etcd,
        ],
    );
    println!("{stdout}");
    let bulk = &report["bulk"];
    let unavailable = &bulk["unavailable"];
    let p99 = unavailable["p99_ms"].as_f64().unwrap_or(f64::MAX);
    println!(
        "1,000-tenant move against {} (temporary files in {}): {} moved, {} failed in {:.1} s \
         (set up in {:.1} s); per-tenant unavailability p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms; \
         the whole run {:.1} s",
        warren.display(),
        tmpdir.map_or_else(
            || std::env::temp_dir().display().to_string(),
            |d| d.display().to_string()
        ),
        unavailable["ok"],
        unavailable["errors"],
        bulk["total_s"].as_f64().unwrap_or(0.0),
        bulk["setup_s"].as_f64().unwrap_or(0.0),
        unavailable["p50_ms"].as_f64().unwrap_or(0.0),
        unavailable["max_ms"].as_f64().unwrap_or(0.0),
        begun.elapsed().as_secs_f64()
    );
    assert_eq!(bulk["tenants"], 1000, "{stdout}");
    assert_eq!(unavailable["ok"], 1000, "{stdout}");
    assert_eq!(unavailable["errors"], 0, "{stdout}");
    assert!(p99 > 0.0 && p99 < 1000.0, "p99 {p99} ms:\n{stdout}");
    assert!(report["forwarding"].as_array().is_some_and(Vec::is_empty));
    assert!(report["failover"].is_null(), "{stdout}");
}
