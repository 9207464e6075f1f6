//! Warren's cluster coordination on etcd: node membership under leases, tenant ownership with
//! fenced generations, the routing directory every node follows, placement and pins.
//!
//! etcd is the only source of truth: a node is a member while its lease lives, a tenant's
//! owner is the node whose lease holds the tenant's owner record, and every change of owner is
//! an etcd transaction that bumps the tenant's generation.

pub mod directory;
pub mod etcd;
pub mod hosts;
pub mod leader;
pub mod membership;
pub mod ownership;
pub mod pins;
pub mod placement;
pub mod secret;

pub use directory::{Directory, Freed, HostRecord, NodeInfo};
pub use etcd::Etcd;
pub use leader::Leader;
pub use membership::{Member, MemberConfig};
pub use ownership::{Claim, Owner};

/// What can go wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster flags or endpoints are not usable.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// No etcd member could be reached.
    #[error("etcd is unreachable: {0}")]
    Unavailable(String),
    /// etcd answered with an error.
    #[error("{0}")]
    Etcd(String),
    /// This node's lease is gone or could not be renewed in time: it must not write.
    #[error("this node lost its cluster lease")]
    Fenced,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The keys of one cluster, all under one prefix (`/warren/<name>/`).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of cluster `name` (letters, digits, `-` and `_`).
    pub fn new(name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::Config(format!(
                "cluster name {name:?}: use 1 to 64 letters, digits, '-' or '_'"
            )));
        }
        Ok(Self {
            prefix: format!("/warren/{name}/"),
        })
    }

    /// Everything of this cluster.
    pub fn root(&self) -> &str {
        &self.prefix
    }

    /// Live nodes: `nodes/<id>` under each node's lease.
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    pub fn node(&self, id: &str) -> String {
        format!("{}nodes/{id}", self.prefix)
    }

    /// Owners of open tenants: `owners/<tenant>` under the owner's lease.
    pub fn owners(&self) -> String {
        format!("{}owners/", self.prefix)
    }

    pub fn owner(&self, tenant: &str) -> String {
        format!("{}owners/{tenant}", self.prefix)
    }

    /// Each tenant's last generation, kept when its owner record goes.
    pub fn generation(&self, tenant: &str) -> String {
        format!("{}generations/{tenant}", self.prefix)
    }

    /// Operators' pins: `pins/<tenant>` = `{node}`, no lease.
    pub fn pins(&self) -> String {
        format!("{}pins/", self.prefix)
    }

    pub fn pin(&self, tenant: &str) -> String {
        format!("{}pins/{tenant}", self.prefix)
    }

    /// The hostname directory the control-plane leader mirrors: `hosts/<hostname>`.
    pub fn hosts(&self) -> String {
        format!("{}hosts/", self.prefix)
    }

    pub fn host(&self, name: &str) -> String {
        format!("{}hosts/{name}", self.prefix)
    }

    /// The control-plane leader's record, under its lease.
    pub fn control(&self) -> String {
        format!("{}control", self.prefix)
    }

    /// The control plane's last leadership term (no lease): bumped by every node that takes
    /// the lead, in the same transaction.
    pub fn control_term(&self) -> String {
        format!("{}control-term", self.prefix)
    }

    /// The secret peers show each other on forwarded requests.
    pub fn secret(&self) -> String {
        format!("{}secret", self.prefix)
    }
}

/// Whether `id` may name a node or a tenant in a key (no separators, bounded).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && id != "."
        && id != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_cannot_escape_their_prefix() {
        assert!(Keys::new("prod").is_ok());
        assert!(Keys::new("a/b").is_err());
        assert!(Keys::new("").is_err());
        assert!(valid_id("node-1"));
        assert!(valid_id("t_abc.def"));
        assert!(!valid_id("../x"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(".."));
        assert!(!valid_id(""));
        let keys = Keys::new("prod").unwrap();
        assert_eq!(keys.owner("t1"), "/warren/prod/owners/t1");
        assert_eq!(keys.node("n1"), "/warren/prod/nodes/n1");
        assert_eq!(keys.pin("t1"), "/warren/prod/pins/t1");
    }
}
