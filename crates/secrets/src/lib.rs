//! Secrets and their primitives: argon2id password hashing with bounded concurrency (bcrypt
//! accepted for imported users), random ids and keys, and PocketBase-compatible JWTs.
//!
//! This crate knows nothing of HTTP, storage or records: callers hand it hashes, keys and
//! secrets. The auth flows built on it live in `warren-auth`.

pub mod password;
pub mod random;
pub mod token;

pub use password::Passwords;
pub use token::{Claims, TokenKind};

/// Errors from hashing and token handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stored hash is not one this crate can read.
    #[error("unsupported password hash")]
    UnsupportedHash,
    /// Hashing failed (bad parameters or the worker pool is gone).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The token is malformed, expired, of the wrong kind or badly signed.
    #[error("invalid token")]
    InvalidToken,
    /// Every hashing permit stayed taken for the whole bounded wait (a login flood).
    #[error("password hashing is saturated")]
    Busy,
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
