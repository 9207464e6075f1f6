//! Parsed collections shared across tenants and reopenings, keyed by their stored row.
//!
//! Every tenant starts with the same system collections, and a tenant reopened after the LRU
//! cap closed it reads the same rows it read before; parsing them (JSON, fields, indexes,
//! rules) again on each open is most of what an open costs. An entry is found by the content
//! of its `_collections` row, so a changed collection is a different key and is parsed anew:
//! nothing needs invalidating. Rows that differ only in their `created`/`updated` stamps (the
//! same system collection in two tenants) share the parsed parts; the stamps are the row's.
//! Auth collections differ between tenants in their secrets too: their key is their options
//! text with the secrets blanked ([`Split`]), and a hit takes the parsed options with the
//! row's own secrets put in (never another tenant's). Two generations bound the memory: when the current one
//! is full it becomes the previous one and the old previous is dropped; a hit in the previous
//! generation moves the entry back to the current one.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use warren_schema::{Collection, CollectionRow};

use crate::catalog::Entry;
use crate::secrets::Split;

/// Entries per generation.
const GENERATION: usize = 1024;

type Generation = HashMap<u64, Vec<(CollectionRow, Arc<Entry>)>>;

/// The cache: current and previous generation, with the number of entries in the current one.
#[derive(Default)]
pub(crate) struct Parsed {
    current: Generation,
    count: usize,
    previous: Generation,
}

static SHARED: Mutex<Option<Parsed>> = Mutex::new(None);

/// Whether a row's options hold secrets, so that they are read per row and left out of its key.
fn has_secrets(row: &CollectionRow) -> bool {
    row.kind == "auth"
}

/// The key of `row`, whose options (blanked of their secrets for an auth row) are `options`.
fn key(row: &CollectionRow, options: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &row.id,
        row.system,
        &row.kind,
        &row.name,
        &row.fields,
        &row.indexes,
    )
        .hash(&mut h);
    (
        &row.list_rule,
        &row.view_rule,
        &row.create_rule,
        &row.update_rule,
        &row.delete_rule,
    )
        .hash(&mut h);
    options.hash(&mut h);
    h.finish()
}

impl Parsed {
    fn find(
        generation: &Generation,
        key: u64,
        row: &CollectionRow,
        options: &str,
    ) -> Option<Arc<Entry>> {
        generation
            .get(&key)?
            .iter()
            .find(|(stored, _)| same_columns(stored, row) && stored.options == options)
            .map(|(_, entry)| entry.clone())
    }

    fn get(&mut self, key: u64, row: &CollectionRow, options: &str) -> Option<Arc<Entry>> {
        if let Some(entry) = Self::find(&self.current, key, row, options) {
            return Some(entry);
        }
        let entry = Self::find(&self.previous, key, row, options)?;
        self.insert(key, kept_row(row, options), entry.clone());
        Some(entry)
    }

    fn insert(&mut self, key: u64, row: CollectionRow, entry: Arc<Entry>) {
        if self.count >= GENERATION {
            self.previous = std::mem::take(&mut self.current);
            self.count = 0;
        }
        self.current.entry(key).or_default().push((row, entry));
        self.count += 1;
    }
}

/// The row as the cache keeps it: with `options`, which are blanked of their secrets for an
/// auth row.
fn kept_row(row: &CollectionRow, options: &str) -> CollectionRow {
    let mut kept = row.clone();
    if has_secrets(row) {
        kept.options = options.to_owned();
    }
    kept
}

/// The parsed entry of `row`, from the cache or parsed (and then kept).
pub(crate) fn entry(row: &CollectionRow) -> warren_schema::Result<Arc<Entry>> {
    // An auth row's secrets are read from this row, always: an entry shared with another
    // tenant never lends its secrets. Options that cannot be split are their own key.
    let split = match has_secrets(row) {
        true => Split::read(&row.options),
        false => None,
    };
    let options = split.as_ref().map_or(row.options.as_str(), |s| &s.blanked);
    let key = key(row, options);
    // A panic cannot leave the maps half-updated in a way that returns a wrong entry (an entry
    // is only ever stored under its own row), so a poisoned lock is still usable.
    let found = SHARED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(Parsed::default)
        .get(key, row, options);
    if let Some(entry) = found {
        let held = &entry.collection;
        let own_secrets = match (&split, held.auth_options()) {
            (Some(split), Some(held)) => split.held_by(held),
            _ => true,
        };
        if held.created == row.created && held.updated == row.updated && own_secrets {
            return Ok(entry);
        }
        return Ok(Arc::new(entry.rebased(
            &row.created,
            &row.updated,
            split.as_ref(),
        )));
    }
    let entry = Arc::new(Entry::new(Collection::from_row(row)?));
    SHARED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(Parsed::default)
        .insert(key, kept_row(row, options), entry.clone());
    Ok(entry)
}

