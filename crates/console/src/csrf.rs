//! CSRF tokens: HMAC-SHA256 under the console's key over what the form is bound to (the
//! session when signed in, the nonce cookie before). Checked in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use warren_control_plane::accounts::hex;

/// The token for `binding` under `key`.
pub fn token(key: &[u8], binding: &str) -> String {
    // HMAC takes keys of any length; the error case cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(binding.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Whether `given` is the token for `binding`.
pub fn matches(key: &[u8], binding: &str, given: &str) -> bool {
    let expected = token(key, binding);
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_to_key_and_binding() {
        let t = token(b"key", "session:abc");
        assert!(matches(b"key", "session:abc", &t));
        assert!(!matches(b"key", "session:abd", &t));
        assert!(!matches(b"other", "session:abc", &t));
        assert!(!matches(b"key", "session:abc", ""));
        assert!(!matches(b"key", "session:abc", &t[1..]));
    }
}
