//! Downloads of a provider user's avatar picture: `http(s)` only, public addresses only (the
//! name is resolved and every private, loopback, link-local or otherwise special address is
//! refused, also after DNS), a size cap, a timeout and no redirects.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use warren_netguard::{Allow, Resolver};

use crate::{Error, Result};

/// How long a whole avatar download may take.
pub const AVATAR_TIMEOUT: Duration = Duration::from_secs(10);

/// A downloaded picture.
#[derive(Debug, Clone)]
pub struct Picture {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// A file name taken from the URL's last path segment ("avatar" when it has none).
    pub name: String,
}

/// Whether `ip` may be fetched: a public unicast address, or loopback when `allow_loopback`
/// (local test providers only).
pub fn allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    admitted(allow_loopback).admits(ip)
}

fn admitted(allow_loopback: bool) -> Allow {
    Allow {
        loopback: allow_loopback,
        private: false,
    }
}

/// Downloads at most `max` bytes from `url`.
pub async fn download(url: &str, max: usize, allow_loopback: bool) -> Result<Picture> {
    let parsed = url::Url::parse(url).map_err(|e| Error::User(format!("avatar URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::User("avatar URL must be http(s)".into()));
    }
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) if !allowed(IpAddr::V4(ip), allow_loopback) => {
            return Err(Error::User("avatar URL points at a private address".into()));
        }
        Some(url::Host::Ipv6(ip)) if !allowed(IpAddr::V6(ip), allow_loopback) => {
            return Err(Error::User("avatar URL points at a private address".into()));
        }
        None => return Err(Error::User("avatar URL has no host".into())),
        _ => {}
    }
    let mut http = HttpConnector::new_with_resolver(Resolver {
        allow: admitted(allow_loopback),
    });
    http.enforce_http(false);
    http.set_connect_timeout(Some(AVATAR_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let request = http::Request::get(parsed.as_str())
        .header("User-Agent", "warren")
        .header("Accept", "image/*")
        .body(Empty::new())
        .map_err(|e| Error::User(e.to_string()))?;
    let fetch = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| Error::User(format!("avatar download: {e}")))?;
        if !response.status().is_success() {
            return Err(Error::User(format!("avatar status {}", response.status())));
        }
        let bytes = Limited::new(response.into_body(), max)
            .collect()
            .await
            .map_err(|e| Error::User(format!("avatar body: {e}")))?
            .to_bytes();
        Ok(bytes.to_vec())
    };
    let bytes = tokio::time::timeout(AVATAR_TIMEOUT, fetch)
        .await
        .map_err(|_| Error::User("avatar download timed out".into()))??;
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "avatar".into());
    Ok(Picture { bytes, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_fetched() {
        for private in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!allowed(private.parse().unwrap(), true), "{private}");
        }
        for loopback in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(!allowed(loopback.parse().unwrap(), false), "{loopback}");
            assert!(allowed(loopback.parse().unwrap(), true), "{loopback}");
        }
        for public in ["8.8.8.8", "140.82.112.3", "2606:4700::1111"] {
            assert!(allowed(public.parse().unwrap(), false), "{public}");
        }
    }

    #[tokio::test]
    async fn private_and_non_http_urls_are_refused_before_any_request() {
        for url in [
            "ftp://example.com/a.png",
            "http://10.0.0.1/a.png",
            "http://[fe80::1]/a.png",
            "http://127.0.0.1:9/a.png",
            "file:///etc/passwd",
        ] {
            assert!(download(url, 1024, false).await.is_err(), "{url}");
        }
        assert!(
            download("http://localhost:9/a.png", 1024, false)
                .await
                .is_err()
        );
    }
}
