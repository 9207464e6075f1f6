//! Certificates from an ACME CA (instant-acme): the account, HTTP-01 and TLS-ALPN-01 challenge
//! answers, issuance on demand for allowed hosts only, renewal at two thirds of the lifetime
//! with jitter, per-host backoff and the CA's rate limits.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use tokio::sync::Semaphore;

use crate::acme_state::{AcmeState, LocalState, OrderLock, StoredCert};
use crate::certs::{self, CertStore};
use crate::hosts::{CertStatus, Hosts};
use crate::x509::Facts;

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Longest one order may take, from creation to the stored certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest one node holds a name's order lock: past the order's own limit, so a lock only
/// expires under a holder that died.
const ORDER_LOCK_TTL: Duration = Duration::from_secs(180);
/// How often a node waiting for another's order looks again.
const LOCK_POLL: Duration = Duration::from_millis(250);
/// Longest a published challenge answer lives if its order never withdraws it.
const CHALLENGE_TTL: Duration = Duration::from_secs(600);
/// How long a handshake's miss in the shared state is remembered, so a flood of handshakes
/// for a name without a certificate reads the shared state once per interval.
const MISS_MEMORY: Duration = Duration::from_secs(1);
/// How long a stored host must stay refused before its certificate leaves the state.
const UNSERVED_BEFORE_REMOVAL: Duration = Duration::from_secs(60);
/// Most names remembered as misses, or as TLS-ALPN-01 certificates built.
const MEMORY_CAP: usize = 4096;
/// Most orders in flight at once.
const CONCURRENT_ORDERS: usize = 4;
/// Longest wait between retries of a failing host.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// Let's Encrypt's limits: new orders per account per 3 hours, certificates per registered
/// domain per week, failed validations per host per hour.
const ORDERS_PER_3H: usize = 300;
const CERTS_PER_DOMAIN_WEEK: usize = 50;
const FAILED_VALIDATIONS_PER_HOUR: usize = 5;
const HOUR: Duration = Duration::from_secs(3600);

/// A challenge type Warren can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Challenge {
    /// `http-01` on the plain HTTP listener.
    Http01,
    /// `tls-alpn-01` on the HTTPS listener.
    TlsAlpn01,
}

impl Challenge {
    /// Parses `http-01` or `tls-alpn-01`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "http-01" => Some(Self::Http01),
            "tls-alpn-01" => Some(Self::TlsAlpn01),
            _ => None,
        }
    }

    /// The ACME name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }

    fn acme(self) -> ChallengeType {
        match self {
            Self::Http01 => ChallengeType::Http01,
            Self::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }
}

/// How Warren talks to its CA.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The directory URL.
    pub directory: String,
    /// Contact email for the account.
    pub email: Option<String>,
    /// A PEM root to trust for the CA's own HTTPS (test CAs).
    pub ca_root: Option<PathBuf>,
    /// Challenge types, tried in this order.
    pub challenges: Vec<Challenge>,
    /// Where the account key lives (mode 0600) when the state is this node's own.
    pub state_dir: PathBuf,
    /// First wait after a failure; doubled after each further failure.
    pub retry_base: Duration,
}

/// Counters for operators and logs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Orders placed.
    pub orders: AtomicU64,
    /// Failed attempts.
    pub failures: AtomicU64,
    /// Certificates renewed.
    pub renewals: AtomicU64,
    /// Certificates issued (new or renewed).
    pub issued: AtomicU64,
    /// Certificates taken from the shared state (another node had ordered them) instead of
    /// ordering.
    pub adopted: AtomicU64,
}

#[derive(Debug, Default)]
struct HostState {
    busy: bool,
    failures: u32,
    next_attempt: Option<Instant>,
    failed_validations: VecDeque<Instant>,
}

#[derive(Debug, Default)]
struct Limits {
    orders: VecDeque<Instant>,
    certs_per_domain: HashMap<String, VecDeque<Instant>>,
}

