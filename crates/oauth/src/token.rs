//! The authorization code exchange (RFC 6749 §4.1.3): client credentials in a Basic header,
//! falling back to the request body when the provider refuses the header (Apple: body only);
//! token responses read as JSON or form-encoded, with every extra field kept (VK's `email`,
//! Instagram's `permissions`, OpenID Connect's `id_token`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Map, Value};

use crate::client::Http;
use crate::providers::{Kind, Provider};
use crate::{Error, Result, TIMEOUT};

/// What the token endpoint answered.
#[derive(Debug, Clone, Default)]
pub struct Token {
    /// The access token.
    pub access_token: String,
    /// The refresh token ("" when none).
    pub refresh_token: String,
    /// When the access token expires (milliseconds since the epoch), when stated.
    pub expires_at: Option<i64>,
    /// Every field of the answer, as sent.
    pub fields: Map<String, Value>,
}

impl Token {
    /// A field of the answer (`id_token`, `email`…).
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }
}

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    Header,
    Body,
}

/// Exchanges `code` for a token at the provider's token endpoint.
pub(crate) async fn exchange(
    http: &Http,
    provider: &Provider,
    code: &str,
    verifier: &str,
    redirect_url: &str,
) -> Result<Token> {
    if provider.kind == Kind::Apple {
        return request(
            http,
            provider,
            code,
            verifier,
            redirect_url,
            ClientAuth::Body,
        )
        .await
        .map_err(|e| Error::Token(e.text()));
    }
    match request(
        http,
        provider,
        code,
        verifier,
        redirect_url,
        ClientAuth::Header,
    )
    .await
    {
        Err(Failure::Refused(first)) => request(
            http,
            provider,
            code,
            verifier,
            redirect_url,
            ClientAuth::Body,
        )
        .await
        .map_err(|e| {
            Error::Token(format!(
                "{first}; with credentials in the body: {}",
                e.text()
            ))
        }),
        other => other.map_err(|e| Error::Token(e.text())),
    }
}

/// Why one token request failed.
enum Failure {
    /// The provider answered with an error: worth one more try with the other client
    /// authentication.
    Refused(String),
    /// The provider could not be reached or read.
    Unreachable(String),
}

impl Failure {
    fn text(self) -> String {
        match self {
            Failure::Refused(text) | Failure::Unreachable(text) => text,
        }
    }
}

fn escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn request(
    http: &Http,
    provider: &Provider,
    code: &str,
    verifier: &str,
    redirect_url: &str,
    auth: ClientAuth,
) -> Result<Token, Failure> {
    let mut form: Vec<(&str, &str)> = vec![("grant_type", "authorization_code"), ("code", code)];
    if !redirect_url.is_empty() {
        form.push(("redirect_uri", redirect_url));
    }
    if !verifier.is_empty() {
        form.push(("code_verifier", verifier));
    }
    let mut request = http::Request::post(&provider.token_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .header("User-Agent", "warren");
    match auth {
        ClientAuth::Header => {
            let pair = format!(
                "{}:{}",
                escape(&provider.client_id),
                escape(&provider.client_secret)
            );
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            request = request.header("Authorization", format!("Basic {encoded}"));
        }
        ClientAuth::Body => {
            form.push(("client_id", &provider.client_id));
            form.push(("client_secret", &provider.client_secret));
        }
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let request = request
        .body(body.into_bytes())
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    let response = tokio::time::timeout(TIMEOUT, http.send(request))
        .await
        .map_err(|_| Failure::Unreachable("timed out".into()))?
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(Failure::Refused(format!(
            "status {}: {}",
            response.status(),
            String::from_utf8_lossy(&response.body()[..response.body().len().min(200)])
        )));
    }
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    read(&kind, response.body(), now_millis()).map_err(|e| match e {
        Error::Token(text) => Failure::Refused(text),
        other => Failure::Refused(other.to_string()),
    })
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Reads a token answer: form-encoded when it says so (or `text/plain`), JSON otherwise.
fn read(content_type: &str, body: &[u8], now: i64) -> Result<Token> {
    let form_encoded = content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.starts_with("text/plain");
    let fields: Map<String, Value> = if form_encoded {
        url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect()
    } else {
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => map,
            _ => return Err(Error::Token("the token answer is not a JSON object".into())),
        }
    };
    let text = |key: &str| match fields.get(key) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    if let Some(code) = fields.get("error").filter(|e| !matches!(e, Value::Null)) {
        let code = code.as_str().unwrap_or("error");
        return Err(Error::Token(format!(
            "{code}: {}",
            text("error_description")
        )));
    }
    let access_token = text("access_token");
    if access_token.is_empty() {
        return Err(Error::Token("the answer has no access_token".into()));
    }
    let expires_in = match fields.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        _ => None,
    }
    .filter(|s| *s != 0);
    Ok(Token {
        refresh_token: text("refresh_token"),
        expires_at: expires_in.map(|s| now.saturating_add(s.saturating_mul(1000))),
        access_token,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_form_answers_are_read_alike() {
        let json = read(
            "application/json; charset=utf-8",
            br#"{"access_token":"a1","token_type":"bearer","expires_in":3600,"refresh_token":"r1","email":"v@x.co"}"#,
            1_000,
        )
        .unwrap();
        assert_eq!(json.access_token, "a1");
        assert_eq!(json.refresh_token, "r1");
        assert_eq!(json.expires_at, Some(1_000 + 3_600_000));
        assert_eq!(json.field("email").and_then(Value::as_str), Some("v@x.co"));
        let form = read(
            "application/x-www-form-urlencoded",
            b"access_token=a2&scope=user%3Aemail&token_type=bearer",
            0,
        )
        .unwrap();
        assert_eq!(form.access_token, "a2");
        assert_eq!(form.expires_at, None);
        assert_eq!(
            form.field("scope").and_then(Value::as_str),
            Some("user:email")
        );
    }

    #[test]
    fn answers_without_a_token_or_with_an_error_are_refused() {
        assert!(read("application/json", br#"{"token_type":"bearer"}"#, 0).is_err());
        assert!(
            read(
                "application/json",
                br#"{"access_token":"a","error":"bad_verification_code"}"#,
                0
            )
            .is_err()
        );
        assert!(read("application/json", b"[1]", 0).is_err());
        let no_type = read(
            "application/json",
            br#"{"access_token":"vk1","expires_in":"0"}"#,
            0,
        )
        .unwrap();
        assert_eq!(no_type.access_token, "vk1");
        assert_eq!(no_type.expires_at, None);
    }
}
