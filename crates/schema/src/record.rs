//! Records as the schema sees them: resolving `field+`/`+field`/`field-`/`field:autogenerate`
//! body keys, preparing a create/update body into validated values and SQL columns, and the
//! record JSON shape (sorted keys, `collectionId`/`collectionName`, hidden fields and emails).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::collection::Collection;
use crate::datetime::DateTime;
use crate::error::{FieldError, ValidationErrors};
use crate::field::{Field, FieldKind, number_value};
use crate::id;
use crate::json_out;
use crate::value::{SqlValue, to_float, to_geo_point, to_unique_strings};

/// A record's values keyed by field name, in their normalised (record JSON) form. The password
/// field holds the stored hash.
pub type RecordData = BTreeMap<String, Value>;

/// Reads a stored row (column name → SQL value) into record data; unknown columns are ignored,
/// missing ones take the field's zero value.
pub fn record_from_row(collection: &Collection, row: &BTreeMap<String, SqlValue>) -> RecordData {
    collection
        .fields
        .iter()
        .map(|f| {
            let v = row
                .get(&f.name)
                .map_or_else(|| f.zero_value(), |v| f.from_sql(v));
            (f.name.clone(), v)
        })
        .collect()
}

/// Relation ids a caller must check for existence.
pub trait RelationChecker {
    /// True when every id exists in the collection `collection_id`.
    fn all_exist(&self, collection_id: &str, ids: &[String]) -> bool;
}

/// A checker that accepts every id (for callers that verify relations elsewhere).
pub struct AcceptAllRelations;

impl RelationChecker for AcceptAllRelations {
    fn all_exist(&self, _: &str, _: &[String]) -> bool {
        true
    }
}

/// How a body is prepared.
pub struct PrepareOptions<'a> {
    /// Non-superusers can't submit hidden fields (except `password` of auth collections);
    /// those keys are dropped.
    pub is_superuser: bool,
    /// Stored names of files uploaded with the request, keyed by the body key they came with
    /// (`attachments`, `attachments+`, `+attachments`). The `files` crate generates the names.
    pub uploads: BTreeMap<String, Vec<String>>,
    /// Verifies relation ids.
    pub relations: &'a dyn RelationChecker,
}

impl Default for PrepareOptions<'_> {
    fn default() -> Self {
        PrepareOptions {
            is_superuser: false,
            uploads: BTreeMap::new(),
            relations: &AcceptAllRelations,
        }
    }
}

/// A validated record ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRecord {
    /// The full record after the change, normalised.
    pub data: RecordData,
    /// Every column with its SQL value, in field order (the password column holds the old
    /// hash, or `""`, until [`PreparedRecord::set_password_hash`] is called).
    pub columns: Vec<(String, SqlValue)>,
    /// Whether each column's value changed (every one on create), in the order of `columns`;
    /// read through [`PreparedRecord::changed`].
    changed: Vec<bool>,
    /// A new plain password to hash: (field name, plain text). The `auth` crate hashes it and
    /// calls [`PreparedRecord::set_password_hash`].
    pub new_password: Option<(String, String)>,
    /// Stored file names no longer referenced, to delete after a successful save.
    pub removed_files: Vec<String>,
}

impl PreparedRecord {
    /// Replaces the password column (and data) with the hash of [`PreparedRecord::new_password`].
    pub fn set_password_hash(&mut self, hash: &str) {
        if let Some((name, _)) = &self.new_password {
            for (col, v) in &mut self.columns {
                if col == name {
                    *v = SqlValue::Text(hash.to_owned());
                }
            }
            self.data
                .insert(name.clone(), Value::String(hash.to_owned()));
        }
    }

    /// Whether field `name` changed (every field does on create).
    pub fn changed(&self, name: &str) -> bool {
        self.columns
            .iter()
            .zip(&self.changed)
            .any(|((column, _), changed)| column == name && *changed)
    }

