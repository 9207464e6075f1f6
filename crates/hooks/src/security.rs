//! `$security`: random strings, hashes, HMACs, constant-time comparison and HS256 JWTs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

/// Longest random string a tenant may ask for.
const MAX_RANDOM: usize = 1 << 16;
/// Largest input hashed or signed.
const MAX_INPUT: usize = 8 << 20;

const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Runs `$security.<method>(...args)`; `args` is a JSON array.
pub(crate) fn call(method: &str, args: &str) -> Result<String, String> {
    if args.len() > MAX_INPUT {
        return Err(format!("$security.{method}: the input is too large"));
    }
    let args: Vec<Value> = serde_json::from_str(args).map_err(|e| e.to_string())?;
    let text = |i: usize| args.get(i).and_then(Value::as_str).unwrap_or_default();
    let number = |i: usize| args.get(i).and_then(Value::as_f64).unwrap_or(0.0);
    match method {
        "randomString" => random(number(0), ALNUM),
        "randomStringWithAlphabet" => random(number(0), text(1)),
        "sha256" => Ok(hex::encode(Sha256::digest(text(0)))),
        "sha512" => Ok(hex::encode(Sha512::digest(text(0)))),
        "md5" => Ok(hex::encode(<md5::Md5 as md5::Digest>::digest(text(0)))),
        "hs256" => Ok(hex::encode(hmac256(text(1), text(0)))),
        "hs512" => Ok(hex::encode(hmac512(text(1), text(0)))),
        "equal" => {
            use subtle::ConstantTimeEq;
            Ok(bool::from(text(0).as_bytes().ct_eq(text(1).as_bytes())).to_string())
        }
        "createJWT" => create_jwt(
            args.first().cloned().unwrap_or_default(),
            text(1),
            number(2),
        ),
        "parseUnverifiedJWT" => parse_unverified(text(0)),
        _ => Err(format!(
            "$security.{method}() is not supported by Warren yet"
        )),
    }
}

fn random(length: f64, alphabet: &str) -> Result<String, String> {
    let chars: Vec<char> = alphabet.chars().collect();
    if chars.is_empty() {
        return Err("the alphabet is empty".into());
    }
    let length = length.max(0.0) as usize;
    if length > MAX_RANDOM {
        return Err(format!(
            "a random string is at most {MAX_RANDOM} characters"
        ));
    }
    let mut rng = rand::rng();
    Ok((0..length)
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect())
}

fn hmac256(secret: &str, text: &str) -> Vec<u8> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(text.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hmac512(secret: &str, text: &str) -> Vec<u8> {
    match Hmac::<Sha512>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(text.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// An HS256 token with `payload` and, when `seconds` > 0, an `exp` that far ahead.
fn create_jwt(payload: Value, secret: &str, seconds: f64) -> Result<String, String> {
    let mut claims = match payload {
        Value::Object(map) => map,
        Value::Null => Default::default(),
        _ => return Err("createJWT: the payload must be an object".into()),
    };
    if seconds > 0.0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        claims.insert("exp".into(), json!(now + seconds as u64));
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string());
    let signing = format!("{header}.{body}");
    let signature = URL_SAFE_NO_PAD.encode(hmac256(secret, &signing));
    Ok(format!("{signing}.{signature}"))
}

/// The claims of `token`, signature not checked (`{}` when it is not a JWT).
fn parse_unverified(token: &str) -> Result<String, String> {
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|part| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(Value::is_object)
        .ok_or_else(|| "parseUnverifiedJWT: not a JWT".to_string())?;
    Ok(claims.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_digests() {
        assert_eq!(
            call("sha256", r#"["abc"]"#).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            call("md5", r#"["abc"]"#).unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            call("hs256", r#"["what do ya want for nothing?","Jefe"]"#).unwrap(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_created_jwt_parses_back() {
        let token = call("createJWT", r#"[{"id":"x"},"secret",60]"#).unwrap();
        let claims: Value =
            serde_json::from_str(&call("parseUnverifiedJWT", &json!([token]).to_string()).unwrap())
                .unwrap();
        assert_eq!(claims["id"], "x");
        assert!(claims["exp"].as_u64().unwrap() > 0);
    }

    #[test]
    fn random_strings_use_the_alphabet() {
        let s = call("randomStringWithAlphabet", r#"[12,"ab"]"#).unwrap();
        assert_eq!(s.len(), 12);
        assert!(s.chars().all(|c| c == 'a' || c == 'b'));
        assert!(call("randomString", r#"[100000000]"#).is_err());
    }
}
