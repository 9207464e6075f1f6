//! Parsed collections shared across tenants and reopenings, keyed by their stored row.
//!
//! Every tenant starts with the same system collections, and a tenant reopened after the LRU
//! cap closed it reads the same rows it read before; parsing them (JSON, fields, indexes,
//! rules) again on each open is most of what an open costs. An entry is found by the content
//! of its `_collections` row, so a changed collection is a different key and is parsed anew:
//! nothing needs invalidating. Rows that differ only in their `created`/`updated` stamps (the
//! same system collection in two tenants) share the parsed parts; the stamps are the row's. Two generations bound the memory: when the
//! current one is full it becomes the previous one and the old previous is dropped; a hit in
//! the previous generation moves the entry back to the current one.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use warren_schema::CollectionRow;

use crate::catalog::Entry;

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

fn key(row: &CollectionRow) -> u64 {
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
        &row.options,
    )
        .hash(&mut h);
    h.finish()
}

impl Parsed {
    fn find(generation: &Generation, key: u64, row: &CollectionRow) -> Option<Arc<Entry>> {
        generation
            .get(&key)?
            .iter()
            .find(|(stored, _)| same_but_stamps(stored, row))
            .map(|(_, entry)| entry.clone())
    }

    fn get(&mut self, key: u64, row: &CollectionRow) -> Option<Arc<Entry>> {
        if let Some(entry) = Self::find(&self.current, key, row) {
            return Some(entry);
        }
        let entry = Self::find(&self.previous, key, row)?;
        self.insert(key, row.clone(), entry.clone());
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

/// The parsed entry of `row`, from the cache or made by `parse` (and then kept).
pub(crate) fn entry<E>(
    row: &CollectionRow,
    parse: impl FnOnce() -> Result<Arc<Entry>, E>,
) -> Result<Arc<Entry>, E> {
    let key = key(row);
    // A panic cannot leave the maps half-updated in a way that returns a wrong entry (an entry
    // is only ever stored under its own row), so a poisoned lock is still usable.
    let found = SHARED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(Parsed::default)
        .get(key, row);
    if let Some(entry) = found {
        let stamps = &entry.collection;
        if stamps.created == row.created && stamps.updated == row.updated {
            return Ok(entry);
        }
        return Ok(Arc::new(entry.restamped(&row.created, &row.updated)));
    }
    let entry = parse()?;
    SHARED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(Parsed::default)
        .insert(key, row.clone(), entry.clone());
    Ok(entry)
}

/// Whether two rows are equal in every column but `created` and `updated`.
fn same_but_stamps(a: &CollectionRow, b: &CollectionRow) -> bool {
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
        && a.options == b.options
}