    /// The record id.
    pub fn id(&self) -> &str {
        self.data
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

fn split_modifier(key: &str) -> (&str, Option<&'static str>) {
    if let Some(name) = key.strip_suffix(":autogenerate") {
        return (name, Some(":autogenerate"));
    }
    if let Some(name) = key.strip_prefix('+') {
        return (name, Some("+prepend"));
    }
    if let Some(name) = key.strip_suffix('+') {
        return (name, Some("append+"));
    }
    if let Some(name) = key.strip_suffix('-') {
        return (name, Some("remove-"));
    }
    (key, None)
}

fn list_of(v: &Value) -> Vec<String> {
    to_unique_strings(v)
}

/// Resolves modifier keys against the current values: `n+`/`n-` add/subtract for numbers;
/// `x+`, `+x`, `x-` append/prepend/remove for select, relation and file fields;
/// `t:autogenerate` appends a generated suffix. Keys apply shortest first, then by name, like
/// PocketBase. Plain keys and unknown fields pass through; modifier keys of other types are
/// dropped. The result has plain field names only.
pub fn resolve_modifiers(
    collection: &Collection,
    body: &Map<String, Value>,
    current: &RecordData,
) -> Map<String, Value> {
    resolve(collection, body.iter().collect(), current)
        .into_iter()
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// Body values by plain field name once modifiers are applied: borrowed from the body where
/// its key had no modifier (most keys of most bodies), made where one applied.
type Resolved<'b> = BTreeMap<Cow<'b, str>, Cow<'b, Value>>;

/// [`resolve_modifiers`] over borrowed keys and values, copying only what a modifier makes.
fn resolve<'b>(
    collection: &Collection,
    mut pairs: Vec<(&'b String, &'b Value)>,
    current: &RecordData,
) -> Resolved<'b> {
    pairs.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    let mut out = Resolved::new();
    for (key, raw) in pairs {
        let (name, modifier) = split_modifier(key);
        let Some(modifier) = modifier else {
            out.insert(Cow::Borrowed(key.as_str()), Cow::Borrowed(raw));
            continue;
        };
        let Some(field) = collection.field(name) else {
            continue;
        };
        let base = out
            .get(name)
            .map(|v| field.normalize(v))
            .or_else(|| current.get(name).cloned())
            .unwrap_or_else(|| field.zero_value());
        let resolved = match (&field.kind, modifier) {
            (FieldKind::Number(_), "append+") => number_value(to_float(&base) + to_float(raw)),
            (FieldKind::Number(_), "remove-") => number_value(to_float(&base) - to_float(raw)),
            (FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_), m) => {
                let existing = list_of(&base);
                let given = list_of(raw);
                let list: Vec<String> = match m {
                    "append+" => existing.into_iter().chain(given).collect(),
                    "+prepend" => given.into_iter().chain(existing).collect(),
                    "remove-" => existing
                        .into_iter()
                        .filter(|v| !given.contains(v))
                        .collect(),
                    _ => continue,
                };
                Value::Array(list.into_iter().map(Value::String).collect())
            }
            (FieldKind::Text(o), ":autogenerate") if !o.autogenerate_pattern.is_empty() => {
                let prefix = crate::value::to_string_value(raw);
                let suffix = id::generate_from_pattern(&o.autogenerate_pattern).unwrap_or_default();
                Value::String(prefix + &suffix)
            }
            _ => continue,
        };
        out.insert(Cow::Owned(name.to_owned()), Cow::Owned(resolved));
    }
    out
}

/// Prepares a create (`existing = None`) or update body: drops keys the caller can't set
/// (autodates, hidden fields for non-superusers, unknown keys), resolves modifiers, merges file
/// uploads, normalises and merges over the existing record (or the zero record), fills
/// autogenerated text (e.g. `id`, `tokenKey`) and autodates, then validates every field and
/// returns all errors together. Auth pseudo-fields (`passwordConfirm`, `oldPassword`) and
/// permission checks on `email`/`verified` are the records/auth engine's concern; the
/// password field's plain value comes back in [`PreparedRecord::new_password`].
pub fn prepare_record(
    collection: &Collection,
    body: &Map<String, Value>,
    existing: Option<&RecordData>,
    opts: &PrepareOptions<'_>,
) -> Result<PreparedRecord, ValidationErrors> {
    let is_create = existing.is_none();
    // A create starts from nothing: every read of `current` below falls back to the field's
    // zero value, and every field gets one in `data` (see the end of the loop).
    let nothing = RecordData::new();
    let current = existing.unwrap_or(&nothing);

    let mut resolved = resolve(collection, settable(collection, body, opts), current);
    add_uploads(collection, &mut resolved, current, opts);

    let mut errors = ValidationErrors::new();
    let mut data = current.clone();
    let mut new_password = None;
    let now = DateTime::now().format();
    for field in &collection.fields {
        let submitted = resolved.get(field.name.as_str()).map(AsRef::as_ref);
        match &field.kind {
            FieldKind::Password(_) => {
                check_password(field, submitted, &data, &mut new_password, &mut errors);
                if is_create {
                    data.insert(field.name.clone(), field.zero_value());
                }
                continue;
            }
            FieldKind::Autodate(o) => {
                if (is_create && o.on_create) || (!is_create && o.on_update) {
                    data.insert(field.name.clone(), Value::String(now.clone()));
                } else if is_create {
                    data.insert(field.name.clone(), field.zero_value());
                }
                continue;
            }
            _ => {}
        }
        let mut value = match submitted {
            Some(raw) => field.normalize(raw),
            None => data
                .get(&field.name)
                .cloned()
                .unwrap_or_else(|| field.zero_value()),
        };
        if let FieldKind::Text(o) = &field.kind
            && is_create
            && value.as_str().is_some_and(str::is_empty)
            && !o.autogenerate_pattern.is_empty()
        {
            value = Value::String(
                id::generate_from_pattern(&o.autogenerate_pattern).unwrap_or_default(),
            );
        }
        if field.is_primary_key()
            && !is_create
            && submitted.is_some()
            && current.get(&field.name) != Some(&value)
        {
            errors.add(
                &field.name,
                FieldError::new(
                    "validation_pk_change",
                    "The record primary key cannot be changed",
                ),
            );
        }
        if let Err(e) = field.validate_value(&value) {
            errors.add(&field.name, e);
        } else if let Err(e) = check_references(field, &value, current, opts) {
            errors.add(&field.name, e);
        }
        data.insert(field.name.clone(), value);
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(prepared(collection, data, current, is_create, new_password))
}

/// The keys of `body` the caller may set: known fields (modifiers included) other than
/// autodates, and hidden ones only for superusers or an auth collection's password.
fn settable<'b>(
    collection: &Collection,
    body: &'b Map<String, Value>,
    opts: &PrepareOptions<'_>,
) -> Vec<(&'b String, &'b Value)> {
    let allowed = |name: &str| -> bool {
        let Some(f) = collection.field(name) else {
            return false;
        };
        if matches!(f.kind, FieldKind::Autodate(_)) {
            return false;
        }
        let auth_password = collection.is_auth() && matches!(f.kind, FieldKind::Password(_));
        opts.is_superuser || !f.hidden || auth_password
    };
    body.iter()
        .filter(|(k, _)| allowed(split_modifier(k).0))
        .collect()
}

