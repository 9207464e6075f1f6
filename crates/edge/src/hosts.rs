//! What the edge asks the rest of Warren: which names it serves, and where certificate status
//! goes for operators.

use futures_util::future::BoxFuture;
use serde::Serialize;

/// The platform's answer to "is this name ours?" and the sink for certificate status.
pub trait Hosts: Send + Sync + 'static {
    /// Whether Warren serves `name` (a lowercase host name) and may ask a CA for it: a live
    /// tenant host, the platform host, or a verified custom domain. Answer from memory where
    /// possible: every TLS handshake asks.
    fn allowed<'a>(&'a self, name: &'a str) -> BoxFuture<'a, bool>;

    /// Keeps a certificate's status for operators (called after every ACME attempt).
    fn record(&self, status: CertStatus) -> BoxFuture<'_, ()>;
}

/// A certificate's status after an attempt to obtain or renew it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertStatus {
    /// The host name.
    pub host: String,
    /// The issuer's common name of the current certificate (empty when there is none).
    pub issuer: String,
    /// End of validity of the current certificate, Unix seconds (0 when there is none).
    pub not_after: i64,
    /// When Warren will renew (or retry), Unix seconds (0 when nothing is planned).
    pub next_renewal: i64,
    /// The last error, empty after a success.
    pub last_error: String,
    /// The challenge type of the last successful order.
    pub challenge: String,
    /// Orders placed by this attempt.
    pub orders: u64,
    /// 1 when this attempt failed.
    pub failures: u64,
    /// 1 when this attempt renewed an existing certificate.
    pub renewals: u64,
}
