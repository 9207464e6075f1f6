//! The hostname directory mirrored in etcd: `hosts/<hostname>` holds the tenant a host reaches
//! (its id and the control plane's record of it), so every node resolves tenant hosts from its
//! watched copy without the control database.
//!
//! Only the control-plane leader writes it, and each write is guarded by the leader's own
//! record: a node that lost the lead (its lease expired) cannot change the mirror any more.

use serde::{Deserialize, Serialize};

use crate::etcd::{Compare, Op};
use crate::leader::Leader;
use crate::membership::Member;
use crate::{Error, Result};

/// Longest host name (DNS).
const MAX_HOST: usize = 253;

/// What `hosts/<hostname>` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The tenant's id.
    pub tenant: String,
    /// The control plane's record of the tenant (status, plan, limits), as it serializes it.
    pub info: serde_json::Value,
    /// The node whose control database holds the tenant (only that node, leading, removes
    /// the record).
    #[serde(default)]
    pub control: String,
}

/// Whether `name` may be a key under `hosts/` (a lowercase DNS name).
pub fn valid_host(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOST
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with('.')
        && !name.contains("..")
}

/// A change to the mirror.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(String, HostRecord),
    Delete(String),
}

/// Applies `changes` as `leader`, only while `leader` still leads: the etcd revision of the
/// last write, or `None` when `leader` no longer leads. Large change sets go in batches of 64
/// (etcd bounds a transaction's operations); each batch is all or nothing.
pub async fn apply(member: &Member, leader: &Leader, changes: &[Change]) -> Result<Option<i64>> {
    let control = member.keys().control();
    let record = leader.to_bytes()?;
    let mut revision = 0;
    for batch in changes.chunks(64) {
        member.check()?;
        let mut ops = Vec::with_capacity(batch.len());
        for change in batch {
            match change {
                Change::Put(host, value) => {
                    check_host(host)?;
                    ops.push(Op::Put {
                        key: member.keys().host(host),
                        value: serde_json::to_vec(value).map_err(|e| Error::Etcd(e.to_string()))?,
                        lease: 0,
                    });
                }
                Change::Delete(host) => {
                    check_host(host)?;
                    ops.push(Op::Delete(member.keys().host(host)));
                }
            }
        }
        let done = member
            .etcd()
            .txn(
                &[Compare::Value(control.clone(), record.clone())],
                &ops,
                &[],
            )
            .await?;
        if !done.succeeded {
            return Ok(None);
        }
        revision = done.revision;
    }
    Ok(Some(revision))
}

fn check_host(host: &str) -> Result<()> {
    if valid_host(host) {
        Ok(())
    } else {
        Err(Error::Config(format!("host name {host:?} is not valid")))
    }
}

pub(crate) fn parse(value: &[u8]) -> Result<HostRecord> {
    serde_json::from_slice(value).map_err(|e| Error::Etcd(format!("unreadable host record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_plain_dns_names() {
        assert!(valid_host("app.example.com"));
        assert!(valid_host("a-1.localhost"));
        assert!(!valid_host("App.example.com"));
        assert!(!valid_host("a/b"));
        assert!(!valid_host("../x"));
        assert!(!valid_host(""));
        assert!(!valid_host(&"a".repeat(254)));
    }
}