/// Uploaded files join the submitted (kept) names, honouring the key's modifier.
fn add_uploads(
    collection: &Collection,
    resolved: &mut Resolved<'_>,
    current: &RecordData,
    opts: &PrepareOptions<'_>,
) {
    for (key, names) in &opts.uploads {
        let (name, modifier) = split_modifier(key);
        let Some(field) = collection.field(name) else {
            continue;
        };
        if !matches!(field.kind, FieldKind::File(_)) {
            continue;
        }
        let base = resolved
            .get(name)
            .map(|v| list_of(v))
            .unwrap_or_else(|| list_of(current.get(name).unwrap_or(&Value::Null)));
        let list: Vec<String> = match modifier {
            Some("+prepend") => names.iter().cloned().chain(base).collect(),
            Some(_) => base.into_iter().chain(names.iter().cloned()).collect(),
            None if field.is_multiple() => base.into_iter().chain(names.iter().cloned()).collect(),
            None => names.clone(),
        };
        resolved.insert(
            Cow::Owned(name.to_owned()),
            Cow::Owned(Value::Array(list.into_iter().map(Value::String).collect())),
        );
    }
}

/// A submitted plain password is validated and handed back in `new_password`; a required
/// password needs one unless a hash is stored already.
fn check_password(
    field: &Field,
    submitted: Option<&Value>,
    data: &RecordData,
    new_password: &mut Option<(String, String)>,
    errors: &mut ValidationErrors,
) {
    if let Some(raw) = submitted {
        let plain = crate::value::to_string_value(raw);
        if !plain.is_empty() {
            if let Err(e) = field.validate_value(&Value::String(plain.clone())) {
                errors.add(&field.name, e);
            }
            *new_password = Some((field.name.clone(), plain));
        }
    }
    let has_hash = data
        .get(&field.name)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if field.required && !has_hash && new_password.is_none() {
        errors.add(&field.name, FieldError::required());
    }
}

/// The validated record as columns to write, with what changed and which files it drops.
fn prepared(
    collection: &Collection,
    data: RecordData,
    current: &RecordData,
    is_create: bool,
    new_password: Option<(String, String)>,
) -> PreparedRecord {
    let mut removed_files = Vec::new();
    let mut changed = Vec::with_capacity(collection.fields.len());
    let mut columns = Vec::with_capacity(collection.fields.len());
    for field in &collection.fields {
        let zero;
        let value = match data.get(&field.name) {
            Some(value) => value,
            None => {
                zero = field.zero_value();
                &zero
            }
        };
        let old = current.get(&field.name);
        let is_new_password = new_password
            .as_ref()
            .is_some_and(|(name, _)| *name == field.name);
        changed.push(is_create || is_new_password || old != Some(value));
        if matches!(field.kind, FieldKind::File(_))
            && let Some(old) = old
        {
            let kept = list_of(value);
            removed_files.extend(list_of(old).into_iter().filter(|f| !kept.contains(f)));
        }
        columns.push((field.name.clone(), field.to_sql(value)));
    }
    PreparedRecord {
        data,
        columns,
        changed,
        new_password,
        removed_files,
    }
}

