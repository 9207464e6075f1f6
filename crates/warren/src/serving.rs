//! `<data dir>/server.json`: how the running server is reached (the scheme, domain and port of
//! its tenant URLs), written when it starts listening and removed when it stops cleanly, so
//! that CLI commands on the same data directory print URLs that work.
//!
//! The file carries the server's pid: one left behind by a killed server names a process that
//! is gone and is ignored. It is also how CLI commands that change a tenant's code or
//! collections on disk tell the running server: they leave the tenant's id in
//! `<data dir>/reload/` and send the server SIGHUP, and the server reloads that tenant's code
//! and collections if it has the tenant open.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use warren_control_plane::tenants::UrlScheme;

use crate::cli::Global;

/// Name of the file inside the data directory.
pub const SERVER_FILE: &str = "server.json";

/// What the file holds.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The serving process.
    pid: u32,
    /// How its tenant URLs are spelled.
    urls: UrlScheme,
}

/// Keeps `server.json` while the server runs; dropping it removes the file.
pub struct Served {
    path: PathBuf,
}

/// Records that this process serves `data_dir` with tenant URLs `urls`.
pub fn record(data_dir: &Path, urls: &UrlScheme) -> anyhow::Result<Served> {
    let path = data_dir.join(SERVER_FILE);
    let record = Record {
        pid: std::process::id(),
        urls: urls.clone(),
    };
    // Written beside and renamed over, so a reader never sees half a file.
    let part = data_dir.join(format!("{SERVER_FILE}.part"));
    std::fs::write(&part, serde_json::to_vec_pretty(&record)?)
        .with_context(|| format!("writing {}", part.display()))?;
    std::fs::rename(&part, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(Served { path })
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The tenant URLs of the server running on `data_dir`, if one runs.
fn running(data_dir: &Path) -> Option<UrlScheme> {
    let record = read_record(data_dir)?;
    alive(record.pid).then_some(record.urls)
}

/// The pid of the server running on `data_dir`, if one runs (never this process's own).
pub(crate) fn running_pid(data_dir: &Path) -> Option<u32> {
    let record = read_record(data_dir)?;
    (alive(record.pid) && record.pid != std::process::id()).then_some(record.pid)
}

fn read_record(data_dir: &Path) -> Option<Record> {
    let bytes = std::fs::read(data_dir.join(SERVER_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Folder inside the data directory where CLI commands leave the ids of changed tenants.
const RELOAD_DIR: &str = "reload";

/// Tells the server running on `data_dir`, if one runs, that tenant `id`'s code or collections
/// changed on disk. Returns whether a server was told.
pub fn notify_changed(data_dir: &Path, id: &str) -> anyhow::Result<bool> {
    let Some(pid) = running_pid(data_dir) else {
        return Ok(false);
    };
    let dir = data_dir.join(RELOAD_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(id), b"").with_context(|| format!("writing {}", dir.display()))?;
    signal(pid)?;
    Ok(true)
}

/// Sends the server `pid` SIGHUP: something waits for it in the data directory.
pub(crate) fn signal(pid: u32) -> anyhow::Result<()> {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        bail!("the server's pid {pid} is not a process id");
    };
    rustix::process::kill_process(pid, rustix::process::Signal::HUP)
        .with_context(|| format!("signalling the server (pid {})", pid.as_raw_nonzero()))
}

/// Listens for SIGHUP from CLI commands and reloads the code and the collections of the open
/// tenants they name (see [`notify_changed`]), and holds the tenants they ask to hold (see
/// [`crate::holds`]). Call it before [`record`], so that a signal can never find the server
/// without its handler (SIGHUP would end it).
pub fn watch_changes(data_dir: &Path, registry: warren_tenant::Registry) -> anyhow::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP")?;
    let dir = data_dir.join(RELOAD_DIR);
    let holds = crate::holds::Holds::new(data_dir, registry.clone());
    // A command may still hold a tenant from before this server started.
    holds.scan();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            holds.scan();
            for id in take_changed(&dir) {
                let Some(tenant) = registry.open_tenants().into_iter().find(|t| t.id() == id)
                else {
                    continue;
                };
                if let Err(e) = tenant.reload_catalog().await {
                    tracing::warn!(tenant = %id, error = %e, "reloading collections failed");
                }
                tenant.reload_code();
                tracing::info!(tenant = %id, "reloaded after a change by the CLI");
            }
        }
    });
    Ok(())
}

/// The tenant ids left in `dir`, removed as they are read (names other than tenant ids are
/// removed and ignored).
fn take_changed(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for entry in entries.flatten() {
        let _ = std::fs::remove_file(entry.path());
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let id_like = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if id_like {
            ids.push(name);
        }
    }
    ids
}

/// Whether process `pid` exists (signal 0 reaches it, or it exists but is another user's).
pub(crate) fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// How a command spells tenant URLs: as the server running on the data directory answers
/// them; with none running, from `--public-url`, else `http://<slug>.<domain>:<--http port>`.
/// The second value says, for stderr, that no server runs and where the URL came from.
pub fn tenant_urls(global: &Global) -> anyhow::Result<(UrlScheme, Option<String>)> {
    if let Some(urls) = running(&global.data_dir) {
        return Ok((urls, None));
    }
    let (urls, from) = match &global.public_url {
        Some(url) => (
            UrlScheme::from_public_url(url, &global.domain).map_err(anyhow::Error::msg)?,
            "--public-url",
        ),
        None => (
            UrlScheme {
                scheme: "http".into(),
                domain: global.domain.clone(),
                port: Some(global.http.port()),
            },
            "--http",
        ),
    };
    let note = format!(
        "no server is running on {}; the URL follows {from} and works once `warren serve` runs with the same settings",
        global.data_dir.display()
    );
    Ok((urls, Some(note)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_back_while_its_process_lives_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let urls = UrlScheme {
            scheme: "https".into(),
            domain: "example.com".into(),
            port: Some(8443),
        };
        let served = record(dir.path(), &urls).unwrap();
        assert_eq!(running(dir.path()), Some(urls.clone()));
        drop(served);
        assert_eq!(running(dir.path()), None);
        assert!(!dir.path().join(SERVER_FILE).exists());
    }

    #[test]
    fn a_record_of_a_process_that_is_gone_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let record = Record {
            // Above the kernel's largest pid (2^22): never a live process.
            pid: i32::MAX as u32,
            urls: UrlScheme {
                scheme: "http".into(),
                domain: "localhost".into(),
                port: Some(1234),
            },
        };
        std::fs::write(
            dir.path().join(SERVER_FILE),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        assert_eq!(running(dir.path()), None);
    }
}
