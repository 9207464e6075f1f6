//! `settings.rateLimits`: a tenant's request rate rules and how a request picks one — by
//! `collection:action` tags (`users:create`, `*:auth`), then `METHOD /path`, then `/path`, with
//! labels ending in `/` matching as path prefixes — and whom a rule covers (`@guest`, `@auth`).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;
use warren_schema::{FieldError, ValidationErrors};

/// The audience a rule covers: everyone (`""`), guests or authenticated callers.
pub const AUDIENCE_ALL: &str = "";
/// Guests only.
pub const AUDIENCE_GUEST: &str = "@guest";
/// Authenticated callers only.
pub const AUDIENCE_AUTH: &str = "@auth";

/// Labels a rule may carry: a tag, `collection:action`, `*:action`, `/path` or `METHOD /path`.
static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\w+ /[\w/-]*|/[\w/-]*|\w+:\w+|\*:\w+|\w+)$").expect("label pattern")
});

/// One rule: at most `max_requests` per client IP every `duration` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRule {
    /// What the rule matches.
    pub label: String,
    /// Whom it covers.
    pub audience: String,
    /// Window length in seconds.
    pub duration: u64,
    /// Requests allowed per window.
    pub max_requests: u32,
}

/// A tenant's rate limit settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Rules are enforced.
    pub enabled: bool,
    /// The rules, in the order they were configured.
    pub rules: Vec<RateRule>,
    /// Client IPs and subnets never limited.
    pub excluded_ips: Vec<String>,
}

