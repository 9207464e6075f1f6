//! Provider kinds: fixed endpoints, scopes, PKCE defaults and user-info mapping.

use serde_json::Value;

use crate::{Error, Result, User};

/// A supported provider kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Google.
    Google,
    /// GitHub.
    Github,
    /// GitLab (gitlab.com).
    Gitlab,
    /// Microsoft (common tenant).
    Microsoft,
    /// Discord.
    Discord,
    /// Facebook.
    Facebook,
    /// Sign in with Apple (user from the id token).
    Apple,
    /// Any OpenID Connect provider, configured by URL.
    Oidc,
}

struct Spec {
    display: &'static str,
    auth: &'static str,
    token: &'static str,
    user: &'static str,
    scopes: &'static [&'static str],
    pkce: bool,
}

impl Kind {
    /// The kind for a PocketBase provider name (`oidc`, `oidc2`, `oidc3` are OIDC).
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "google" => Kind::Google,
            "github" => Kind::Github,
            "gitlab" => Kind::Gitlab,
            "microsoft" => Kind::Microsoft,
            "discord" => Kind::Discord,
            "facebook" => Kind::Facebook,
            "apple" => Kind::Apple,
            "oidc" | "oidc2" | "oidc3" => Kind::Oidc,
            _ => return None,
        })
    }

    fn spec(self) -> Spec {
        match self {
            Kind::Google => Spec {
                display: "Google",
                auth: "https://accounts.google.com/o/oauth2/v2/auth",
                token: "https://oauth2.googleapis.com/token",
                user: "https://www.googleapis.com/oauth2/v3/userinfo",
                scopes: &[
                    "https://www.googleapis.com/auth/userinfo.profile",
                    "https://www.googleapis.com/auth/userinfo.email",
                ],
                pkce: true,
            },
            Kind::Github => Spec {
                display: "GitHub",
                auth: "https://github.com/login/oauth/authorize",
                token: "https://github.com/login/oauth/access_token",
                user: "https://api.github.com/user",
                scopes: &["read:user", "user:email"],
                pkce: true,
            },
            Kind::Gitlab => Spec {
                display: "GitLab",
                auth: "https://gitlab.com/oauth/authorize",
                token: "https://gitlab.com/oauth/token",
                user: "https://gitlab.com/api/v4/user",
                scopes: &["read_user"],
                pkce: true,
            },
            Kind::Microsoft => Spec {
                display: "Microsoft",
                auth: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
                token: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
                user: "https://graph.microsoft.com/v1.0/me",
                scopes: &["User.Read"],
                pkce: true,
            },
            Kind::Discord => Spec {
                display: "Discord",
                auth: "https://discord.com/api/oauth2/authorize",
                token: "https://discord.com/api/oauth2/token",
                user: "https://discord.com/api/users/@me",
                scopes: &["identify", "email"],
                pkce: true,
            },
            Kind::Facebook => Spec {
                display: "Facebook",
                auth: "https://www.facebook.com/v17.0/dialog/oauth",
                token: "https://graph.facebook.com/v17.0/oauth/access_token",
                user: "https://graph.facebook.com/me?fields=name,email,picture.type(large)",
                scopes: &["email"],
                pkce: true,
            },
            Kind::Apple => Spec {
                display: "Apple",
                auth: "https://appleid.apple.com/auth/authorize",
                token: "https://appleid.apple.com/auth/token",
                user: "",
                scopes: &["name", "email"],
                pkce: true,
            },
            Kind::Oidc => Spec {
                display: "OIDC",
                auth: "",
                token: "",
                user: "",
                scopes: &["openid", "email", "profile"],
                pkce: true,
            },
        }
    }
}

/// A configured provider, ready to use.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The configured name (`google`, `oidc2`…).
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Display name.
    pub display_name: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Authorization endpoint.
    pub auth_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// User info endpoint.
    pub user_info_url: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Whether PKCE is used.
    pub pkce: bool,
    /// Whether loopback `http://` endpoints are acceptable (tests only).
    pub allow_insecure: bool,
    /// The JSON Web Key Set that signs id tokens ("" for OIDC: id tokens are trusted as the
    /// token endpoint's direct answer).
    pub jwks_url: String,
    /// Accepted id token issuers (any when empty).
    pub issuers: Vec<String>,
}

