//! Where the ACME client keeps its state: the account, issued certificates, challenge answers
//! in flight and a lock per name so one order is made at a time. `LocalState` keeps them on
//! this node (files under the data directory and memory); `EtcdState` (`acme_etcd`) shares
//! them across the nodes of a cluster.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::acme::Challenge;
use crate::certs::{self, CertStore};
use crate::x509::Facts;

/// A stored certificate: the PEM chain (leaf first) and its PEM private key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCert {
    /// PEM chain, leaf first.
    pub chain: String,
    /// PEM private key.
    pub key: String,
}

impl std::fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCert").finish_non_exhaustive()
    }
}

/// The right to place an order for one name, until released or until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLock {
    /// The name ordered.
    pub name: String,
    /// Which holder this is (an etcd lease id, or a local counter).
    pub token: i64,
}

/// The state an ACME client reads and writes. Errors are messages for logs and operators.
pub trait AcmeState: Send + Sync + 'static {
    /// The account credentials (instant-acme's JSON) for the CA at `directory`.
    fn account<'a>(&'a self, directory: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>>;

    /// Stores new account credentials for `directory` unless some are stored already, and
    /// returns the ones now stored: the caller's, or those another node stored first.
    fn save_account<'a>(
        &'a self,
        directory: &'a str,
        credentials: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, String>>;

    /// The stored certificate of `name`.
    fn certificate<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCert>, String>>;

    /// Stores (or replaces) the certificate of `name`, whose validity is `facts`.
    fn save_certificate<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
        facts: &'a Facts,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Every stored certificate's host and validity.
    fn certificates(&self) -> BoxFuture<'_, Result<Vec<(String, Facts)>, String>>;

    /// Deletes the certificate of `name`.
    fn remove_certificate<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>>;

    /// Publishes a challenge answer: for HTTP-01 `id` is the token and `answer` the key
    /// authorization; for TLS-ALPN-01 `id` is the host and `answer` the key authorization's
    /// SHA-256 digest. It lives until removed, or at most `ttl`.
    fn publish_challenge<'a>(
        &'a self,
        kind: Challenge,
        id: &'a str,
        answer: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// A published challenge answer. Any client can make Warren ask: callers check `id` first.
    fn challenge<'a>(&'a self, kind: Challenge, id: &'a str) -> BoxFuture<'a, Option<Vec<u8>>>;

    /// Withdraws a challenge answer.
    fn remove_challenge<'a>(&'a self, kind: Challenge, id: &'a str) -> BoxFuture<'a, ()>;

    /// Takes the order lock of `name` for at most `ttl`; `None` while another holder has it.
    fn lock_order<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<OrderLock>, String>>;

    /// Releases an order lock (a no-op when it has expired and another holder took it).
    fn unlock_order(&self, lock: OrderLock) -> BoxFuture<'_, ()>;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The account file name for a directory URL.
pub(crate) fn account_file(directory: &str) -> String {
    let safe: String = directory
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(120)
        .collect();
    format!("account-{safe}.json")
}

/// A challenge answer and when it stops being given.
type Answer = (Vec<u8>, Instant);

/// One node's ACME state: the account in `<state_dir>/account-*.json` (mode 0600), the
/// certificates in the node's `CertStore` files, challenge answers and order locks in memory.
pub struct LocalState {
    state_dir: PathBuf,
    store: Arc<CertStore>,
    /// Answers by (type, id), with the end of their life.
    challenges: Mutex<HashMap<(Challenge, String), Answer>>,
    locks: Mutex<HashMap<String, (i64, Instant)>>,
    next_token: AtomicI64,
}

impl LocalState {
    /// The state of one node: accounts under `state_dir`, certificates in `store`'s files.
    pub fn new(state_dir: PathBuf, store: Arc<CertStore>) -> Self {
        Self {
            state_dir,
            store,
            challenges: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            next_token: AtomicI64::new(1),
        }
    }
}

fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> BoxFuture<'static, Result<T, String>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| e.to_string())?
    })
}

