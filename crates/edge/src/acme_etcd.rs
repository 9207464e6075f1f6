//! ACME state shared by the nodes of a cluster through etcd, under
//! `/warren/<cluster>/acme/`: `accounts/<file>` (the account credentials, created once),
//! `certs/<host>` (chain and private key) with `facts/<host>` (validity, listed by renewals),
//! `challenges/<type>/<id>` (answers in flight, under a lease) and `orders/<host>` (the order
//! lock: a key created only if absent, under a lease that ends it if its holder dies).
//!
//! Private keys are stored as they are: etcd must be access-controlled (client TLS and auth, as
//! for Kubernetes secrets).

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use warren_cluster::etcd::{Compare, Etcd, Op};

use crate::acme::Challenge;
use crate::acme_state::{AcmeState, OrderLock, StoredCert, account_file};
use crate::certs::plausible_name;
use crate::x509::Facts;

/// The ACME state of one cluster in etcd. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EtcdState {
    etcd: Etcd,
    /// `/warren/<cluster>/acme/`.
    prefix: String,
}

#[derive(Serialize, Deserialize)]
struct CertValue {
    chain: String,
    key: String,
}

#[derive(Serialize, Deserialize)]
struct FactsValue {
    not_before: i64,
    not_after: i64,
    issuer: String,
}

/// Whether `id` can be a key segment: a host name or an ACME token (base64url).
fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !id.starts_with('.')
}

fn host(name: &str) -> Result<&str, String> {
    if plausible_name(name) {
        Ok(name)
    } else {
        Err(format!("{name:?} is not a host name"))
    }
}

fn etcd_error(e: warren_cluster::Error) -> String {
    format!("ACME state in etcd: {e}")
}

/// Whole seconds for an etcd lease, at least one.
fn lease_secs(ttl: Duration) -> i64 {
    ttl.as_secs().clamp(1, i64::MAX as u64) as i64
}

impl EtcdState {
    /// The ACME state of cluster `cluster` (letters, digits, `-`, `_`) in `etcd`.
    pub fn new(etcd: Etcd, cluster: &str) -> Result<Self, String> {
        let keys = warren_cluster::Keys::new(cluster).map_err(|e| e.to_string())?;
        Ok(Self {
            etcd,
            prefix: format!("{}acme/", keys.root()),
        })
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}/{id}", self.prefix)
    }

    fn challenge_key(&self, kind: Challenge, id: &str) -> Option<String> {
        plain_id(id).then(|| self.key(&format!("challenges/{}", kind.name()), id))
    }

    /// The key of `name`'s order lock.
    pub fn order_key(&self, name: &str) -> String {
        self.key("orders", name)
    }
}

