//! `warren-bench`: drives any PocketBase-compatible base URL on loopback and compares Warren
//! with the real PocketBase in one run (A B A B rounds), printing throughput, p50, p99, errors,
//! server RSS and the Warren/PocketBase ratios per scenario.

mod backup;
mod churn;
mod cluster;
mod console;
mod dashboard;
mod floor;
mod hooks;
mod import;
mod load;
mod logging;
mod metering;
mod photos;
mod plain;
mod png;
mod realtime;
mod report;
mod scenarios;
mod seed;
mod server;
mod shipping;
mod sse;
mod target;
mod tenants;
mod tls;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::load::Bounds;
use crate::report::{Cell, Line};
use crate::seed::Dataset;
use crate::target::{Superuser, Target};

#[derive(Parser)]
#[command(
    name = "warren-bench",
    version,
    about = "Benchmark Warren against PocketBase"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start PocketBase and Warren on loopback, seed both, run every scenario on both alternately.
    Compare(CompareArgs),
    /// Drive one already running target.
    Run(RunArgs),
    /// Warren only: provision many tenants, touch each, report latencies, RSS and fds.
    Tenants(TenantsArgs),
    /// Warren only: health requests over many tenants in rotation (most requests open a closed
    /// tenant) against the same over tenants that fit under the open-tenant cap.
    Churn(ChurnArgs),
    /// Warren only: signup-to-live-project latency through the console (hashing excluded).
    Console(ConsoleArgs),
    /// Warren only: snapshot and restore a large tenant, writes during the backup vs without.
    Backup(BackupArgs),
    /// Warren only: create latency and throughput with synchronous against asynchronous WAL
    /// shipping (a plan's `shipping`).
    Shipping(ShippingArgs),
    /// Warren only: three cluster nodes over etcd; the extra latency of a request forwarded by a
    /// non-owner node, planned move time under a reader, and failover time after a kill -9.
    Cluster(ClusterArgs),
    /// Warren only: HTTPS against plain HTTP, full handshakes per second, certificate store memory.
    Tls(TlsArgs),
    /// Warren only: view-by-id with metering and quotas on, as a ratio of the same with them off.
    Metering(MeteringArgs),
    /// Warren only: `warren tenant import` of a large generated PocketBase data directory.
    Import(ImportArgs),
    /// No server: the kernel's floor under an SSE fan-out over loopback on this machine.
    RealtimeFloor(FloorArgs),
    /// The same pb_hooks on both servers: a `routerAdd` JSON route, and creates with an
    /// `onRecordCreate` hook beside creates without.
    Hooks(HooksArgs),
    /// The dashboard's weight and first-screen time, and its records grid on a large
    /// collection, Warren beside PocketBase's own dashboard.
    Dashboard(DashboardArgs),
}

