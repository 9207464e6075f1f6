//! How a durable commit reaches the disk: with `fdatasync` on the WAL, never `fsync`.
//!
//! The test runs itself again under `strace` (it is skipped, and says so, where `strace` is not
//! installed); the child opens a durable database and commits, and the parent reads the sync
//! calls the child made on the database's `-wal` file.

use std::path::Path;
use std::process::Command;

use warren_store::{Database, Error, Migration, Options};

const SCHEMA: &[Migration] = &[Migration {
    version: 1,
    sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
}];

/// Set in the child: commit, then exit.
const CHILD: &str = "WARREN_SYNC_TEST_DIR";

/// Opens a durable database in `dir` and makes `n` commits through the writer.
fn commit_in(dir: &Path, n: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let options = Options {
            migrations: SCHEMA,
            ..Options::default()
        };
        assert!(options.durable, "the default is durable");
        let db = Database::open(dir.join("data.db"), options)
            .await
            .expect("open");
        for i in 0..n {
            db.write(move |c| {
                Ok::<_, Error>(c.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")])?)
            })
            .await
            .expect("write");
        }
    });
}

#[test]
fn a_durable_commit_syncs_the_wal_with_fdatasync() {
    if let Some(dir) = std::env::var_os(CHILD) {
        commit_in(Path::new(&dir), 3);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let trace = dir.path().join("trace.txt");
    let me = std::env::current_exe().expect("test binary");
    let run = Command::new("strace")
        .args(["-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(&me)
        .args([
            "a_durable_commit_syncs_the_wal_with_fdatasync",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .status();
    let status = match run {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: strace is not installed");
            return;
        }
        Err(e) => panic!("strace: {e}"),
    };
    assert!(status.success(), "the child run failed: {status}");
    let text = std::fs::read_to_string(&trace).expect("trace");
    let on_wal = |call: &str| {
        text.lines()
            .filter(|l| l.contains(&format!("{call}(")) && l.contains("data.db-wal>"))
            .count()
    };
    let (datasyncs, fsyncs) = (on_wal("fdatasync"), on_wal("fsync"));
    eprintln!("WAL syncs by the child: {datasyncs} fdatasync, {fsyncs} fsync");
    assert!(
        datasyncs >= 3,
        "each of the 3 commits syncs the WAL with fdatasync:\n{text}"
    );
    assert_eq!(fsyncs, 0, "no fsync on the WAL:\n{text}");
}
