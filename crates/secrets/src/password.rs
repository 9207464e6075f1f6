//! Password hashing: argon2id for every new hash, bcrypt verified for imported PocketBase users.
//!
//! Parameters: argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's baseline). Hashing is CPU and memory
//! heavy on purpose, so it runs on the blocking pool behind a semaphore of one permit per core:
//! a login flood queues here instead of exhausting memory or starving the async executor.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::{Error, Result};

/// The bounded password hasher. Cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    /// One permit per concurrent hash; bounds memory to permits × 19 MiB.
    permits: Arc<Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self::new(cores)
    }
}

impl Passwords {
    /// A hasher that runs at most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Hashes `plain` with argon2id and a fresh salt (PHC string format).
    pub async fn hash(&self, plain: &str) -> Result<String> {
        let plain = plain.to_owned();
        self.run(move || hash_blocking(&plain)).await
    }

    /// Checks `plain` against a stored argon2id or bcrypt hash.
    pub async fn verify(&self, plain: &str, stored: &str) -> Result<bool> {
        let (plain, stored) = (plain.to_owned(), stored.to_owned());
        self.run(move || verify_blocking(&plain, &stored)).await
    }

    /// Spends the time of one verification against a fixed hash, so that an unknown identity
    /// takes as long to refuse as a wrong password.
    pub async fn burn(&self, plain: &str) {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = match DUMMY.get() {
            Some(hash) => hash.clone(),
            None => match self.hash("warren-timing-equalizer").await {
                Ok(hash) => DUMMY.get_or_init(|| hash).clone(),
                Err(_) => return,
            },
        };
        let _ = self.verify(plain, &dummy).await;
    }

    /// Like [`Passwords::verify`], but gives up with [`Error::Busy`] when no hashing permit
    /// frees up within `wait`: under a login flood the excess is refused quickly instead of
    /// queueing for seconds.
    pub async fn try_verify(&self, plain: &str, stored: &str, wait: Duration) -> Result<bool> {
        let (plain, stored) = (plain.to_owned(), stored.to_owned());
        self.try_run(wait, move || verify_blocking(&plain, &stored))
            .await
    }

    /// Like [`Passwords::burn`], with the bounded wait of [`Passwords::try_verify`].
    pub async fn try_burn(&self, plain: &str, wait: Duration) -> Result<()> {
        let dummy = self.dummy().await?;
        self.try_verify(plain, &dummy, wait).await.map(|_| ())
    }

    /// Like [`Passwords::hash`], with the bounded wait of [`Passwords::try_verify`].
    pub async fn try_hash(&self, plain: &str, wait: Duration) -> Result<String> {
        let plain = plain.to_owned();
        self.try_run(wait, move || hash_blocking(&plain)).await
    }

    async fn dummy(&self) -> Result<String> {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        if let Some(hash) = DUMMY.get() {
            return Ok(hash.clone());
        }
        let hash = tokio::task::spawn_blocking(|| hash_blocking("warren-timing-equalizer"))
            .await
            .map_err(|e| Error::Hashing(e.to_string()))??;
        Ok(DUMMY.get_or_init(|| hash).clone())
    }

    async fn try_run<T: Send + 'static>(
        &self,
        wait: Duration,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = match tokio::time::timeout(wait, self.permits.acquire()).await {
            Ok(permit) => permit.map_err(|e| Error::Hashing(e.to_string()))?,
            Err(_) => return Err(Error::Busy),
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Hashing(e.to_string()))?
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Hashing(e.to_string()))?
    }
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants known to be valid.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(plain: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hashing(e.to_string()))?;
    argon2()
        .hash_password(plain.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Hashing(e.to_string()))
}

fn verify_blocking(plain: &str, stored: &str) -> Result<bool> {
    if stored.starts_with("$argon2") {
        let parsed = PasswordHash::new(stored).map_err(|_| Error::UnsupportedHash)?;
        return Ok(argon2().verify_password(plain.as_bytes(), &parsed).is_ok());
    }
    if stored.starts_with("$2") {
        return bcrypt::verify(plain, stored).map_err(|_| Error::UnsupportedHash);
    }
    Err(Error::UnsupportedHash)
}

/// Whether a stored hash should be replaced by an argon2id one at the next successful login.
pub fn needs_rehash(stored: &str) -> bool {
    !stored.starts_with("$argon2id$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn argon2id_hashes_verify() {
        let passwords = Passwords::new(2);
        let hash = passwords.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(passwords.verify("correct horse", &hash).await.unwrap());
        assert!(!passwords.verify("wrong horse", &hash).await.unwrap());
        assert!(!needs_rehash(&hash));
    }

    #[tokio::test]
    async fn pocketbase_bcrypt_hashes_verify() {
        // Made by PocketBase 0.40.6 for "password123".
        let hash = "$2a$10$TWp86sJ.eZp1r1ch2VLHjuE6BQvRrm5hfsuYPOo2dHsj1gt1jOZVy";
        let passwords = Passwords::new(1);
        assert!(passwords.verify("password123", hash).await.unwrap());
        assert!(!passwords.verify("password124", hash).await.unwrap());
        assert!(needs_rehash(hash));
    }

    #[tokio::test]
    async fn a_saturated_hasher_refuses_quickly() {
        let passwords = Passwords::new(1);
        let hash = passwords.hash("pw").await.unwrap();
        let held = passwords.permits.clone().acquire_owned().await.unwrap();
        let started = std::time::Instant::now();
        let outcome = passwords
            .try_verify("pw", &hash, Duration::from_millis(50))
            .await;
        assert!(matches!(outcome, Err(Error::Busy)));
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(held);
        assert!(
            passwords
                .try_verify("pw", &hash, Duration::from_millis(500))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_hash_formats_are_refused() {
        let passwords = Passwords::new(1);
        assert!(passwords.verify("x", "plaintext").await.is_err());
    }
}
