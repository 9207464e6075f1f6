//! Pins: an operator's wish that a tenant live on one node, `pins/<tenant>` = `{node}` (no
//! lease, so it outlives every node). Placement and rebalancing put a pinned tenant on its
//! node while that node is live; when it is not, the tenant is placed like any other (a pin is
//! a preference, never an outage).

use serde::{Deserialize, Serialize};

use crate::membership::Member;
use crate::{Error, Result, valid_id};

/// The record under `pins/<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub node: String,
}

/// Pins `tenant` to node `node`; the etcd revision of the change.
pub async fn pin(member: &Member, tenant: &str, node: &str) -> Result<i64> {
    check(tenant, node)?;
    member.check()?;
    let record = serde_json::to_vec(&Pin {
        node: node.to_string(),
    })
    .map_err(|e| Error::Etcd(e.to_string()))?;
    let revision = member
        .etcd()
        .put(&member.keys().pin(tenant), &record, 0)
        .await?;
    tracing::info!(tenant, node, "tenant pinned");
    Ok(revision)
}

/// Removes `tenant`'s pin; whether there was one.
pub async fn unpin(member: &Member, tenant: &str) -> Result<bool> {
    check(tenant, "-")?;
    member.check()?;
    let removed = member.etcd().delete(&member.keys().pin(tenant)).await?;
    if removed {
        tracing::info!(tenant, "tenant unpinned");
    }
    Ok(removed)
}

pub(crate) fn parse(value: &[u8]) -> Result<Pin> {
    serde_json::from_slice(value).map_err(|e| Error::Etcd(format!("unreadable pin record: {e}")))
}

fn check(tenant: &str, node: &str) -> Result<()> {
    if !valid_id(tenant) {
        return Err(Error::Config(format!("tenant id {tenant:?} is not valid")));
    }
    if !valid_id(node) {
        return Err(Error::Config(format!("node id {node:?} is not valid")));
    }
    Ok(())
}
