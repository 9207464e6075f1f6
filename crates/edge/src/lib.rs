//! The edge: listeners and hostname classification. It decides which side of Warren a request
//! is for (the platform, a tenant, or nobody), terminates TLS with certificates chosen by SNI
//! and obtained from an ACME CA, and serves connections with graceful shutdown.
//!
//! It never imports records, auth or tenant internals; the binary wires its decisions to them.

pub mod acme;
pub mod acme_etcd;
pub mod acme_state;
pub mod certs;
pub mod forward;
pub mod host;
mod hosts;
mod lean;
pub mod plain;
mod server;
pub mod tls;
pub mod x509;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use acme::{Acme, AcmeConfig, Challenge};
pub use acme_etcd::EtcdState;
pub use acme_state::{AcmeState, LocalState};
pub use certs::CertStore;
pub use forward::Forwarder;
pub use host::{Destination, classify};
pub use hosts::{CertStatus, Hosts};
pub use server::{serve, serve_tls, serve_with_streams};
pub use tls::TlsListener;

/// What a server hands each request to: any service that answers every request (an axum
/// `Router` through `App::new`, or the binary's host dispatch, which needs no router of its
/// own in front of it).
pub type App = tower::util::BoxCloneSyncService<
    axum::http::Request<axum::body::Body>,
    axum::response::Response,
    std::convert::Infallible,
>;

/// The operator's own certificate for `*.<domain>`, reloaded when its files change.
#[derive(Debug, Clone)]
pub struct OperatorCert {
    /// PEM chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// How the HTTPS side is set up.
pub struct TlsSettings {
    /// `<data>/certs` and `<data>/acme` live under it.
    pub data_dir: PathBuf,
    /// The platform domain.
    pub domain: String,
    /// An operator-supplied wildcard certificate.
    pub operator_cert: Option<OperatorCert>,
    /// ACME, when certificates are obtained automatically.
    pub acme: Option<AcmeConfig>,
    /// How often certificates are checked for renewal.
    pub renew_check: Duration,
}

/// The TLS side of one Warren process: certificate store, ACME client and listeners.
#[derive(Clone)]
pub struct Edge {
    /// Certificates by host.
    pub store: Arc<CertStore>,
    /// The ACME client, when on.
    pub acme: Option<Arc<Acme>>,
    terminator: Arc<tls::Terminator>,
}

impl Edge {
    /// Opens the certificate store, loads the operator's certificate and starts the renewal
    /// and reload tasks. `hosts` says which names Warren serves.
    pub async fn start(settings: TlsSettings, hosts: Arc<dyn Hosts>) -> Result<Self, String> {
        Self::start_with(settings, hosts, None).await
    }

    /// As `start`, with the ACME state in `shared` (a cluster's `EtcdState`) instead of this
    /// node's files; certificates stored there are served by every node that shares it.
    pub async fn start_with(
        settings: TlsSettings,
        hosts: Arc<dyn Hosts>,
        shared: Option<Arc<dyn AcmeState>>,
    ) -> Result<Self, String> {
        // Other crates' TLS clients (the ACME client's) use the process default provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs_dir = settings.data_dir.join("certs");
        let domain = settings.domain.clone();
        let store = tokio::task::spawn_blocking(move || CertStore::open(&certs_dir, &domain))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("opening the certificate store: {e}"))?;
        let store = Arc::new(store);
        if let Some(operator) = &settings.operator_cert {
            let (certified, _) = read_operator_cert(operator)?;
            store.set_wildcard(certified);
            tokio::spawn(watch_operator_cert(operator.clone(), store.clone()));
        }
        let acme = settings.acme.map(|config| match shared {
            Some(state) => Acme::with_state(config, store.clone(), hosts.clone(), state),
            None => Acme::new(config, store.clone(), hosts.clone()),
        });
        if let Some(acme) = &acme {
            tokio::spawn(acme.clone().run_renewals(settings.renew_check));
            let platform = settings.domain.trim_end_matches('.').to_ascii_lowercase();
            if !store.has(&platform) && hosts.allowed(&platform).await {
                acme.request(&platform);
            }
        }
        let terminator = Arc::new(tls::Terminator {
            config: tls::server_config(store.clone()),
            store: store.clone(),
            acme: acme.clone(),
            hosts,
        });
        Ok(Self {
            store,
            acme,
            terminator,
        })
    }

    /// The HTTPS listener over a bound TCP listener.
    pub fn listener(&self, tcp: tokio::net::TcpListener) -> std::io::Result<TlsListener> {
        TlsListener::start(tcp, self.terminator.clone())
    }

    /// The plain listener's router: ACME HTTP-01 answers and redirects to `https_port`.
    pub fn plain_router(&self, https_port: u16) -> axum::Router {
        plain::router(self.acme.clone(), https_port)
    }
}

fn read_operator_cert(
    operator: &OperatorCert,
) -> Result<(rustls::sign::CertifiedKey, x509::Facts), String> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()));
    certs::certified_key(&read(&operator.cert)?, &read(&operator.key)?)
        .map_err(|e| format!("{}: {e}", operator.cert.display()))
}

fn modified(operator: &OperatorCert) -> Option<(SystemTime, SystemTime)> {
    let cert = std::fs::metadata(&operator.cert).ok()?.modified().ok()?;
    let key = std::fs::metadata(&operator.key).ok()?.modified().ok()?;
    Some((cert, key))
}

/// Reloads the operator's certificate when its files change; a broken new pair keeps the old.
async fn watch_operator_cert(operator: OperatorCert, store: Arc<CertStore>) {
    let mut seen = modified(&operator);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = modified(&operator);
        if now == seen || now.is_none() {
            continue;
        }
        seen = now;
        let source = operator.clone();
        match tokio::task::spawn_blocking(move || read_operator_cert(&source)).await {
            Ok(Ok((certified, facts))) => {
                store.set_wildcard(certified);
                tracing::info!(not_after = facts.not_after, "operator certificate reloaded");
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the changed operator certificate is unusable; keeping the old one")
            }
            Err(_) => {}
        }
    }
}