/// File names must be stored already or uploaded now; relation ids must exist.
fn check_references(
    field: &Field,
    value: &Value,
    current: &RecordData,
    opts: &PrepareOptions<'_>,
) -> Result<(), FieldError> {
    match &field.kind {
        FieldKind::File(_) => {
            let stored = list_of(current.get(&field.name).unwrap_or(&Value::Null));
            let uploaded: Vec<&String> = opts
                .uploads
                .iter()
                .filter(|(k, _)| split_modifier(k).0 == field.name)
                .flat_map(|(_, v)| v)
                .collect();
            let invalid: Vec<String> = list_of(value)
                .into_iter()
                .filter(|n| !stored.contains(n) && !uploaded.contains(&n))
                .collect();
            if invalid.is_empty() {
                Ok(())
            } else {
                Err(FieldError::new(
                    "validation_invalid_file",
                    format!("Invalid new files: [{}]", invalid.join(" ")),
                )
                .param("invalidFiles", invalid))
            }
        }
        FieldKind::Relation(o) => {
            let ids = list_of(value);
            if ids.is_empty() || opts.relations.all_exist(&o.collection_id, &ids) {
                Ok(())
            } else {
                Err(FieldError::new(
                    "validation_missing_rel_records",
                    "Failed to find all relation records with the provided ids",
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Who is looking at a record, for [`RecordJson::build`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Visibility {
    /// Output hidden fields (superusers). `password`/`tokenKey` are never output.
    pub show_hidden: bool,
    /// Output `email` even when `emailVisibility` is false (superuser, the record itself, or
    /// a caller satisfying `manageRule`).
    pub show_email: bool,
}

/// Whether `who` sees the email of an auth record with `data`.
fn email_visible(data: &RecordData, who: Visibility) -> bool {
    who.show_email
        || data
            .get("emailVisibility")
            .is_some_and(|v| v == &Value::Bool(true))
}

/// Whether `field` stays out of a record's JSON for `who`: passwords and token keys always,
/// hidden fields unless shown, an auth record's email unless visible.
fn hidden(collection: &Collection, field: &Field, who: Visibility, email_visible: bool) -> bool {
    let auth = collection.is_auth();
    matches!(field.kind, FieldKind::Password(_))
        || (auth && field.name == "tokenKey")
        || (field.hidden && !who.show_hidden)
        || (auth && field.name == "email" && !email_visible)
}

/// A record's JSON object: alphabetically sorted keys, geoPoints as `{"lon","lat"}`, and an
/// optional `expand` map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordJson {
    entries: BTreeMap<String, Value>,
    geo_keys: BTreeSet<String>,
    expand: Option<BTreeMap<String, Expanded>>,
}

/// An expanded relation: one record or a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Expanded {
    /// A single relation.
    One(Box<RecordJson>),
    /// A multiple relation.
    Many(Vec<RecordJson>),
}

impl RecordJson {
    /// Builds the JSON of a record from its data.
    pub fn build(collection: &Collection, data: &RecordData, who: Visibility) -> Self {
        let mut entries = BTreeMap::new();
        let mut geo_keys = BTreeSet::new();
        let email_visible = email_visible(data, who);
        for field in &collection.fields {
            if hidden(collection, field, who, email_visible) {
                continue;
            }
            let value = data
                .get(&field.name)
                .cloned()
                .unwrap_or_else(|| field.zero_value());
            if matches!(field.kind, FieldKind::GeoPoint) {
                geo_keys.insert(field.name.clone());
            }
            entries.insert(field.name.clone(), value);
        }
        Self::finish(collection, entries, geo_keys)
    }

    /// [`RecordJson::build`] from data the caller no longer needs: its map becomes the JSON's,
    /// hidden fields taken out, instead of every visible name and value being copied.
    pub fn build_owned(collection: &Collection, mut data: RecordData, who: Visibility) -> Self {
        let mut geo_keys = BTreeSet::new();
        let email_visible = email_visible(&data, who);
        let mut shown = 0;
        for field in &collection.fields {
            if hidden(collection, field, who, email_visible) {
                data.remove(&field.name);
                continue;
            }
            shown += 1;
            if matches!(field.kind, FieldKind::GeoPoint) {
                geo_keys.insert(field.name.clone());
            }
            if !data.contains_key(&field.name) {
                data.insert(field.name.clone(), field.zero_value());
            }
        }
        if data.len() != shown {
            // Keys that name no field are not part of the JSON (as with `build`).
            data.retain(|key, _| collection.fields.iter().any(|f| &f.name == key));
        }
        Self::finish(collection, data, geo_keys)
    }

    fn finish(
        collection: &Collection,
        mut entries: BTreeMap<String, Value>,
        geo_keys: BTreeSet<String>,
    ) -> Self {
        entries.insert("collectionId".into(), Value::String(collection.id.clone()));
        entries.insert(
            "collectionName".into(),
            Value::String(collection.name.clone()),
        );
        RecordJson {
            entries,
            geo_keys,
            expand: None,
        }
    }

    /// A value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// Sets or replaces a key (e.g. computed values of view records).
    pub fn insert(&mut self, key: &str, value: Value) {
        self.entries.insert(key.to_owned(), value);
    }

    /// Removes a key.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.entries.remove(key)
    }

    /// Sets the `expand` object (an empty map still prints `"expand":{}`).
    pub fn set_expand(&mut self, expand: BTreeMap<String, Expanded>) {
        self.expand = Some(expand);
    }

    /// The record as a JSON value (key order then depends on serde_json's map).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// [`RecordJson::to_value`] for a record no longer needed: its keys and values move into
    /// the JSON instead of being copied, unless geoPoints or `expand` need writing out.
    pub fn into_value(self) -> Value {
        if self.geo_keys.is_empty() && self.expand.is_none() {
            return Value::Object(self.entries.into_iter().collect());
        }
        self.to_value()
    }
}

/// One member of a record's JSON object, in the order they are written.
enum Member<'a> {
    /// A field (or `collectionId`, `collectionName`) and its value.
    Value(&'a str, &'a Value),
    /// A geoPoint field, written as `{"lon","lat"}`.
    Geo(&'a str, &'a Value),
    /// The `expand` object.
    Expand(&'a BTreeMap<String, Expanded>),
}

impl RecordJson {
    /// The object's members in key order, `expand` at its place among the sorted keys.
    fn members(&self) -> impl Iterator<Item = Member<'_>> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let before = self
            .entries
            .range::<str, _>((Unbounded, Included("expand")));
        let after = self
            .entries
            .range::<str, _>((Excluded("expand"), Unbounded));
        before
            .map(|(k, v)| self.member(k, v))
            .chain(self.expand.as_ref().map(Member::Expand))
            .chain(after.map(|(k, v)| self.member(k, v)))
    }

    /// The member for the entry `k`: a value, or a geoPoint.
    fn member<'a>(&'a self, k: &'a str, v: &'a Value) -> Member<'a> {
        if !self.geo_keys.is_empty() && self.geo_keys.contains(k) {
            Member::Geo(k, v)
        } else {
            Member::Value(k, v)
        }
    }

    /// The record's JSON, as its [`Serialize`] implementation writes it through `serde_json`
    /// (the same bytes), written straight into `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, member) in self.members().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match member {
                Member::Value(k, v) => {
                    json_out::write_key(out, k);
                    json_out::write_value(out, v);
                }
                Member::Geo(k, v) => {
                    json_out::write_key(out, k);
                    json_out::write_serde(out, &Geo(v));
                }
                Member::Expand(e) => {
                    json_out::write_key(out, "expand");
                    write_expand(out, e);
                }
            }
        }
        out.push(b'}');
    }
}

