//! The account checks PocketBase runs on an auth record's body before the record's own fields:
//! `email` and `verified` kept unless the caller manages the account, and the
//! `password`/`passwordConfirm`/`oldPassword` rules. Every failing key is reported together.

use serde_json::{Map, Value};
use warren_schema::error::{FieldError, ValidationErrors};
use warren_schema::record::RecordData;

use crate::Caller;
use crate::catalog::Entry;

/// The account keys of a write body, as PocketBase reads them (any scalar as text).
pub(crate) struct AccountForm {
    /// `password` ("" when absent).
    pub(crate) password: String,
    /// `passwordConfirm` ("" when absent).
    pub(crate) confirm: String,
    /// `oldPassword` ("" when absent).
    pub(crate) old_password: String,
}

impl AccountForm {
    /// Reads the account keys of `body`.
    pub(crate) fn read(body: &Map<String, Value>) -> Self {
        let text = |key: &str| match body.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => String::new(),
        };
        AccountForm {
            password: text("password"),
            confirm: text("passwordConfirm"),
            old_password: text("oldPassword"),
        }
    }

    /// Whether PocketBase asks this body for the current password: an update by a caller
    /// without manage access that sets a new one.
    pub(crate) fn needs_old_password(&self, creating: bool, manager: bool) -> bool {
        !creating && !manager && (!self.password.is_empty() || !self.confirm.is_empty())
    }

    /// The new plain password, when the body sets one.
    pub(crate) fn new_password(&self) -> Option<&str> {
        (!self.password.is_empty()).then_some(self.password.as_str())
    }
}

/// The checks that need no stored hash. `original` is the stored record (`None` on create);
/// `manager` is a superuser or a caller the collection's `manageRule` admits;
/// `check_verified` is false when a create's manage access is decided later.
pub(crate) fn check(
    form: &AccountForm,
    body: &Map<String, Value>,
    original: Option<&RecordData>,
    manager: bool,
    check_verified: bool,
) -> ValidationErrors {
    let creating = original.is_none();
    let mut errors = ValidationErrors::new();
    let stored = |key: &str| original.and_then(|o| o.get(key));
    if !creating
        && !manager
        && let Some(email) = body.get("email")
    {
        let before = stored("email").and_then(Value::as_str).unwrap_or_default();
        if email.as_str() != Some(before) {
            errors.add("email", mismatch());
        }
    }
    if check_verified
        && !manager
        && let Some(verified) = body.get("verified")
    {
        let before = stored("verified").is_some_and(truthy);
        if truthy(verified) != before {
            errors.add("verified", mismatch());
        }
    }
    let (password, confirm, old) = (&form.password, &form.confirm, &form.old_password);
    if password.is_empty() && (creating || !confirm.is_empty() || !old.is_empty()) {
        errors.add("password", FieldError::required());
    }
    if confirm.is_empty() && (creating || !password.is_empty() || !old.is_empty()) {
        errors.add("passwordConfirm", FieldError::required());
    } else if confirm != password {
        errors.add("passwordConfirm", mismatch());
    }
    if form.needs_old_password(creating, manager) && old.is_empty() {
        errors.add("oldPassword", FieldError::required());
    }
    errors
}

/// The error of an `oldPassword` that does not match the stored hash.
pub(crate) fn wrong_old_password() -> FieldError {
    FieldError::new(
        "validation_invalid_old_password",
        "Missing or invalid old password.",
    )
}

/// The error of `verified` set by a caller who may not.
pub(crate) fn mismatch() -> FieldError {
    FieldError::new("validation_values_mismatch", "Values don't match.")
}

/// Whether a create sets `verified` to true (its check waits for the manage rule).
pub(crate) fn sets_verified(body: &Map<String, Value>) -> bool {
    body.get("verified").is_some_and(truthy)
}

/// Whether `caller` could be admitted by the collection's manage rule (not a superuser, who
/// always manages): an authenticated caller and a non-empty rule.
pub(crate) fn may_manage(caller: &Caller, entry: &Entry) -> bool {
    caller.record().is_some()
        && entry
            .rules
            .manage
            .as_ref()
            .is_some_and(|rule| rule.expr().is_some())
}

/// A bool field's value as PocketBase casts it.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(body: Value, original: Option<Value>, manager: bool) -> Value {
        let body = body.as_object().unwrap().clone();
        let original: Option<RecordData> =
            original.map(|o| o.as_object().unwrap().clone().into_iter().collect());
        let form = AccountForm::read(&body);
        let errors = check(&form, &body, original.as_ref(), manager, true).to_value();
        let mut out = Map::new();
        for (k, v) in errors.as_object().unwrap() {
            out.insert(k.clone(), v["code"].clone());
        }
        Value::Object(out)
    }

    #[test]
    fn a_create_needs_a_confirmed_password_and_no_self_verification() {
        assert_eq!(
            codes(
                json!({"password":"1234567","passwordConfirm":"1234560"}),
                None,
                false
            ),
            json!({"passwordConfirm":"validation_values_mismatch"})
        );
        assert_eq!(
            codes(json!({"verified":true}), None, false),
            json!({"password":"validation_required","passwordConfirm":"validation_required","verified":"validation_values_mismatch"})
        );
        assert_eq!(
            codes(
                json!({"password":"a","passwordConfirm":"a","verified":true}),
                None,
                true
            ),
            json!({})
        );
    }

    #[test]
    fn an_update_keeps_email_and_verified_and_asks_for_the_old_password() {
        let stored = json!({"email":"a@b.co","verified":true});
        assert_eq!(
            codes(
                json!({"email":"","verified":false}),
                Some(stored.clone()),
                false
            ),
            json!({"email":"validation_values_mismatch","verified":"validation_values_mismatch"})
        );
        assert_eq!(
            codes(
                json!({"email":"a@b.co","verified":true}),
                Some(stored.clone()),
                false
            ),
            json!({})
        );
        assert_eq!(
            codes(
                json!({"password":"12345678","passwordConfirm":"12345678"}),
                Some(stored.clone()),
                false
            ),
            json!({"oldPassword":"validation_required"})
        );
        assert_eq!(
            codes(
                json!({"password":"","passwordConfirm":"1234560"}),
                Some(stored.clone()),
                true
            ),
            json!({"password":"validation_required","passwordConfirm":"validation_values_mismatch"})
        );
        assert_eq!(codes(json!({"name":"x"}), Some(stored), false), json!({}));
    }
}
