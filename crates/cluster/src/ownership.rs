//! Tenant ownership: who serves a tenant's writes, changed only by etcd transactions that bump
//! the tenant's generation.
//!
//! `owners/<tenant>` holds `{node, generation}` under the owner's lease, so a dead node's
//! tenants become free when its lease expires. `generations/<tenant>` holds the last
//! generation handed out and has no lease: it survives its owner, so generations only grow.
//! Everything a tenant's owner writes outside etcd (WAL segments, snapshots) carries the
//! generation, and a reader replays only what the current generation and the ones it
//! superseded wrote in order (fencing a stale owner's late writes).

use serde::{Deserialize, Serialize};

use crate::etcd::{Compare, Etcd, Op};
use crate::membership::Member;
use crate::{Error, Keys, Result, valid_id};

/// A tenant's owner record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub node: String,
    pub generation: u64,
    /// The owner's lease, telling a restarted node's new membership from its old one.
    pub lease: i64,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node owns the tenant under this record.
    Granted(Owner),
    /// Another membership owns it.
    Held(Owner),
}

/// Attempts before a claim that keeps racing other claims gives up.
const CLAIM_ATTEMPTS: usize = 8;

/// Makes this node the owner of `tenant` unless a live membership already is. Idempotent: a
/// tenant this membership owns is granted again with its record.
pub async fn claim(member: &Member, tenant: &str) -> Result<Claim> {
    check_tenant(tenant)?;
    let etcd = member.etcd();
    let keys = member.keys();
    let owner_key = keys.owner(tenant);
    let generation_key = keys.generation(tenant);
    for _ in 0..CLAIM_ATTEMPTS {
        member.check()?;
        if let Some(current) = read_owner(etcd, keys, tenant).await? {
            return Ok(if current.lease == member.lease() {
                Claim::Granted(current)
            } else {
                Claim::Held(current)
            });
        }
        let (last, seen) = match etcd.get(&generation_key).await? {
            Some(kv) => (parse_generation(&kv.value)?, kv.mod_revision),
            None => (0, 0),
        };
        let owner = Owner {
            node: member.node().to_string(),
            generation: last + 1,
            lease: member.lease(),
        };
        let record = serde_json::to_vec(&owner).map_err(|e| Error::Etcd(e.to_string()))?;
        member.check()?;
        let done = etcd
            .txn(
                &[
                    Compare::Version(owner_key.clone(), 0),
                    Compare::ModRevision(generation_key.clone(), seen),
                ],
                &[
                    Op::Put {
                        key: generation_key.clone(),
                        value: owner.generation.to_string().into_bytes(),
                        lease: 0,
                    },
                    Op::Put {
                        key: owner_key.clone(),
                        value: record,
                        lease: member.lease(),
                    },
                ],
                &[],
            )
            .await?;
        if done.succeeded {
            tracing::info!(tenant, node = %owner.node, generation = owner.generation, "tenant claimed");
            return Ok(Claim::Granted(owner));
        }
        // Another node claimed (or claimed and released) meanwhile: read again.
    }
    Err(Error::Etcd(format!(
        "tenant {tenant}: the claim kept racing other nodes' claims"
    )))
}

/// Makes this node the first owner of a tenant it just provisioned: granted with generation 1
/// only when the tenant never had an owner; `None` when it had one (then [`claim`] decides).
pub async fn claim_new(member: &Member, tenant: &str) -> Result<Option<Owner>> {
    check_tenant(tenant)?;
    member.check()?;
    let keys = member.keys();
    let owner = Owner {
        node: member.node().to_string(),
        generation: 1,
        lease: member.lease(),
    };
    let record = serde_json::to_vec(&owner).map_err(|e| Error::Etcd(e.to_string()))?;
    let done = member
        .etcd()
        .txn(
            &[
                Compare::Version(keys.owner(tenant), 0),
                Compare::Version(keys.generation(tenant), 0),
            ],
            &[
                Op::Put {
                    key: keys.generation(tenant),
                    value: b"1".to_vec(),
                    lease: 0,
                },
                Op::Put {
                    key: keys.owner(tenant),
                    value: record,
                    lease: member.lease(),
                },
            ],
            &[],
        )
        .await?;
    if done.succeeded {
        tracing::info!(tenant, node = %owner.node, "new tenant claimed");
        return Ok(Some(owner));
    }
    Ok(None)
}

