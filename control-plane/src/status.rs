//! A tenant's status: whether its hostnames answer. Stored in the control database as the
//! same lowercase strings the operator API speaks (`active`, `suspended`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether a tenant is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Served: its hostnames reach its API.
    Active,
    /// Kept with its data, but every request gets 503 and realtime clients are disconnected.
    Suspended,
}

impl TenantStatus {
    /// The status as stored and as the operator API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    /// Whether requests reach the tenant.
    pub fn is_active(self) -> bool {
        self == Self::Active
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status other than `active` or `suspended`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The status must be \"active\" or \"suspended\".")]
pub struct UnknownStatus;

impl From<UnknownStatus> for crate::Error {
    fn from(unknown: UnknownStatus) -> Self {
        crate::Error::Invalid("status", unknown.to_string())
    }
}

impl FromStr for TenantStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            _ => Err(UnknownStatus),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_stored_strings() {
        for status in [TenantStatus::Active, TenantStatus::Suspended] {
            assert_eq!(status.as_str().parse::<TenantStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!("paused".parse::<TenantStatus>(), Err(UnknownStatus));
        assert_eq!("Active".parse::<TenantStatus>(), Err(UnknownStatus));
    }
}
