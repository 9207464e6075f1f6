//! The HTTPS listener: TLS 1.2/1.3 with ALPN `h2` and `http/1.1`, certificates chosen by SNI
//! from the store, `acme-tls/1` answered with challenge certificates, handshakes off the
//! accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, version};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::Hosts;
use crate::acme::Acme;
use crate::certs::CertStore;

/// ALPN protocol of TLS-ALPN-01 validation.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; further connections wait in the accept queue.
const MAX_HANDSHAKES: usize = 2048;

/// Everything a handshake consults.
pub(crate) struct Terminator {
    pub store: Arc<CertStore>,
    pub acme: Option<Arc<Acme>>,
    pub hosts: Arc<dyn Hosts>,
    /// The shared configuration whose resolver reads the store's memory.
    pub config: Arc<ServerConfig>,
}

/// The crypto provider of every TLS configuration of Warren.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Resolves by SNI from memory only; a name without a loaded certificate gets none.
#[derive(Debug)]
struct StoreResolver(Arc<CertStore>);

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertStore")
    }
}

impl ResolvesServerCert for StoreResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.get(&hello.server_name()?.to_ascii_lowercase())
    }
}

/// The server configuration for ordinary connections.
pub(crate) fn server_config(store: Arc<CertStore>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(StoreResolver(store)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A configuration that presents one TLS-ALPN-01 challenge certificate.
fn challenge_config(key: Arc<CertifiedKey>) -> Option<Arc<ServerConfig>> {
    #[derive(Debug)]
    struct One(Arc<CertifiedKey>);
    impl ResolvesServerCert for One {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(One(key)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Some(Arc::new(config))
}

/// Accepted, handshaken TLS connections, for `axum::serve`.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub(crate) fn start(tcp: TcpListener, terminator: Arc<Terminator>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(accept_loop(tcp, terminator, tx));
        Ok(Self { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    terminator: Arc<Terminator>,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let limit = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a TLS connection failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        if tx.is_closed() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let (terminator, tx) = (terminator.clone(), tx.clone());
        tokio::spawn(async move {
            let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(stream, &terminator));
            let stream = done.await.ok().flatten();
            drop(permit);
            if let Some(stream) = stream {
                let _ = tx.send((stream, peer)).await;
            }
        });
    }
}

/// Reads the ClientHello, makes sure the certificate is in memory (or answers an ACME
/// validation), then completes the handshake. `None` fails the handshake.
async fn handshake(stream: TcpStream, terminator: &Terminator) -> Option<TlsStream<TcpStream>> {
    let start = LazyConfigAcceptor::new(Acceptor::default(), stream)
        .await
        .ok()?;
    let hello = start.client_hello();
    let name = hello.server_name()?.to_ascii_lowercase();
    let acme_validation = hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
    if acme_validation {
        let key = terminator.acme.as_ref()?.alpn_challenge(&name).await?;
        // The validation ends with the handshake; no request follows.
        let _ = start.into_stream(challenge_config(key)?).await;
        return None;
    }
    if !terminator.hosts.allowed(&name).await {
        return None;
    }
    if terminator.store.load(&name).await.is_none() {
        let Some(acme) = &terminator.acme else {
            return None;
        };
        if acme.shared_certificate(&name).await.is_none() {
            acme.request(&name);
            return None;
        }
    }
    start.into_stream(terminator.config.clone()).await.ok()
}
