//! Which tenants the node's cron scheduler runs jobs for: the active tenants of the directory
//! (a suspended one runs none), each with its plan's bounds on kept backups; the plan's limits
//! of the tenant's code reach the meters of open tenants here too (a tenant serving only cron
//! jobs gets no request that would bring them).

use std::collections::HashMap;

use warren_control_plane::Directory;
use warren_tenant::backups::Quota;

/// [`warren_tenant::cron::Admission`] over the tenant directory.
pub struct CronAdmission {
    /// The hostname cache, reloaded whenever the control database changes.
    pub directory: Directory,
    /// The node's tenants (their meters carry the limits of their code).
    pub registry: warren_tenant::Registry,
}

impl warren_tenant::cron::Admission for CronAdmission {
    fn admitted(&self) -> HashMap<String, Quota> {
        let meters: HashMap<_, _> = self.registry.meters().into_iter().collect();
        self.directory
            .tenants()
            .into_iter()
            .filter(|info| info.status.is_active())
            .map(|info| {
                if let Some(meter) = meters.get(&info.id) {
                    crate::metered::apply_limits(meter, &info.limits);
                }
                let quota = Quota {
                    max_count: info.limits.max_backups,
                    max_bytes: info.limits.max_backup_bytes,
                };
                (info.id, quota)
            })
            .collect()
    }
}
