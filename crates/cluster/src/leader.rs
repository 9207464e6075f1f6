//! The control plane's leader: the one node that holds `control` under its lease, and so serves
//! the operator API, the console and signups for the whole cluster.
//!
//! Taking the lead is one transaction (the key is absent); the lead ends with the leader's
//! lease, so a dead leader is replaced once its lease expires. A node that is fenced has
//! already stopped writing, the leader's duties included. Every lead has a term, a number one
//! higher than the lead before it: the leader ships the control database under it, so a
//! deposed leader's late writes are never taken for the next one's.

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
/// did). Taking the lead bumps the control plane's term (`control-term`) in the same
/// transaction, so every lead has a number of its own, higher than every earlier lead's (see
/// [`term`]).
pub async fn try_lead(member: &Member, advertise: &str) -> Result<bool> {
    member.check()?;
    let key = member.keys().control();
    let term_key = member.keys().control_term();
    let me = Leader::of(member, advertise);
    let value = me.to_bytes()?;
    let (last, seen) = match member.etcd().get(&term_key).await? {
        Some(kv) => (parse_term(&kv.value)?, kv.mod_revision),
        None => (0, 0),
    };
    member.check()?;
    let done = member
        .etcd()
        .txn(
            &[
                Compare::Version(key.clone(), 0),
                Compare::ModRevision(term_key.clone(), seen),
            ],
            &[
                Op::Put {
                    key: term_key,
                    value: (last + 1).to_string().into_bytes(),
                    lease: 0,
                },
                Op::Put {
                    key: key.clone(),
                    value: value.clone(),
                    lease: member.lease(),
                },
            ],
            &[Op::Get(key)],
        )
        .await?;
    if done.succeeded {
        tracing::info!(node = %me.node, term = last + 1, "this node leads the control plane");
        return Ok(true);
    }
    Ok(done.read.first().is_some_and(|kv| kv.value == value))
}

/// The term of the lead `member` holds now: the number its [`try_lead`] wrote, read back in one
/// transaction with the leader record; `None` when `member` does not lead. While a node leads,
/// nobody else can bump the term, so the number read is its own.
pub async fn term(member: &Member, advertise: &str) -> Result<Option<u64>> {
    member.check()?;
    let key = member.keys().control();
    let value = Leader::of(member, advertise).to_bytes()?;
    let done = member
        .etcd()
        .txn(
            &[Compare::Value(key, value)],
            &[Op::Get(member.keys().control_term())],
            &[],
        )
        .await?;
    if !done.succeeded {
        return Ok(None);
    }
    match done.read.first() {
        Some(kv) => Ok(Some(parse_term(&kv.value)?)),
        None => Err(Error::Etcd(
            "the control plane's leader has no term recorded".into(),
        )),
    }
}

fn parse_term(value: &[u8]) -> Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::Etcd("unreadable control-plane term".into()))
}

pub(crate) fn parse(value: &[u8]) -> Result<Leader> {
    serde_json::from_slice(value)
        .map_err(|e| Error::Etcd(format!("unreadable control-plane leader record: {e}")))
}
