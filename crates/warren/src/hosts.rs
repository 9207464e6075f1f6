//! The edge's view of the platform: which names Warren serves (and may order certificates
//! for), and where certificate status is kept.

use futures_util::future::BoxFuture;
use warren_control_plane::ControlPlane;
use warren_control_plane::certificates::{self, CertificateRecord};
use warren_edge::{CertStatus, Destination, Hosts};

/// Names Warren serves: the platform host, existing tenants' hosts and verified custom domains.
pub struct PlatformHosts {
    control: ControlPlane,
    domain: String,
    /// In cluster mode, tenant hosts are the ones mirrored in etcd.
    cluster: Option<std::sync::Arc<crate::serve_cluster::ClusterNode>>,
}

impl PlatformHosts {
    pub fn new(
        control: ControlPlane,
        domain: &str,
        cluster: Option<std::sync::Arc<crate::serve_cluster::ClusterNode>>,
    ) -> Self {
        Self {
            control,
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            cluster,
        }
    }
}

impl Hosts for PlatformHosts {
    fn allowed<'a>(&'a self, name: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            if let Some(cluster) = &self.cluster {
                return match warren_edge::classify(Some(name), &self.domain) {
                    Destination::Platform => true,
                    _ => cluster.resolve(name).is_some(),
                };
            }
            match warren_edge::classify(Some(name), &self.domain) {
                Destination::Platform => true,
                Destination::Tenant(slug) => {
                    matches!(self.control.directory.resolve(&slug).await, Ok(Some(_)))
                }
                Destination::Unknown => self.control.directory.custom_domain(name).is_some(),
            }
        })
    }

    fn record(&self, status: CertStatus) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let record = CertificateRecord {
                host: status.host,
                issuer: status.issuer,
                not_after: status.not_after,
                next_renewal: status.next_renewal,
                last_error: status.last_error,
                challenge: status.challenge,
                orders: status.orders as i64,
                failures: status.failures as i64,
                renewals: status.renewals as i64,
                updated: String::new(),
            };
            if let Err(e) = certificates::record(self.control.tenants.db(), record).await {
                tracing::warn!(error = %e, "recording certificate status failed");
            }
        })
    }
}
