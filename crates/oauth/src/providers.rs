//! Provider kinds: PocketBase's names, display names, list order, default endpoints, scopes and
//! PKCE defaults, and the resolution of a collection's stored provider configuration.

use serde_json::{Map, Value};

use crate::{Error, Result};

/// A supported provider kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sign in with Apple (user from the id token).
    Apple,
    /// Google.
    Google,
    /// Microsoft (common tenant).
    Microsoft,
    /// Yandex.
    Yandex,
    /// Facebook.
    Facebook,
    /// Instagram (business login; PocketBase's name `instagram2`).
    Instagram,
    /// GitHub.
    Github,
    /// GitLab (gitlab.com).
    Gitlab,
    /// Bitbucket.
    Bitbucket,
    /// Gitee.
    Gitee,
    /// Gitea or Forgejo.
    Gitea,
    /// Discord.
    Discord,
    /// X (Twitter), API v2.
    Twitter,
    /// Kakao.
    Kakao,
    /// VK.
    Vk,
    /// Linear (GraphQL).
    Linear,
    /// Notion.
    Notion,
    /// monday.com (GraphQL).
    Monday,
    /// Lark (Feishu).
    Lark,
    /// Box.
    Box,
    /// Spotify.
    Spotify,
    /// Trakt.
    Trakt,
    /// Twitch.
    Twitch,
    /// Patreon.
    Patreon,
    /// Strava.
    Strava,
    /// WakaTime.
    Wakatime,
    /// LiveChat.
    Livechat,
    /// mailcow (self-hosted: endpoints come from configuration).
    Mailcow,
    /// Planning Center.
    Planningcenter,
    /// Any OpenID Connect provider, configured by URL.
    Oidc,
}

/// Every provider name PocketBase 0.40 knows, in its list order (`order`, then name).
pub const NAMES: &[&str] = &[
    "apple",
    "google",
    "microsoft",
    "yandex",
    "facebook",
    "instagram2",
    "github",
    "gitlab",
    "bitbucket",
    "gitee",
    "gitea",
    "discord",
    "twitter",
    "kakao",
    "vk",
    "linear",
    "notion",
    "monday",
    "lark",
    "box",
    "spotify",
    "trakt",
    "twitch",
    "patreon",
    "strava",
    "wakatime",
    "livechat",
    "mailcow",
    "planningcenter",
    "oidc",
    "oidc2",
    "oidc3",
];

/// A kind's defaults.
pub struct Spec {
    /// The kind these are the defaults of.
    pub kind: Kind,
    /// Display name.
    pub display: &'static str,
    /// Authorization endpoint ("" when it must be configured).
    pub auth: &'static str,
    /// Token endpoint.
    pub token: &'static str,
    /// User info endpoint.
    pub user: &'static str,
    /// Requested scopes (none sends no `scope` parameter).
    pub scopes: &'static [&'static str],
    /// Whether PKCE is used unless configured otherwise.
    pub pkce: bool,
}

const fn spec(
    kind: Kind,
    display: &'static str,
    auth: &'static str,
    token: &'static str,
    user: &'static str,
    scopes: &'static [&'static str],
    pkce: bool,
) -> Spec {
    Spec {
        kind,
        display,
        auth,
        token,
        user,
        scopes,
        pkce,
    }
}

impl Kind {
    /// The kind for a PocketBase provider name (`oidc`, `oidc2`, `oidc3` are OIDC).
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "apple" => Kind::Apple,
            "google" => Kind::Google,
            "microsoft" => Kind::Microsoft,
            "yandex" => Kind::Yandex,
            "facebook" => Kind::Facebook,
            "instagram2" => Kind::Instagram,
            "github" => Kind::Github,
            "gitlab" => Kind::Gitlab,
            "bitbucket" => Kind::Bitbucket,
            "gitee" => Kind::Gitee,
            "gitea" => Kind::Gitea,
            "discord" => Kind::Discord,
            "twitter" => Kind::Twitter,
            "kakao" => Kind::Kakao,
            "vk" => Kind::Vk,
            "linear" => Kind::Linear,
            "notion" => Kind::Notion,
            "monday" => Kind::Monday,
            "lark" => Kind::Lark,
            "box" => Kind::Box,
            "spotify" => Kind::Spotify,
            "trakt" => Kind::Trakt,
            "twitch" => Kind::Twitch,
            "patreon" => Kind::Patreon,
            "strava" => Kind::Strava,
            "wakatime" => Kind::Wakatime,
            "livechat" => Kind::Livechat,
            "mailcow" => Kind::Mailcow,
            "planningcenter" => Kind::Planningcenter,
            "oidc" | "oidc2" | "oidc3" => Kind::Oidc,
            _ => return None,
        })
    }

    /// The kind's defaults (endpoints as the provider documents them).
    pub fn spec(self) -> &'static Spec {
        // SPECS holds one entry per variant in declaration order (a test checks it), so the
        // discriminant is always in bounds.
        &SPECS[self as usize]
    }
}

