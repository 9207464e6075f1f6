//! OAuth2 sign-in providers: Google, GitHub, GitLab, Microsoft, Discord, Facebook, Apple and
//! generic OIDC. Builds authorization URLs (with PKCE), exchanges codes for tokens with the
//! `oauth2` crate over a hyper + rustls (ring) client, and maps each provider's user info to
//! one [`User`] shape.
//!
//! Provider endpoints are fixed per kind; only OIDC takes its URLs from configuration, and
//! only `https://` ones unless the caller allows loopback `http://127.0.0.1` (tests).
//! This crate knows nothing of records, storage or HTTP servers.

pub mod apple;
pub mod avatar;
mod client;
pub mod idtoken;
pub mod providers;

use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde_json::Value;

pub use idtoken::Keys;
pub use providers::{Kind, Provider};

/// The token response fields beyond OAuth2's: OpenID Connect's `id_token`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenFields {}

/// An OAuth2 client whose token responses keep the `id_token`.
type OidcClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenFields, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

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
    /// Token expiry (RFC 3339, empty when unknown).
    pub expiry: String,
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
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        (
            verifier.secret().to_string(),
            challenge.as_str().to_string(),
            "S256".to_string(),
        )
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
        query.append_pair("response_type", "code");
        query.append_pair("scope", &provider.scopes.join(" "));
        query.append_pair("state", &state);
        if provider.kind == Kind::Apple {
            query.append_pair("response_mode", "form_post");
        }
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

/// Exchanges `code` (with the PKCE `verifier` and the `redirect_url` the client used) for a
/// token, then reads the user: from the user-info endpoint, or from the verified id token
/// (Apple always; OIDC when no user-info URL is configured).
pub async fn exchange(
    provider: &Provider,
    keys: &Keys,
    code: &str,
    verifier: &str,
    redirect_url: &str,
) -> Result<User> {
    let mut client = OidcClient::new(ClientId::new(provider.client_id.clone()))
        .set_client_secret(ClientSecret::new(provider.client_secret.clone()))
        .set_auth_uri(AuthUrl::new(provider.auth_url.clone()).map_err(config)?)
        .set_token_uri(TokenUrl::new(provider.token_url.clone()).map_err(config)?)
        .set_redirect_uri(RedirectUrl::new(redirect_url.to_string()).map_err(config)?);
    if provider.kind == Kind::Apple {
        client = client.set_auth_type(AuthType::RequestBody);
    }
    let mut request = client.exchange_code(AuthorizationCode::new(code.to_string()));
    if !verifier.is_empty() {
        request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()));
    }
    let http = client::Http::new(provider.allow_insecure);
    let token = tokio::time::timeout(TIMEOUT, request.request_async(&http))
        .await
        .map_err(|_| Error::Token("timed out".into()))?
        .map_err(|e| Error::Token(e.to_string()))?;
    let access = token.access_token().secret().to_string();
    let raw = if provider.kind == Kind::Apple || provider.user_info_url.is_empty() {
        let id_token = token.extra_fields().id_token.as_deref().unwrap_or("");
        let expect = idtoken::Expect {
            audience: provider.client_id.clone(),
            issuers: provider.issuers.clone(),
            nonce: (!verifier.is_empty()).then(|| idtoken::nonce_for(verifier)),
            require_exp: true,
        };
        let claims = idtoken::verify(&http, keys, id_token, &provider.jwks_url, &expect).await?;
        Value::Object(claims)
    } else {
        let request = http::Request::get(&provider.user_info_url)
            .header("Authorization", format!("Bearer {access}"))
            .header("Accept", "application/json")
            .header("User-Agent", "warren")
            .body(Vec::new())
            .map_err(|e| Error::User(e.to_string()))?;
        let response = tokio::time::timeout(TIMEOUT, http.send(request))
            .await
            .map_err(|_| Error::User("timed out".into()))?
            .map_err(|e| Error::User(e.to_string()))?;
        if !response.status().is_success() {
            return Err(Error::User(format!("status {}", response.status())));
        }
        serde_json::from_slice(response.body()).map_err(|e| Error::User(e.to_string()))?
    };
    let mut user = providers::map_user(provider.kind, &raw)?;
    user.access_token = access;
    user.refresh_token = token
        .refresh_token()
        .map(|t| t.secret().to_string())
        .unwrap_or_default();
    Ok(user)
}

fn config(e: impl std::fmt::Display) -> Error {
    Error::Config(e.to_string())
}

fn random_text(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