/// An `expand` object as [`RecordJson::write_json`] writes it.
fn write_expand(out: &mut Vec<u8>, expand: &BTreeMap<String, Expanded>) {
    out.push(b'{');
    for (i, (key, expanded)) in expand.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_out::write_key(out, key);
        match expanded {
            Expanded::One(record) => record.write_json(out),
            Expanded::Many(records) => {
                out.push(b'[');
                for (j, record) in records.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    record.write_json(out);
                }
                out.push(b']');
            }
        }
    }
    out.push(b'}');
}

struct Geo<'a>(&'a Value);

impl Serialize for Geo<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (lon, lat) = to_geo_point(self.0);
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("lon", &number_value(lon))?;
        m.serialize_entry("lat", &number_value(lat))?;
        m.end()
    }
}

impl Serialize for RecordJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for member in self.members() {
            match member {
                Member::Value(k, v) => m.serialize_entry(k, v)?,
                Member::Geo(k, v) => m.serialize_entry(k, &Geo(v))?,
                Member::Expand(e) => m.serialize_entry("expand", e)?,
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::CollectionType;
    use crate::field::*;
    use serde_json::json;

    fn kinds() -> Collection {
        let v = fixture_collection();
        Collection::from_value(&v).unwrap()
    }

    fn fixture_collection() -> Value {
        serde_json::from_str(include_str!(
            "../tests/fixtures/pocketbase-kinds-collection.json"
        ))
        .unwrap()
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn invalid_bodies_fail_with_pocketbase_errors() {
        let captured: Value = serde_json::from_str(include_str!(
            "../tests/fixtures/pocketbase-kinds-records.json"
        ))
        .unwrap();
        let c = kinds();
        let opts = PrepareOptions {
            is_superuser: true,
            ..PrepareOptions::default()
        };
        let cases = [
            (
                "invalid",
                json!({"t":"AB","ed":"<p>too long text</p>","n":1.5,"b":false,"em":"nope","u":"x","d":"2023-05-05","s":["a","z"],"j":{"k":"long value"},"g":{"lat":100,"lon":200},"r":["a"]}),
            ),
            (
                "bounds",
                json!({"t":"abcdefg","n":20,"b":true,"em":"a@y.com","u":"https://bad.com/x","d":"2025-05-05","s":["a","b","c"],"g":{"lat":1,"lon":-200},"r":["a","b","c","d"]}),
            ),
            ("low", json!({"t":"abc1","n":1,"b":true,"d":"2023-01-01"})),
        ];
        for (name, input) in cases {
            let errs = prepare_record(&c, &body(input), None, &opts).unwrap_err();
            assert_eq!(errs.to_value(), captured[name]["data"], "{name}");
        }
    }

    #[test]
    fn valid_bodies_produce_pocketbase_record_json() {
        let captured: Value = serde_json::from_str(include_str!(
            "../tests/fixtures/pocketbase-kinds-records.json"
        ))
        .unwrap();
        let c = kinds();
        let input = json!({"t":"abc","n":"7","b":"1","d":"2024-02-03T04:05:06+02:00","s":"b","j":"[1]","g":"{\"lon\":1.5}","em":"q@x.com","u":"https://ok.com"});
        let prepared = prepare_record(&c, &body(input), None, &PrepareOptions::default()).unwrap();
        let mut expected = captured["ok"].clone();
        expected["id"] = json!(prepared.id());
        let out = RecordJson::build(&c, &prepared.data, Visibility::default());
        assert_eq!(out.to_value(), expected);
        let text = serde_json::to_string(&out).unwrap();
        assert!(text.contains(r#""g":{"lon":1.5,"lat":0}"#));
        assert!(text.starts_with(r#"{"b":true,"collectionId":"#));
        assert_eq!(prepared.id().len(), 15);
    }

    fn posts() -> Collection {
        let mut c = Collection::new(CollectionType::Base, "posts");
        c.fields.push(Field::new(
            "views",
            FieldKind::Number(NumberOptions::default()),
        ));
        c.fields.push(Field::new(
            "tags",
            FieldKind::Select(SelectOptions {
                max_select: 5,
                values: ["a", "b", "c", "d"].map(String::from).to_vec(),
            }),
        ));
        c.fields.push(Field::new(
            "files",
            FieldKind::File(FileOptions {
                max_select: 5,
                ..Default::default()
            }),
        ));
        c.fields.push(Field::new(
            "code",
            FieldKind::Text(TextOptions {
                autogenerate_pattern: "[0-9]{4}".into(),
                ..Default::default()
            }),
        ));
        c.fields
            .push(Field::new("secret", FieldKind::Text(TextOptions::default())).hidden());
        c.fields.push(Field::new("geo", FieldKind::GeoPoint));
        c.fields.push(Field::autodate("created", false));
        c.fields.push(Field::autodate("updated", true));
        c
    }

    #[test]
    fn modifiers_apply_to_the_current_value() {
        let c = posts();
        let mut current: RecordData = c
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.zero_value()))
            .collect();
        current.insert("views".into(), json!(2));
        current.insert("tags".into(), json!(["a", "b", "d"]));
        let out = resolve_modifiers(
            &c,
            &body(
                json!({"views+": 5, "tags-": "d", "+tags": "c", "code:autogenerate": "x-", "unknown+": 1}),
            ),
            &current,
        );
        assert_eq!(out["views"], json!(7));
        assert_eq!(out["tags"], json!(["c", "a", "b"]));
        assert!(out["code"].as_str().unwrap().starts_with("x-"));
        assert_eq!(out["code"].as_str().unwrap().len(), 6);
        assert!(!out.contains_key("unknown"));
        let out = resolve_modifiers(&c, &body(json!({"views-": "abc"})), &current);
        assert_eq!(out["views"], json!(2));
    }

    #[test]
    fn updates_merge_over_the_stored_record() {
        let c = posts();
        let created = prepare_record(
            &c,
            &body(json!({"views": 1, "secret": "s"})),
            None,
            &PrepareOptions::default(),
        )
        .unwrap();
        assert_eq!(
            created.data["secret"],
            json!(""),
            "hidden fields are dropped for non-superusers"
        );
        assert_eq!(created.data["code"].as_str().unwrap().len(), 4);
        assert!(!created.data["created"].as_str().unwrap().is_empty());
        let updated = prepare_record(
            &c,
            &body(json!({"views+": 2, "created": "2020-01-01"})),
            Some(&created.data),
            &PrepareOptions::default(),
        )
        .unwrap();
        assert_eq!(updated.data["views"], json!(3));
        assert_eq!(updated.data["created"], created.data["created"]);
        assert_eq!(updated.data["code"], created.data["code"]);
        assert!(updated.changed("views"));
        assert!(!updated.changed("tags"));
        let err = prepare_record(
            &c,
            &body(json!({"id": "other"})),
            Some(&created.data),
            &PrepareOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.get("id").unwrap().code, "validation_pk_change");
    }

    #[test]
    fn files_must_be_stored_or_uploaded() {
        let c = posts();
        let mut uploads = BTreeMap::new();
        uploads.insert("files".to_owned(), vec!["new_abc.png".to_owned()]);
        let opts = PrepareOptions {
            uploads,
            ..PrepareOptions::default()
        };
        let created = prepare_record(&c, &body(json!({})), None, &opts).unwrap();
        assert_eq!(created.data["files"], json!(["new_abc.png"]));
        let err = prepare_record(
            &c,
            &body(json!({"files": ["nope.txt"]})),
            Some(&created.data),
            &PrepareOptions::default(),
        )
        .unwrap_err();
        let e = err.get("files").unwrap();
        assert_eq!(
            serde_json::to_string(e).unwrap(),
            r#"{"code":"validation_invalid_file","message":"Invalid new files: [nope.txt].","params":{"invalidFiles":["nope.txt"]}}"#
        );
        let cleared = prepare_record(
            &c,
            &body(json!({"files-": "new_abc.png"})),
            Some(&created.data),
            &PrepareOptions::default(),
        )
        .unwrap();
        assert_eq!(cleared.removed_files, vec!["new_abc.png".to_owned()]);
    }

    struct NoRecords;
    impl RelationChecker for NoRecords {
        fn all_exist(&self, _: &str, _: &[String]) -> bool {
            false
        }
    }

    #[test]
    fn missing_relations_are_reported() {
        let mut c = posts();
        c.fields.push(Field::new(
            "author",
            FieldKind::Relation(RelationOptions {
                collection_id: "_pb_users_auth_".into(),
                ..Default::default()
            }),
        ));
        let opts = PrepareOptions {
            relations: &NoRecords,
            ..PrepareOptions::default()
        };
        let err = prepare_record(&c, &body(json!({"author": "abc"})), None, &opts).unwrap_err();
        assert_eq!(
            err.get("author").unwrap().code,
            "validation_missing_rel_records"
        );
    }

    #[test]
    fn auth_records_hide_secrets_and_emails() {
        let users = crate::system::system_collections().pop().unwrap();
        let opts = PrepareOptions::default();
        let err = prepare_record(
            &users,
            &body(json!({"email": "a@b.co", "password": "short"})),
            None,
            &opts,
        )
        .unwrap_err();
        assert_eq!(
            err.get("password").unwrap().message,
            "Must be at least 8 character(s)."
        );
        let mut rec = prepare_record(
            &users,
            &body(json!({"email": "a@b.co", "password": "long enough"})),
            None,
            &opts,
        )
        .unwrap();
        assert_eq!(rec.new_password.as_ref().unwrap().1, "long enough");
        assert_eq!(rec.data["tokenKey"].as_str().unwrap().len(), 50);
        rec.set_password_hash("$2a$10$hash");
        assert!(
            rec.columns
                .contains(&("password".into(), SqlValue::Text("$2a$10$hash".into())))
        );
        let hidden = RecordJson::build(&users, &rec.data, Visibility::default()).to_value();
        assert!(hidden.get("email").is_none());
        assert!(hidden.get("password").is_none());
        assert!(hidden.get("tokenKey").is_none());
        let shown = RecordJson::build(
            &users,
            &rec.data,
            Visibility {
                show_hidden: true,
                show_email: true,
            },
        )
        .to_value();
        assert_eq!(shown["email"], json!("a@b.co"));
        assert!(shown.get("tokenKey").is_none());
        assert_eq!(shown["collectionName"], json!("users"));
    }

    #[test]
    fn an_update_flags_exactly_the_fields_it_changes() {
        let users = crate::system::system_collections().pop().unwrap();
        let opts = PrepareOptions::default();
        let prepare = |body_json: Value, existing: Option<&RecordData>| {
            prepare_record(&users, &body(body_json), existing, &opts).unwrap()
        };
        let mut created = prepare(json!({"email": "a@b.co", "password": "long enough"}), None);
        assert!(users.fields.iter().all(|f| created.changed(&f.name)));
        created.set_password_hash("$2a$10$hash");
        let mut stored = created.data;
        // Stored earlier than this test's updates, which stamp `updated` with the time.
        stored.insert("updated".into(), json!("2020-01-01 00:00:00.000Z"));

        let email = prepare(json!({"email": "c@d.co"}), Some(&stored));
        assert!(email.changed("email"));
        assert!(!email.changed("password") && !email.changed("verified"));

        let same = prepare(json!({"email": "a@b.co"}), Some(&stored));
        let changed: Vec<&str> = (users.fields.iter())
            .map(|f| f.name.as_str())
            .filter(|name| same.changed(name))
            .collect();
        assert_eq!(changed, ["updated"], "only the autodate moves");

        // A new password counts as a change before it is hashed (its column still holds the
        // stored hash then).
        let password = prepare(json!({"password": "another one"}), Some(&stored));
        assert!(password.changed("password"));
        assert!(!password.changed("email"));
        assert!(!password.changed("no such field"));
    }

    #[test]
    fn a_record_built_from_owned_data_is_the_record_built_from_borrowed() {
        let users = crate::system::system_collections().pop().unwrap();
        let mut kinds = kinds();
        kinds.fields[1].hidden = true;
        let user = json!({"id": "u1", "email": "a@b.co", "emailVisibility": false,
            "password": "$2a$10$hash", "tokenKey": "secret", "verified": true, "name": "A"});
        let visible = json!({"id": "u2", "email": "b@b.co", "emailVisibility": true,
            "tokenKey": "secret", "stray": 1});
        let kind = json!({"id": "k1", "t": "abc", "n": 3, "g": {"lon": 1, "lat": 2},
            "stray": "not a field"});
        let cases = [
            (&users, user),
            (&users, visible),
            (&kinds, kind),
            (&kinds, json!({})),
        ];
        for (collection, data) in cases {
            let data: RecordData = body(data).into_iter().collect();
            for (show_hidden, show_email) in [(false, false), (false, true), (true, true)] {
                let who = Visibility {
                    show_hidden,
                    show_email,
                };
                let borrowed = RecordJson::build(collection, &data, who);
                let owned = RecordJson::build_owned(collection, data.clone(), who);
                assert_eq!(owned, borrowed, "{} {who:?}", collection.name);
                assert_eq!(owned.to_value(), borrowed.to_value());
                // Moved into a value, it is the value written from it: plain, with geoPoints,
                // with `expand`.
                assert_eq!(owned.clone().into_value(), borrowed.to_value());
                let mut expanded = owned;
                let nested = RecordJson::build(collection, &data, who);
                expanded.set_expand(BTreeMap::from([(
                    "owner".to_string(),
                    Expanded::One(Box::new(nested)),
                )]));
                assert_eq!(expanded.clone().into_value(), expanded.to_value());
                assert!(expanded.into_value()["expand"]["owner"].is_object());
            }
        }
    }

    #[test]
    fn a_record_written_straight_is_the_record_serde_json_writes() {
        let users = crate::system::system_collections().pop().unwrap();
        let kinds = kinds();
        let tricky = json!({"id": "k\"1", "t": "line\nbreak \"quoted\" back\\slash \u{1}",
            "ed": "<p>ünïcödé ✓ 🦀</p>", "n": -1.25, "b": true, "em": "a@b.co",
            "u": "https://x.test/?a=1&b=\"2\"", "d": "2024-02-29 13:45:30.123Z",
            "s": "one", "j": {"k\"ey": ["v\u{7}", 1, null, {"z": false}]},
            "g": {"lon": 1.5, "lat": -2}, "r": "rel\tid"});
        let plain = json!({"id": "k2", "t": "abc", "n": 3, "g": {"lon": 1, "lat": 2}});
        let user = json!({"id": "u1", "email": "a@b.co", "emailVisibility": true,
            "tokenKey": "secret", "verified": true, "name": "A \"B\""});
        let cases = [
            (&kinds, tricky),
            (&kinds, plain),
            (&kinds, json!({})),
            (&users, user),
        ];
        for (collection, data) in cases {
            let data: RecordData = body(data).into_iter().collect();
            let record = RecordJson::build(collection, &data, Visibility::default());
            let written = |record: &RecordJson| {
                let mut out = Vec::new();
                record.write_json(&mut out);
                String::from_utf8(out).unwrap()
            };
            let serde = |record: &RecordJson| serde_json::to_string(record).unwrap();
            assert_eq!(written(&record), serde(&record));
            // `expand` at its place among the sorted keys: empty, one record, a list, several.
            let mut expanded = record.clone();
            expanded.set_expand(BTreeMap::new());
            assert_eq!(written(&expanded), serde(&expanded));
            expanded.set_expand(BTreeMap::from([
                ("owner".to_string(), Expanded::One(Box::new(record.clone()))),
                (
                    "tags\"x".to_string(),
                    Expanded::Many(vec![record.clone(), expanded.clone()]),
                ),
                ("z".to_string(), Expanded::Many(Vec::new())),
            ]));
            assert_eq!(written(&expanded), serde(&expanded));
        }
    }

    #[test]
    fn stored_rows_read_back_as_record_json() {
        let c = posts();
        let mut row = BTreeMap::new();
        row.insert("id".to_owned(), SqlValue::Text("abc".into()));
        row.insert("views".to_owned(), SqlValue::Real(3.0));
        row.insert("tags".to_owned(), SqlValue::Text(r#"["a"]"#.into()));
        row.insert(
            "geo".to_owned(),
            SqlValue::Text(r#"{"lon":1,"lat":2}"#.into()),
        );
        let data = record_from_row(&c, &row);
        let mut out = RecordJson::build(&c, &data, Visibility::default());
        out.set_expand(BTreeMap::new());
        let text = serde_json::to_string(&out).unwrap();
        assert!(
            text.contains(r#""created":"","expand":{},"files":[],"geo":{"lon":1,"lat":2}"#),
            "{text}"
        );
        assert!(text.contains(r#""views":3"#));
        assert!(!text.contains("secret"));
    }
}
