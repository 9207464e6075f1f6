//! The HTTP client of provider calls: hyper over rustls with ring and the web PKI roots.
//! Plain `http://` is refused unless the provider allows loopback test servers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::Error;

/// Largest provider response read.
const MAX_BODY: usize = 1 << 20;

/// A client for provider calls.
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    allow_insecure: bool,
}

impl Http {
    /// A client; `allow_insecure` admits `http://127.0.0.1` (tests only).
    pub fn new(allow_insecure: bool) -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            allow_insecure,
        }
    }

    /// Sends one request and reads the whole (bounded) response.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        let uri = request.uri();
        let secure = uri.scheme_str() == Some("https");
        let loopback = uri.scheme_str() == Some("http")
            && matches!(uri.host(), Some("127.0.0.1") | Some("localhost"));
        if !(secure || (self.allow_insecure && loopback)) {
            return Err(Error::Config(format!("refusing non-https URL {uri}")));
        }
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Error::Token(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| Error::Token(e.to_string()))?
            .to_bytes();
        Ok(http::Response::from_parts(parts, bytes.to_vec()))
    }
}