impl AcmeState for EtcdState {
    fn account<'a>(&'a self, directory: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        Box::pin(async move {
            let key = self.key("accounts", &account_file(directory));
            let found = self.etcd.get(&key).await.map_err(etcd_error)?;
            Ok(found.map(|kv| kv.value))
        })
    }

    fn save_account<'a>(
        &'a self,
        directory: &'a str,
        credentials: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let key = self.key("accounts", &account_file(directory));
            let put = Op::Put {
                key: key.clone(),
                value: credentials.to_vec(),
                lease: 0,
            };
            let result = self
                .etcd
                .txn(&[Compare::Version(key.clone(), 0)], &[put], &[Op::Get(key)])
                .await
                .map_err(etcd_error)?;
            if result.succeeded {
                return Ok(credentials.to_vec());
            }
            result
                .read
                .into_iter()
                .next()
                .map(|kv| kv.value)
                .ok_or_else(|| "the stored ACME account vanished".to_string())
        })
    }

    fn certificate<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCert>, String>> {
        Box::pin(async move {
            let key = self.key("certs", host(name)?);
            let Some(kv) = self.etcd.get(&key).await.map_err(etcd_error)? else {
                return Ok(None);
            };
            let value: CertValue = serde_json::from_slice(&kv.value)
                .map_err(|e| format!("the certificate of {name} in etcd is unreadable: {e}"))?;
            Ok(Some(StoredCert {
                chain: value.chain,
                key: value.key,
            }))
        })
    }

    fn save_certificate<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
        facts: &'a Facts,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let name = host(name)?;
            let cert = serde_json::to_vec(&CertValue {
                chain: cert.chain.clone(),
                key: cert.key.clone(),
            })
            .map_err(|e| e.to_string())?;
            let facts = serde_json::to_vec(&FactsValue {
                not_before: facts.not_before,
                not_after: facts.not_after,
                issuer: facts.issuer.clone(),
            })
            .map_err(|e| e.to_string())?;
            let puts = [
                Op::Put {
                    key: self.key("certs", name),
                    value: cert,
                    lease: 0,
                },
                Op::Put {
                    key: self.key("facts", name),
                    value: facts,
                    lease: 0,
                },
            ];
            self.etcd.txn(&[], &puts, &[]).await.map_err(etcd_error)?;
            Ok(())
        })
    }

    fn certificates(&self) -> BoxFuture<'_, Result<Vec<(String, Facts)>, String>> {
        Box::pin(async move {
            let prefix = self.key("facts", "");
            let (kvs, _) = self.etcd.list(&prefix).await.map_err(etcd_error)?;
            Ok(kvs
                .into_iter()
                .filter_map(|kv| {
                    let name = kv.key.strip_prefix(&prefix)?.to_string();
                    let facts: FactsValue = serde_json::from_slice(&kv.value).ok()?;
                    plausible_name(&name).then_some((
                        name,
                        Facts {
                            not_before: facts.not_before,
                            not_after: facts.not_after,
                            issuer: facts.issuer,
                        },
                    ))
                })
                .collect())
        })
    }

    fn remove_certificate<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let name = host(name)?;
            let deletes = [
                Op::Delete(self.key("certs", name)),
                Op::Delete(self.key("facts", name)),
            ];
            self.etcd
                .txn(&[], &deletes, &[])
                .await
                .map_err(etcd_error)?;
            Ok(())
        })
    }

    fn publish_challenge<'a>(
        &'a self,
        kind: Challenge,
        id: &'a str,
        answer: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let key = self
                .challenge_key(kind, id)
                .ok_or_else(|| format!("{id:?} cannot name a challenge"))?;
            let lease = self.etcd.grant(lease_secs(ttl)).await.map_err(etcd_error)?;
            self.etcd
                .put(&key, answer, lease.id)
                .await
                .map_err(etcd_error)?;
            Ok(())
        })
    }

    fn challenge<'a>(&'a self, kind: Challenge, id: &'a str) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let key = self.challenge_key(kind, id)?;
            match self.etcd.get(&key).await {
                Ok(found) => found.map(|kv| kv.value),
                Err(e) => {
                    tracing::warn!(error = %e, "reading an ACME challenge from etcd failed");
                    None
                }
            }
        })
    }

    fn remove_challenge<'a>(&'a self, kind: Challenge, id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(key) = self.challenge_key(kind, id) else {
                return;
            };
            // Ending the lease removes the key and frees the lease at once.
            let done = match self.etcd.get(&key).await {
                Ok(Some(kv)) if kv.lease != 0 => self.etcd.revoke(kv.lease).await,
                Ok(_) => self.etcd.delete(&key).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                tracing::debug!(error = %e, "withdrawing an ACME challenge failed; its lease ends it");
            }
        })
    }

    fn lock_order<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<OrderLock>, String>> {
        Box::pin(async move {
            let key = self.order_key(host(name)?);
            // Waiters poll: a read while the lock is held costs no lease.
            if self.etcd.get(&key).await.map_err(etcd_error)?.is_some() {
                return Ok(None);
            }
            let lease = self.etcd.grant(lease_secs(ttl)).await.map_err(etcd_error)?;
            let put = Op::Put {
                key: key.clone(),
                value: lease.id.to_string().into_bytes(),
                lease: lease.id,
            };
            let taken = self
                .etcd
                .txn(&[Compare::Version(key, 0)], &[put], &[])
                .await;
            match taken {
                Ok(result) if result.succeeded => Ok(Some(OrderLock {
                    name: name.to_string(),
                    token: lease.id,
                })),
                other => {
                    let _ = self.etcd.revoke(lease.id).await;
                    other.map(|_| None).map_err(etcd_error)
                }
            }
        })
    }

    fn unlock_order(&self, lock: OrderLock) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Only this holder's lease carries the key; a lock that expired and was taken by
            // another node is under another lease and stays.
            if let Err(e) = self.etcd.revoke(lock.token).await {
                tracing::debug!(host = %lock.name, error = %e, "releasing an ACME order lock failed; it expires");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_cluster_and_refuse_odd_ids() {
        let etcd = Etcd::new(&["http://127.0.0.1:1".into()], Duration::from_secs(1)).unwrap();
        let state = EtcdState::new(etcd.clone(), "prod").unwrap();
        assert_eq!(
            state.order_key("a.example.com"),
            "/warren/prod/acme/orders/a.example.com"
        );
        assert_eq!(
            state.challenge_key(Challenge::Http01, "abc_-9").unwrap(),
            "/warren/prod/acme/challenges/http-01/abc_-9"
        );
        for id in ["", "../x", "a/b", ".x", &"a".repeat(256)] {
            assert!(state.challenge_key(Challenge::Http01, id).is_none(), "{id}");
        }
        assert!(host("../x").is_err());
        assert!(EtcdState::new(etcd, "a/b").is_err());
    }
}
