//! Reading the signed-in user from each provider: the user-info request (method, headers,
//! GraphQL bodies), the follow-up email lookups some providers need, and the mapping of each
//! provider's JSON to one [`User`] — with an email only where the provider vouches for it.

use serde_json::{Map, Value, json};

use crate::client::Http;
use crate::providers::{Kind, MICROSOFT_EMAIL_CLAIM, Provider};
use crate::token::Token;
use crate::{Error, Keys, Result, TIMEOUT, User, idtoken};

/// Notion API version sent with its user request.
const NOTION_VERSION: &str = "2022-06-28";
/// Linear's GraphQL query for the signed-in user.
const LINEAR_QUERY: &str = "query Me { viewer { id displayName name email avatarUrl active } }";
/// monday.com's GraphQL query for the signed-in user.
const MONDAY_QUERY: &str = "query { me { id enabled name email is_verified photo_small }}";
/// Where Gitee lists a user's emails when its user URL is not a `…/user` one.
const GITEE_EMAILS: &str = "https://gitee.com/api/v5/emails";
/// Clock skew tolerated on id token times.
const LEEWAY_SECONDS: f64 = 300.0;

/// Fetches and maps the user behind `token`.
pub(crate) async fn fetch(
    http: &Http,
    keys: &Keys,
    provider: &Provider,
    token: &Token,
    verifier: &str,
) -> Result<User> {
    let raw = if provider.kind == Kind::Apple || provider.user_info_url.is_empty() {
        Value::Object(id_token_claims(http, keys, provider, token, verifier).await?)
    } else {
        user_info(http, provider, token).await?
    };
    let mut raw = match raw {
        Value::Object(map) => map,
        _ => return Err(Error::User("the user info is not a JSON object".into())),
    };
    if provider.kind == Kind::Instagram
        && !raw.contains_key("permissions")
        && let Some(permissions) = token.field("permissions")
    {
        raw.insert("permissions".into(), permissions.clone());
    }
    let raw = Value::Object(raw);
    let mut user = map_user(provider.kind, &raw, token, &provider.extra)?;
    match provider.kind {
        Kind::Github | Kind::Gitea => {
            let url = format!("{}/emails", provider.user_info_url);
            user.email = match get_json(http, &url, &token.access_token, &[]).await? {
                Some(list) => flagged_email(&list, "primary", "verified"),
                None => String::new(),
            };
        }
        Kind::Bitbucket => {
            let url = format!("{}/emails", provider.user_info_url);
            user.email = match get_json(http, &url, &token.access_token, &[]).await {
                Ok(Some(list)) => flagged_email(&list["values"], "is_primary", "is_confirmed"),
                Ok(None) => String::new(),
                Err(e) => return Err(e),
            };
        }
        Kind::Gitee if !email_format(&user.email) => {
            let url = match provider.user_info_url.strip_suffix("/user") {
                Some(base) => format!("{base}/emails"),
                None => GITEE_EMAILS.to_string(),
            };
            // An unreadable list means no email, as for the other lookups that fail softly.
            user.email = match get_json(http, &url, &token.access_token, &[]).await {
                Ok(Some(list)) => gitee_email(&list),
                _ => String::new(),
            };
        }
        _ => {}
    }
    user.raw = raw;
    user.access_token = token.access_token.clone();
    user.refresh_token = token.refresh_token.clone();
    user.expires_at = token.expires_at;
    Ok(user)
}

async fn id_token_claims(
    http: &Http,
    keys: &Keys,
    provider: &Provider,
    token: &Token,
    verifier: &str,
) -> Result<Map<String, Value>> {
    let id_token = token
        .field("id_token")
        .and_then(Value::as_str)
        .unwrap_or("");
    let expect = idtoken::Expect {
        audience: provider.client_id.clone(),
        issuers: provider.issuers.clone(),
        nonce: (!verifier.is_empty()).then(|| idtoken::nonce_for(verifier)),
        require_exp: true,
    };
    idtoken::verify(http, keys, id_token, &provider.jwks_url, &expect).await
}

