//! Who makes a request, as the rules see it.

use std::sync::Arc;

use serde_json::{Map, Value};
use warren_filter::RequestContext;

/// The authenticated identity behind a request.
#[derive(Debug, Clone, Default)]
pub enum Caller {
    /// No valid auth token.
    #[default]
    Guest,
    /// A superuser: bypasses every rule and sees hidden fields.
    Superuser {
        /// The superuser record (API JSON incl. `id`, `collectionId`, `collectionName`),
        /// shared: a caller is copied into every rule context of its request.
        record: Arc<Map<String, Value>>,
    },
    /// A record of an auth collection.
    Record {
        /// The auth record (API JSON incl. `id`, `collectionId`, `collectionName`), shared.
        record: Arc<Map<String, Value>>,
    },
}

impl Caller {
    /// Whether rules are bypassed.
    pub fn is_superuser(&self) -> bool {
        matches!(self, Self::Superuser { .. })
    }

    /// The auth record, if any.
    pub fn record(&self) -> Option<&Map<String, Value>> {
        match self {
            Self::Guest => None,
            Self::Superuser { record } | Self::Record { record } => Some(record),
        }
    }

    /// The auth record, shared, if any.
    pub fn shared_record(&self) -> Option<&Arc<Map<String, Value>>> {
        match self {
            Self::Guest => None,
            Self::Superuser { record } | Self::Record { record } => Some(record),
        }
    }

    /// The auth record's id, if any.
    pub fn id(&self) -> Option<&str> {
        self.record()
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
    }

    /// The auth record's collection id, if any.
    pub fn collection_id(&self) -> Option<&str> {
        self.record()
            .and_then(|r| r.get("collectionId"))
            .and_then(Value::as_str)
    }

    /// A request context with this caller as `@request.auth`.
    pub fn context(&self) -> RequestContext {
        let mut ctx = RequestContext::guest();
        ctx.auth = self.shared_record().cloned();
        ctx
    }
}