/// Why an attempt failed.
enum Failure {
    /// The CA could not validate the challenge.
    Validation(String),
    /// The CA (or a local limit) says to wait.
    RateLimited(String, Duration),
    /// Anything else: the CA unreachable, a protocol error, the disk.
    Other(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Self::Validation(m) | Self::RateLimited(m, _) | Self::Other(m) => m,
        }
    }
}

impl From<instant_acme::Error> for Failure {
    fn from(e: instant_acme::Error) -> Self {
        match &e {
            instant_acme::Error::Api(problem) => {
                let kind = problem.r#type.as_deref().unwrap_or_default();
                let message = format!("the CA refused: {e}");
                if kind.ends_with(":rateLimited") {
                    Self::RateLimited(message, HOUR)
                } else if [
                    ":unauthorized",
                    ":connection",
                    ":dns",
                    ":incorrectResponse",
                    ":tls",
                    ":caa",
                ]
                .iter()
                .any(|s| kind.ends_with(s))
                {
                    Self::Validation(message)
                } else {
                    Self::Other(message)
                }
            }
            _ => Self::Other(format!("ACME request failed: {e}")),
        }
    }
}

/// A TLS-ALPN-01 certificate and the key authorization digest it carries.
type AlpnKey = (Vec<u8>, Arc<CertifiedKey>);

/// What a successful attempt did.
enum Outcome {
    /// Ordered and stored a certificate, validated with this challenge.
    Issued(Challenge),
    /// Found a current certificate in the shared state, ordered by another node.
    Adopted,
}

/// The ACME client of one Warren process.
pub struct Acme {
    config: AcmeConfig,
    /// This node's certificates in memory, consulted by handshakes.
    store: Arc<CertStore>,
    /// The account, certificates, challenge answers and order locks, this node's own or
    /// shared by a cluster.
    state: Arc<dyn AcmeState>,
    hosts: Arc<dyn Hosts>,
    account: tokio::sync::Mutex<Option<Account>>,
    /// TLS-ALPN-01 certificates built for a name, with the digest they carry.
    alpn_keys: Mutex<HashMap<String, AlpnKey>>,
    /// When the shared state last had no certificate for a name.
    misses: Mutex<HashMap<String, Instant>>,
    /// Since when each stored host has been refused by `hosts`.
    unserved: Mutex<HashMap<String, Instant>>,
    states: Mutex<HashMap<String, HostState>>,
    limits: Mutex<Limits>,
    slots: Semaphore,
    /// Counters since start.
    pub counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Now, Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// When to renew a certificate valid from `not_before` to `not_after`: at two thirds of its
/// lifetime, minus a per-host jitter of up to a twentieth of it.
pub fn renewal_time(name: &str, not_before: i64, not_after: i64) -> i64 {
    let lifetime = (not_after - not_before).max(1);
    let spread = (lifetime / 20).max(1);
    let jitter = name.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    }) % spread as u64;
    not_before + lifetime * 2 / 3 - jitter as i64
}

/// The wait after `failures` consecutive failures: `base` doubled each time, capped, with up
/// to a fifth of random jitter.
pub fn backoff(base: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let wait = base.saturating_mul(1 << exp).min(MAX_BACKOFF);
    let jitter = wait.mul_f64(rand::random::<f64>() / 5.0);
    wait + jitter
}

/// The registered domain of `name`, approximated as its last two labels.
fn registered_domain(name: &str) -> String {
    let labels: Vec<&str> = name.rsplitn(3, '.').collect();
    match labels.as_slice() {
        [tld, sld, ..] => format!("{sld}.{tld}"),
        _ => name.to_string(),
    }
}

fn prune(queue: &mut VecDeque<Instant>, window: Duration) {
    while queue.front().is_some_and(|t| t.elapsed() >= window) {
        queue.pop_front();
    }
}

/// The wait until `queue` (events in the last `window`) has room below `max`.
fn wait_for_room(queue: &mut VecDeque<Instant>, window: Duration, max: usize) -> Option<Duration> {
    prune(queue, window);
    (queue.len() >= max)
        .then(|| window.saturating_sub(queue.front().map_or(Duration::ZERO, |t| t.elapsed())))
}

