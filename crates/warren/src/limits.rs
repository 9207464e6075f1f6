//! Process limits: every realtime client holds a socket, so the open-files limit caps how many
//! can connect at once. The soft limit is raised to the hard limit at start.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept back for databases, files and listeners when estimating connections.
const RESERVED: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and logs the resulting connection budget.
pub fn raise_open_files() {
    let limit = getrlimit(Resource::Nofile);
    let raised = match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) if current < maximum => {
            let wanted = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            match setrlimit(Resource::Nofile, wanted) {
                Ok(()) => Some(maximum),
                Err(e) => {
                    tracing::warn!(error = %e, current, maximum, "cannot raise the open-files limit");
                    Some(current)
                }
            }
        }
        (current, maximum) => current.or(maximum),
    };
    match raised {
        Some(files) => tracing::info!(
            open_files = files,
            connections = files.saturating_sub(RESERVED),
            "open-files limit allows about this many concurrent connections"
        ),
        None => tracing::info!("no open-files limit"),
    }
}
