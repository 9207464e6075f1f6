//! Random identifiers and secrets in the alphabets PocketBase uses.

use rand::Rng;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn pick(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A record id: 15 characters of `[a-z0-9]`.
pub fn record_id() -> String {
    pick(LOWER_ALNUM, 15)
}

/// A token key or secret: `len` characters of `[a-zA-Z0-9]` (PocketBase uses 50).
pub fn secret(len: usize) -> String {
    pick(ALNUM, len)
}

#[cfg(test)]
mod tests {
    #[test]
    fn record_ids_have_pocketbase_shape() {
        let id = super::record_id();
        assert_eq!(id.len(), 15);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