/// Every kind's defaults, in the order of [`Kind`]'s variants.
static SPECS: [Spec; 30] = [
    spec(
        Kind::Apple,
        "Apple",
        "https://appleid.apple.com/auth/authorize",
        "https://appleid.apple.com/auth/token",
        "",
        &["name", "email"],
        true,
    ),
    spec(
        Kind::Google,
        "Google",
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/oauth2/v3/userinfo",
        &[
            "https://www.googleapis.com/auth/userinfo.profile",
            "https://www.googleapis.com/auth/userinfo.email",
        ],
        true,
    ),
    spec(
        Kind::Microsoft,
        "Microsoft",
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "https://graph.microsoft.com/v1.0/me",
        &["User.Read"],
        true,
    ),
    spec(
        Kind::Yandex,
        "Yandex",
        "https://oauth.yandex.com/authorize",
        "https://oauth.yandex.com/token",
        "https://login.yandex.ru/info",
        &["login:email", "login:avatar", "login:info"],
        true,
    ),
    spec(
        Kind::Facebook,
        "Facebook",
        "https://www.facebook.com/v3.2/dialog/oauth",
        "https://graph.facebook.com/v3.2/oauth/access_token",
        "https://graph.facebook.com/me?fields=name,email,picture.type(large)",
        &["email"],
        true,
    ),
    spec(
        Kind::Instagram,
        "Instagram",
        "https://www.instagram.com/oauth/authorize",
        "https://api.instagram.com/oauth/access_token",
        "https://graph.instagram.com/me?fields=id,username,account_type,user_id,name,profile_picture_url,followers_count,follows_count,media_count",
        &["instagram_business_basic"],
        true,
    ),
    spec(
        Kind::Github,
        "GitHub",
        "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token",
        "https://api.github.com/user",
        &["read:user", "user:email"],
        true,
    ),
    spec(
        Kind::Gitlab,
        "GitLab",
        "https://gitlab.com/oauth/authorize",
        "https://gitlab.com/oauth/token",
        "https://gitlab.com/api/v4/user",
        &["read_user"],
        true,
    ),
    spec(
        Kind::Bitbucket,
        "Bitbucket",
        "https://bitbucket.org/site/oauth2/authorize",
        "https://bitbucket.org/site/oauth2/access_token",
        "https://api.bitbucket.org/2.0/user",
        &["account"],
        false,
    ),
    spec(
        Kind::Gitee,
        "Gitee",
        "https://gitee.com/oauth/authorize",
        "https://gitee.com/oauth/token",
        "https://gitee.com/api/v5/user",
        &["user_info", "emails"],
        true,
    ),
    spec(
        Kind::Gitea,
        "Gitea/Forgejo",
        "https://gitea.com/login/oauth/authorize",
        "https://gitea.com/login/oauth/access_token",
        "https://gitea.com/api/v1/user",
        &["read:user", "user:email"],
        true,
    ),
    spec(
        Kind::Discord,
        "Discord",
        "https://discord.com/api/oauth2/authorize",
        "https://discord.com/api/oauth2/token",
        "https://discord.com/api/users/@me",
        &["identify", "email"],
        true,
    ),
    spec(
        Kind::Twitter,
        "X/Twitter",
        "https://x.com/i/oauth2/authorize",
        "https://api.x.com/2/oauth2/token",
        "https://api.x.com/2/users/me?user.fields=id,name,username,profile_image_url,confirmed_email",
        // `tweet.read` is unused, but X's users/me answers 403 without it.
        &["users.read", "users.email", "tweet.read"],
        true,
    ),
    spec(
        Kind::Kakao,
        "Kakao",
        "https://kauth.kakao.com/oauth/authorize",
        "https://kauth.kakao.com/oauth/token",
        "https://kapi.kakao.com/v2/user/me",
        &["account_email", "profile_nickname", "profile_image"],
        true,
    ),
    spec(
        Kind::Vk,
        "ВКонтакте",
        "https://oauth.vk.com/authorize",
        "https://oauth.vk.com/access_token",
        "https://api.vk.com/method/users.get?fields=photo_max,screen_name&v=5.131",
        &["email"],
        // VK refuses requests that carry PKCE parameters.
        false,
    ),
    spec(
        Kind::Linear,
        "Linear",
        "https://linear.app/oauth/authorize",
        "https://api.linear.app/oauth/token",
        "https://api.linear.app/graphql",
        &["read"],
        // Linear refuses requests that carry PKCE parameters.
        false,
    ),
    spec(
        Kind::Notion,
        "Notion",
        "https://api.notion.com/v1/oauth/authorize",
        "https://api.notion.com/v1/oauth/token",
        "https://api.notion.com/v1/users/me",
        &[],
        true,
    ),
    spec(
        Kind::Monday,
        "monday.com",
        "https://auth.monday.com/oauth2/authorize",
        "https://auth.monday.com/oauth2/token",
        "https://api.monday.com/v2",
        &["me:read"],
        true,
    ),
    spec(
        Kind::Lark,
        "Lark",
        "https://accounts.feishu.cn/open-apis/authen/v1/authorize",
        "https://open.feishu.cn/open-apis/authen/v2/oauth/token",
        "https://open.feishu.cn/open-apis/authen/v1/user_info",
        &[],
        true,
    ),
    spec(
        Kind::Box,
        "Box",
        "https://account.box.com/api/oauth2/authorize",
        "https://api.box.com/oauth2/token",
        "https://api.box.com/2.0/users/me",
        &["root_readonly"],
        true,
    ),
    spec(
        Kind::Spotify,
        "Spotify",
        "https://accounts.spotify.com/authorize",
        "https://accounts.spotify.com/api/token",
        "https://api.spotify.com/v1/me",
        &["user-read-private"],
        true,
    ),
    spec(
        Kind::Trakt,
        "Trakt",
        "https://trakt.tv/oauth/authorize",
        "https://api.trakt.tv/oauth/token",
        "https://api.trakt.tv/users/settings",
        &[],
        true,
    ),
    spec(
        Kind::Twitch,
        "Twitch",
        "https://id.twitch.tv/oauth2/authorize",
        "https://id.twitch.tv/oauth2/token",
        "https://api.twitch.tv/helix/users",
        &["user:read:email"],
        true,
    ),
    spec(
        Kind::Patreon,
        "Patreon",
        "https://www.patreon.com/oauth2/authorize",
        "https://www.patreon.com/api/oauth2/token",
        "https://www.patreon.com/api/oauth2/v2/identity?fields%5Buser%5D=full_name,email,vanity,image_url,is_email_verified",
        &["identity", "identity[email]"],
        true,
    ),
    spec(
        Kind::Strava,
        "Strava",
        "https://www.strava.com/oauth/authorize",
        "https://www.strava.com/api/v3/oauth/token",
        "https://www.strava.com/api/v3/athlete",
        &["profile:read_all"],
        true,
    ),
    spec(
        Kind::Wakatime,
        "WakaTime",
        "https://wakatime.com/oauth/authorize",
        "https://wakatime.com/oauth/token",
        "https://wakatime.com/api/v1/users/current",
        &["email"],
        true,
    ),
    spec(
        Kind::Livechat,
        "LiveChat",
        "https://accounts.livechat.com/",
        "https://accounts.livechat.com/token",
        "https://accounts.livechat.com/v2/accounts/me",
        // LiveChat's scopes are chosen in its developer console.
        &[],
        true,
    ),
    spec(Kind::Mailcow, "mailcow", "", "", "", &["profile"], true),
    spec(
        Kind::Planningcenter,
        "Planning Center",
        "https://api.planningcenteronline.com/oauth/authorize",
        "https://api.planningcenteronline.com/oauth/token",
        "https://api.planningcenteronline.com/people/v2/me",
        &["people"],
        true,
    ),
    spec(
        Kind::Oidc,
        "OIDC",
        "",
        "",
        "",
        &["openid", "email", "profile"],
        true,
    ),
];

