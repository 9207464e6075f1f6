//! Rule statements compiled once per catalog and kept there: a catalog is one tenant's
//! collections at one version and is replaced whole when any collection changes, so an entry
//! can never outlive the schema it was compiled against nor be seen by another tenant.
//!
//! A rule's SQL and parameters depend on the request values it reads (`@request.auth.id`, a
//! header, ...), so statements are keyed by the collection, the action and those values (see
//! `warren_filter::RequestReads`): a per-user rule compiles once per user, a rule that reads
//! nothing from the request once. Rules that read the clock are compiled every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use warren_filter::{Filter, RequestContext};

use crate::Result;
use crate::catalog::Entry;
use crate::read::OneStatement;

/// Statements kept per catalog; the cache starts over when it is full, so a tenant's memory
/// stays bounded however many distinct callers it sees.
const MAX_STATEMENTS: usize = 512;

/// What a kept statement is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A view under the entry's own view rule.
    View,
    /// A write's rule check, under a rule named by its text.
    Check,
}

/// The compiled statements of one catalog.
#[derive(Default)]
pub(crate) struct Compiled {
    views: Mutex<HashMap<Box<[u8]>, Arc<OneStatement>>>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("views", &self.lock().len())
            .finish()
    }
}

impl Compiled {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, Arc<OneStatement>>> {
        // Entries are inserted whole: a poisoned map is still consistent.
        self.views.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The view statement of `entry` under `rule` (`None`: no condition) for `ctx`, compiled by
    /// `compile` unless an equal one is kept.
    pub(crate) fn view(
        &self,
        entry: &Entry,
        rule: Option<&Filter>,
        ctx: &RequestContext,
        compile: impl FnOnce() -> Result<OneStatement>,
    ) -> Result<Arc<OneStatement>> {
        self.keyed(entry, Kind::View, rule, ctx, compile)
    }

    /// The existence check of `entry` under `rule` (`None`: exists at all) for `ctx`, as a
    /// write's rule check runs it (see `read::passes`), compiled by `compile` unless an equal
    /// one is kept. Unlike a view, the rule is not the entry's own: its text is part of the key.
    pub(crate) fn check(
        &self,
        entry: &Entry,
        rule: Option<&Filter>,
        ctx: &RequestContext,
        compile: impl FnOnce() -> Result<OneStatement>,
    ) -> Result<Arc<OneStatement>> {
        self.keyed(entry, Kind::Check, rule, ctx, compile)
    }

    /// The statement of `kind` for `entry`, `rule` and the request values the rule reads; one
    /// that reads the clock is compiled every time.
    fn keyed(
        &self,
        entry: &Entry,
        kind: Kind,
        rule: Option<&Filter>,
        ctx: &RequestContext,
        compile: impl FnOnce() -> Result<OneStatement>,
    ) -> Result<Arc<OneStatement>> {
        let mut key = Vec::with_capacity(128);
        key.extend_from_slice(entry.collection.id.as_bytes());
        key.push(0);
        match (rule, kind) {
            (None, Kind::View) => key.push(b'*'),
            (None, Kind::Check) => key.push(b'e'),
            (Some(rule), kind) => {
                if kind == Kind::View {
                    key.push(b'r');
                } else {
                    // A parsed filter's text determines its tree (and so its SQL).
                    key.push(b'c');
                    key.extend_from_slice(rule.source().as_bytes());
                    key.push(0);
                }
                if !rule.reads().key(ctx, &mut key) {
                    return compile().map(Arc::new);
                }
            }
        }
        self.kept(key, compile)
    }

    /// The statement kept under `key`, or the one `compile` makes, then kept.
    fn kept(
        &self,
        key: Vec<u8>,
        compile: impl FnOnce() -> Result<OneStatement>,
    ) -> Result<Arc<OneStatement>> {
        if let Some(statement) = self.lock().get(key.as_slice()) {
            return Ok(statement.clone());
        }
        let statement = Arc::new(compile()?);
        let mut views = self.lock();
        if views.len() >= MAX_STATEMENTS {
            views.clear();
        }
        views.insert(key.into_boxed_slice(), statement.clone());
        Ok(statement)
    }

    /// How many statements are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
