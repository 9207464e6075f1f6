//! The cluster secret: what a node shows on every request it forwards, so the owner can tell a
//! peer from a client pretending to be one. Given by the operator, or made once by the first
//! node and kept in etcd.

use rand::RngCore as _;

use crate::etcd::{Compare, Etcd, Op};
use crate::{Error, Keys, Result};

/// Shortest secret accepted from the operator.
pub const MIN_LEN: usize = 16;

/// The cluster's secret: `given` when set (at least [`MIN_LEN`] characters), else the one in
/// etcd, made now by whichever node asks first.
pub async fn shared(etcd: &Etcd, keys: &Keys, given: Option<&str>) -> Result<String> {
    if let Some(given) = given {
        if given.len() < MIN_LEN || !given.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(format!(
                "the cluster secret needs at least {MIN_LEN} visible ASCII characters"
            )));
        }
        return Ok(given.to_string());
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = keys.secret();
    let done = etcd
        .txn(
            &[Compare::Version(key.clone(), 0)],
            &[Op::Put {
                key: key.clone(),
                value: fresh.clone().into_bytes(),
                lease: 0,
            }],
            &[Op::Get(key)],
        )
        .await?;
    if done.succeeded {
        return Ok(fresh);
    }
    done.read
        .first()
        .and_then(|kv| String::from_utf8(kv.value.clone()).ok())
        .filter(|s| s.len() >= MIN_LEN)
        .ok_or_else(|| Error::Etcd("unreadable cluster secret".into()))
}