/// Microsoft's `extra` key naming which id token claim gives a verified email.
pub const MICROSOFT_EMAIL_CLAIM: &str = "idTokenEmailClaim";

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
    /// User info endpoint ("" for Apple, and for OIDC that reads the id token).
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
    /// The configuration's provider-specific settings.
    pub extra: Map<String, Value>,
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
    /// Authorization URL override.
    pub auth_url: String,
    /// Token URL override.
    pub token_url: String,
    /// User info URL override.
    pub user_info_url: String,
    /// Display name override.
    pub display_name: String,
    /// PKCE override.
    pub pkce: Option<bool>,
    /// Provider-specific settings: OIDC's `jwksURL` and `issuers`, Microsoft's
    /// `idTokenEmailClaim`.
    pub extra: Map<String, Value>,
}

impl Provider {
    /// Resolves a stored configuration: each configured URL replaces the kind's default, as in
    /// PocketBase. Every endpoint must be `https://`, or loopback `http://` when
    /// `allow_insecure`; OIDC and mailcow have no defaults for the authorization and token
    /// endpoints, so theirs must be configured.
    pub fn resolve(config: &Config, allow_insecure: bool) -> Result<Provider> {
        let kind = Kind::from_name(&config.name)
            .ok_or_else(|| Error::Config(format!("unknown provider {}", config.name)))?;
        let spec = kind.spec();
        let pick = |configured: &str, default: &str| {
            if configured.is_empty() {
                default.to_string()
            } else {
                configured.to_string()
            }
        };
        let auth = pick(&config.auth_url, spec.auth);
        let token = pick(&config.token_url, spec.token);
        let user = pick(&config.user_info_url, spec.user);
        let text = |key: &str| {
            config
                .extra
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let jwks_url = match kind {
            Kind::Apple => crate::apple::KEYS_URL.into(),
            Kind::Oidc => text("jwksURL"),
            _ => String::new(),
        };
        for url in [&auth, &token] {
            check_url(url, allow_insecure)?;
        }
        for url in [&user, &jwks_url] {
            if !url.is_empty() {
                check_url(url, allow_insecure)?;
            }
        }
        if kind == Kind::Mailcow && user.is_empty() {
            return Err(Error::Config("mailcow needs a user info URL".into()));
        }
        let mut scopes: Vec<String> = spec.scopes.iter().map(|s| s.to_string()).collect();
        if kind == Kind::Microsoft
            && !text(MICROSOFT_EMAIL_CLAIM).is_empty()
            && !scopes.iter().any(|s| s == "openid")
        {
            scopes.push("openid".into());
        }
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
            scopes,
            pkce: config.pkce.unwrap_or(spec.pkce),
            allow_insecure,
            jwks_url,
            issuers: match kind {
                Kind::Apple => vec![crate::apple::ISSUER.into()],
                Kind::Oidc => match config.extra.get("issuers") {
                    Some(Value::Array(list)) => list
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    Some(Value::String(one)) if !one.is_empty() => vec![one.clone()],
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            },
            extra: config.extra.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_kind_and_endpoints() {
        assert_eq!(NAMES.len(), 32);
        for name in NAMES {
            let kind = Kind::from_name(name).unwrap_or_else(|| panic!("{name} has no kind"));
            let spec = kind.spec();
            assert_eq!(spec.kind, kind, "SPECS is out of order at {name}");
            assert!(!spec.display.is_empty());
            if !matches!(kind, Kind::Oidc | Kind::Mailcow) {
                assert!(spec.auth.starts_with("https://"), "{name}");
                assert!(spec.token.starts_with("https://"), "{name}");
            }
        }
        assert!(Kind::from_name("instagram").is_none());
        assert!(Kind::from_name("oidc4").is_none());
    }

    #[test]
    fn urls_must_be_https_unless_loopback_is_allowed() {
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
            ..config.clone()
        };
        assert!(Provider::resolve(&remote, true).is_err());
        let github = Config {
            name: "github".into(),
            token_url: "http://example.com/token".into(),
            ..Config::default()
        };
        assert!(Provider::resolve(&github, true).is_err());
        let unset = Config {
            name: "mailcow".into(),
            ..Config::default()
        };
        assert!(Provider::resolve(&unset, false).is_err());
    }

    #[test]
    fn configured_urls_replace_the_defaults() {
        let config = Config {
            name: "github".into(),
            auth_url: "https://git.example/login/oauth/authorize".into(),
            user_info_url: "https://git.example/api/user".into(),
            ..Config::default()
        };
        let provider = Provider::resolve(&config, false).unwrap();
        assert_eq!(
            provider.auth_url,
            "https://git.example/login/oauth/authorize"
        );
        assert_eq!(
            provider.token_url,
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(provider.user_info_url, "https://git.example/api/user");
        assert_eq!(provider.display_name, "GitHub");
    }

    #[test]
    fn microsofts_id_token_email_claim_asks_for_openid() {
        let mut config = Config {
            name: "microsoft".into(),
            ..Config::default()
        };
        let plain = Provider::resolve(&config, false).unwrap();
        assert_eq!(plain.scopes, ["User.Read"]);
        config
            .extra
            .insert(MICROSOFT_EMAIL_CLAIM.into(), "any_verified".into());
        let with_claim = Provider::resolve(&config, false).unwrap();
        assert_eq!(with_claim.scopes, ["User.Read", "openid"]);
    }
}
