//! Who is asking: the signed-in account (from the session cookie), the CSRF nonce, the client's
//! IP and whether the request came from the console's own origin.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use crate::csrf;
use warren_control_plane::accounts::{Account, SESSION_SECONDS, digest};

use crate::Console;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "warren_session";
/// Name of the CSRF nonce cookie (forms shown before signing in).
pub const NONCE_COOKIE: &str = "warren_csrf";

/// The visitor of a console page.
pub struct Visitor {
    /// The signed-in, enabled account, if any.
    pub account: Option<Account>,
    /// The live session's secret.
    session: Option<String>,
    /// The CSRF nonce: from the cookie, or fresh (then set on the response).
    nonce: String,
    /// Whether `nonce` is new and must be set as a cookie.
    fresh_nonce: bool,
    /// The client's IP (or `unknown`).
    pub ip: String,
    /// Whether `Origin`/`Sec-Fetch-Site` allow a state change.
    same_origin: bool,
    /// Whether cookies get `Secure` (the platform is served over https).
    pub secure: bool,
    /// The CSRF key.
    key: Vec<u8>,
}

/// Values of cookie `name` in `headers`, in order.
pub fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v.trim())
        })
}

/// A `Set-Cookie` value with the console's attributes.
pub fn cookie(name: &str, value: &str, max_age: i64, same_site: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}")
}

/// Whether the request's `Origin` (when sent) is the host it was sent to, and the browser does
/// not call it cross-site.
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if text("sec-fetch-site").is_some_and(|s| s == "cross-site" || s == "same-site") {
        return false;
    }
    let Some(origin) = text("origin") else {
        return true;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host))
}

impl FromRequestParts<Console> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Console,
    ) -> Result<Self, Self::Rejection> {
        let accounts = state.console.accounts();
        let mut account = None;
        let mut session = None;
        for secret in cookies(&parts.headers, SESSION_COOKIE) {
            if let Some(found) = accounts
                .session(secret)
                .await
                .map_err(crate::error::internal)?
            {
                account = Some(found);
                session = Some(secret.to_string());
                break;
            }
        }
        let existing = cookies(&parts.headers, NONCE_COOKIE)
            .find(|n| (16..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_string);
        let fresh_nonce = existing.is_none();
        let nonce = existing.unwrap_or_else(|| warren_secrets::random::secret(32));
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("")
            .to_string();
        Ok(Self {
            account,
            session,
            nonce,
            fresh_nonce,
            ip,
            same_origin: same_origin(&parts.headers, &host),
            secure: state.urls.scheme == "https",
            key: state.inner.csrf_key.clone(),
        })
    }
}

impl Visitor {
    fn binding(&self) -> String {
        match &self.session {
            Some(secret) => format!("session:{}", digest(secret)),
            None => format!("nonce:{}", self.nonce),
        }
    }

    /// The CSRF token the visitor's forms carry.
    pub fn csrf(&self) -> String {
        csrf::token(&self.key, &self.binding())
    }

    /// Whether a posted form's token is valid for this visitor (and the post is same-origin).
    /// A visitor without a nonce cookie never passes.
    pub fn accepts(&self, given: &str) -> bool {
        if !self.same_origin || (self.session.is_none() && self.fresh_nonce) {
            return false;
        }
        csrf::matches(&self.key, &self.binding(), given)
    }

    /// The current session's secret.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Adds the nonce cookie to `response` when it is new.
    pub fn finish(&self, mut response: Response) -> Response {
        if self.fresh_nonce
            && let Ok(value) = HeaderValue::from_str(&cookie(
                NONCE_COOKIE,
                &self.nonce,
                SESSION_SECONDS,
                "Strict",
                self.secure,
            ))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; warren_session=abc ; b=2"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("warren_session=def"),
        );
        let found: Vec<_> = cookies(&headers, SESSION_COOKIE).collect();
        assert_eq!(found, ["abc", "def"]);
    }

    #[test]
    fn foreign_origins_are_refused() {
        let mut headers = HeaderMap::new();
        let host = "localhost:8090";
        assert!(same_origin(&headers, host));
        headers.insert("origin", HeaderValue::from_static("http://localhost:8090"));
        assert!(same_origin(&headers, host));
        headers.insert(
            "origin",
            HeaderValue::from_static("http://evil.localhost:8090"),
        );
        assert!(!same_origin(&headers, host));
        headers.insert("origin", HeaderValue::from_static("null"));
        assert!(!same_origin(&headers, host));
        headers.insert("origin", HeaderValue::from_static("http://localhost:8090"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(!same_origin(&headers, host));
    }

    #[test]
    fn cookie_flags() {
        let c = cookie("s", "v", 10, "Lax", true);
        assert_eq!(c, "s=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=10; Secure");
        assert!(!cookie("s", "v", 10, "Lax", false).contains("Secure"));
    }
}
