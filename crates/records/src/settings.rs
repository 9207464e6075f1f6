//! A tenant's settings, stored as PocketBase stores them: one JSON document in `_params`
//! under the key `settings`, merged over the defaults when read.

use std::sync::{Arc, LazyLock, Mutex, Weak};

use serde_json::{Value, json};
use warren_schema::text::{WeakSet, hash_of};
use warren_store::Database;
use warren_store::sql::OptionalExtension;

use crate::{Error, Result};

/// The `_params` key of the settings document.
pub const KEY: &str = "settings";

/// The settings of a new tenant.
pub fn defaults() -> Value {
    json!({
        "superuserIPs": [],
        "smtp": {"enabled": false, "port": 587, "host": "smtp.example.com", "username": "", "password": "", "authMethod": "", "tls": false, "localName": ""},
        "backups": {"cron": "", "cronMaxKeep": 3, "s3": {"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "secret": "", "forcePathStyle": false}},
        "s3": {"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "secret": "", "forcePathStyle": false},
        "meta": {"appName": "Acme", "appURL": "http://localhost:8090", "senderName": "Support", "senderAddress": "support@example.com", "hideControls": false},
        "rateLimits": {"rules": [
            {"label": "*:auth", "audience": "", "duration": 3, "maxRequests": 2},
            {"label": "*:create", "audience": "", "duration": 5, "maxRequests": 20},
            {"label": "/api/batch", "audience": "", "duration": 1, "maxRequests": 3},
            {"label": "/api/", "audience": "", "duration": 10, "maxRequests": 300}
        ], "excludedIPs": [], "enabled": false},
        "trustedProxy": {"headers": [], "useLeftmostIP": false},
        "batch": {"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0},
        "logs": {"maxDataSize": 0, "maxDays": 5, "minLevel": 0, "logIP": true, "logAuthId": false}
    })
}

/// Merges `patch` over `base` object by object (arrays and scalars replace).
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// The tenant's settings: the stored document over the defaults.
pub async fn load(db: &Database) -> Result<Value> {
    db.read(read_in).await
}

/// The tenant's settings as [`load`] reads them, shared with every tenant whose stored
/// document is the same (see [`shared`]).
pub async fn load_shared(db: &Database) -> Result<Arc<Value>> {
    db.read(load_shared_in).await
}

/// [`load_in`], shared with every tenant whose stored document is the same: a tenant keeps an
/// `Arc` to the settings, and most tenants keep the defaults.
pub fn load_shared_in(c: &warren_store::sql::Connection) -> Result<Arc<Value>> {
    Ok(shared(read_stored(c)?.as_deref()))
}

/// The stored settings document, if the tenant saved one, as [`load_shared_in`] reads it.
pub fn stored_in(c: &warren_store::sql::Connection) -> Result<Option<String>> {
    read_stored(c)
}

/// The settings of a stored document read earlier by [`stored_in`] (`None`: the defaults),
/// shared as [`load_shared_in`] shares them.
pub fn shared_of(stored: Option<&str>) -> Arc<Value> {
    shared(stored)
}

/// Reads the settings on a connection (the stored document over the defaults).
fn read_in(c: &warren_store::sql::Connection) -> Result<Value> {
    Ok(merged(read_stored(c)?.as_deref()))
}

/// `stored` (the `_params` document, if any) merged over the defaults.
fn merged(stored: Option<&str>) -> Value {
    let mut settings = defaults();
    if let Some(Ok(Value::Object(saved))) = stored.map(serde_json::from_str::<Value>) {
        merge(&mut settings, &Value::Object(saved));
    }
    settings
}

/// Settings documents in use: the defaults, and stored documents by the hash of their text.
#[derive(Default)]
struct Shared {
    /// The defaults, for tenants that stored no document.
    defaults: Weak<Value>,
    held: WeakSet<Value>,
}

static SHARED: LazyLock<Mutex<Shared>> = LazyLock::new(Mutex::default);

/// The settings read from `stored` (the `_params` document, if any): the `Arc` another tenant
/// holds when its stored document is the same (compared whole, not only by hash), else a new
/// one kept for the next.
fn shared(stored: Option<&str>) -> Arc<Value> {
    // Parsed before the lock is taken; documents are compared whole before one is shared, so
    // a poisoned lock is still usable.
    let Some(stored) = stored else {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(defaults) = shared.defaults.upgrade() {
            return defaults;
        }
        let defaults = Arc::new(defaults());
        shared.defaults = Arc::downgrade(&defaults);
        return defaults;
    };
    let key = hash_of(stored);
    let value = merged(Some(stored));
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(same) = shared.held.find(key, |held| *held == value) {
        return same;
    }
    let value = Arc::new(value);
    shared.held.insert(key, &value);
    value
}

/// The stored settings document, if the tenant saved one.
fn read_stored(c: &warren_store::sql::Connection) -> Result<Option<String>> {
    let stored: Option<String> = c
        .prepare_cached("SELECT value FROM _params WHERE id = ?1")?
        // PocketBase writes the document as a BLOB, Warren as TEXT: read either.
        .query_row([KEY], |r| {
            Ok(match r.get_ref(0)? {
                warren_store::sql::ValueRef::Text(bytes)
                | warren_store::sql::ValueRef::Blob(bytes) => {
                    Some(String::from_utf8_lossy(bytes).into_owned())
                }
                _ => None,
            })
        })
        .optional()?
        .flatten();
    Ok(stored)
}

fn write_in(c: &warren_store::sql::Connection, settings: &Value) -> Result<()> {
    c.execute(
        "INSERT INTO _params (id, value, created, updated)
         VALUES (?1, ?2, strftime('%Y-%m-%d %H:%M:%fZ'), strftime('%Y-%m-%d %H:%M:%fZ'))
         ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated = excluded.updated",
        [KEY, settings.to_string().as_str()],
    )?;
    Ok(())
}

/// Stores `settings` whole.
pub async fn save(db: &Database, settings: &Value) -> Result<()> {
    let settings = settings.clone();
    db.write(move |c| write_in(c, &settings)).await
}

/// Why a settings change was refused.
#[derive(Debug)]
pub enum UpdateError {
    /// The merged settings are invalid.
    Invalid(warren_schema::ValidationErrors),
    /// Reading or writing failed.
    Failed(Error),
}

impl From<warren_store::Error> for UpdateError {
    fn from(e: warren_store::Error) -> Self {
        UpdateError::Failed(e.into())
    }
}

/// Merges `patch` over the stored settings, validates and stores the result — read, merge and
/// write in one transaction, so concurrent changes to different settings never undo each
/// other. Returns the new settings.
pub async fn update(db: &Database, patch: Value) -> std::result::Result<Value, UpdateError> {
    db.write(move |c| update_in(c, &patch)).await
}

/// [`update`] on connection `c` (the writer, inside a transaction its caller holds).
pub fn update_in(
    c: &warren_store::sql::Connection,
    patch: &Value,
) -> std::result::Result<Value, UpdateError> {
    let mut next = read_in(c).map_err(UpdateError::Failed)?;
    merge(&mut next, patch);
    validate(&next).map_err(UpdateError::Invalid)?;
    write_in(c, &next).map_err(UpdateError::Failed)?;
    Ok(next)
}

/// [`load`] on connection `c` (inside a transaction, it sees the transaction's writes).
pub fn load_in(c: &warren_store::sql::Connection) -> Result<Value> {
    read_in(c)
}

/// The settings as a superuser sees them: secrets blanked.
pub fn redact(settings: &Value) -> Value {
    let mut out = settings.clone();
    for (parent, key) in [
        ("/smtp", "password"),
        ("/s3", "secret"),
        ("/backups/s3", "secret"),
    ] {
        if let Some(Value::Object(map)) = out.pointer_mut(parent) {
            map.remove(key);
        }
    }
    out
}

/// A settings value by dotted path, for callers that need one option.
pub fn get<'a>(settings: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(settings, |node, key| node.get(key))
}

/// Checks settings before they are stored: the shapes and ranges a tenant depends on.
pub fn validate(settings: &Value) -> std::result::Result<(), warren_schema::ValidationErrors> {
    use warren_schema::ValidationErrors;
    let mut errors = ValidationErrors::new();
    let mut section = |name: &str, checks: &[(&str, Check)]| {
        let mut nested = ValidationErrors::new();
        for (key, check) in checks {
            let value = get(settings, &format!("{name}.{key}"));
            if let Some(error) = check.apply(value) {
                nested.add(*key, error);
            }
        }
        if !nested.is_empty() {
            errors.add_nested(name, nested);
        }
    };
    section(
        "meta",
        &[
            ("appName", Check::Text { min: 1, max: 255 }),
            ("appURL", Check::Url),
            ("senderAddress", Check::Email),
        ],
    );
    // As PocketBase: the batch limits may be 0 (a fallback) only while batches are off.
    let batch_on = get(settings, "batch.enabled") == Some(&Value::Bool(true));
    section(
        "batch",
        &[
            ("maxRequests", Check::Size { required: batch_on }),
            ("timeout", Check::Size { required: batch_on }),
            ("maxBodySize", Check::Size { required: false }),
            ("enabled", Check::Bool),
        ],
    );
    section(
        "logs",
        &[
            ("maxDataSize", Check::Size { required: false }),
            ("maxDays", Check::Size { required: false }),
            ("minLevel", Check::Integer),
            ("logIP", Check::Bool),
            ("logAuthId", Check::Bool),
        ],
    );
    section("smtp", &[("enabled", Check::Bool), ("port", Check::Count)]);
    section("rateLimits", &[("enabled", Check::Bool)]);
    let backups = backups(settings);
    if !backups.is_empty() {
        errors.add_nested("backups", backups);
    }
    for (key, list) in [
        ("superuserIPs", get(settings, "superuserIPs")),
        ("excludedIPs", get(settings, "rateLimits.excludedIPs")),
    ] {
        let mut found = ValidationErrors::new();
        match list {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => found.add_nested(key, addresses(items)),
            Some(_) => found.add(
                key,
                warren_schema::FieldError::new("validation_invalid_value", "Invalid value."),
            ),
        }
        if key == "superuserIPs" {
            for (k, v) in found.0 {
                errors.0.entry(k).or_insert(v);
            }
        } else {
            errors.add_nested("rateLimits", found);
        }
    }
    let rules = crate::rates::validate(get(settings, "rateLimits"));
    if !rules.is_empty() {
        errors.add_nested("rateLimits", rules);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks `backups.cron` with the scheduler's own parser and `backups.cronMaxKeep` (at least 1,
/// and required while a cron is set), as PocketBase does.
fn backups(settings: &Value) -> warren_schema::ValidationErrors {
    use warren_schema::{FieldError, ValidationErrors};
    let mut errors = ValidationErrors::new();
    let cron = match get(settings, "backups.cron") {
        None | Some(Value::Null) => "",
        Some(Value::String(cron)) => cron.as_str(),
        Some(_) => {
            errors.add(
                "cron",
                FieldError::new("validation_invalid_value", "Invalid value."),
            );
            "?"
        }
    };
    if !cron.is_empty()
        && errors.is_empty()
        && let Err(e) = warren_cron::Schedule::parse(cron)
    {
        errors.add(
            "cron",
            FieldError::new("validation_invalid_cron", e.message()),
        );
    }
    match get(settings, "backups.cronMaxKeep") {
        None | Some(Value::Null) if !cron.is_empty() => {
            errors.add("cronMaxKeep", FieldError::required())
        }
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            let keep = n.as_f64().unwrap_or_default();
            if keep == 0.0 && !cron.is_empty() {
                errors.add("cronMaxKeep", FieldError::required());
            } else if keep != 0.0 && keep < 1.0 {
                errors.add("cronMaxKeep", FieldError::min_threshold(1));
            }
        }
        Some(_) => errors.add(
            "cronMaxKeep",
            FieldError::new("validation_invalid_value", "Invalid value."),
        ),
    }
    errors
}

/// Checks a list of IP addresses and CIDR subnets (`superuserIPs`, `excludedIPs`) item by item.
fn addresses(items: &[Value]) -> warren_schema::ValidationErrors {
    use warren_schema::{FieldError, ValidationErrors};
    let mut errors = ValidationErrors::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some("") => errors.add(i.to_string(), FieldError::required()),
            Some(text) if crate::policy::is_ip_or_subnet(text) => {}
            // PocketBase's code, spelling included.
            _ => errors.add(
                i.to_string(),
                FieldError::new(
                    "validation_invlaid_ip_or_subnet",
                    "Invalid IP or CIDR subnet.",
                ),
            ),
        }
    }
    errors
}

/// The largest integer a JSON number holds exactly (PocketBase's upper bound for sizes).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// One setting's expected shape.
#[derive(Debug, Clone, Copy)]
enum Check {
    Text {
        min: usize,
        max: usize,
    },
    Url,
    Email,
    Count,
    /// A whole number from 0; `required` refuses 0 too.
    Size {
        required: bool,
    },
    Integer,
    Bool,
}

impl Check {
    fn apply(self, value: Option<&Value>) -> Option<warren_schema::FieldError> {
        use warren_schema::FieldError;
        let invalid = || FieldError::new("validation_invalid_value", "Invalid value.");
        match (self, value) {
            (Check::Text { min, max }, Some(Value::String(s))) => {
                let n = s.chars().count();
                if n < min {
                    Some(FieldError::required())
                } else if n > max {
                    Some(FieldError::new(
                        "validation_length_too_long",
                        format!("The length must be no more than {max}."),
                    ))
                } else {
                    None
                }
            }
            (Check::Url, Some(Value::String(s)))
                if s.is_empty() || warren_schema::value::is_url(s) =>
            {
                None
            }
            (Check::Url, _) => Some(FieldError::new("validation_is_url", "Must be a valid URL.")),
            (Check::Email, Some(Value::String(s)))
                if s.is_empty() || warren_schema::value::is_email(s) =>
            {
                None
            }
            (Check::Email, _) => Some(FieldError::new(
                "validation_is_email",
                "Must be a valid email address.",
            )),
            (Check::Count, Some(Value::Number(n)))
                if n.as_f64().is_some_and(|f| f >= 0.0 && f.fract() == 0.0) =>
            {
                None
            }
            (Check::Size { required }, Some(Value::Number(n)))
                if n.as_f64().is_some_and(|f| f.fract() == 0.0) =>
            {
                let f = n.as_f64().unwrap_or_default();
                if f < 0.0 {
                    Some(FieldError::min_threshold(0))
                } else if f > MAX_SAFE_INTEGER {
                    Some(FieldError::max_threshold(MAX_SAFE_INTEGER as i64))
                } else if required && f == 0.0 {
                    Some(FieldError::required())
                } else {
                    None
                }
            }
            (Check::Integer, Some(Value::Number(n)))
                if n.as_f64().is_some_and(|f| f.fract() == 0.0) =>
            {
                None
            }
            (Check::Bool, Some(Value::Bool(_))) => None,
            (Check::Text { .. }, _)
            | (Check::Count | Check::Size { .. } | Check::Integer | Check::Bool, _) => {
                Some(invalid())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with a `_params` table holding `stored` as the settings, if any.
    fn params(stored: Option<&str>) -> warren_store::sql::Connection {
        let c = warren_store::sql::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE _params (id TEXT PRIMARY KEY, value JSON)")
            .unwrap();
        if let Some(doc) = stored {
            c.execute(
                "INSERT INTO _params (id, value) VALUES (?1, ?2)",
                [KEY, doc],
            )
            .unwrap();
        }
        c
    }

    #[test]
    fn tenants_that_stored_the_same_settings_share_one_document() {
        let (a, b) = (params(None), params(None));
        let (da, db) = (load_shared_in(&a).unwrap(), load_shared_in(&b).unwrap());
        assert!(Arc::ptr_eq(&da, &db));
        assert_eq!(*da, defaults());

        let doc = r#"{"meta": {"appName": "Shared one"}}"#;
        let (c, d) = (params(Some(doc)), params(Some(doc)));
        let (sc, sd) = (load_shared_in(&c).unwrap(), load_shared_in(&d).unwrap());
        assert!(Arc::ptr_eq(&sc, &sd));
        assert!(!Arc::ptr_eq(&sc, &da));
        assert_eq!(sc["meta"]["appName"], "Shared one");
        assert_eq!(*sc, load_in(&c).unwrap());

        let other = load_shared_in(&params(Some(r#"{"meta": {"appName": "Other"}}"#))).unwrap();
        assert!(!Arc::ptr_eq(&other, &sc));
        assert_eq!(other["meta"]["appName"], "Other");
        // Unreadable documents read as the defaults, as `load_in` reads them.
        let broken = load_shared_in(&params(Some("not json"))).unwrap();
        assert_eq!(*broken, defaults());
    }

    fn errors_of(patch: Value) -> Value {
        let mut settings = defaults();
        merge(&mut settings, &patch);
        match validate(&settings) {
            Ok(()) => Value::Null,
            Err(e) => serde_json::to_value(e).unwrap(),
        }
    }

    #[test]
    fn a_backups_cron_is_checked_with_pocketbases_messages() {
        assert_eq!(
            errors_of(json!({"backups": {"cron": "@daily"}})),
            Value::Null
        );
        assert_eq!(
            errors_of(json!({"backups": {"cron": "*/99 * * * *"}}))["backups"]["cron"],
            json!({"code": "validation_invalid_cron", "message": "Invalid segment step boundary - the step must be between 1 and the 59."})
        );
        assert_eq!(
            errors_of(json!({"backups": {"cron": "a * * * *"}}))["backups"]["cron"]["message"],
            "Strconv.Atoi: parsing \"a\": invalid syntax."
        );
        assert_eq!(
            errors_of(json!({"backups": {"cron": "@daily", "cronMaxKeep": 0}}))["backups"]["cronMaxKeep"]
                ["code"],
            "validation_required"
        );
        assert_eq!(
            errors_of(json!({"backups": {"cron": "", "cronMaxKeep": -1}}))["backups"]["cronMaxKeep"]
                ["code"],
            "validation_min_greater_equal_than_required"
        );
        assert_eq!(
            errors_of(json!({"backups": {"cron": "", "cronMaxKeep": 0}})),
            Value::Null
        );
    }
}