impl RateLimits {
    /// Reads `rateLimits` from a settings document (malformed rules are skipped; stored
    /// settings were validated on the way in).
    pub fn from_settings(settings: &Value) -> Self {
        let Some(section) = settings.get("rateLimits") else {
            return Self::default();
        };
        let rules = section
            .get("rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter_map(|r| {
                        Some(RateRule {
                            label: r.get("label")?.as_str()?.to_string(),
                            audience: r
                                .get("audience")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            duration: r.get("duration")?.as_u64().filter(|d| *d > 0)?,
                            max_requests: r
                                .get("maxRequests")?
                                .as_u64()
                                .filter(|m| *m > 0)?
                                .min(u32::MAX as u64)
                                as u32,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let excluded_ips = section
            .get("excludedIPs")
            .and_then(Value::as_array)
            .map(|ips| {
                ips.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            enabled: section.get("enabled") == Some(&Value::Bool(true)),
            rules,
            excluded_ips,
        }
    }

    /// The first rule for `labels` (tried in order; for each, an exact label first, then the
    /// path-prefix rules) that covers one of `audiences`.
    pub fn find(&self, labels: &[String], audiences: &[&str]) -> Option<&RateRule> {
        let covers = |r: &RateRule| audiences.contains(&r.audience.as_str());
        for label in labels {
            if let Some(rule) = self.rules.iter().find(|r| r.label == *label && covers(r)) {
                return Some(rule);
            }
            let with_slash = format!("{label}/");
            if let Some(rule) = self
                .rules
                .iter()
                .find(|r| r.label.ends_with('/') && with_slash.starts_with(&r.label) && covers(r))
            {
                return Some(rule);
            }
        }
        None
    }

    /// Whether `ip` is in the excluded addresses or subnets.
    pub fn excludes(&self, ip: &str) -> bool {
        crate::policy::ip_in_list(&self.excluded_ips, ip)
    }
}

/// Validates `rateLimits.rules` as PocketBase does: each label well-formed, counts at least 1,
/// a known audience, no two rules whose label and audience overlap, and rules present when
/// enabled.
pub fn validate(section: Option<&Value>) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    let Some(section) = section else {
        return errors;
    };
    let enabled = section.get("enabled") == Some(&Value::Bool(true));
    let rules = match section.get("rules") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(rules)) => rules.clone(),
        Some(_) => {
            errors.add(
                "rules",
                FieldError::new("validation_invalid_value", "Invalid value."),
            );
            return errors;
        }
    };
    if enabled && rules.is_empty() {
        errors.add("rules", FieldError::required());
        return errors;
    }
    let mut nested = ValidationErrors::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut one = ValidationErrors::new();
        let label = rule.get("label").and_then(Value::as_str).unwrap_or("");
        if label.is_empty() {
            one.add("label", FieldError::required());
        } else if !LABEL.is_match(label) {
            one.add(
                "label",
                FieldError::new("validation_match_invalid", "Must be in a valid format."),
            );
        }
        for key in ["maxRequests", "duration"] {
            match rule.get(key).and_then(Value::as_f64) {
                None | Some(0.0) => one.add(key, FieldError::required()),
                Some(n) if n < 1.0 || n.fract() != 0.0 => one.add(
                    key,
                    FieldError::new(
                        "validation_min_greater_equal_than_required",
                        "Must be no less than 1.",
                    ),
                ),
                Some(_) => {}
            }
        }
        let audience = rule.get("audience").and_then(Value::as_str).unwrap_or("");
        if ![AUDIENCE_ALL, AUDIENCE_GUEST, AUDIENCE_AUTH].contains(&audience) {
            one.add("audience", FieldError::in_invalid());
        }
        nested.add_nested(i.to_string(), one);
    }
    if nested.is_empty() {
        // Only well-formed rules are checked for overlaps; the first overlap is reported.
        let mut seen: Vec<String> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let label = rule.get("label").and_then(Value::as_str).unwrap_or("");
            let audience = rule.get("audience").and_then(Value::as_str).unwrap_or("");
            let key = format!("{label}@@{audience}");
            if seen
                .iter()
                .any(|k| k.starts_with(&key) || key.starts_with(k.as_str()))
            {
                let mut one = ValidationErrors::new();
                one.add(
                    "label",
                    FieldError::new(
                        "validation_conflicting_rate_limit_rule",
                        format!(
                            "Rate limit rule configuration with label {label} already exists or conflicts with another rule."
                        ),
                    ),
                );
                nested.add_nested(i.to_string(), one);
                break;
            }
            seen.push(key);
        }
    }
    errors.add_nested("rules", nested);
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(rules: Value) -> RateLimits {
        RateLimits::from_settings(
            &json!({"rateLimits": {"enabled": true, "rules": rules, "excludedIPs": ["10.1.0.0/16", "::1"]}}),
        )
    }

    fn labels(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tags_come_before_paths_and_prefixes_match_whole_segments() {
        let l = limits(json!([
            {"label": "/api/", "duration": 10, "maxRequests": 300},
            {"label": "*:auth", "duration": 3, "maxRequests": 2},
            {"label": "users:create", "duration": 5, "maxRequests": 20, "audience": "@guest"},
            {"label": "POST /api/batch", "duration": 1, "maxRequests": 3}
        ]));
        let guest = [AUDIENCE_ALL, AUDIENCE_GUEST];
        let auth = [AUDIENCE_ALL, AUDIENCE_AUTH];
        let pick = |ls: &[&str], who: &[&str]| l.find(&labels(ls), who).map(|r| r.label.clone());
        assert_eq!(
            pick(
                &[
                    "users:authWithPassword",
                    "users:auth",
                    "*:authWithPassword",
                    "*:auth",
                    "POST /api/collections/users/auth-with-password",
                    "/api/collections/users/auth-with-password"
                ],
                &guest
            ),
            Some("*:auth".into())
        );
        assert_eq!(
            pick(
                &[
                    "users:create",
                    "*:create",
                    "POST /api/collections/users/records",
                    "/api/collections/users/records"
                ],
                &guest
            ),
            Some("users:create".into())
        );
        assert_eq!(
            pick(
                &[
                    "users:create",
                    "*:create",
                    "POST /api/collections/users/records",
                    "/api/collections/users/records"
                ],
                &auth
            ),
            Some("/api/".into()),
            "a guest-only rule does not cover authenticated callers"
        );
        assert_eq!(
            pick(&["POST /api/batch", "/api/batch"], &guest),
            Some("POST /api/batch".into())
        );
        assert_eq!(pick(&["GET /api", "/api"], &guest), Some("/api/".into()));
        assert_eq!(pick(&["GET /apix", "/apix"], &guest), None);
    }

    #[test]
    fn excluded_ips_take_addresses_and_subnets() {
        let l = limits(json!([]));
        assert!(l.excludes("10.1.200.3"));
        assert!(!l.excludes("10.2.0.1"));
        assert!(l.excludes("::1"));
        assert!(!l.excludes("127.0.0.1"));
        assert!(!l.excludes("garbage"));
    }

    #[test]
    fn rules_are_validated_like_pocketbase() {
        let errors = validate(Some(&json!({"enabled": true, "rules": [
            {"label": "/api/", "duration": 10, "maxRequests": 300},
            {"label": "/api/", "duration": 1, "maxRequests": 1},
            {"label": "bad label!", "duration": 0, "maxRequests": 1, "audience": "@x"}
        ]})));
        let shown = serde_json::to_value(&errors).unwrap();
        assert_eq!(
            shown["rules"]["2"]["label"]["code"],
            "validation_match_invalid"
        );
        assert_eq!(
            shown["rules"]["2"]["duration"]["code"],
            "validation_required"
        );
        assert_eq!(
            shown["rules"]["2"]["audience"]["code"],
            "validation_in_invalid"
        );
        assert!(
            shown["rules"].get("1").is_none(),
            "overlaps wait for well-formed rules"
        );
        let overlap = validate(Some(&json!({"enabled": true, "rules": [
            {"label": "/api/", "duration": 10, "maxRequests": 300},
            {"label": "/api/", "duration": 1, "maxRequests": 1}
        ]})));
        let shown = serde_json::to_value(&overlap).unwrap();
        assert_eq!(
            shown["rules"]["1"]["label"]["code"],
            "validation_conflicting_rate_limit_rule"
        );
        assert!(shown["rules"].get("0").is_none());
        let empty = validate(Some(&json!({"enabled": true, "rules": []})));
        assert_eq!(
            serde_json::to_value(&empty).unwrap()["rules"]["code"],
            "validation_required"
        );
        assert!(validate(Some(&json!({"enabled": false, "rules": []}))).is_empty());
    }
}
