//! The operator's bearer token: from `WARREN_OPERATOR_TOKEN`, or generated once and kept in the
//! data directory (mode 0600). Compared in constant time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::{Error, Result};

/// File name of the generated token inside the data directory.
pub const TOKEN_FILE: &str = "operator-token";

/// The operator token. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct OperatorToken(Arc<str>);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(..)")
    }
}

/// Where the token came from; `Generated` tokens are printed once by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// From the environment.
    Environment,
    /// Read from the data directory.
    Stored,
    /// Generated now and stored in the data directory.
    Generated,
}

impl OperatorToken {
    /// Wraps a known token.
    pub fn new(token: &str) -> Self {
        Self(token.into())
    }

    /// The token from `from_env` if set and non-empty, else the stored one, else a new one
    /// written to `data_dir` with mode 0600.
    pub fn load(data_dir: &Path, from_env: Option<&str>) -> Result<(Self, Origin)> {
        if let Some(token) = from_env.map(str::trim).filter(|t| !t.is_empty()) {
            return Ok((Self::new(token), Origin::Environment));
        }
        let path = data_dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(token) if !token.trim().is_empty() => {
                return Ok((Self::new(token.trim()), Origin::Stored));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io(e)),
        }
        std::fs::create_dir_all(data_dir).map_err(Error::Io)?;
        let token = warren_secrets::random::secret(48);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(Error::Io)?;
        file.write_all(token.as_bytes()).map_err(Error::Io)?;
        file.sync_all().map_err(Error::Io)?;
        Ok((Self::new(&token), Origin::Generated))
    }

    /// The token itself (to print once at generation).
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header value carries this token (constant-time compare).
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some(given) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return false;
        };
        bool::from(given.trim().as_bytes().ct_eq(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_generated_token_is_stored_privately_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (token, origin) = OperatorToken::load(dir.path(), None).unwrap();
        assert_eq!(origin, Origin::Generated);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, origin) = OperatorToken::load(dir.path(), None).unwrap();
        assert_eq!(origin, Origin::Stored);
        assert_eq!(token.reveal(), again.reveal());
    }

    #[test]
    fn the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (token, origin) = OperatorToken::load(dir.path(), Some("from-env")).unwrap();
        assert_eq!((token.reveal(), origin), ("from-env", Origin::Environment));
        assert!(!dir.path().join(TOKEN_FILE).exists());
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let token = OperatorToken::new("secret-token");
        assert!(token.accepts(Some("Bearer secret-token")));
        assert!(!token.accepts(Some("Bearer secret-tokens")));
        assert!(!token.accepts(Some("Bearer secret")));
        assert!(!token.accepts(Some("secret-token")));
        assert!(!token.accepts(Some("Bearer ")));
        assert!(!token.accepts(None));
    }
}