/// Whether two rows are equal in every column but `created`, `updated` and `options`.
fn same_columns(a: &CollectionRow, b: &CollectionRow) -> bool {
    a.id == b.id
        && a.system == b.system
        && a.kind == b.kind
        && a.name == b.name
        && a.fields == b.fields
        && a.indexes == b.indexes
        && a.list_rule == b.list_rule
        && a.view_rule == b.view_rule
        && a.create_rule == b.create_rule
        && a.update_rule == b.update_rule
        && a.delete_rule == b.delete_rule
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_schema::{AuthOptions, CollectionType};

    /// The row of a new auth collection `name` with fresh secrets, after `change`.
    fn auth_row(name: &str, change: impl FnOnce(&mut AuthOptions)) -> CollectionRow {
        let mut collection = Collection::scaffold(CollectionType::Auth, name);
        // A scaffold's index names are random; a tenant's system collections' are not.
        collection.indexes.clear();
        let options = collection.auth_options_mut().expect("an auth collection");
        options.fill_missing_secrets();
        change(options);
        collection.to_row()
    }

    fn secret(entry: &Entry) -> String {
        entry
            .collection
            .auth_options()
            .expect("auth")
            .auth_token
            .secret
            .clone()
    }

    #[test]
    fn auth_collections_share_their_parsed_parts_but_never_their_secrets() {
        let (a, b) = (auth_row("shared_a", |_| {}), auth_row("shared_a", |_| {}));
        let (first, second) = (entry(&a).unwrap(), entry(&b).unwrap());
        assert!(Arc::ptr_eq(&first.info, &second.info));
        assert!(first.collection.fields.shares(&second.collection.fields));
        assert_ne!(secret(&first), secret(&second));
        assert_eq!(first.collection, Collection::from_row(&a).unwrap());
        assert_eq!(second.collection, Collection::from_row(&b).unwrap());
        // The same rows again (reopens): the first is the kept entry, the second rebased again.
        assert!(Arc::ptr_eq(&entry(&a).unwrap(), &first));
        let again = entry(&b).unwrap();
        assert!(Arc::ptr_eq(&again.info, &first.info));
        assert_eq!(again.collection, second.collection);
    }

    #[test]
    fn auth_collections_whose_other_options_differ_are_parsed_apart() {
        let a = auth_row("apart_a", |_| {});
        let b = auth_row("apart_a", |o| {
            o.auth_token.duration += 60;
            o.manage_rule = Some("@request.auth.id != ''".into());
        });
        let (first, second) = (entry(&a).unwrap(), entry(&b).unwrap());
        assert!(!Arc::ptr_eq(&first.info, &second.info));
        assert_eq!(second.collection, Collection::from_row(&b).unwrap());
        assert!(first.rules.manage.is_none() && second.rules.manage.is_some());
    }

    #[test]
    fn options_that_cannot_be_split_are_parsed_whole_and_keep_their_secrets() {
        let a = auth_row("whole_a", |_| {});
        let mut b = auth_row("whole_a", |_| {});
        // A token given twice: the whole parse takes the last; the split cannot read it.
        b.options = b
            .options
            .replacen('{', r#"{"authToken":{"secret":"first","duration":1},"#, 1);
        assert!(Split::read(&b.options).is_none());
        let (first, second) = (entry(&a).unwrap(), entry(&b).unwrap());
        assert!(!Arc::ptr_eq(&first.info, &second.info));
        assert_eq!(second.collection, Collection::from_row(&b).unwrap());
        assert_ne!(secret(&second), "first");
        assert!(Arc::ptr_eq(&entry(&b).unwrap(), &second));
    }

    #[test]
    fn unreadable_options_are_an_error() {
        let mut row = auth_row("broken_a", |_| {});
        row.options = "[1]".into();
        assert!(entry(&row).is_err());
    }
}
