//! One-time dashboard links: the console's "Open dashboard" button mints a code bound to one
//! project and the owner's email; the project's dashboard trades it once for a superuser session.
//!
//! Codes are 32 characters of `[a-zA-Z0-9]` (about 190 bits), kept only as their SHA-256, in
//! memory: they live for [`DEFAULT_TTL`], so a restart losing them costs a click. A code is
//! removed by the first attempt to redeem it on its own project, whether that attempt finds it
//! fresh or expired; an attempt on another project leaves it alone and is refused, so a code
//! made for one project never signs anyone in to another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::accounts::digest;
use crate::{Error, Result};

/// How long a code may be redeemed after it is made.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Length of a code, in characters.
pub const CODE_LEN: usize = 32;
/// Codes kept at most; minting beyond it first drops the expired, then refuses.
const MAX_PENDING: usize = 10_000;
/// What every refused code is told, whichever the reason (unknown, used, expired, another
/// project's): nothing about other projects' codes leaks.
pub const REFUSED: &str =
    "The sign-in link is invalid, used or expired. Open the dashboard again from the console.";

/// A minted code's binding.
#[derive(Debug, Clone)]
struct Pending {
    /// The project (tenant id) it signs in to.
    tenant_id: String,
    /// The owner's email: the superuser it signs in as.
    email: String,
    /// When it stops working.
    expires: Instant,
}

/// The pending codes of this process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DashboardLinks {
    /// SHA-256 of a code (hex) → its binding.
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    /// How long a code lives.
    ttl: Duration,
}

impl Default for DashboardLinks {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl DashboardLinks {
    /// A store whose codes live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            pending: Arc::default(),
            ttl,
        }
    }

    /// A new code for `email` on project `tenant_id`.
    pub fn mint(&self, tenant_id: &str, email: &str) -> Result<String> {
        self.mint_at(tenant_id, email, Instant::now())
    }

    fn mint_at(&self, tenant_id: &str, email: &str, now: Instant) -> Result<String> {
        let code = warren_secrets::random::secret(CODE_LEN);
        let mut pending = self.lock();
        if pending.len() >= MAX_PENDING {
            pending.retain(|_, p| p.expires > now);
        }
        if pending.len() >= MAX_PENDING {
            return Err(Error::Busy(
                "Too many dashboard links are pending; try again in a minute.".into(),
            ));
        }
        pending.insert(
            digest(&code),
            Pending {
                tenant_id: tenant_id.to_string(),
                email: email.to_string(),
                expires: now + self.ttl,
            },
        );
        Ok(code)
    }

    /// The email `code` signs in as on project `tenant_id`, using the code up; `Invalid` with
    /// [`REFUSED`] when it is unknown, used, expired or made for another project.
    pub fn redeem(&self, tenant_id: &str, code: &str) -> Result<String> {
        self.redeem_at(tenant_id, code, Instant::now())
    }

    fn redeem_at(&self, tenant_id: &str, code: &str, now: Instant) -> Result<String> {
        let refused = || Error::Invalid("code", REFUSED.into());
        if code.len() != CODE_LEN || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(refused());
        }
        let key = digest(code);
        let mut pending = self.lock();
        match pending.get(&key) {
            Some(found) if found.tenant_id == tenant_id => {}
            _ => return Err(refused()),
        }
        match pending.remove(&key) {
            Some(found) if found.expires > now => Ok(found.email),
            _ => Err(refused()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // A panic while holding the lock cannot leave the map half-changed (each operation is
        // one insert, remove or retain), so a poisoned lock is still sound to use.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_signs_in_once_on_its_own_project() {
        let links = DashboardLinks::default();
        let code = links.mint("tenant-a", "owner@example.com").unwrap();
        assert_eq!(code.len(), CODE_LEN);
        assert!(matches!(
            links.redeem("tenant-b", &code),
            Err(Error::Invalid("code", _))
        ));
        assert_eq!(
            links.redeem("tenant-a", &code).unwrap(),
            "owner@example.com"
        );
        assert!(links.redeem("tenant-a", &code).is_err());
    }

    #[test]
    fn an_expired_code_is_refused_and_forgotten() {
        let links = DashboardLinks::default();
        let start = Instant::now();
        let code = links.mint_at("t", "o@example.com", start).unwrap();
        let late = start + DEFAULT_TTL + Duration::from_millis(1);
        assert!(links.redeem_at("t", &code, late).is_err());
        assert!(links.redeem_at("t", &code, start).is_err(), "used up");
        let fresh = links.mint_at("t", "o@example.com", start).unwrap();
        let just = start + DEFAULT_TTL - Duration::from_millis(1);
        assert!(links.redeem_at("t", &fresh, just).is_ok());
    }

    #[test]
    fn only_hashes_are_kept_and_odd_codes_are_refused() {
        let links = DashboardLinks::default();
        let code = links.mint("t", "o@example.com").unwrap();
        assert!(!links.lock().contains_key(&code));
        assert!(links.lock().contains_key(&digest(&code)));
        for bad in ["", "short", &"x".repeat(CODE_LEN + 1), &"é".repeat(16)] {
            assert!(links.redeem("t", bad).is_err(), "{bad}");
        }
    }
}
