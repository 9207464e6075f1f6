//! OpenID Connect id tokens: signature checks against the provider's JSON Web Key Set
//! (fetched over the provider client and cached per URL), then the claims — issuer, audience,
//! expiry, issued-at, not-before and the nonce bound to the sign-in's PKCE verifier.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::client::Http;
use crate::{Error, Result, TIMEOUT};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY: u64 = 300;
/// How long a fetched key set is trusted before it is fetched again.
const KEYS_FRESH: Duration = Duration::from_secs(3600);
/// A token naming an unknown key refetches the set at most this often.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Most key-set URLs cached at once.
const MAX_SETS: usize = 256;

/// Cached JSON Web Key Sets by URL. Cheap to clone.
#[derive(Clone, Default)]
pub struct Keys {
    sets: Arc<Mutex<HashMap<String, (Instant, JwkSet)>>>,
}

impl Keys {
    fn cached(&self, url: &str) -> Option<(Instant, JwkSet)> {
        self.sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned()
    }

    /// The key `kid` of the set at `url`: from the cache while fresh, fetched otherwise (and
    /// refetched once when a rotated-in key is not cached yet).
    pub(crate) async fn find(&self, http: &Http, url: &str, kid: &str) -> Result<Jwk> {
        if let Some((fetched, set)) = self.cached(url) {
            let fresh = fetched.elapsed() < KEYS_FRESH;
            if fresh && let Some(key) = set.find(kid) {
                return Ok(key.clone());
            }
            if fresh && fetched.elapsed() < REFETCH_AFTER {
                return Err(Error::User(format!(
                    "no key {kid} in the provider's key set"
                )));
            }
        }
        let set = fetch(http, url).await?;
        let key = set.find(kid).cloned();
        {
            let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
            if sets.len() >= MAX_SETS && !sets.contains_key(url) {
                sets.retain(|_, (at, _)| at.elapsed() < KEYS_FRESH);
                if sets.len() >= MAX_SETS {
                    sets.clear();
                }
            }
            sets.insert(url.to_string(), (Instant::now(), set));
        }
        key.ok_or_else(|| Error::User(format!("no key {kid} in the provider's key set")))
    }
}

async fn fetch(http: &Http, url: &str) -> Result<JwkSet> {
    let request = http::Request::get(url)
        .header("Accept", "application/json")
        .header("User-Agent", "warren")
        .body(Vec::new())
        .map_err(|e| Error::User(e.to_string()))?;
    let response = tokio::time::timeout(TIMEOUT, http.send(request))
        .await
        .map_err(|_| Error::User("key set fetch timed out".into()))?
        .map_err(|e| Error::User(e.to_string()))?;
    if !response.status().is_success() {
        return Err(Error::User(format!("key set status {}", response.status())));
    }
    serde_json::from_slice(response.body()).map_err(|e| Error::User(format!("key set: {e}")))
}

/// What an id token must say.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// The client id, which must be among the audiences.
    pub audience: String,
    /// Accepted issuers (any when empty).
    pub issuers: Vec<String>,
    /// The nonce the authorization URL carried; a token that states a nonce must match it.
    pub nonce: Option<String>,
    /// Whether `exp` must be present (it is always checked when present).
    pub require_exp: bool,
}