/// The provider's user-info answer.
async fn user_info(http: &Http, provider: &Provider, token: &Token) -> Result<Value> {
    let url = provider.user_info_url.as_str();
    let (method, body, headers): (&str, Vec<u8>, Vec<(&str, String)>) = match provider.kind {
        Kind::Linear | Kind::Monday => {
            let query = if provider.kind == Kind::Linear {
                LINEAR_QUERY
            } else {
                MONDAY_QUERY
            };
            let body = serde_json::to_vec(&json!({ "query": query }))
                .map_err(|e| Error::User(e.to_string()))?;
            (
                "POST",
                body,
                vec![("Content-Type", "application/json".to_string())],
            )
        }
        Kind::Notion => (
            "GET",
            Vec::new(),
            vec![("Notion-Version", NOTION_VERSION.to_string())],
        ),
        Kind::Trakt => (
            "GET",
            Vec::new(),
            vec![
                ("Content-Type", "application/json".to_string()),
                ("trakt-api-key", provider.client_id.clone()),
                ("trakt-api-version", "2".to_string()),
            ],
        ),
        Kind::Twitch => (
            "GET",
            Vec::new(),
            vec![("Client-Id", provider.client_id.clone())],
        ),
        _ => ("GET", Vec::new(), Vec::new()),
    };
    let response = send(http, method, url, &token.access_token, &headers, body).await?;
    if response.status().as_u16() >= 400 {
        return Err(Error::User(format!("{url} answered {}", response.status())));
    }
    serde_json::from_slice(response.body()).map_err(|e| Error::User(format!("{url}: {e}")))
}

async fn send(
    http: &Http,
    method: &str,
    url: &str,
    access_token: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<http::Response<Vec<u8>>> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", format!("Bearer {access_token}"))
        .header("Accept", "application/json")
        .header("User-Agent", "warren");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request.body(body).map_err(|e| Error::User(e.to_string()))?;
    tokio::time::timeout(TIMEOUT, http.send(request))
        .await
        .map_err(|_| Error::User("timed out".into()))?
        .map_err(|e| Error::User(e.to_string()))
}

/// A follow-up GET: `None` when the provider declines (401, 403 or 404 when the scope was not
/// granted), its JSON otherwise.
async fn get_json(
    http: &Http,
    url: &str,
    access_token: &str,
    headers: &[(&str, String)],
) -> Result<Option<Value>> {
    let response = send(http, "GET", url, access_token, headers, Vec::new()).await?;
    if response.status().as_u16() >= 400 {
        return Ok(None);
    }
    serde_json::from_slice(response.body())
        .map(Some)
        .map_err(|e| Error::User(format!("{url}: {e}")))
}

/// The first address of a list marked both primary and verified by the named flags.
fn flagged_email(list: &Value, primary: &str, verified: &str) -> String {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|e| flag(e.get(primary)) && flag(e.get(verified)))
        .map(|e| text(e, "email"))
        .unwrap_or_default()
}

/// Gitee's primary address: confirmed, with `primary` among its scopes, and well formed.
fn gitee_email(list: &Value) -> String {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|e| text(e, "state") == "confirmed")
        .filter(|e| {
            e.get("scope")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|v| v == "primary"))
        })
        .map(|e| text(e, "email"))
        .find(|e| email_format(e))
        .unwrap_or_default()
}

/// The text at a dotted `path` (array items by index); numbers as their decimal text.
fn text(v: &Value, path: &str) -> String {
    match at(v, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = v;
    for key in path.split('.') {
        node = match node {
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => node.get(key)?,
        };
    }
    Some(node)
}

/// A JSON `true`.
fn flag(value: Option<&Value>) -> bool {
    value == Some(&Value::Bool(true))
}

/// Whether a claim is true: `true`, `"true"`, `"1"`, `"t"` or a non-zero number (Apple sends
/// `email_verified` as a string).
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "t"),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// `local@domain` with the characters an address may hold.
fn email_format(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c));
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

