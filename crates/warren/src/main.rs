//! The `warren` binary: command line, configuration and wiring of the platform.

mod app;
mod banner;
mod cli;
mod commands;
mod crons;
mod datalock;
mod holds;
mod hosts;
mod limits;
mod metered;
mod platform;
mod serve_cluster;
mod serving;

use clap::Parser;

/// mimalloc gives memory back to the system; with glibc's allocator every blocking thread that
/// ran a password hash kept its 19 MiB, and a login burst left the process at 1 GiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. With them on, every fresh 2 MiB of the
/// allocator's arena becomes a huge page the kernel zeroes whole on first touch: a server
/// opening and closing hundreds of tenants spent about half its CPU zeroing pages and held
/// about a third more memory. The kernel checks the flag at each page fault, so setting it
/// first thing covers every later allocation; a kernel that refuses it changes nothing else.
fn without_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("warren: transparent huge pages stay on: {e}");
    }
}

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    if matches!(cli.command, cli::Command::Serve(_)) {
        without_huge_pages();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let cli::Command::Serve(serve) = &cli.command {
        limits::raise_open_files();
        // Event fan-out and open streams get their own lower-priority threads.
        warren_realtime::delivery::start(serve.delivery_niceness)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::run(cli))
}
