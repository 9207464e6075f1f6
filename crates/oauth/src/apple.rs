//! Sign in with Apple specifics: the client secret Apple requires is a short-lived ES256 JWT
//! signed with the developer's private key (team id as issuer, services id as subject, the
//! key id in the header); users are read from Apple's signed id token.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::{Error, Result};

/// Apple's id token issuer and the client secret's audience.
pub const ISSUER: &str = "https://appleid.apple.com";
/// Where Apple publishes its id token keys.
pub const KEYS_URL: &str = "https://appleid.apple.com/auth/keys";
/// Longest client secret lifetime Apple accepts (six months), in seconds.
pub const MAX_SECRET_SECONDS: i64 = 15_777_000;

/// What a client secret is made from.
#[derive(Debug, Clone, Default)]
pub struct SecretInput {
    /// The services id (the OAuth2 client id).
    pub client_id: String,
    /// The 10-character team id.
    pub team_id: String,
    /// The 10-character key id.
    pub key_id: String,
    /// The `.p8` private key (PKCS#8 PEM).
    pub private_key: String,
    /// Lifetime in seconds.
    pub duration: i64,
}

/// The DER bytes of a PEM `PRIVATE KEY` block.
pub(crate) fn pem_der(pem: &str) -> Result<Vec<u8>> {
    let pem = pem.trim();
    let body = pem
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.split("-----END PRIVATE KEY-----").next())
        .ok_or_else(|| Error::Config("the private key is not a PEM PRIVATE KEY block".into()))?;
    let text: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::Config(format!("the private key is not valid base64: {e}")))
}

/// Signs a client secret valid from `now` (seconds since the epoch) for `input.duration`.
pub fn client_secret(input: &SecretInput, now: u64) -> Result<String> {
    let der = pem_der(&input.private_key)?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(input.key_id.clone());
    let claims = json!({
        "iss": input.team_id,
        "sub": input.client_id,
        "aud": [ISSUER],
        "exp": now + input.duration.max(0) as u64,
        "iat": now,
    });
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&der))
        .map_err(|e| Error::Config(format!("the private key cannot sign: {e}")))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::{Map, Value};

    use super::*;
    use crate::idtoken::tests::{EC_KEY, EC_X, EC_Y};

    #[test]
    fn client_secrets_are_es256_jwts_apple_accepts() {
        let input = SecretInput {
            client_id: "com.example.app".into(),
            team_id: "TEAM123456".into(),
            key_id: "KEY1234567".into(),
            private_key: format!("\n{EC_KEY}\n"),
            duration: 3600,
        };
        let now = jsonwebtoken::get_current_timestamp();
        let secret = client_secret(&input, now).unwrap();
        let header = jsonwebtoken::decode_header(&secret).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[ISSUER]);
        validation.set_issuer(&["TEAM123456"]);
        let key = DecodingKey::from_ec_components(EC_X, EC_Y).unwrap();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(&secret, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "com.example.app");
        assert_eq!(claims["iat"], now);
        assert_eq!(claims["exp"], now + 3600);
    }

    #[test]
    fn unusable_keys_are_refused() {
        let input = SecretInput {
            private_key: "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----"
                .into(),
            ..SecretInput::default()
        };
        assert!(client_secret(&input, 0).is_err());
        let input = SecretInput {
            private_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".into(),
            ..SecretInput::default()
        };
        assert!(client_secret(&input, 0).is_err());
    }
}