/// Whether an RFC 3339 time is well formed and not Go's zero time.
fn rfc3339(value: &str) -> bool {
    let b = value.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|s| s.iter().all(|c| c.is_ascii_digit()))
    };
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape {
        return false;
    }
    let mut rest = &value[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    let zone = matches!(rest, "Z" | "z")
        || (rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':'
            && rest[1..3]
                .bytes()
                .chain(rest[4..6].bytes())
                .all(|c| c.is_ascii_digit()));
    zone && !value.starts_with("0001-01-01T00:00:00")
}

/// The claims of the id token the token endpoint sent directly (so its signature is not
/// checked), when its times hold.
fn direct_id_token_claims(token: &Token) -> Option<Map<String, Value>> {
    let id_token = token.field("id_token")?.as_str()?;
    let claims = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(id_token)
        .ok()?
        .claims;
    let now = jsonwebtoken::get_current_timestamp() as f64;
    let time = |key: &str| claims.get(key).and_then(Value::as_f64);
    if time("iat").is_some_and(|t| t > now + LEEWAY_SECONDS)
        || time("nbf").is_some_and(|t| t > now + LEEWAY_SECONDS)
        || time("exp").is_some_and(|t| t + LEEWAY_SECONDS < now)
    {
        return None;
    }
    Some(claims)
}

/// Microsoft's email: from the id token claim `extra.idTokenEmailClaim` names, else Graph's
/// `mail`.
fn microsoft_email(raw: &Value, token: &Token, extra: &Map<String, Value>) -> String {
    let claim = |key: &str| -> String {
        direct_id_token_claims(token)
            .and_then(|c| c.get(key).and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    };
    let xms_edov_email = || {
        let claims = direct_id_token_claims(token).unwrap_or_default();
        if truthy(claims.get("xms_edov")) {
            claims
                .get("email")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        } else {
            String::new()
        }
    };
    match extra.get(MICROSOFT_EMAIL_CLAIM).and_then(Value::as_str) {
        Some("any_verified") => {
            let primary = claim("verified_primary_email");
            if primary.is_empty() {
                xms_edov_email()
            } else {
                primary
            }
        }
        Some("verified_primary_email") => claim("verified_primary_email"),
        Some("email_and_xms_edov") => xms_edov_email(),
        Some("email") => claim("email"),
        _ => text(raw, "mail"),
    }
}

/// Fails unless `ok`: the provider's account is disabled or inactive.
fn active(ok: bool, provider: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::User(format!("the {provider} account is not active")))
    }
}

fn when(ok: bool, value: String) -> String {
    if ok { value } else { String::new() }
}

/// Maps a provider's user JSON to a [`User`] (without tokens or the follow-up emails).
pub(crate) fn map_user(
    kind: Kind,
    raw: &Value,
    token: &Token,
    extra: &Map<String, Value>,
) -> Result<User> {
    let user = match kind {
        Kind::Google | Kind::Oidc | Kind::Apple | Kind::Microsoft => {
            identity_user(kind, raw, token, extra)?
        }
        Kind::Github | Kind::Gitlab | Kind::Bitbucket | Kind::Gitee | Kind::Gitea => {
            code_host_user(kind, raw)?
        }
        Kind::Twitter
        | Kind::Linear
        | Kind::Notion
        | Kind::Monday
        | Kind::Lark
        | Kind::Trakt
        | Kind::Twitch
        | Kind::Patreon
        | Kind::Wakatime
        | Kind::Planningcenter => wrapped_user(kind, raw)?,
        _ => flat_user(kind, raw, token)?,
    };
    if user.id.is_empty() {
        return Err(Error::User("the provider returned no user id".into()));
    }
    Ok(user)
}

