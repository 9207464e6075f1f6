//! The control plane's leader: the one node that holds `control` under its lease, and so serves
//! the operator API, the console and signups for the whole cluster.
//!
//! Taking the lead is one transaction (the key is absent); the lead ends with the leader's
//! lease, so a dead leader is replaced once its lease expires. A node that is fenced has
//! already stopped writing, the leader's duties included.

use serde::{Deserialize, Serialize};

use crate::etcd::{Compare, Op};
use crate::membership::Member;
use crate::{Error, Result};

/// The record under `control`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    pub node: String,
    /// Where the leader is reached (`host:port`).
    pub advertise: String,
    /// The leader's lease, telling a restarted leader from its earlier membership.
    pub lease: i64,
}

impl Leader {
    /// The record `member` writes when it leads.
    pub fn of(member: &Member, advertise: &str) -> Self {
        Self {
            node: member.node().to_string(),
            advertise: advertise.to_string(),
            lease: member.lease(),
        }
    }

    /// The record's bytes as stored (compared by value in guarded writes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::Etcd(e.to_string()))
    }
}

/// Makes `member` the leader unless there is one; whether it leads now (also when it already
/// did).
pub async fn try_lead(member: &Member, advertise: &str) -> Result<bool> {
    member.check()?;
    let key = member.keys().control();
    let me = Leader::of(member, advertise);
    let value = me.to_bytes()?;
    let done = member
        .etcd()
        .txn(
            &[Compare::Version(key.clone(), 0)],
            &[Op::Put {
                key: key.clone(),
                value: value.clone(),
                lease: member.lease(),
            }],
            &[Op::Get(key)],
        )
        .await?;
    if done.succeeded {
        tracing::info!(node = %me.node, "this node leads the control plane");
        return Ok(true);
    }
    Ok(done.read.first().is_some_and(|kv| kv.value == value))
}

pub(crate) fn parse(value: &[u8]) -> Result<Leader> {
    serde_json::from_slice(value)
        .map_err(|e| Error::Etcd(format!("unreadable control-plane leader record: {e}")))
}