#[derive(Args)]
struct DashboardArgs {
    /// Posts in the grid's collection.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Users (the posts' owners).
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// First-screen loads per server.
    #[arg(long, default_value_t = 50)]
    loads: usize,
    /// Seconds of grid requests per round and server.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Grid rounds (servers alternate within each).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Concurrent clients while seeding.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// PocketBase binary (as for `compare`).
    #[arg(long)]
    pocketbase: Option<PathBuf>,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct HooksArgs {
    /// Seconds per scenario, per round, per server.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Rounds (the servers alternate within each).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Closed tenants with the hooks whose first request is timed (0 skips it).
    #[arg(long, default_value_t = 200)]
    tenants: usize,
    /// PocketBase binary (as for `compare`).
    #[arg(long)]
    pocketbase: Option<PathBuf>,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct MeteringArgs {
    /// Seconds per measurement (each round measures each server twice).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Rounds (A B B A, then B A A B, alternately).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Posts to seed.
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// Users to seed.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ConsoleArgs {
    /// Developers to sign up, one project each.
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Developers signing up at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct TlsArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Rounds (each runs plain, then HTTPS).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Certificates loaded into the store for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    certs: usize,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct LoadArgs {
    /// Comma-separated scenarios (seed, health, health-pair, view, view-browser, logging, list,
    /// list-skip-total, list-again, list-expand, create, update, mixed, plain (plain-view, plain-list, plain-list-indexed,
    /// plain-create, plain-update), auth, auth-4, auth-16, auth-64, auth-sweep, realtime, files, files-upload,
    /// files-thumb, files-thumb-4mp-first, files-thumb-4mp, files-thumb-4mp-cached,
    /// files-upload-10mb, all).
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// Seconds per scenario, per round, per target.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Rounds per scenario (targets alternate within each round).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Concurrent clients per scenario.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// At most this many operations per scenario run.
    #[arg(long, default_value_t = 2_000_000)]
    max_ops: u64,
    /// Records to seed.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Users to seed.
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Posts to seed into the unindexed `plain` collection (the `plain-*` scenarios).
    #[arg(long, default_value_t = 10_000)]
    plain_records: usize,
    /// SSE subscribers in the realtime scenario.
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// PocketBase binary (default: `pocketbase` on PATH, else installed with pip).
    #[arg(long)]
    pocketbase: Option<PathBuf>,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Base URL of the target, e.g. http://127.0.0.1:8090 (loopback only).
    #[arg(long)]
    target: String,
    /// Host to address (e.g. `bench.localhost` for a Warren tenant); replaces the URL's host.
    #[arg(long)]
    host: Option<String>,
    /// Server pid, to report its RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Name shown in the report.
    #[arg(long, default_value = "target")]
    name: String,
    /// Superuser email used to seed.
    #[arg(long, default_value = "bench@example.com")]
    email: String,
    /// Superuser password used to seed.
    #[arg(long, default_value = "benchpassword123")]
    password: String,
}

#[derive(Args)]
struct ChurnArgs {
    /// Tenants the churn phase rotates over.
    #[arg(long, default_value_t = 2_000)]
    tenants: usize,
    /// Tenants the reference phase rotates over (fewer than the cap).
    #[arg(long, default_value_t = 400)]
    fitting: usize,
    /// `--max-open-tenants` given to Warren (default: Warren's own default).
    #[arg(long)]
    max_open_tenants: Option<usize>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct TenantsArgs {
    /// Tenants to provision.
    #[arg(long, default_value_t = 10_000)]
    tenants: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// `--max-open-tenants` given to Warren.
    #[arg(long, default_value_t = 100)]
    max_open_tenants: usize,
    /// Seconds of the health run against one tenant (0 skips it).
    #[arg(long, default_value_t = 5)]
    health_duration: u64,
    /// Use each tenant before the first-request pass (one records list: it opens the
    /// database), so that pass measures tenants in use rather than untouched ones.
    #[arg(long)]
    used: bool,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Compare(args) => compare(args).await,
            Command::Run(args) => run_one(args).await,
            Command::Tenants(args) => run_tenants(args).await,
            Command::Churn(args) => run_churn(args).await,
            Command::Console(args) => run_console(args).await,
            Command::Backup(args) => run_backup(args).await,
            Command::Shipping(args) => run_shipping(args).await,
            Command::Cluster(args) => run_cluster(args).await,
            Command::Metering(args) => run_metering(args).await,
            Command::Hooks(args) => run_hooks(args).await,
            Command::Import(args) => run_import(args).await,
            Command::Dashboard(args) => run_dashboard(args).await,
            Command::RealtimeFloor(args) => {
                let report = floor::run(&floor::FloorConfig {
                    subscribers: args.subscribers,
                    duration: Duration::from_secs(args.duration.max(1)),
                })
                .await?;
                for line in &report.lines {
                    println!("{line}");
                }
                anyhow::ensure!(
                    report.stats.errors == 0,
                    "{} errors; {} of {} deliveries ({} events to {} connections) missing",
                    report.stats.errors,
                    report.missing,
                    report.events as u64 * report.pairs as u64,
                    report.events,
                    report.pairs,
                );
                Ok(())
            }
            Command::Tls(args) => {
                tls::run(tls::TlsBench {
                    warren: args.warren.unwrap_or_else(default_warren),
                    duration: Duration::from_secs(args.duration.max(1)),
                    concurrency: args.concurrency,
                    rounds: args.rounds,
                    certs: args.certs,
                })
                .await
            }
        }
    })
}

/// `<workspace>/target/release/warren`, the default Warren binary.
fn default_warren() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/warren")
}