impl Acme {
    /// An ACME client storing certificates in `store` (and its files), the account under
    /// `config.state_dir`, ordering only what `hosts` allows.
    pub fn new(config: AcmeConfig, store: Arc<CertStore>, hosts: Arc<dyn Hosts>) -> Arc<Self> {
        let state = Arc::new(LocalState::new(config.state_dir.clone(), store.clone()));
        Self::with_state(config, store, hosts, state)
    }

    /// An ACME client keeping its account, certificates, challenge answers and order locks in
    /// `state` (such as a cluster's `EtcdState`), with `store` as this node's memory of them.
    pub fn with_state(
        config: AcmeConfig,
        store: Arc<CertStore>,
        hosts: Arc<dyn Hosts>,
        state: Arc<dyn AcmeState>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            store,
            state,
            hosts,
            account: tokio::sync::Mutex::new(None),
            alpn_keys: Mutex::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            unserved: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            limits: Mutex::new(Limits::default()),
            slots: Semaphore::new(CONCURRENT_ORDERS),
            counters: Counters::default(),
        })
    }

    /// The key authorization for an HTTP-01 `token`, while its order (by any node sharing
    /// the state) is in flight.
    pub async fn http_challenge(&self, token: &str) -> Option<String> {
        let token_like = !token.is_empty()
            && token.len() <= 255
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token_like {
            return None;
        }
        let answer = self.state.challenge(Challenge::Http01, token).await?;
        String::from_utf8(answer).ok()
    }

    /// The TLS-ALPN-01 certificate for `name`, while its order (by any node sharing the
    /// state) is in flight.
    pub async fn alpn_challenge(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if !certs::plausible_name(name) {
            return None;
        }
        let digest = self.state.challenge(Challenge::TlsAlpn01, name).await?;
        if let Some((built_for, key)) = lock(&self.alpn_keys).get(name)
            && *built_for == digest
        {
            return Some(key.clone());
        }
        let key = Arc::new(alpn_certificate(name, &digest).ok()?);
        let mut keys = lock(&self.alpn_keys);
        if keys.len() >= MEMORY_CAP {
            keys.clear();
        }
        keys.insert(name.to_string(), (digest, key.clone()));
        Some(key)
    }

    /// The certificate of `name` from the shared state, put in memory for handshakes: how a
    /// node serves a certificate another node ordered. `None` when there is no usable one.
    pub async fn shared_certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if !certs::plausible_name(name) {
            return None;
        }
        if lock(&self.misses)
            .get(name)
            .is_some_and(|at| at.elapsed() < MISS_MEMORY)
        {
            return None;
        }
        let found = self.install_shared(name).await.is_some();
        let mut misses = lock(&self.misses);
        if found {
            misses.remove(name);
            return self.store.get(name);
        }
        if misses.len() >= MEMORY_CAP {
            misses.retain(|_, at| at.elapsed() < MISS_MEMORY);
        }
        if misses.len() < MEMORY_CAP {
            misses.insert(name.to_string(), Instant::now());
        }
        None
    }

    /// Reads `name`'s certificate from the state and installs it in memory unless it has
    /// expired; its validity when installed.
    async fn install_shared(&self, name: &str) -> Option<Facts> {
        let stored = match self.state.certificate(name).await {
            Ok(stored) => stored?,
            Err(e) => {
                tracing::warn!(host = name, error = %e, "reading a shared certificate failed");
                return None;
            }
        };
        let (_, facts) = certs::certified_key(stored.chain.as_bytes(), stored.key.as_bytes())
            .map_err(
                |e| tracing::warn!(host = name, error = %e, "a shared certificate cannot be used"),
            )
            .ok()?;
        if facts.not_after <= unix_now() {
            return None;
        }
        self.store.install(name, &stored.chain, &stored.key).ok()
    }

    /// Takes the order lock of `name`, waiting while another node holds it.
    async fn take_order_lock(&self, name: &str) -> Result<OrderLock, Failure> {
        let deadline = Instant::now() + ORDER_LOCK_TTL + LOCK_POLL * 8;
        loop {
            match self.state.lock_order(name, ORDER_LOCK_TTL).await {
                Ok(Some(order_lock)) => return Ok(order_lock),
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(LOCK_POLL).await,
                Ok(None) => {
                    return Err(Failure::Other(
                        "another node held this name's order lock for too long".into(),
                    ));
                }
                Err(e) => return Err(Failure::Other(e)),
            }
        }
    }

    /// Asks for a certificate for `name` in the background, unless one is being obtained or
    /// the host is waiting out a backoff. Never blocks.
    pub fn request(self: &Arc<Self>, name: &str) {
        if !certs::plausible_name(name) {
            return;
        }
        {
            let mut states = lock(&self.states);
            if let Some(state) = states.get(name)
                && (state.busy || state.next_attempt.is_some_and(|t| t > Instant::now()))
            {
                return;
            }
            states.entry(name.to_string()).or_default().busy = true;
        }
        let this = self.clone();
        let name = name.to_string();
        tokio::spawn(async move { this.attempt(&name).await });
    }

    async fn attempt(&self, name: &str) {
        if !self.hosts.allowed(name).await {
            lock(&self.states).remove(name);
            return;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return;
        };
        let renewal = self.store.facts(name).is_some();
        let orders_before = self.counters.orders.load(Ordering::Relaxed);
        // One order per name among the nodes sharing the state: the lock holder first looks
        // for a current certificate another holder stored while this node waited.
        let result = match self.take_order_lock(name).await {
            Err(failure) => Err(failure),
            Ok(order_lock) => {
                let result = self.attempt_locked(name).await;
                self.state.unlock_order(order_lock).await;
                result
            }
        };
        let orders = self.counters.orders.load(Ordering::Relaxed) - orders_before;
        let mut status = CertStatus {
            host: name.to_string(),
            orders,
            ..CertStatus::default_for(name)
        };
        match result {
            Ok(Outcome::Adopted) => {
                self.counters.adopted.fetch_add(1, Ordering::Relaxed);
                let mut states = lock(&self.states);
                let state = states.entry(name.to_string()).or_default();
                state.failures = 0;
                state.next_attempt = None;
                state.busy = false;
                tracing::info!(
                    host = name,
                    "certificate taken from the shared state, where another node stored it"
                );
            }
            Ok(Outcome::Issued(challenge)) => {
                self.counters.issued.fetch_add(1, Ordering::Relaxed);
                if renewal {
                    self.counters.renewals.fetch_add(1, Ordering::Relaxed);
                    status.renewals = 1;
                }
                status.challenge = challenge.name().to_string();
                let mut states = lock(&self.states);
                let state = states.entry(name.to_string()).or_default();
                state.failures = 0;
                state.next_attempt = None;
                state.busy = false;
                tracing::info!(
                    host = name,
                    challenge = challenge.name(),
                    renewal,
                    "certificate issued"
                );
            }
            Err(failure) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                status.failures = 1;
                status.last_error = failure.message().to_string();
                let mut states = lock(&self.states);
                let state = states.entry(name.to_string()).or_default();
                state.failures += 1;
                let mut wait = backoff(self.config.retry_base, state.failures);
                if let Some(more) = wait_for_room(
                    &mut state.failed_validations,
                    HOUR,
                    FAILED_VALIDATIONS_PER_HOUR,
                ) {
                    wait = wait.max(more);
                }
                if let Failure::RateLimited(_, more) = failure {
                    wait = wait.max(more);
                }
                state.next_attempt = Some(Instant::now() + wait);
                state.busy = false;
                status.next_renewal = unix_now() + wait.as_secs() as i64;
                tracing::warn!(
                    host = name,
                    error = %status.last_error,
                    retry_in_secs = wait.as_secs(),
                    "obtaining a certificate failed"
                );
            }
        }
        if let Some(facts) = self.store.facts(name) {
            status.issuer = facts.issuer.clone();
            status.not_after = facts.not_after;
            if status.next_renewal == 0 || status.failures == 0 {
                status.next_renewal =
                    renewal_time(name, facts.not_before, facts.not_after).max(status.next_renewal);
            }
        }
        self.hosts.record(status).await;
    }

    /// Under the order lock: adopts a current certificate from the state, or orders one.
    async fn attempt_locked(&self, name: &str) -> Result<Outcome, Failure> {
        if let Some(facts) = self.install_shared(name).await
            && unix_now() < renewal_time(name, facts.not_before, facts.not_after)
        {
            return Ok(Outcome::Adopted);
        }
        self.rate_limit(name)?;
        match tokio::time::timeout(ORDER_TIMEOUT, self.issue(name)).await {
            Ok(result) => result.map(Outcome::Issued),
            Err(_) => Err(Failure::Other("the order timed out".into())),
        }
    }

    /// Checks the local copies of the CA's limits and counts this order.
    fn rate_limit(&self, name: &str) -> Result<(), Failure> {
        if let Some(state) = lock(&self.states).get_mut(name)
            && let Some(wait) = wait_for_room(
                &mut state.failed_validations,
                HOUR,
                FAILED_VALIDATIONS_PER_HOUR,
            )
        {
            return Err(Failure::RateLimited(
                "too many failed validations for this host in the last hour".into(),
                wait,
            ));
        }
        let mut limits = lock(&self.limits);
        if let Some(wait) = wait_for_room(&mut limits.orders, 3 * HOUR, ORDERS_PER_3H) {
            return Err(Failure::RateLimited(
                "too many new orders in the last three hours".into(),
                wait,
            ));
        }
        let domain = registered_domain(name);
        let week = 7 * 24 * HOUR;
        let certs = limits.certs_per_domain.entry(domain).or_default();
        if let Some(wait) = wait_for_room(certs, week, CERTS_PER_DOMAIN_WEEK) {
            return Err(Failure::RateLimited(
                "too many certificates for this registered domain this week".into(),
                wait,
            ));
        }
        Ok(())
    }

    /// Tries each configured challenge type in turn; the next is tried when the CA could not
    /// validate the previous one.
    async fn issue(&self, name: &str) -> Result<Challenge, Failure> {
        let mut last = Failure::Other("no challenge type is configured".into());
        for &challenge in &self.config.challenges {
            match self.order(name, challenge).await {
                Ok(()) => return Ok(challenge),
                Err(Failure::Validation(message)) => {
                    if let Some(state) = lock(&self.states).get_mut(name) {
                        state.failed_validations.push_back(Instant::now());
                    }
                    last = Failure::Validation(message);
                }
                Err(other) => return Err(other),
            }
        }
        Err(last)
    }

    async fn order(&self, name: &str, challenge: Challenge) -> Result<(), Failure> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(name.to_string())];
        lock(&self.limits).orders.push_back(Instant::now());
        self.counters.orders.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            host = name,
            challenge = challenge.name(),
            "placing an ACME order"
        );
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut tokens = Vec::new();
        let answered = self.answer(&mut order, name, challenge, &mut tokens).await;
        let ready = match answered {
            Ok(()) => order
                .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(60)))
                .await
                .map_err(Failure::from),
            Err(e) => Err(e),
        };
        for token in tokens {
            self.state.remove_challenge(Challenge::Http01, &token).await;
        }
        if challenge == Challenge::TlsAlpn01 {
            self.state
                .remove_challenge(Challenge::TlsAlpn01, name)
                .await;
        }
        lock(&self.alpn_keys).remove(name);
        match ready? {
            OrderStatus::Ready => {}
            status => {
                let detail = self.validation_error(&mut order).await;
                return Err(Failure::Validation(format!(
                    "the order is {status:?}: {detail}"
                )));
            }
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(60)))
            .await?;
        let (_, facts) = certs::certified_key(chain_pem.as_bytes(), key_pem.as_bytes())
            .map_err(Failure::Other)?;
        let cert = StoredCert {
            chain: chain_pem,
            key: key_pem,
        };
        self.state
            .save_certificate(name, &cert, &facts)
            .await
            .map_err(Failure::Other)?;
        self.store
            .install(name, &cert.chain, &cert.key)
            .map_err(Failure::Other)?;
        let domain = registered_domain(name);
        lock(&self.limits)
            .certs_per_domain
            .entry(domain)
            .or_default()
            .push_back(Instant::now());
        Ok(())
    }

    /// Sets up the answer for every pending authorization and tells the CA to validate.
    async fn answer(
        &self,
        order: &mut instant_acme::Order,
        name: &str,
        challenge: Challenge,
        tokens: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(Failure::Validation(format!(
                        "the authorization is {other:?}"
                    )));
                }
            }
            let mut handle = authorization.challenge(challenge.acme()).ok_or_else(|| {
                Failure::Validation(format!("the CA does not offer {}", challenge.name()))
            })?;
            let key_authorization = handle.key_authorization();
            let published = match challenge {
                Challenge::Http01 => {
                    tokens.push(handle.token.clone());
                    let answer = key_authorization.as_str().as_bytes();
                    self.state
                        .publish_challenge(challenge, &handle.token, answer, CHALLENGE_TTL)
                        .await
                }
                Challenge::TlsAlpn01 => {
                    let digest = key_authorization.digest();
                    self.state
                        .publish_challenge(challenge, name, digest.as_ref(), CHALLENGE_TTL)
                        .await
                }
            };
            published.map_err(Failure::Other)?;
            handle.set_ready().await?;
        }
        Ok(())
    }

    /// The CA's explanation of a failed validation, if it gives one.
    async fn validation_error(&self, order: &mut instant_acme::Order) -> String {
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authorization)) = authorizations.next().await {
            if let Ok(state) = authorization.refresh().await
                && let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref())
            {
                return problem.to_string();
            }
        }
        "validation failed".into()
    }

    /// The account for the configured directory: read from the state, or created at the CA
    /// and stored (when another node stored one first, that one is used).
    async fn account(&self) -> Result<Account, Failure> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let directory = self.config.directory.as_str();
        let builder = || match &self.config.ca_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        };
        let stored = self
            .state
            .account(directory)
            .await
            .map_err(Failure::Other)?;
        let credentials =
            stored.and_then(|b| serde_json::from_slice::<AccountCredentials>(&b).ok());
        let account = match credentials {
            Some(credentials) => builder()?.from_credentials(credentials).await?,
            None => {
                let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder()?
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.config.directory.clone(),
                        None,
                    )
                    .await?;
                let json =
                    serde_json::to_vec(&credentials).map_err(|e| Failure::Other(e.to_string()))?;
                let kept = self
                    .state
                    .save_account(directory, &json)
                    .await
                    .map_err(Failure::Other)?;
                if kept == json {
                    tracing::info!(directory, "ACME account created");
                    account
                } else {
                    let earlier = serde_json::from_slice::<AccountCredentials>(&kept)
                        .map_err(|e| Failure::Other(format!("the stored ACME account: {e}")))?;
                    tracing::info!(directory, "using the ACME account another node created");
                    builder()?.from_credentials(earlier).await?
                }
            }
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    /// Drops the certificate of a host Warren no longer serves: from memory and this node's
    /// files at once, from the state only once the host has been refused for a while, so a
    /// node whose view of the hosts lags (one just started in a cluster) cannot delete what
    /// the other nodes serve.
    async fn drop_certificate(&self, name: &str) {
        if self.store.facts(name).is_some() {
            tracing::info!(host = %name, "dropping the certificate of a host Warren no longer serves");
            self.store.remove(name);
        }
        let since = *lock(&self.unserved)
            .entry(name.to_string())
            .or_insert_with(Instant::now);
        if since.elapsed() < UNSERVED_BEFORE_REMOVAL {
            return;
        }
        match self.state.remove_certificate(name).await {
            Ok(()) => {
                lock(&self.unserved).remove(name);
                tracing::info!(host = %name, "removed the stored certificate of a host no longer served");
            }
            Err(e) => tracing::warn!(host = %name, error = %e, "removing a certificate failed"),
        }
    }

    /// Renews what is due and drops certificates of hosts Warren no longer serves. Runs until
    /// the process ends.
    pub async fn run_renewals(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = Instant::now();
        loop {
            tick.tick().await;
            let now = unix_now();
            let full_sweep = sweep.elapsed() >= Duration::from_secs(60);
            if full_sweep {
                sweep = Instant::now();
            }
            let stored = match self.state.certificates().await {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!(error = %e, "listing certificates for renewal failed");
                    continue;
                }
            };
            if full_sweep {
                let listed: std::collections::HashSet<&str> =
                    stored.iter().map(|(name, _)| name.as_str()).collect();
                lock(&self.unserved).retain(|name, _| listed.contains(name.as_str()));
            }
            for (name, facts) in stored {
                // Another node renewed it: serve the new one here too.
                if self
                    .store
                    .facts(&name)
                    .is_some_and(|mine| mine.not_after < facts.not_after)
                {
                    self.install_shared(&name).await;
                }
                let due = now >= renewal_time(&name, facts.not_before, facts.not_after);
                if !due && !full_sweep {
                    continue;
                }
                if !self.hosts.allowed(&name).await {
                    self.drop_certificate(&name).await;
                    continue;
                }
                lock(&self.unserved).remove(&name);
                if due {
                    self.request(&name);
                }
            }
        }
    }
}