/// OpenID Connect claims (Google, OIDC, Apple) and Microsoft Graph.
fn identity_user(
    kind: Kind,
    raw: &Value,
    token: &Token,
    extra: &Map<String, Value>,
) -> Result<User> {
    let t = |path: &str| text(raw, path);
    Ok(match kind {
        Kind::Google => User {
            id: t("sub"),
            name: t("name"),
            email: when(truthy(raw.get("email_verified")), t("email")),
            avatar_url: t("picture"),
            ..User::default()
        },
        Kind::Oidc => User {
            id: t("sub"),
            name: t("name"),
            username: t("preferred_username"),
            email: when(truthy(raw.get("email_verified")), t("email")),
            avatar_url: t("picture"),
            ..User::default()
        },
        Kind::Apple => User {
            id: t("sub"),
            name: t("name"),
            email: when(truthy(raw.get("email_verified")), t("email")),
            ..User::default()
        },
        Kind::Microsoft => User {
            id: t("id"),
            name: t("displayName"),
            email: microsoft_email(raw, token, extra),
            ..User::default()
        },
        _ => return Err(Error::Config(format!("{kind:?} is not mapped here"))),
    })
}

/// The code hosts: GitHub, GitLab, Bitbucket, Gitee, Gitea.
fn code_host_user(kind: Kind, raw: &Value) -> Result<User> {
    let t = |path: &str| text(raw, path);
    Ok(match kind {
        // The email comes from the emails lookup.
        Kind::Github => User {
            id: t("id"),
            name: t("name"),
            username: t("login"),
            avatar_url: t("avatar_url"),
            ..User::default()
        },
        Kind::Gitlab => User {
            id: t("id"),
            name: t("name"),
            username: t("username"),
            email: when(rfc3339(&t("confirmed_at")), t("email")),
            avatar_url: t("avatar_url"),
            ..User::default()
        },
        Kind::Bitbucket => {
            active(t("account_status") == "active", "Bitbucket")?;
            User {
                id: t("uuid"),
                name: t("display_name"),
                username: t("username"),
                avatar_url: t("links.avatar.href"),
                ..User::default()
            }
        }
        // A well-formed email here is used; otherwise the emails lookup gives it.
        Kind::Gitee => User {
            id: t("id"),
            name: t("name"),
            username: t("login"),
            email: t("email"),
            avatar_url: t("avatar_url"),
            ..User::default()
        },
        Kind::Gitea => {
            active(flag(raw.get("active")), "Gitea")?;
            User {
                id: t("id"),
                name: t("full_name"),
                username: t("login"),
                avatar_url: t("avatar_url"),
                ..User::default()
            }
        }
        _ => return Err(Error::Config(format!("{kind:?} is not mapped here"))),
    })
}

/// Answers that wrap the user in `data`, `user` or `bot` (and GraphQL answers).
fn wrapped_user(kind: Kind, raw: &Value) -> Result<User> {
    let t = |path: &str| text(raw, path);
    Ok(match kind {
        Kind::Twitter => User {
            id: t("data.id"),
            name: t("data.name"),
            username: t("data.username"),
            email: t("data.confirmed_email"),
            avatar_url: t("data.profile_image_url"),
            ..User::default()
        },
        Kind::Linear => {
            active(flag(at(raw, "data.viewer.active")), "Linear")?;
            User {
                id: t("data.viewer.id"),
                name: t("data.viewer.name"),
                username: t("data.viewer.displayName"),
                email: t("data.viewer.email"),
                avatar_url: t("data.viewer.avatarUrl"),
                ..User::default()
            }
        }
        Kind::Notion => User {
            id: t("bot.owner.user.id"),
            name: t("bot.owner.user.name"),
            email: t("bot.owner.user.person.email"),
            avatar_url: t("bot.owner.user.avatar_url"),
            ..User::default()
        },
        Kind::Monday => {
            active(flag(at(raw, "data.me.enabled")), "monday.com")?;
            User {
                id: t("data.me.id"),
                name: t("data.me.name"),
                email: when(flag(at(raw, "data.me.is_verified")), t("data.me.email")),
                avatar_url: t("data.me.photo_small"),
                ..User::default()
            }
        }
        Kind::Lark => User {
            id: t("data.union_id"),
            name: t("data.name"),
            avatar_url: t("data.avatar_url"),
            ..User::default()
        },
        Kind::Trakt => User {
            id: t("user.ids.uuid"),
            name: t("user.name"),
            username: t("user.username"),
            avatar_url: t("user.images.avatar.full"),
            ..User::default()
        },
        Kind::Twitch => {
            if at(raw, "data.0").is_none() {
                return Err(Error::User("Twitch answered no user".into()));
            }
            User {
                id: t("data.0.id"),
                name: t("data.0.display_name"),
                username: t("data.0.login"),
                email: t("data.0.email"),
                avatar_url: t("data.0.profile_image_url"),
                ..User::default()
            }
        }
        Kind::Patreon => User {
            id: t("data.id"),
            name: t("data.attributes.full_name"),
            username: t("data.attributes.vanity"),
            email: when(
                flag(at(raw, "data.attributes.is_email_verified")),
                t("data.attributes.email"),
            ),
            avatar_url: t("data.attributes.image_url"),
            ..User::default()
        },
        Kind::Wakatime => User {
            id: t("data.id"),
            name: t("data.display_name"),
            username: t("data.username"),
            email: when(flag(at(raw, "data.is_email_confirmed")), t("data.email")),
            avatar_url: when(flag(at(raw, "data.photo_public")), t("data.photo")),
            ..User::default()
        },
        Kind::Planningcenter => {
            active(t("data.attributes.status") == "active", "Planning Center")?;
            User {
                id: t("data.id"),
                name: t("data.attributes.name"),
                avatar_url: t("data.attributes.avatar"),
                ..User::default()
            }
        }
        _ => return Err(Error::Config(format!("{kind:?} is not mapped here"))),
    })
}