fn bounds(load: &LoadArgs) -> Bounds {
    Bounds {
        concurrency: load.concurrency.max(1),
        duration: Duration::from_secs(load.duration.max(1)),
        max_ops: load.max_ops.max(1),
    }
}

/// A target that could be started, or why not.
type Slot = Result<Target, String>;

async fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let load = args.load;
    let list = scenarios::parse_list(&load.scenarios)?;
    let su = Superuser::default();
    let pb_bin = server::find_pocketbase(args.pocketbase.as_deref()).await?;
    let warren_bin = args.warren.unwrap_or_else(default_warren);

    eprintln!(
        "starting PocketBase ({}) and Warren ({})",
        pb_bin.display(),
        warren_bin.display()
    );
    let (pb_server, pb_target) = server::start_pocketbase(&pb_bin, &su).await?;
    let (warren_server, warren_slot): (Option<server::Server>, Slot) =
        match server::start_warren_tenant(&warren_bin, &su).await {
            Ok((s, t)) => (Some(s), Ok(t)),
            Err(err) => {
                eprintln!("warren did not start: {err:#}");
                (None, Err(format!("warren did not start: {err}")))
            }
        };
    let slots: Vec<(String, Slot)> = vec![
        ("warren".into(), warren_slot),
        ("pocketbase".into(), Ok(pb_target)),
    ];
    let lines = drive(&slots, &list, &load).await;
    print_summary(&lines);
    write_json(load.json.as_deref(), &report::to_json(&lines))?;
    if let Some(server) = warren_server {
        server.stop().await;
    }
    pb_server.stop().await;
    Ok(())
}

async fn run_one(args: RunArgs) -> anyhow::Result<()> {
    let load = args.load;
    let list = scenarios::parse_list(&load.scenarios)?;
    target::ensure_loopback(&args.target)?;
    let base = match &args.host {
        Some(host) => {
            let port = args
                .target
                .rsplit_once(':')
                .and_then(|(_, p)| p.trim_end_matches('/').parse::<u16>().ok())
                .context("--host needs a --target URL with an explicit port")?;
            format!("http://{host}:{port}")
        }
        None => args.target.clone(),
    };
    let su = Superuser {
        email: args.email,
        password: args.password,
    };
    let target = Target::new(&base, args.pid, su)?;
    let lines = drive(&[(args.name.clone(), Ok(target))], &list, &load).await;
    print_summary(&lines);
    write_json(load.json.as_deref(), &report::to_json(&lines))
}

async fn run_dashboard(args: DashboardArgs) -> anyhow::Result<()> {
    let su = Superuser::default();
    let pb_bin = server::find_pocketbase(args.pocketbase.as_deref()).await?;
    let warren_bin = args.warren.unwrap_or_else(default_warren);
    let (pb_server, pb_target) = server::start_pocketbase(&pb_bin, &su).await?;
    let (warren_server, warren_target) = server::start_warren_tenant(&warren_bin, &su).await?;
    let cfg = dashboard::DashboardConfig {
        records: args.records,
        users: args.users.max(1),
        seed_concurrency: args.concurrency.max(1),
        loads: args.loads,
        duration: Duration::from_secs(args.duration.max(1)),
        rounds: args.rounds,
    };
    let targets = vec![
        ("warren".to_string(), warren_target),
        ("pocketbase".to_string(), pb_target),
    ];
    let report = dashboard::run(&targets, &cfg).await;
    warren_server.stop().await;
    pb_server.stop().await;
    write_json(args.json.as_deref(), &report?)
}

