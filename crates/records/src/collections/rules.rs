//! The rule checker schema validation uses: rules compiled against the candidate collections.

use warren_filter::{Access, RequestContext, StaticSchema};
use warren_schema::Collection;
use warren_schema::validate::RuleChecker;

use crate::catalog::filter_info;

/// Checks rules with the filter compiler against a candidate set of collections (the one being
/// saved included), so a rule naming an unknown field or collection is refused.
pub struct FilterRuleChecker {
    schema: StaticSchema,
}

impl FilterRuleChecker {
    /// A checker over these collections.
    pub fn new(collections: &[Collection]) -> Self {
        Self {
            schema: StaticSchema::new(collections.iter().map(filter_info)),
        }
    }
}

impl RuleChecker for FilterRuleChecker {
    fn check(&self, collection: &Collection, rule: &str) -> std::result::Result<(), String> {
        warren_filter::compile(
            &self.schema,
            &collection.id,
            rule,
            &RequestContext::guest(),
            Access::Trusted,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}