/// The nonce a sign-in's authorization URL carries: derived from its PKCE verifier, so the
/// exchange can check it without keeping state between the two requests.
pub fn nonce_for(verifier: &str) -> String {
    let digest = Sha256::digest(format!("warren-oidc-nonce:{verifier}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the signature of `token` with `key` (which must state its algorithm, matching the
/// token's) and returns its claims.
pub fn verify_signature(token: &str, key: &Jwk) -> Result<Map<String, Value>> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| Error::User(e.to_string()))?;
    let stated = key
        .common
        .key_algorithm
        .ok_or_else(|| Error::User("the key states no algorithm".into()))?;
    let alg: Algorithm = stated
        .to_string()
        .parse()
        .map_err(|_| Error::User(format!("unsupported key algorithm {stated}")))?;
    if header.alg != alg {
        return Err(Error::User("the token's algorithm is not its key's".into()));
    }
    let decoding = DecodingKey::from_jwk(key).map_err(|e| Error::User(e.to_string()))?;
    let mut validation = Validation::new(alg);
    // Claims are checked by `check_claims`, alike for signed and unsigned paths.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|e| Error::User(format!("id token signature: {e}")))
}

/// Checks the registered claims against `expect` at time `now` (seconds since the epoch).
pub fn check_claims(claims: &Map<String, Value>, expect: &Expect, now: u64) -> Result<()> {
    let fail = |what: &str| Err(Error::User(format!("id token {what}")));
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if expect.audience.is_empty() || !audiences.contains(&expect.audience.as_str()) {
        return fail("audience mismatch");
    }
    if !expect.issuers.is_empty() {
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if !expect.issuers.iter().any(|i| i == iss) {
            return fail("issuer mismatch");
        }
    }
    let number = |key: &str| claims.get(key).and_then(Value::as_f64);
    match number("exp") {
        Some(exp) if (exp as u64).saturating_add(LEEWAY) < now => return fail("expired"),
        None if expect.require_exp || claims.contains_key("exp") => return fail("has no expiry"),
        _ => {}
    }
    if let Some(nbf) = number("nbf")
        && nbf as u64 > now.saturating_add(LEEWAY)
    {
        return fail("not valid yet");
    }
    if let Some(iat) = number("iat")
        && iat as u64 > now.saturating_add(LEEWAY)
    {
        return fail("issued in the future");
    }
    if let (Some(expected), Some(stated)) = (&expect.nonce, claims.get("nonce")) {
        let stated = stated.as_str().unwrap_or("");
        if !constant_time_eq(stated.as_bytes(), expected.as_bytes()) {
            return fail("nonce mismatch");
        }
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies an id token: its signature with the key it names from `jwks_url` (when given;
/// without one the token is trusted as the token endpoint's direct TLS answer), then its
/// claims. Returns the claims.
pub(crate) async fn verify(
    http: &Http,
    keys: &Keys,
    token: &str,
    jwks_url: &str,
    expect: &Expect,
) -> Result<Map<String, Value>> {
    if token.is_empty() {
        return Err(Error::User("the provider returned no id token".into()));
    }
    let claims = if jwks_url.is_empty() {
        jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
            .map(|data| data.claims)
            .map_err(|e| Error::User(e.to_string()))?
    } else {
        let header = jsonwebtoken::decode_header(token).map_err(|e| Error::User(e.to_string()))?;
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::User("the id token names no key".into()))?;
        let key = keys.find(http, jwks_url, &kid).await?;
        verify_signature(token, &key)?
    };
    check_claims(&claims, expect, jsonwebtoken::get_current_timestamp())?;
    Ok(claims)
}

#[cfg(test)]
pub(crate) mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    /// A P-256 key made for these tests only (PKCS#8) and its public coordinates.
    pub(crate) const EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbLeLEOyxNQu3EDJO
gJycg1KHqvfvr0nbUoZke1EGbzGhRANCAARIV4+ZgbI870LCkaueh9LZuBqJLKmX
/RGW7yLuVowhB58o/xH4rmPzwTTWWsCDfvGc0Xu0UwD8apEyXEY3AxzP
-----END PRIVATE KEY-----";
    pub(crate) const EC_X: &str = "SFePmYGyPO9CwpGrnofS2bgaiSypl_0Rlu8i7laMIQc";
    pub(crate) const EC_Y: &str = "nyj_EfiuY_PBNNZawIN-8ZzRe7RTAPxqkTJcRjcDHM8";

    fn jwk(alg: &str) -> Jwk {
        serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "k1", "alg": alg, "use": "sig"})).unwrap()
    }

    fn sign(claims: Value) -> String {
        let der = crate::apple::pem_der(EC_KEY).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&der)).unwrap()
    }

    fn expect() -> Expect {
        Expect {
            audience: "client-1".into(),
            issuers: vec!["https://id.example".into()],
            nonce: Some(nonce_for("verifier")),
            require_exp: true,
        }
    }

    #[test]
    fn a_signed_token_with_the_right_claims_verifies() {
        let now = jsonwebtoken::get_current_timestamp();
        let token = sign(
            json!({"iss": "https://id.example", "aud": ["other", "client-1"], "sub": "u1", "exp": now + 60, "iat": now, "nonce": nonce_for("verifier")}),
        );
        let claims = verify_signature(&token, &jwk("ES256")).unwrap();
        assert_eq!(claims["sub"], "u1");
        check_claims(&claims, &expect(), now).unwrap();
    }

    #[test]
    fn wrong_keys_algorithms_and_claims_are_refused() {
        let now = jsonwebtoken::get_current_timestamp();
        let good = json!({"iss": "https://id.example", "aud": "client-1", "sub": "u1", "exp": now + 60, "iat": now});
        let token = sign(good.clone());
        assert!(
            verify_signature(&token, &jwk("ES384")).is_err(),
            "algorithm must match the key's"
        );
        let mut tampered: Vec<&str> = token.split('.').collect();
        let payload =
            base64_url(&serde_json::to_vec(&json!({"sub": "admin", "aud": "client-1"})).unwrap());
        tampered[1] = &payload;
        assert!(verify_signature(&tampered.join("."), &jwk("ES256")).is_err());
        let check = |patch: Value| {
            let mut claims = good.as_object().unwrap().clone();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    claims.remove(k);
                } else {
                    claims.insert(k.clone(), v.clone());
                }
            }
            check_claims(&claims, &expect(), now)
        };
        assert!(
            check(json!({})).is_ok(),
            "a token without a nonce claim is accepted"
        );
        assert!(check(json!({"aud": "someone-else"})).is_err());
        assert!(check(json!({"iss": "https://evil.example"})).is_err());
        assert!(check(json!({"exp": now - 3600})).is_err());
        assert!(check(json!({"exp": null})).is_err());
        assert!(check(json!({"iat": now + 3600})).is_err());
        assert!(check(json!({"nbf": now + 3600})).is_err());
        assert!(check(json!({"nonce": nonce_for("another verifier")})).is_err());
        assert!(check(json!({"nonce": nonce_for("verifier")})).is_ok());
    }

    fn base64_url(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}
