//! Holds: a CLI command asks the server running on its data directory to close a tenant and
//! keep it closed while the command works on the tenant's files.
//!
//! A served tenant's `data.db` is held by the server's process alone (see
//! `warren_tenant::database_options`), so another process cannot open it. The command writes
//! `<data dir>/hold/<tenant id>` (a token naming it) and sends the server SIGHUP; the server
//! drains the tenant and answers `<id>.held` with the token, or `<id>.failed` with the token
//! and why. Requests to the tenant meanwhile get 503. The hold ends when the request file goes
//! (the command is done) or its process dies; the tenant then opens again at its next request
//! and reads everything from its files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::serving::{alive, running_pid, signal};

/// Folder inside the data directory holding the requests and answers.
const HOLD_DIR: &str = "hold";
/// How long the server waits for a tenant's in-flight requests before it gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How long a command waits for the server's answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// How often each side looks at the other's files.
const POLL: Duration = Duration::from_millis(25);
/// How long a command ending its hold waits for the server to let the tenant go.
const RELEASE_LIMIT: Duration = Duration::from_secs(5);

/// A tenant held closed by the running server; dropping it lets the tenant open again. Close
/// every connection to the tenant's files before dropping it.
pub struct Hold {
    request: PathBuf,
    held: PathBuf,
    token: String,
}

impl Drop for Hold {
    /// Ends the hold and waits (a few seconds at most) until the server has let the tenant
    /// open again, so that a request made right after the command is served.
    fn drop(&mut self) {
        if read_token(&self.request).as_deref() != Some(self.token.as_str()) {
            return;
        }
        let _ = std::fs::remove_file(&self.request);
        let deadline = std::time::Instant::now() + RELEASE_LIMIT;
        while read_token(&self.held).as_deref() == Some(self.token.as_str())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(POLL / 5);
        }
    }
}

/// Asks the server running on `data_dir`, if one runs, to close tenant `id` and keep it closed
/// until the returned hold is dropped. `None` when no server runs (the files are free).
pub async fn hold(data_dir: &Path, id: &str) -> anyhow::Result<Option<Hold>> {
    let Some(pid) = running_pid(data_dir) else {
        return Ok(None);
    };
    let dir = data_dir.join(HOLD_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Names this request apart from an earlier one of the same process.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let token = format!("{} {nanos}", std::process::id());
    let request = dir.join(id);
    let (held, failed) = answers(&dir, id);
    let part = dir.join(format!("{id}.part"));
    std::fs::write(&part, &token).with_context(|| format!("writing {}", part.display()))?;
    std::fs::rename(&part, &request).with_context(|| format!("writing {}", request.display()))?;
    let hold = Hold {
        request,
        held: held.clone(),
        token,
    };
    signal(pid)?;
    let deadline = std::time::Instant::now() + ANSWER_LIMIT;
    while std::time::Instant::now() < deadline {
        if read_token(&held).as_deref() == Some(hold.token.as_str()) {
            return Ok(Some(hold));
        }
        if let Some(answer) = read_token(&failed)
            && let Some(why) = answer.strip_prefix(hold.token.as_str())
        {
            bail!(
                "the server running on {} could not close the tenant: {}",
                data_dir.display(),
                why.trim()
            );
        }
        if !alive(pid) {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
    bail!(
        "the server running on {} (pid {pid}) did not close the tenant within {} s",
        data_dir.display(),
        ANSWER_LIMIT.as_secs()
    )
}

/// The server's side: holds the tenants that commands ask for.
#[derive(Clone)]
pub struct Holds {
    dir: PathBuf,
    registry: warren_tenant::Registry,
    /// Tenants with a hold task running.
    active: Arc<Mutex<HashSet<String>>>,
}

impl Holds {
    /// Holds for `registry`'s tenants, asked for in `data_dir`.
    pub fn new(data_dir: &Path, registry: warren_tenant::Registry) -> Self {
        Self {
            dir: data_dir.join(HOLD_DIR),
            registry,
            active: Arc::default(),
        }
    }

    /// Starts holding every tenant asked for and not held yet (at start, and at each SIGHUP);
    /// requests whose process is gone are removed.
    pub fn scan(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            if !is_tenant_id(&id) {
                continue;
            }
            let Some(token) = read_token(&entry.path()) else {
                continue;
            };
            if !token_alive(&token) {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            if !self.lock().insert(id.clone()) {
                continue;
            }
            let holds = self.clone();
            tokio::spawn(async move {
                holds.hold(&id, token).await;
                holds.lock().remove(&id);
                // A request that came while this one was held waits for this scan.
                holds.scan();
            });
        }
    }

    async fn hold(&self, id: &str, token: String) {
        let request = self.dir.join(id);
        let (held, failed) = answers(&self.dir, id);
        let drained = match self.registry.drain(id, DRAIN_LIMIT).await {
            Ok(drained) => drained,
            Err(e) => {
                let why = match e {
                    warren_tenant::Error::Draining => {
                        "it is being restored, moved or held by another command".to_string()
                    }
                    other => other.to_string(),
                };
                let _ = std::fs::write(&failed, format!("{token} {why}"));
                tracing::warn!(tenant = %id, error = %why, "a command's hold failed");
                return;
            }
        };
        if let Err(e) = std::fs::write(&held, &token) {
            tracing::warn!(tenant = %id, error = %e, "answering a command's hold failed");
            return;
        }
        tracing::info!(tenant = %id, "held closed for a command");
        while read_token(&request).as_deref() == Some(token.as_str()) && token_alive(&token) {
            tokio::time::sleep(POLL).await;
        }
        if read_token(&request).as_deref() == Some(token.as_str()) {
            // Its process died without removing it.
            let _ = std::fs::remove_file(&request);
        }
        drop(drained);
        let _ = std::fs::remove_file(&held);
        tracing::info!(tenant = %id, "released by the command");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The server's answer files for tenant `id`: held, failed.
fn answers(dir: &Path, id: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{id}.held")),
        dir.join(format!("{id}.failed")),
    )
}

fn read_token(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    (text.len() <= 4096).then_some(text)
}

/// Whether the process a token names still runs.
fn token_alive(token: &str) -> bool {
    token
        .split(' ')
        .next()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(alive)
}

fn is_tenant_id(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_process() {
        let me = format!("{} 00ff", std::process::id());
        assert!(token_alive(&me));
        assert!(!token_alive(&format!("{} 00ff", i32::MAX)));
        assert!(!token_alive("not a pid"));
        assert!(!token_alive(""));
    }

    #[test]
    fn only_tenant_ids_are_requests() {
        assert!(is_tenant_id("a1b2"));
        assert!(!is_tenant_id("a1b2.held"));
        assert!(!is_tenant_id("a1b2.part"));
        assert!(!is_tenant_id(""));
        assert!(!is_tenant_id("../x"));
    }

    #[tokio::test]
    async fn without_a_server_nothing_is_held() {
        let dir = tempfile::tempdir().unwrap();
        assert!(hold(dir.path(), "abc").await.unwrap().is_none());
        assert!(!dir.path().join(HOLD_DIR).exists());
    }
}
