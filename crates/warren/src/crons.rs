//! Which tenants the node's cron scheduler runs jobs for: the active tenants of the directory
//! (a suspended one runs none), each with its plan's bounds on kept backups.

use std::collections::HashMap;

use warren_control_plane::Directory;
use warren_tenant::backups::Quota;

/// [`warren_tenant::cron::Admission`] over the tenant directory.
pub struct CronAdmission {
    /// The hostname cache, reloaded whenever the control database changes.
    pub directory: Directory,
}

impl warren_tenant::cron::Admission for CronAdmission {
    fn admitted(&self) -> HashMap<String, Quota> {
        self.directory
            .tenants()
            .into_iter()
            .filter(|info| info.status.is_active())
            .map(|info| {
                let quota = Quota {
                    max_count: info.limits.max_backups,
                    max_bytes: info.limits.max_backup_bytes,
                };
                (info.id, quota)
            })
            .collect()
    }
}
