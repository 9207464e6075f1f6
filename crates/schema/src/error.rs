//! Errors of the schema crate, and PocketBase-shaped validation errors.
//!
//! A validation failure is a tree keyed by field name (and by array position for lists, e.g.
//! `fields.3.name`) whose leaves carry PocketBase's `code`, rendered `message` and optional
//! `params`. The `api` crate puts the tree as-is under the error envelope's `data`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the schema crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The submitted data broke one or more constraints.
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    /// A collection, field or stored value could not be decoded.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// The requested schema change cannot be expressed (e.g. base to view).
    #[error("unsupported schema change: {0}")]
    UnsupportedChange(String),
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Error::Validation(errors)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::InvalidData(err.to_string())
    }
}

/// One validation failure: `{"code","message","params"?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Machine-readable code, e.g. `validation_required`.
    pub code: String,
    /// The English message with parameters substituted, sentence-cased, dot-terminated.
    pub message: String,
    /// Template parameters; omitted from JSON when empty.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
}

impl FieldError {
    /// An error without parameters. The message gets PocketBase's finishing touches.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        FieldError {
            code: code.to_owned(),
            message: finish_message(message.into()),
            params: Map::new(),
        }
    }

    /// Adds one template parameter.
    #[must_use]
    pub fn param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    /// `validation_required` / "Cannot be blank."
    pub fn required() -> Self {
        FieldError::new("validation_required", "Cannot be blank")
    }

    /// `validation_nil` / "Must be blank." (a value that must stay null).
    pub fn must_be_nil() -> Self {
        FieldError::new("validation_nil", "Must be blank")
    }

    /// `validation_match_invalid` / "Must be in a valid format."
    pub fn match_invalid() -> Self {
        FieldError::new("validation_match_invalid", "Must be in a valid format")
    }

    /// `validation_in_invalid` / "Must be a valid value."
    pub fn in_invalid() -> Self {
        FieldError::new("validation_in_invalid", "Must be a valid value")
    }

    /// `validation_not_in_invalid` / "Must not be in list."
    pub fn not_in_invalid() -> Self {
        FieldError::new("validation_not_in_invalid", "Must not be in list")
    }

    /// `validation_length_out_of_range` with `min`/`max` params.
    pub fn length_out_of_range(min: i64, max: i64) -> Self {
        FieldError::new(
            "validation_length_out_of_range",
            format!("The length must be between {min} and {max}"),
        )
        .param("max", max)
        .param("min", min)
    }

    /// `validation_length_too_long` with a `max` param.
    pub fn length_too_long(max: i64) -> Self {
        FieldError::new(
            "validation_length_too_long",
            format!("The length must be no more than {max}"),
        )
        .param("max", max)
    }

    /// `validation_min_greater_equal_than_required` with a numeric `threshold`.
    pub fn min_threshold(threshold: i64) -> Self {
        FieldError::new(
            "validation_min_greater_equal_than_required",
            format!("Must be no less than {threshold}"),
        )
        .param("threshold", threshold)
    }

    /// `validation_max_less_equal_than_required` with a numeric `threshold`.
    pub fn max_threshold(threshold: i64) -> Self {
        FieldError::new(
            "validation_max_less_equal_than_required",
            format!("Must be no greater than {threshold}"),
        )
        .param("threshold", threshold)
    }

    /// `validation_found_via`: names can't contain `_via_` (it is the back-relation separator).
    pub fn found_via() -> Self {
        FieldError::new("validation_found_via", "The value cannot contain \"_via_\"")
    }

    /// `validation_invalid_rule` carrying the rule parser's message.
    pub fn invalid_rule(raw: &str) -> Self {
        FieldError::new(
            "validation_invalid_rule",
            format!("Invalid rule. Raw error: {raw}"),
        )
    }
}

/// PocketBase upper-cases the first letter and terminates messages with a dot.
fn finish_message(mut message: String) -> String {
    if let Some(first) = message.chars().next()
        && first.is_lowercase()
    {
        let upper: String = first.to_uppercase().collect();
        message.replace_range(..first.len_utf8(), &upper);
    }
    if !message.ends_with(['.', '?', '!']) {
        message.push('.');
    }
    message
}

/// One node of a validation tree: a leaf error or a nested map.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ValidationNode {
    /// A failure of this very key.
    Error(FieldError),
    /// Failures inside an object or array (array positions are decimal keys).
    Nested(ValidationErrors),
}

/// A map of field name to failure, serialised in sorted key order like PocketBase's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub BTreeMap<String, ValidationNode>);

impl ValidationErrors {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records a failure of `key`; an existing failure of the same key is kept (first wins,
    /// like PocketBase's validators which stop at a key's first broken rule).
    pub fn add(&mut self, key: impl Into<String>, error: FieldError) {
        self.0
            .entry(key.into())
            .or_insert(ValidationNode::Error(error));
    }

    /// Records failures nested under `key` (ignored when `nested` is empty).
    pub fn add_nested(&mut self, key: impl Into<String>, nested: ValidationErrors) {
        if nested.is_empty() {
            return;
        }
        match self.0.entry(key.into()) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(ValidationNode::Nested(nested));
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                if let ValidationNode::Nested(existing) = slot.get_mut() {
                    for (k, v) in nested.0 {
                        existing.0.entry(k).or_insert(v);
                    }
                }
            }
        }
    }

    /// The leaf error at a dotted path such as `fields.1.name`.
    pub fn get(&self, path: &str) -> Option<&FieldError> {
        let mut node = self;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            match node.0.get(part)? {
                ValidationNode::Error(err) if parts.peek().is_none() => return Some(err),
                ValidationNode::Nested(inner) => node = inner,
                ValidationNode::Error(_) => return None,
            }
        }
        None
    }

    /// `Ok(())` when empty, the tree as an error otherwise.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The tree as a JSON value (for the envelope's `data`).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Map::new()))
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_value())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_sentence_cased_and_dot_terminated() {
        assert_eq!(
            FieldError::new("x", "cannot be blank").message,
            "Cannot be blank."
        );
        assert_eq!(FieldError::new("x", "Really?").message, "Really?");
    }

    #[test]
    fn trees_serialise_like_pocketbase() {
        let mut inner = ValidationErrors::new();
        inner.add("name", FieldError::match_invalid());
        let mut fields = ValidationErrors::new();
        fields.add_nested("1", inner);
        let mut errs = ValidationErrors::new();
        errs.add("name", FieldError::required());
        errs.add_nested("fields", fields);
        errs.add("x", FieldError::length_out_of_range(1, 255));
        assert_eq!(
            serde_json::to_string(&errs).unwrap(),
            r#"{"fields":{"1":{"name":{"code":"validation_match_invalid","message":"Must be in a valid format."}}},"name":{"code":"validation_required","message":"Cannot be blank."},"x":{"code":"validation_length_out_of_range","message":"The length must be between 1 and 255.","params":{"max":255,"min":1}}}"#
        );
        assert_eq!(
            errs.get("fields.1.name").unwrap().code,
            "validation_match_invalid"
        );
        assert!(errs.get("fields.2.name").is_none());
    }
}