async fn run_churn(args: ChurnArgs) -> anyhow::Result<()> {
    let warren = args.warren.unwrap_or_else(default_warren);
    let cfg = churn::ChurnConfig {
        tenants: args.tenants.max(1),
        fitting: args.fitting.max(1),
        max_open_tenants: args.max_open_tenants.map(|n| n.max(1)),
        concurrency: args.concurrency.max(1),
        duration: Duration::from_secs(args.duration.max(1)),
    };
    let report = churn::run(&warren, &cfg).await?;
    for line in churn::format(&report) {
        println!("{line}");
    }
    write_json(args.json.as_deref(), &report)
}

async fn run_tenants(args: TenantsArgs) -> anyhow::Result<()> {
    let warren = args.warren.unwrap_or_else(default_warren);
    let cfg = tenants::TenantsConfig {
        tenants: args.tenants,
        concurrency: args.concurrency.max(1),
        max_open_tenants: args.max_open_tenants.max(1),
        health_duration: Duration::from_secs(args.health_duration),
        used: args.used,
    };
    let report = tenants::run(&warren, &cfg).await?;
    for line in tenants::format(&report) {
        println!("{line}");
    }
    write_json(args.json.as_deref(), &report)
}

async fn run_console(args: ConsoleArgs) -> anyhow::Result<()> {
    let warren = args.warren.unwrap_or_else(default_warren);
    let cfg = console::ConsoleConfig {
        accounts: args.accounts,
        concurrency: args.concurrency,
    };
    let report = console::run(&warren, &cfg).await?;
    for line in console::format(&report) {
        println!("{line}");
    }
    write_json(args.json.as_deref(), &report)
}

