//! PocketBase-compatible JWTs: HS256, keyed by the record's token key followed by the
//! collection's secret for the token's kind, so rotating either invalidates the token.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What a token is for; each kind has its own collection secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TokenKind {
    /// Authenticates API requests.
    Auth,
    /// Grants access to protected files.
    File,
    /// Confirms an email address.
    Verification,
    /// Resets a password.
    PasswordReset,
    /// Confirms an email change.
    EmailChange,
}

/// The claims of a token, in PocketBase's (alphabetical) key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// Id of the record's collection.
    pub collection_id: String,
    /// Email address the token was issued for (verification, reset, email change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Record id.
    pub id: String,
    /// New address (email change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_email: Option<String>,
    /// Whether auth-refresh may renew it (false for impersonation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshable: Option<bool>,
    /// The token's kind.
    #[serde(rename = "type")]
    pub kind: TokenKind,
}

/// Signs `claims` with `token_key + secret`.
pub fn sign(claims: &Claims, token_key: &str, secret: &str) -> Result<String> {
    let key = EncodingKey::from_secret(format!("{token_key}{secret}").as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
        .map_err(|_| Error::InvalidToken)
}

/// Reads the claims without checking the signature: the first step of verification, to find
/// which record (and so which key) the token claims to belong to. Never trust the result alone.
pub fn peek(token: &str) -> Result<Claims> {
    let claims: Claims = jsonwebtoken::dangerous::insecure_decode(token)
        .map_err(|_| Error::InvalidToken)?
        .claims;
    if claims.id.is_empty() || claims.collection_id.is_empty() {
        return Err(Error::InvalidToken);
    }
    Ok(claims)
}

/// Verifies signature, algorithm (HS256 only), expiry and kind.
pub fn verify(token: &str, kind: TokenKind, token_key: &str, secret: &str) -> Result<Claims> {
    let key = DecodingKey::from_secret(format!("{token_key}{secret}").as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.required_spec_claims = ["exp".to_string()].into_iter().collect();
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|_| Error::InvalidToken)?
        .claims;
    if claims.kind != kind {
        return Err(Error::InvalidToken);
    }
    Ok(claims)
}

/// Seconds since the unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_claims() -> Claims {
        Claims {
            collection_id: "pbc_3142635823".into(),
            email: None,
            exp: now() + 60,
            id: "dy60vo0z0x551zf".into(),
            new_email: None,
            refreshable: Some(true),
            kind: TokenKind::Auth,
        }
    }

    #[test]
    fn payload_matches_pocketbase_shape() {
        let token = sign(&auth_claims(), "key", "secret").unwrap();
        let payload = token.split('.').nth(1).unwrap();
        use base64_engine::decode;
        let json = decode(payload);
        assert!(json.starts_with(r#"{"collectionId":"pbc_3142635823","exp":"#));
        assert!(json.ends_with(r#","id":"dy60vo0z0x551zf","refreshable":true,"type":"auth"}"#));
    }

    #[test]
    fn verifies_only_with_the_same_key_and_secret() {
        let token = sign(&auth_claims(), "key", "secret").unwrap();
        assert!(verify(&token, TokenKind::Auth, "key", "secret").is_ok());
        assert!(verify(&token, TokenKind::Auth, "other", "secret").is_err());
        assert!(verify(&token, TokenKind::Auth, "key", "other").is_err());
        assert!(verify(&token, TokenKind::File, "key", "secret").is_err());
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let mut claims = auth_claims();
        claims.exp = now() - 1;
        let token = sign(&claims, "key", "secret").unwrap();
        assert!(verify(&token, TokenKind::Auth, "key", "secret").is_err());
        assert_eq!(peek(&token).unwrap().id, "dy60vo0z0x551zf");
    }

    #[test]
    fn a_pocketbase_token_verifies() {
        // Issued by PocketBase 0.40.6 (see the superuser sample) — check the claims parse.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjb2xsZWN0aW9uSWQiOiJwYmNfMzE0MjYzNTgyMyIsImV4cCI6MTc5NTU2MTI0NCwiaWQiOiJkeTYwdm8wejB4NTUxemYiLCJyZWZyZXNoYWJsZSI6dHJ1ZSwidHlwZSI6ImF1dGgifQ.s84S3SyON4W1wPQKbwnbBPAVl7ctq4cuHfhBW_8cyEE";
        let claims = peek(token).unwrap();
        assert_eq!(
            claims,
            Claims {
                exp: 1795561244,
                ..auth_claims()
            }
        );
    }

    /// Minimal base64url decoding for the test (the payload is ASCII JSON).
    mod base64_engine {
        pub fn decode(s: &str) -> String {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut bits = 0u32;
            let mut count = 0;
            let mut out = Vec::new();
            for c in s.bytes() {
                let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
                bits = (bits << 6) | v;
                count += 6;
                if count >= 8 {
                    count -= 8;
                    out.push((bits >> count) as u8);
                    bits &= (1 << count) - 1;
                }
            }
            String::from_utf8(out).unwrap()
        }
    }
}