/// Gives `owner`'s tenant up, if that record is still the current one; whether it was.
pub async fn release(member: &Member, tenant: &str, owner: &Owner) -> Result<bool> {
    check_tenant(tenant)?;
    let record = serde_json::to_vec(owner).map_err(|e| Error::Etcd(e.to_string()))?;
    let key = member.keys().owner(tenant);
    let done = member
        .etcd()
        .txn(
            &[Compare::Value(key.clone(), record)],
            &[Op::Delete(key)],
            &[],
        )
        .await?;
    if done.succeeded {
        tracing::info!(tenant, generation = owner.generation, "tenant released");
    }
    Ok(done.succeeded)
}

/// A tenant handed from one node to another by [`hand_over`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandedOver {
    /// The new owner's record.
    pub owner: Owner,
    /// The etcd revision of the change, for waiting until a directory has seen it.
    pub revision: i64,
}

/// Hands `owner`'s tenant straight to node `to` (a planned move), under `to`'s lease and the
/// next generation, in one transaction: the tenant is never without an owner, so no other
/// node can claim it between the two. `None` when `owner` is no longer the current record or
/// `to` has no live membership.
pub async fn hand_over(
    member: &Member,
    tenant: &str,
    owner: &Owner,
    to: &str,
) -> Result<Option<HandedOver>> {
    check_tenant(tenant)?;
    if !valid_id(to) {
        return Err(Error::Config(format!("node id {to:?} is not valid")));
    }
    member.check()?;
    let etcd = member.etcd();
    let keys = member.keys();
    let node_key = keys.node(to);
    let Some(target) = etcd.get(&node_key).await? else {
        return Ok(None);
    };
    if target.lease == 0 {
        return Ok(None);
    }
    let generation_key = keys.generation(tenant);
    let seen = match etcd.get(&generation_key).await? {
        Some(kv) => kv.mod_revision,
        None => 0,
    };
    let next = Owner {
        node: to.to_string(),
        generation: owner.generation + 1,
        lease: target.lease,
    };
    let current = serde_json::to_vec(owner).map_err(|e| Error::Etcd(e.to_string()))?;
    let record = serde_json::to_vec(&next).map_err(|e| Error::Etcd(e.to_string()))?;
    let owner_key = keys.owner(tenant);
    member.check()?;
    let done = etcd
        .txn(
            &[
                Compare::Value(owner_key.clone(), current),
                Compare::ModRevision(generation_key.clone(), seen),
                Compare::ModRevision(node_key, target.mod_revision),
            ],
            &[
                Op::Put {
                    key: generation_key,
                    value: next.generation.to_string().into_bytes(),
                    lease: 0,
                },
                Op::Put {
                    key: owner_key,
                    value: record,
                    lease: target.lease,
                },
            ],
            &[],
        )
        .await?;
    if !done.succeeded {
        return Ok(None);
    }
    tracing::info!(
        tenant,
        to,
        generation = next.generation,
        "tenant handed over"
    );
    Ok(Some(HandedOver {
        owner: next,
        revision: done.revision,
    }))
}

/// The current owner of `tenant`, read from etcd.
pub async fn read_owner(etcd: &Etcd, keys: &Keys, tenant: &str) -> Result<Option<Owner>> {
    check_tenant(tenant)?;
    match etcd.get(&keys.owner(tenant)).await? {
        Some(kv) => parse_owner(&kv.value).map(Some),
        None => Ok(None),
    }
}

pub(crate) fn parse_owner(value: &[u8]) -> Result<Owner> {
    serde_json::from_slice(value).map_err(|e| Error::Etcd(format!("unreadable owner record: {e}")))
}

fn parse_generation(value: &[u8]) -> Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Etcd("unreadable generation record".into()))
}

fn check_tenant(tenant: &str) -> Result<()> {
    if valid_id(tenant) {
        Ok(())
    } else {
        Err(Error::Config(format!("tenant id {tenant:?} is not valid")))
    }
}