/// Answers with the user at the top (VK: in `response`, its email in the token answer).
fn flat_user(kind: Kind, raw: &Value, token: &Token) -> Result<User> {
    let t = |path: &str| text(raw, path);
    Ok(match kind {
        Kind::Yandex => User {
            id: t("id"),
            name: t("real_name"),
            username: t("login"),
            email: t("default_email"),
            avatar_url: when(
                !flag(raw.get("is_avatar_empty")),
                format!(
                    "https://avatars.yandex.net/get-yapic/{}/islands-200",
                    t("default_avatar_id")
                ),
            ),
            ..User::default()
        },
        Kind::Facebook => User {
            id: t("id"),
            name: t("name"),
            email: t("email"),
            avatar_url: t("picture.data.url"),
            ..User::default()
        },
        Kind::Instagram => User {
            id: t("user_id"),
            name: t("name"),
            username: t("username"),
            avatar_url: t("profile_picture_url"),
            ..User::default()
        },
        Kind::Discord => {
            let id = t("id");
            let avatar = t("avatar");
            let username = t("username");
            let mut name = t("global_name");
            if name.is_empty() {
                name = username.clone();
                let tag = t("discriminator");
                if !tag.is_empty() && tag != "0" {
                    name = format!("{name}#{tag}");
                }
            }
            User {
                avatar_url: when(
                    !avatar.is_empty(),
                    format!("https://cdn.discordapp.com/avatars/{id}/{avatar}.png"),
                ),
                name,
                username,
                email: when(flag(raw.get("verified")), t("email")),
                id,
                ..User::default()
            }
        }
        Kind::Kakao => {
            let account = &raw["kakao_account"];
            User {
                id: t("id"),
                username: t("properties.nickname"),
                avatar_url: t("properties.profile_image"),
                email: when(
                    flag(account.get("is_email_valid")) && flag(account.get("is_email_verified")),
                    text(account, "email"),
                ),
                ..User::default()
            }
        }
        Kind::Vk => {
            if at(raw, "response.0").is_none() {
                return Err(Error::User("VK answered no user".into()));
            }
            User {
                id: t("response.0.id"),
                name: format!(
                    "{} {}",
                    t("response.0.first_name"),
                    t("response.0.last_name")
                )
                .trim()
                .to_string(),
                username: t("response.0.screen_name"),
                avatar_url: t("response.0.photo_max"),
                email: match token.field("email") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                },
                ..User::default()
            }
        }
        Kind::Box => {
            active(t("status") == "active", "Box")?;
            User {
                id: t("id"),
                name: t("name"),
                // Box only authorizes accounts with a verified login email.
                email: t("login"),
                avatar_url: t("avatar_url"),
                ..User::default()
            }
        }
        Kind::Spotify => User {
            id: t("id"),
            name: t("display_name"),
            avatar_url: t("images.0.url"),
            ..User::default()
        },
        Kind::Strava => {
            let id = t("id");
            User {
                id: when(id != "0", id),
                // Joined as given, even when a part is missing.
                name: format!("{} {}", t("firstname"), t("lastname")),
                username: t("username"),
                avatar_url: t("profile"),
                ..User::default()
            }
        }
        Kind::Livechat => User {
            id: t("account_id"),
            name: t("name"),
            email: when(flag(raw.get("email_verified")), t("email")),
            avatar_url: t("avatar_url"),
            ..User::default()
        },
        Kind::Mailcow => {
            active(
                raw.get("active").and_then(Value::as_i64) == Some(1),
                "mailcow",
            )?;
            let username = t("username");
            User {
                id: t("id"),
                name: t("full_name"),
                username: match username.split_once('@') {
                    Some((local, _)) => local.to_string(),
                    None => username,
                },
                email: t("email"),
                ..User::default()
            }
        }
        _ => return Err(Error::Config(format!("{kind:?} is not mapped here"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kind: Kind, raw: Value) -> Result<User> {
        map_user(kind, &raw, &Token::default(), &Map::new())
    }

    #[test]
    fn emails_are_taken_only_where_the_provider_vouches_for_them() {
        let oidc = map(
            Kind::Oidc,
            json!({"sub": "s1", "email": "e@x.co", "email_verified": "true"}),
        );
        assert_eq!(oidc.unwrap().email, "e@x.co");
        let unstated = map(Kind::Oidc, json!({"sub": "s1", "email": "e@x.co"})).unwrap();
        assert_eq!(unstated.email, "");
        let gitlab = |confirmed: &str| {
            map(
                Kind::Gitlab,
                json!({"id": 7, "email": "g@x.co", "confirmed_at": confirmed}),
            )
            .unwrap()
            .email
        };
        assert_eq!(gitlab("2024-05-01T10:00:00.123+02:00"), "g@x.co");
        assert_eq!(gitlab("2024-05-01 10:00:00"), "");
        assert_eq!(gitlab(""), "");
        let kakao = map(
            Kind::Kakao,
            json!({"id": 5, "kakao_account": {"email": "k@x.co", "is_email_valid": true, "is_email_verified": false}}),
        )
        .unwrap();
        assert_eq!(kakao.email, "");
        let wakatime = map(
            Kind::Wakatime,
            json!({"data": {"id": "w1", "email": "w@x.co", "is_email_confirmed": true, "photo": "https://p", "photo_public": false}}),
        )
        .unwrap();
        assert_eq!(
            (wakatime.email.as_str(), wakatime.avatar_url.as_str()),
            ("w@x.co", "")
        );
    }

    #[test]
    fn inactive_accounts_and_missing_ids_are_refused() {
        assert!(map(Kind::Gitea, json!({"id": 1, "active": false})).is_err());
        assert!(
            map(
                Kind::Bitbucket,
                json!({"uuid": "{u}", "account_status": "closed"})
            )
            .is_err()
        );
        assert!(map(Kind::Box, json!({"id": "1", "status": "inactive"})).is_err());
        assert!(map(Kind::Mailcow, json!({"id": "m", "active": "1"})).is_err());
        assert!(
            map(
                Kind::Linear,
                json!({"data": {"viewer": {"id": "l", "active": false}}})
            )
            .is_err()
        );
        assert!(
            map(
                Kind::Monday,
                json!({"data": {"me": {"id": "1", "enabled": false}}})
            )
            .is_err()
        );
        assert!(
            map(
                Kind::Planningcenter,
                json!({"data": {"id": "1", "attributes": {"status": "pending"}}})
            )
            .is_err()
        );
        assert!(map(Kind::Twitch, json!({"data": []})).is_err());
        assert!(map(Kind::Vk, json!({"response": []})).is_err());
        assert!(map(Kind::Strava, json!({"id": 0, "firstname": "A"})).is_err());
        assert!(map(Kind::Google, json!({})).is_err());
    }

    #[test]
    fn names_and_pictures_follow_each_providers_rules() {
        let discord = map(
            Kind::Discord,
            json!({"id": "80", "username": "nelly", "discriminator": "1337", "avatar": "a1", "global_name": null}),
        )
        .unwrap();
        assert_eq!(discord.name, "nelly#1337");
        assert_eq!(
            discord.avatar_url,
            "https://cdn.discordapp.com/avatars/80/a1.png"
        );
        let strava = map(Kind::Strava, json!({"id": 9, "firstname": "Ann"})).unwrap();
        assert_eq!(strava.name, "Ann ");
        let vk = map(
            Kind::Vk,
            json!({"response": [{"id": 3, "first_name": "Ivan", "last_name": ""}]}),
        )
        .unwrap();
        assert_eq!(vk.name, "Ivan");
        let yandex = map(
            Kind::Yandex,
            json!({"id": "y", "is_avatar_empty": true, "default_avatar_id": "0/0-0"}),
        )
        .unwrap();
        assert_eq!(yandex.avatar_url, "");
        let mailcow = map(
            Kind::Mailcow,
            json!({"id": "m", "active": 1, "username": "box@mail.example"}),
        )
        .unwrap();
        assert_eq!(mailcow.username, "box");
    }

    #[test]
    fn vk_takes_the_email_from_the_token_answer() {
        let token = Token {
            fields: json!({"access_token": "a", "email": "v@x.co"})
                .as_object()
                .unwrap()
                .clone(),
            ..Token::default()
        };
        let vk = map_user(
            Kind::Vk,
            &json!({"response": [{"id": 3}]}),
            &token,
            &Map::new(),
        )
        .unwrap();
        assert_eq!(vk.email, "v@x.co");
    }

    #[test]
    fn microsoft_reads_the_configured_id_token_claim() {
        let now = jsonwebtoken::get_current_timestamp();
        let encode = |claims: Value| {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(b"unused"),
            )
            .unwrap()
        };
        let token = |claims: Value| Token {
            fields: json!({"access_token": "a", "id_token": encode(claims)})
                .as_object()
                .unwrap()
                .clone(),
            ..Token::default()
        };
        let raw = json!({"id": "ms1", "displayName": "M", "mail": "graph@x.co"});
        let extra = |claim: &str| {
            json!({ MICROSOFT_EMAIL_CLAIM: claim })
                .as_object()
                .unwrap()
                .clone()
        };
        let email = |t: &Token, claim: &str| {
            map_user(Kind::Microsoft, &raw, t, &extra(claim))
                .unwrap()
                .email
        };
        let edov = token(json!({"iat": now, "email": "e@x.co", "xms_edov": true}));
        assert_eq!(email(&edov, "any_verified"), "e@x.co");
        assert_eq!(email(&edov, "verified_primary_email"), "");
        assert_eq!(email(&edov, "email"), "e@x.co");
        let primary =
            token(json!({"iat": now, "verified_primary_email": "p@x.co", "email": "e@x.co"}));
        assert_eq!(email(&primary, "any_verified"), "p@x.co");
        assert_eq!(email(&primary, "email_and_xms_edov"), "");
        let future = token(json!({"iat": now + 3600, "email": "e@x.co"}));
        assert_eq!(email(&future, "email"), "");
        assert_eq!(
            map_user(Kind::Microsoft, &raw, &Token::default(), &Map::new())
                .unwrap()
                .email,
            "graph@x.co"
        );
    }

    #[test]
    fn gitee_lists_give_the_confirmed_primary_address() {
        let list = json!([
            {"email": "old@x.co", "state": "confirmed", "scope": ["committed"]},
            {"email": "bad", "state": "confirmed", "scope": ["primary"]},
            {"email": "new@x.co", "state": "unconfirmed", "scope": ["primary"]},
            {"email": "me@x.co", "state": "confirmed", "scope": ["committed", "primary"]},
        ]);
        assert_eq!(gitee_email(&list), "me@x.co");
        assert!(email_format("a.b+c@d-e.example"));
        assert!(!email_format("a@b..c"));
        assert!(!email_format("no-at"));
    }
}