impl CertStatus {
    fn default_for(name: &str) -> Self {
        Self {
            host: name.to_string(),
            issuer: String::new(),
            not_after: 0,
            next_renewal: 0,
            last_error: String::new(),
            challenge: String::new(),
            orders: 0,
            failures: 0,
            renewals: 0,
        }
    }
}

/// The self-signed TLS-ALPN-01 certificate for `name` carrying the key authorization digest.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    certs::certified_key(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_two_thirds_with_bounded_jitter() {
        let (start, end) = (1_000_000, 1_000_000 + 90 * 86_400);
        for name in ["a.example.com", "b.example.com", "c.example.org"] {
            let at = renewal_time(name, start, end);
            assert!(at <= start + 60 * 86_400, "{name}");
            assert!(at > start + 60 * 86_400 - 90 * 86_400 / 20, "{name}");
        }
        assert_ne!(
            renewal_time("a.example.com", start, end),
            renewal_time("b.example.com", start, end)
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(10);
        let first = backoff(base, 1);
        assert!(first >= base && first <= base.mul_f64(1.2));
        let third = backoff(base, 3);
        assert!(third >= base * 4 && third <= (base * 4).mul_f64(1.2));
        assert!(backoff(base, 40) <= MAX_BACKOFF.mul_f64(1.2));
    }

    #[test]
    fn registered_domains_are_the_last_two_labels() {
        assert_eq!(registered_domain("a.b.example.com"), "example.com");
        assert_eq!(registered_domain("example.com"), "example.com");
        assert_eq!(registered_domain("localhost"), "localhost");
    }

    #[test]
    fn windows_make_room_as_time_passes() {
        let mut queue = VecDeque::new();
        assert!(wait_for_room(&mut queue, HOUR, 2).is_none());
        queue.push_back(Instant::now());
        queue.push_back(Instant::now());
        let wait = wait_for_room(&mut queue, HOUR, 2).unwrap();
        assert!(wait > Duration::from_secs(3500));
        assert!(wait_for_room(&mut queue, Duration::ZERO, 2).is_none());
    }

    #[test]
    fn the_alpn_certificate_names_the_host() {
        let key = alpn_certificate("a.example.com", &[7; 32]).unwrap();
        assert_eq!(key.cert.len(), 1);
        assert!(crate::x509::facts(&key.cert[0]).is_some());
    }

    #[test]
    fn account_files_are_plain_names() {
        let name = crate::acme_state::account_file("https://127.0.0.1:14000/dir");
        assert_eq!(name, "account-https___127_0_0_1_14000_dir.json");
    }
}