/// The configuration a collection stores for one provider.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Provider name.
    pub name: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// OIDC: authorization URL.
    pub auth_url: String,
    /// OIDC: token URL.
    pub token_url: String,
    /// OIDC: user info URL.
    pub user_info_url: String,
    /// Display name override.
    pub display_name: String,
    /// PKCE override.
    pub pkce: Option<bool>,
    /// OIDC: the key set signing id tokens (`extra.jwksURL`).
    pub jwks_url: String,
    /// OIDC: accepted id token issuers (`extra.issuers`).
    pub issuers: Vec<String>,
}

impl Provider {
    /// Resolves a stored configuration. Endpoints of named providers are fixed; OIDC URLs must
    /// be `https://`, or loopback `http://` when `allow_insecure`.
    pub fn resolve(config: &Config, allow_insecure: bool) -> Result<Provider> {
        let kind = Kind::from_name(&config.name)
            .ok_or_else(|| Error::Config(format!("unknown provider {}", config.name)))?;
        let spec = kind.spec();
        let (auth, token, user) = if kind == Kind::Oidc {
            for url in [&config.auth_url, &config.token_url] {
                check_url(url, allow_insecure)?;
            }
            for url in [&config.user_info_url, &config.jwks_url] {
                if !url.is_empty() {
                    check_url(url, allow_insecure)?;
                }
            }
            (
                config.auth_url.clone(),
                config.token_url.clone(),
                config.user_info_url.clone(),
            )
        } else {
            (spec.auth.into(), spec.token.into(), spec.user.into())
        };
        Ok(Provider {
            name: config.name.clone(),
            kind,
            display_name: if config.display_name.is_empty() {
                spec.display.into()
            } else {
                config.display_name.clone()
            },
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            auth_url: auth,
            token_url: token,
            user_info_url: user,
            scopes: spec.scopes.iter().map(|s| s.to_string()).collect(),
            pkce: config.pkce.unwrap_or(spec.pkce),
            allow_insecure: allow_insecure && kind == Kind::Oidc,
            jwks_url: match kind {
                Kind::Apple => crate::apple::KEYS_URL.into(),
                Kind::Oidc => config.jwks_url.clone(),
                _ => String::new(),
            },
            issuers: match kind {
                Kind::Apple => vec![crate::apple::ISSUER.into()],
                Kind::Oidc => config.issuers.clone(),
                _ => Vec::new(),
            },
        })
    }
}

fn check_url(raw: &str, allow_insecure: bool) -> Result<()> {
    let url = url::Url::parse(raw).map_err(|e| Error::Config(format!("{raw}: {e}")))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1") | Some("localhost"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure && loopback => Ok(()),
        _ => Err(Error::Config(format!("{raw}: https required"))),
    }
}