impl AcmeState for LocalState {
    fn account<'a>(&'a self, directory: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        let path = self.state_dir.join(account_file(directory));
        Box::pin(async move { Ok(tokio::fs::read(&path).await.ok()) })
    }

    fn save_account<'a>(
        &'a self,
        directory: &'a str,
        credentials: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        let dir = self.state_dir.clone();
        let path = dir.join(account_file(directory));
        let bytes = credentials.to_vec();
        blocking(move || {
            std::fs::create_dir_all(&dir)
                .and_then(|()| certs::write_atomically(&path, &bytes, 0o600))
                .map_err(|e| format!("storing the ACME account: {e}"))?;
            Ok(bytes)
        })
    }

    fn certificate<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredCert>, String>> {
        let store = self.store.clone();
        let name = name.to_string();
        blocking(move || {
            Ok(store
                .read_files(&name)
                .map(|(chain, key)| StoredCert { chain, key }))
        })
    }

    fn save_certificate<'a>(
        &'a self,
        name: &'a str,
        cert: &'a StoredCert,
        _facts: &'a Facts,
    ) -> BoxFuture<'a, Result<(), String>> {
        let (store, name, cert) = (self.store.clone(), name.to_string(), cert.clone());
        blocking(move || store.write_files(&name, &cert.chain, &cert.key))
    }

    fn certificates(&self) -> BoxFuture<'_, Result<Vec<(String, Facts)>, String>> {
        Box::pin(async move { Ok(self.store.hosts()) })
    }

    fn remove_certificate<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let (store, name) = (self.store.clone(), name.to_string());
        blocking(move || {
            store.remove(&name);
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
        let mut challenges = lock(&self.challenges);
        challenges.retain(|_, (_, until)| *until > Instant::now());
        challenges.insert(
            (kind, id.to_string()),
            (answer.to_vec(), Instant::now() + ttl),
        );
        Box::pin(async { Ok(()) })
    }

    fn challenge<'a>(&'a self, kind: Challenge, id: &'a str) -> BoxFuture<'a, Option<Vec<u8>>> {
        let found = lock(&self.challenges)
            .get(&(kind, id.to_string()))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(answer, _)| answer.clone());
        Box::pin(async move { found })
    }

    fn remove_challenge<'a>(&'a self, kind: Challenge, id: &'a str) -> BoxFuture<'a, ()> {
        lock(&self.challenges).remove(&(kind, id.to_string()));
        Box::pin(async {})
    }

    fn lock_order<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<OrderLock>, String>> {
        let mut locks = lock(&self.locks);
        let now = Instant::now();
        let taken = match locks.get(name) {
            Some((_, until)) if *until > now => None,
            _ => {
                let token = self.next_token.fetch_add(1, Ordering::Relaxed);
                locks.insert(name.to_string(), (token, now + ttl));
                Some(OrderLock {
                    name: name.to_string(),
                    token,
                })
            }
        };
        Box::pin(async move { Ok(taken) })
    }

    fn unlock_order(&self, order: OrderLock) -> BoxFuture<'_, ()> {
        let mut locks = lock(&self.locks);
        if locks
            .get(&order.name)
            .is_some_and(|(t, _)| *t == order.token)
        {
            locks.remove(&order.name);
        }
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, LocalState) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(CertStore::open(&dir.path().join("certs"), "example.com").unwrap());
        let state = LocalState::new(dir.path().join("acme"), store);
        (dir, state)
    }

    #[tokio::test]
    async fn an_order_lock_is_held_until_released_or_expired() {
        let (_dir, state) = state();
        let minute = Duration::from_secs(60);
        let first = state.lock_order("a.example.com", minute).await.unwrap();
        let first = first.expect("a free lock is taken");
        assert!(
            state
                .lock_order("a.example.com", minute)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            state
                .lock_order("b.example.com", minute)
                .await
                .unwrap()
                .is_some()
        );
        state.unlock_order(first.clone()).await;
        let second = state.lock_order("a.example.com", Duration::ZERO).await;
        let second = second.unwrap().expect("a released lock is free");
        // An expired lock is free again, and releasing the old holder leaves the new one.
        let third = state.lock_order("a.example.com", minute).await.unwrap();
        let third = third.expect("an expired lock is free");
        state.unlock_order(second).await;
        assert!(
            state
                .lock_order("a.example.com", minute)
                .await
                .unwrap()
                .is_none()
        );
        state.unlock_order(third).await;
    }

    #[tokio::test]
    async fn challenges_are_answered_until_withdrawn_or_expired() {
        let (_dir, state) = state();
        let ttl = Duration::from_secs(60);
        state
            .publish_challenge(Challenge::Http01, "tok", b"tok.thumb", ttl)
            .await
            .unwrap();
        assert_eq!(
            state.challenge(Challenge::Http01, "tok").await.as_deref(),
            Some(&b"tok.thumb"[..])
        );
        assert!(state.challenge(Challenge::TlsAlpn01, "tok").await.is_none());
        state.remove_challenge(Challenge::Http01, "tok").await;
        assert!(state.challenge(Challenge::Http01, "tok").await.is_none());
        state
            .publish_challenge(Challenge::Http01, "old", b"x", Duration::ZERO)
            .await
            .unwrap();
        assert!(state.challenge(Challenge::Http01, "old").await.is_none());
    }

    #[tokio::test]
    async fn accounts_and_certificates_live_in_files() {
        let (dir, state) = state();
        let directory = "https://ca.example/dir";
        assert!(state.account(directory).await.unwrap().is_none());
        state.save_account(directory, b"{}").await.unwrap();
        assert_eq!(state.account(directory).await.unwrap().unwrap(), b"{}");
        let file = dir.path().join("acme").join(account_file(directory));
        assert!(file.exists());

        let (chain, key) = certs::tests::self_signed(&["a.example.com"]);
        let cert = StoredCert { chain, key };
        let facts = state.store.install("a.example.com", &cert.chain, &cert.key);
        state
            .save_certificate("a.example.com", &cert, &facts.unwrap())
            .await
            .unwrap();
        assert_eq!(
            state.certificate("a.example.com").await.unwrap(),
            Some(cert)
        );
        assert_eq!(state.certificates().await.unwrap().len(), 1);
        state.remove_certificate("a.example.com").await.unwrap();
        assert!(state.certificate("a.example.com").await.unwrap().is_none());
        assert!(!dir.path().join("certs/a.example.com").exists());
    }
}
