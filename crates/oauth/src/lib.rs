//! OAuth2 sign-in providers: every provider PocketBase 0.40 ships (Apple, Google, Microsoft,
//! GitHub, GitLab, Discord, X, VK, Spotify… and generic OIDC). Builds authorization URLs (with
//! PKCE), exchanges codes for tokens over a hyper + rustls (ring) client, and maps each
//! provider's user info to one [`User`] shape.
//!
//! Each provider has PocketBase's default endpoints; a configured authorization, token or
//! user-info URL replaces its default. Endpoints must be `https://` unless the caller allows
//! loopback `http://127.0.0.1` (tests). This crate knows nothing of records, storage or HTTP
//! servers.

pub mod apple;
pub mod avatar;
mod client;
pub mod idtoken;
pub mod providers;
pub mod token;
mod users;

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use idtoken::Keys;
pub use providers::{Kind, Provider};

/// Errors of the OAuth2 exchange.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider name is unknown or its configuration unusable.
    #[error("invalid provider configuration: {0}")]
    Config(String),
    /// The code could not be exchanged for a token.
    #[error("token exchange failed: {0}")]
    Token(String),
    /// The user info could not be fetched or read.
    #[error("user info failed: {0}")]
    User(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long one call to a provider may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The provider's user, in PocketBase's `meta` shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    /// The provider's user id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Username.
    pub username: String,
    /// Email (empty when the provider gives none or an unverified one).
    pub email: String,
    /// Avatar URL.
    pub avatar_url: String,
    /// Access token.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
    /// When the access token expires (milliseconds since the epoch), when the provider said.
    pub expires_at: Option<i64>,
    /// The provider's raw user JSON.
    pub raw: Value,
}

/// What `auth-methods` lists for one provider.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Provider name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Random state.
    pub state: String,
    /// Authorization URL ending with `&redirect_uri=`.
    pub auth_url: String,
    /// PKCE verifier ("" without PKCE).
    pub code_verifier: String,
    /// PKCE challenge ("" without PKCE).
    pub code_challenge: String,
    /// "S256" or "".
    pub code_challenge_method: String,
}

/// Builds the authorization URL and fresh state/PKCE values for `provider`.
pub fn listing(provider: &Provider) -> Result<Listing> {
    let state = random_text(30);
    let mut url = url::Url::parse(&provider.auth_url).map_err(|e| Error::Config(e.to_string()))?;
    let (verifier, challenge, method) = if provider.pkce {
        let verifier = random_text(43);
        let challenge = s256_challenge(&verifier);
        (verifier, challenge, "S256".to_string())
    } else {
        Default::default()
    };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("client_id", &provider.client_id);
        if provider.pkce {
            query.append_pair("code_challenge", &challenge);
            query.append_pair("code_challenge_method", "S256");
        }
        if provider.kind == Kind::Apple {
            query.append_pair("response_mode", "form_post");
        }
        query.append_pair("response_type", "code");
        if !provider.scopes.is_empty() {
            query.append_pair("scope", &provider.scopes.join(" "));
        }
        query.append_pair("state", &state);
        if provider.pkce && matches!(provider.kind, Kind::Apple | Kind::Oidc) {
            // Binds the id token to this sign-in without server-side state.
            query.append_pair("nonce", &idtoken::nonce_for(&verifier));
        }
    }
    Ok(Listing {
        name: provider.name.clone(),
        display_name: provider.display_name.clone(),
        state,
        auth_url: format!("{url}&redirect_uri="),
        code_verifier: verifier,
        code_challenge: challenge,
        code_challenge_method: method,
    })
}

/// PKCE's S256 challenge of `verifier`.
pub fn s256_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Exchanges `code` (with the PKCE `verifier` and the `redirect_url` the client used) for a
/// token, then reads the user: from the user-info endpoint (plus the provider's email lookup
/// where it has one), or from the verified id token (Apple always; OIDC when no user-info URL
/// is configured).
pub async fn exchange(
    provider: &Provider,
    keys: &Keys,
    code: &str,
    verifier: &str,
    redirect_url: &str,
) -> Result<User> {
    let http = client::Http::new(provider.allow_insecure);
    let token = token::exchange(&http, provider, code, verifier, redirect_url).await?;
    users::fetch(&http, keys, provider, &token, verifier).await
}

fn random_text(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Config;

    fn provider(name: &str) -> Provider {
        Provider::resolve(
            &Config {
                name: name.into(),
                client_id: "cid".into(),
                ..Config::default()
            },
            false,
        )
        .unwrap()
    }

    #[test]
    fn listings_carry_pkce_and_end_with_redirect_uri() {
        let listing = listing(&provider("google")).unwrap();
        assert!(listing.auth_url.ends_with("&redirect_uri="));
        assert!(listing.auth_url.contains("client_id=cid"));
        assert!(listing.auth_url.contains("code_challenge_method=S256"));
        assert_eq!(listing.state.len(), 30);
        assert_eq!(listing.code_verifier.len(), 43);
        assert_eq!(
            listing.code_challenge,
            s256_challenge(&listing.code_verifier)
        );
    }

    #[test]
    fn listings_leave_out_what_the_provider_does_not_take() {
        let vk = listing(&provider("vk")).unwrap();
        assert!(!vk.auth_url.contains("code_challenge"));
        assert_eq!(vk.code_verifier, "");
        let lark = listing(&provider("lark")).unwrap();
        assert!(!lark.auth_url.contains("scope="));
        assert!(lark.auth_url.starts_with(
            "https://accounts.feishu.cn/open-apis/authen/v1/authorize?client_id=cid&code_challenge="
        ));
    }

    #[test]
    fn s256_is_unpadded_base64url_of_sha256() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gFWFOEjXk"),
            "bwWFMyPfdG9qreDhH2lmftFx_dFeLDalzcT1gb_j68g"
        );
    }
}