fn s(v: &Value, path: &str) -> String {
    let mut node = v;
    for key in path.split('.') {
        node = match node.get(key) {
            Some(n) => n,
            None => return String::new(),
        };
    }
    match node {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Whether a claim is true: `true`, `"true"`, `"1"` or a non-zero number (Apple sends
/// `email_verified` as a string).
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "t"),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// Maps a provider's user JSON to a [`User`].
pub(crate) fn map_user(kind: Kind, raw: &Value) -> Result<User> {
    let mut user = match kind {
        Kind::Google | Kind::Oidc => User {
            id: s(raw, "sub"),
            name: s(raw, "name"),
            username: s(raw, "preferred_username"),
            email: if truthy(raw.get("email_verified")) {
                s(raw, "email")
            } else {
                String::new()
            },
            avatar_url: s(raw, "picture"),
            ..User::default()
        },
        Kind::Github => User {
            id: s(raw, "id"),
            name: s(raw, "name"),
            username: s(raw, "login"),
            email: s(raw, "email"),
            avatar_url: s(raw, "avatar_url"),
            ..User::default()
        },
        Kind::Gitlab => User {
            id: s(raw, "id"),
            name: s(raw, "name"),
            username: s(raw, "username"),
            email: s(raw, "email"),
            avatar_url: s(raw, "avatar_url"),
            ..User::default()
        },
        Kind::Microsoft => User {
            id: s(raw, "id"),
            name: s(raw, "displayName"),
            email: s(raw, "mail"),
            ..User::default()
        },
        Kind::Discord => {
            let id = s(raw, "id");
            let avatar = s(raw, "avatar");
            User {
                avatar_url: if avatar.is_empty() {
                    String::new()
                } else {
                    format!("https://cdn.discordapp.com/avatars/{id}/{avatar}.png")
                },
                name: s(raw, "global_name"),
                username: s(raw, "username"),
                email: if raw.get("verified") == Some(&Value::Bool(true)) {
                    s(raw, "email")
                } else {
                    String::new()
                },
                id,
                ..User::default()
            }
        }
        Kind::Facebook => User {
            id: s(raw, "id"),
            name: s(raw, "name"),
            email: s(raw, "email"),
            avatar_url: s(raw, "picture.data.url"),
            ..User::default()
        },
        Kind::Apple => User {
            id: s(raw, "sub"),
            name: s(raw, "name"),
            email: if truthy(raw.get("email_verified")) {
                s(raw, "email")
            } else {
                String::new()
            },
            ..User::default()
        },
    };
    if user.id.is_empty() {
        return Err(Error::User("the provider returned no user id".into()));
    }
    user.raw = raw.clone();
    Ok(user)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn oidc_urls_must_be_https_unless_loopback_is_allowed() {
        let config = Config {
            name: "oidc".into(),
            auth_url: "http://127.0.0.1:9/auth".into(),
            token_url: "http://127.0.0.1:9/token".into(),
            user_info_url: "http://127.0.0.1:9/userinfo".into(),
            ..Config::default()
        };
        assert!(Provider::resolve(&config, false).is_err());
        assert!(Provider::resolve(&config, true).is_ok());
        let remote = Config {
            auth_url: "http://example.com/auth".into(),
            ..config
        };
        assert!(Provider::resolve(&remote, true).is_err());
    }

    #[test]
    fn named_providers_ignore_configured_urls() {
        let config = Config {
            name: "github".into(),
            auth_url: "https://evil.example/auth".into(),
            ..Config::default()
        };
        let provider = Provider::resolve(&config, true).unwrap();
        assert_eq!(
            provider.auth_url,
            "https://github.com/login/oauth/authorize"
        );
        assert!(!provider.allow_insecure);
    }

    #[test]
    fn users_map_per_provider() {
        let github = map_user(
            Kind::Github,
            &json!({"id": 42, "login": "octo", "name": "Octo Cat", "email": "o@x.co", "avatar_url": "https://a"}),
        )
        .unwrap();
        assert_eq!(
            (
                github.id.as_str(),
                github.username.as_str(),
                github.email.as_str()
            ),
            ("42", "octo", "o@x.co")
        );
        let oidc = map_user(
            Kind::Oidc,
            &json!({"sub": "s1", "email": "e@x.co", "email_verified": false}),
        )
        .unwrap();
        assert_eq!(oidc.email, "");
        let unstated = map_user(Kind::Oidc, &json!({"sub": "s1", "email": "e@x.co"})).unwrap();
        assert_eq!(
            unstated.email, "",
            "an email is taken only when stated verified"
        );
        let apple = map_user(
            Kind::Apple,
            &json!({"sub": "001.abc", "email": "a@privaterelay.appleid.com", "email_verified": "true"}),
        )
        .unwrap();
        assert_eq!(apple.email, "a@privaterelay.appleid.com");
        assert!(map_user(Kind::Google, &json!({})).is_err());
    }

    #[test]
    fn listings_carry_pkce_and_end_with_redirect_uri() {
        let provider = Provider::resolve(
            &Config {
                name: "google".into(),
                client_id: "cid".into(),
                ..Config::default()
            },
            false,
        )
        .unwrap();
        let listing = crate::listing(&provider).unwrap();
        assert!(listing.auth_url.ends_with("&redirect_uri="));
        assert!(listing.auth_url.contains("client_id=cid"));
        assert!(listing.auth_url.contains("code_challenge_method=S256"));
        assert_eq!(listing.state.len(), 30);
        assert_eq!(listing.code_verifier.len(), 43);
    }
}
