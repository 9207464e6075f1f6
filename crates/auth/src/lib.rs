//! The auth flows of a tenant's auth collections: password, OTP and OAuth2 sign-in, MFA,
//! auth-refresh and impersonation, sign-in origins, verification, password reset and email
//! change, and the signed tokens they issue and check.
//!
//! It reads and writes auth records through `warren-records` (whose [`warren_records::Error`]
//! its flows return), signs and hashes with `warren-secrets`, and composes mail with
//! `warren-mail`. It must not depend on HTTP or on the tenant runtime.

pub mod account;
pub mod external;
pub mod login;
pub mod mfa;
pub mod origins;
pub mod otp;
pub mod password;
pub mod test_mail;
pub mod tokens;