#[derive(Args)]
struct ShippingArgs {
    /// Concurrent writers, comma-separated: one measurement of each mode per value.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
    /// Seconds of writes per measurement.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Backup target (`s3://bucket/prefix` with WARREN_BACKUP_S3_* in the environment, or
    /// `file:///dir`); a fresh local directory by default.
    #[arg(long)]
    backup_url: Option<String>,
    /// The node's asynchronous shipping interval.
    #[arg(long, default_value = "1s")]
    interval: String,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ClusterArgs {
    /// The etcd binary (one member is started).
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd: PathBuf,
    /// Concurrent clients of the second forwarding measurement (the first has one).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per forwarding measurement.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Forwarding rounds (direct and forwarded alternate within each; 0: no forwarding).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Planned moves of the tenant (between the first two nodes, in turn).
    #[arg(long, default_value_t = 10)]
    moves: usize,
    /// Small tenants created on the first node and moved to the second, 4 at a time (0: none).
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// Skip the failover (kill -9 of the tenant's owner) at the end.
    #[arg(long)]
    no_failover: bool,
    /// The nodes' lease TTL in seconds (bounds the failover time).
    #[arg(long, default_value_t = 2)]
    lease_ttl: u64,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

async fn run_cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let warren = args.warren.unwrap_or_else(default_warren);
    let cfg = cluster::ClusterConfig {
        etcd: args.etcd,
        concurrency: args.concurrency,
        seconds: args.duration,
        rounds: args.rounds,
        moves: args.moves,
        tenants: args.tenants,
        failover: !args.no_failover,
        lease_ttl: args.lease_ttl.max(1),
    };
    let report = cluster::run(&warren, &cfg).await?;
    for line in cluster::format(&report) {
        println!("{line}");
    }
    let errors: u64 = report
        .forwarding
        .iter()
        .map(|r| r.direct.errors + r.forwarded.errors)
        .sum();
    write_json(args.json.as_deref(), &report)?;
    anyhow::ensure!(errors == 0, "{errors} forwarding requests failed");
    let failed = report.bulk.as_ref().map_or(0, |b| b.unavailable.errors);
    anyhow::ensure!(failed == 0, "{failed} of the small tenants' moves failed");
    Ok(())
}

#[derive(Args)]
struct BackupArgs {
    /// Size of the tenant's database in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Seconds of writes measured without a backup.
    #[arg(long, default_value_t = 10)]
    write_seconds: u64,
    /// Concurrent writers.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Backup target (`s3://bucket/prefix` with WARREN_BACKUP_S3_* in the environment, or
    /// `file:///dir`); a fresh local directory by default.
    #[arg(long)]
    backup_url: Option<String>,
    /// Steady writes per second while the WAL shipping lag is measured.
    #[arg(long, default_value_t = 100)]
    wal_rate: u64,
    /// Seconds of each WAL shipping phase (steady writes; full speed with shipping off, on).
    #[arg(long, default_value_t = 10)]
    wal_seconds: u64,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ImportArgs {
    /// Records in the generated `posts` collection.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Stored files (one on each of the first records).
    #[arg(long, default_value_t = 10_000)]
    files: u64,
    /// KiB of each file.
    #[arg(long, default_value_t = 50)]
    file_kib: u64,
    /// Bytes of each record's body text.
    #[arg(long, default_value_t = 450)]
    body_bytes: u64,
    /// Warren binary.
    #[arg(long, env = "WARREN_BIN")]
    warren: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

async fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    let warren = args.warren.unwrap_or_else(default_warren);
    let cfg = import::ImportConfig {
        records: args.records,
        files: args.files.min(args.records),
        file_bytes: args.file_kib * 1024,
        body_bytes: args.body_bytes.max(16),
    };
    let report = import::run(&warren, &cfg).await?;
    for line in import::format(&report) {
        println!("{line}");
    }
    anyhow::ensure!(
        report.imported_records == cfg.records && report.imported_files >= cfg.files,
        "the import lost data: {} of {} records, {} of {} files",
        report.imported_records,
        cfg.records,
        report.imported_files,
        cfg.files
    );
    write_json(args.json.as_deref(), &report)
}

async fn run_backup(args: BackupArgs) -> anyhow::Result<()> {
    let warren = args.warren.unwrap_or_else(default_warren);
    let cfg = backup::BackupConfig {
        size_mib: args.size_mib.max(1),
        write_seconds: args.write_seconds,
        concurrency: args.concurrency,
        backup_url: args.backup_url,
        wal_rate: args.wal_rate,
        wal_seconds: args.wal_seconds,
    };
    let report = backup::run(&warren, &cfg).await?;
    for line in backup::format(&report) {
        println!("{line}");
    }
    write_json(args.json.as_deref(), &report)
}

async fn run_shipping(args: ShippingArgs) -> anyhow::Result<()> {
    let warren = args.warren.unwrap_or_else(default_warren);
    let cfg = shipping::ShippingConfig {
        concurrency: args.concurrency,
        seconds: args.duration,
        backup_url: args.backup_url,
        interval: args.interval,
    };
    let report = shipping::run(&warren, &cfg).await?;
    for line in shipping::format(&report) {
        println!("{line}");
    }
    write_json(args.json.as_deref(), &report)
}

async fn run_metering(args: MeteringArgs) -> anyhow::Result<()> {
    let warren = args.warren.unwrap_or_else(default_warren);
    let cfg = metering::MeteringConfig {
        rounds: args.rounds,
        bounds: Bounds {
            concurrency: args.concurrency.max(1),
            duration: Duration::from_secs(args.duration.max(1)),
            max_ops: u64::MAX,
        },
        records: args.records,
        users: args.users,
    };
    let report = metering::run(&warren, &cfg).await?;
    for line in metering::format(&report) {
        println!("{line}");
    }
    write_json(args.json.as_deref(), &report)
}

async fn run_hooks(args: HooksArgs) -> anyhow::Result<()> {
    let pb_bin = server::find_pocketbase(args.pocketbase.as_deref()).await?;
    let warren_bin = args.warren.unwrap_or_else(default_warren);
    let cfg = hooks::HooksConfig {
        bounds: hooks::default_bounds(args.duration, args.concurrency),
        rounds: args.rounds,
        tenants: args.tenants,
    };
    let lines = if args.duration > 0 {
        hooks::run(&pb_bin, &warren_bin, &cfg).await?
    } else {
        Vec::new()
    };
    print_summary(&lines);
    let cold = if args.tenants > 0 {
        let report = hooks::cold(&warren_bin, &cfg).await?;
        for line in hooks::format_cold(&report) {
            println!("{line}");
        }
        Some(report)
    } else {
        None
    };
    let value = serde_json::json!({ "lines": report::to_json(&lines), "cold": cold });
    write_json(args.json.as_deref(), &value)
}

fn write_json<T: serde::Serialize>(path: Option<&Path>, value: &T) -> anyhow::Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Seeds every target, then runs each scenario on every target in turn, `rounds` times.
async fn drive(slots: &[(String, Slot)], list: &[&'static str], load: &LoadArgs) -> Vec<Line> {
    let bounds = bounds(load);
    let mut lines = Vec::new();
    let wants_seed = list
        .iter()
        .any(|s| *s == "seed" || scenarios::needs_seed(s));

    let mut datasets: Vec<Result<Dataset, String>> = Vec::new();
    let mut seed_cells = Vec::new();
    for (name, slot) in slots {
        let (dataset, cell) = match slot {
            Err(reason) => (Err(reason.clone()), Err(reason.clone())),
            Ok(_) if !wants_seed => (Err("not seeded".to_string()), Err("not seeded".to_string())),
            Ok(target) => {
                eprintln!(
                    "seeding {name}: {} users, {} records",
                    load.users, load.records
                );
                match seed_all(target, list, load).await {
                    Ok((dataset, stats)) => (
                        Ok(dataset),
                        Ok(scenarios::Measured {
                            stats,
                            bytes_per_conn: None,
                        }),
                    ),
                    Err(err) => {
                        let reason = format!("seed failed: {}", err.message);
                        (Err(reason.clone()), Err(reason))
                    }
                }
            }
        };
        let rss_kib = slot.as_ref().ok().and_then(Target::rss_kib);
        datasets.push(dataset);
        seed_cells.push(Cell {
            target: name.clone(),
            result: cell,
            rss_kib,
        });
    }
    if list.contains(&"seed") {
        let line = Line {
            scenario: "seed".into(),
            cells: seed_cells,
        };
        println!("{}", report::format_line(&line));
        lines.push(line);
    }

    for scenario in list.iter().filter(|s| **s != "seed") {
        if *scenario == "health-pair" {
            let line = health_pair(slots, load).await;
            println!("{}", report::format_line(&line));
            lines.push(line);
            continue;
        }
        if *scenario == logging::NAME {
            let line = logging_pair(slots, &datasets, load).await;
            println!("{}", report::format_line(&line));
            lines.push(line);
            continue;
        }
        let mut cells: Vec<Option<Cell>> = vec![None; slots.len()];
        for round in 0..load.rounds.max(1) {
            for (k, (name, slot)) in slots.iter().enumerate() {
                eprintln!("{scenario}: round {} on {name}", round + 1);
                let (result, rss_kib) = match slot {
                    Err(reason) => (Err(reason.clone()), None),
                    Ok(target) => {
                        let data = datasets[k].as_ref();
                        let result = match data {
                            Err(reason) if scenarios::needs_seed(scenario) => Err(reason.clone()),
                            _ => {
                                scenarios::run(
                                    scenario,
                                    target,
                                    data.ok(),
                                    bounds,
                                    load.subscribers,
                                )
                                .await
                            }
                        };
                        (result, target.rss_kib())
                    }
                };
                Cell::add_round(&mut cells[k], name, result, rss_kib);
            }
        }
        let line = Line {
            scenario: scenario.to_string(),
            cells: cells.into_iter().flatten().collect(),
        };
        println!("{}", report::format_line(&line));
        lines.push(line);
    }
    lines
}

/// The main seed, then the `plain` collection when a scenario needs it.
async fn seed_all(
    target: &Target,
    list: &[&'static str],
    load: &LoadArgs,
) -> Result<(Dataset, load::Stats), load::OpError> {
    let (dataset, stats) = seed::seed(target, load.users, load.records, load.concurrency).await?;
    if !list.iter().any(|s| scenarios::needs_plain(s)) {
        return Ok((dataset, stats));
    }
    eprintln!("seeding plain: {} records", load.plain_records);
    let dataset = plain::seed(target, &dataset, load.plain_records, load.concurrency)
        .await
        .map_err(|e| load::OpError::other(format!("plain seed: {}", e.message)))?;
    Ok((dataset, stats))
}

/// The first target's tenant `/api/health` against its platform's `/v1/health` on the same
/// server: what the tenant path adds per request. Both sides are warmed up unmeasured, then
/// run in A B B A rounds ([`load::paired_order`]) so drift of the machine hits both alike;
/// the server's CPU per request of each side is printed too, which moves less than throughput.
async fn health_pair(slots: &[(String, Slot)], load: &LoadArgs) -> Line {
    const SIDES: [&str; 2] = ["tenant", "platform"];
    let bounds = bounds(load);
    let Some((name, Ok(target))) = slots.first() else {
        let reason = "no target".to_string();
        let cell = |t: &str| Cell {
            target: t.into(),
            result: Err(reason.clone()),
            rss_kib: None,
        };
        return Line {
            scenario: "health-pair".into(),
            cells: SIDES.map(cell).into(),
        };
    };
    let side = |k: usize, bounds: Bounds| async move {
        if k == 0 {
            scenarios::run("health", target, None, bounds, load.subscribers).await
        } else {
            scenarios::platform_health(target, bounds).await
        }
    };
    let warm = Bounds {
        duration: bounds.duration.min(Duration::from_secs(2)),
        ..bounds
    };
    for (k, label) in SIDES.into_iter().enumerate() {
        eprintln!("health-pair: warming {name} {label}");
        let _ = side(k, warm).await;
    }
    let mut cells: [Option<Cell>; 2] = [None, None];
    // Server CPU seconds and requests served, per side.
    let mut cpu = [(0.0f64, 0u64); 2];
    for round in 0..load.rounds.max(1) {
        for k in load::paired_order(round) {
            eprintln!("health-pair: round {} on {name} {}", round + 1, SIDES[k]);
            let before = target.pid.and_then(server::cpu_seconds);
            let result = side(k, bounds).await;
            let after = target.pid.and_then(server::cpu_seconds);
            if let (Some(before), Some(after), Ok(measured)) = (before, after, &result) {
                cpu[k].0 += after - before;
                cpu[k].1 += measured.stats.ok;
            }
            let rss_kib = target.rss_kib();
            Cell::add_round(
                &mut cells[k],
                format!("{name} {}", SIDES[k]),
                result,
                rss_kib,
            );
        }
    }
    if cpu.iter().all(|(_, requests)| *requests > 0) {
        let per_request = |(seconds, requests): (f64, u64)| seconds * 1e6 / requests as f64;
        let (tenant_us, platform_us) = (per_request(cpu[0]), per_request(cpu[1]));
        println!(
            "health-pair: server CPU per request, tenant {tenant_us:.1} µs, platform {platform_us:.1} µs (platform/tenant ×{:.3})",
            platform_us / tenant_us
        );
    }
    Line {
        scenario: "health-pair".into(),
        cells: cells.into_iter().flatten().collect(),
    }
}

/// The first target (Warren in `compare`) with request logs on against a second tenant of the
/// same server with them off, view by id on both: what request logging costs.
async fn logging_pair(
    slots: &[(String, Slot)],
    datasets: &[Result<Dataset, String>],
    load: &LoadArgs,
) -> Line {
    let cfg = logging::PairConfig {
        bounds: bounds(load),
        rounds: load.rounds,
        users: load.users,
        records: load.records,
    };
    let Some((name, slot)) = slots.first() else {
        return logging::pair("target", Err("no target".into()), cfg).await;
    };
    let seeded = match (slot, datasets.first()) {
        (Ok(target), Some(Ok(data))) => Ok((target, data)),
        (Err(reason), _) | (_, Some(Err(reason))) => Err(reason.clone()),
        (Ok(_), None) => Err("not seeded".to_string()),
    };
    logging::pair(name, seeded, cfg).await
}

fn print_summary(lines: &[Line]) {
    println!();
    println!("summary (throughput ratio = first target / second target; >1 means faster):");
    for line in lines {
        println!("{}", report::format_line(line));
    }
}

#[derive(Args)]
struct FloorArgs {
    /// Loopback connection pairs (capped by the open-files limit: 2 descriptors each).
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}
