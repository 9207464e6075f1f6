//! A tenant's collections, loaded once from `_collections` and shared read-only by every
//! request until the schema changes. Rules are parsed here, once, and their compiled statements
//! kept here per request shape (see `compiled`); requests only bind values.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use warren_filter::{CollectionInfo, FieldInfo, FieldType, Filter, SchemaSource};
use warren_schema::{Collection, CollectionRow, FieldKind, Index};
use warren_store::sql::{Connection, Row};

use crate::compiled::Compiled;
use crate::counts::Counts;
use crate::verified::Verified;
use crate::{Error, Result};

/// One collection with everything derived from it.
#[derive(Debug)]
pub struct Entry {
    /// The collection as stored.
    pub collection: Collection,
    /// The collection as the filter compiler sees it.
    pub info: Arc<CollectionInfo>,
    /// The collection's parsed rules (shared by the entries of copies of the collection).
    pub rules: Arc<Rules>,
    /// The qualified column list of its table (every field, in order), built on first use
    /// (see `read::columns`).
    pub(crate) columns: OnceLock<String>,
    /// Its INSERT and UPDATE statements over every field, built on first use (see
    /// `write::statements`).
    pub(crate) writes: OnceLock<(String, String)>,
    /// Its statement counting the rows with one id (a relation's check on every write that
    /// sets one), built on first use (see `write::Relations`).
    pub(crate) count_one: OnceLock<String>,
}

impl Entry {
    /// Derives what requests need from `collection`.
    pub(crate) fn new(collection: Collection) -> Self {
        Self {
            info: Arc::new(filter_info(&collection)),
            rules: Arc::new(parse_rules(&collection)),
            collection,
            columns: OnceLock::new(),
            writes: OnceLock::new(),
            count_one: OnceLock::new(),
        }
    }

    /// This entry with other `created`/`updated` stamps and, for an auth collection, the
    /// secrets of `split`, a row whose options differ from these only in their secrets (the
    /// rest is shared or cloned, not parsed again).
    pub(crate) fn rebased(
        &self,
        created: &str,
        updated: &str,
        split: Option<&crate::secrets::Split>,
    ) -> Self {
        let mut collection = self.collection.clone();
        collection.created = created.to_owned();
        collection.updated = updated.to_owned();
        if let (Some(split), Some(held)) = (split, collection.auth_options_mut()) {
            split.apply(held);
        }
        Self {
            collection,
            info: self.info.clone(),
            rules: self.rules.clone(),
            columns: OnceLock::new(),
            writes: OnceLock::new(),
            count_one: OnceLock::new(),
        }
    }
}

/// Parsed API rules: `None` = superusers only; a parsed empty filter = everyone.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    /// `listRule`.
    pub list: Option<Filter>,
    /// `viewRule`.
    pub view: Option<Filter>,
    /// `createRule`.
    pub create: Option<Filter>,
    /// `updateRule`.
    pub update: Option<Filter>,
    /// `deleteRule`.
    pub delete: Option<Filter>,
    /// Auth collections: `authRule`.
    pub auth: Option<Filter>,
    /// Auth collections: `manageRule`.
    pub manage: Option<Filter>,
}

/// Every collection of a tenant. Immutable; replaced whole when the schema changes.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Collections in `_collections` order.
    entries: Vec<Arc<Entry>>,
    /// Exact id and lowercase name → index into `entries` (the tenant's own names, so a fast
    /// hasher: looked up two to four times a request).
    keys: HashMap<String, usize, foldhash::quality::RandomState>,
    /// Auth tokens verified against these entries (a new catalog starts empty).
    verified: Arc<Verified>,
    /// Rule statements compiled against these entries (a new catalog starts empty).
    compiled: Compiled,
    /// List counts read against these entries (a new catalog starts empty).
    counts: Counts,
}

impl Catalog {
    /// Builds a catalog from collections.
    pub fn new(collections: Vec<Collection>) -> Self {
        Self::from_entries(collections.into_iter().map(|c| Arc::new(Entry::new(c))))
    }

    fn from_entries(entries: impl IntoIterator<Item = Arc<Entry>>) -> Self {
        let mut catalog = Catalog::default();
        for entry in entries {
            let index = catalog.entries.len();
            catalog.keys.insert(entry.collection.id.clone(), index);
            catalog
                .keys
                .insert(entry.collection.name.to_lowercase(), index);
            catalog.entries.push(entry);
        }
        catalog
    }

    /// Loads every collection of the database `conn` belongs to. A row read before, by this
    /// tenant or any other (every tenant's system collections), is not parsed again (see
    /// [`crate::parsed`]).
    pub fn load(conn: &Connection) -> Result<Self> {
        let mut stmt = conn.prepare_cached(ROWS)?;
        let rows = stmt.query_map([], read_collection_row)?;
        let mut entries = Vec::new();
        for row in rows {
            entries.push(entry_of(&row?)?);
        }
        Ok(Self::from_entries(entries))
    }

    /// The `_collections` rows as [`Catalog::load`] reads them, in the same order.
    pub fn read_rows(conn: &Connection) -> Result<Vec<CollectionRow>> {
        let mut stmt = conn.prepare_cached(ROWS)?;
        let rows = stmt.query_map([], read_collection_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The catalog of `rows` read earlier by [`Catalog::read_rows`]: the same as
    /// [`Catalog::load`] on the database they were read from, while it is unchanged.
    pub fn from_rows(rows: &[CollectionRow]) -> Result<Self> {
        let entries = rows.iter().map(entry_of).collect::<Result<Vec<_>>>()?;
        Ok(Self::from_entries(entries))
    }

    /// The collection with this id, or this name in any case.
    pub fn get(&self, id_or_name: &str) -> Option<&Arc<Entry>> {
        let index = self
            .keys
            .get(id_or_name)
            .or_else(|| self.keys.get(&id_or_name.to_lowercase()))?;
        self.entries.get(*index)
    }

    /// Every collection.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// The rule statements compiled against this catalog's collections.
    pub(crate) fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The auth tokens recently verified against this catalog's collections.
    pub(crate) fn verified(&self) -> &Arc<Verified> {
        &self.verified
    }

    /// The list counts remembered for this catalog's collections.
    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }
}

impl SchemaSource for Catalog {
    fn collection(&self, name_or_id: &str) -> Option<Arc<CollectionInfo>> {
        self.get(name_or_id).map(|entry| entry.info.clone())
    }
}

/// The collections in the order a catalog lists them.
const ROWS: &str = "SELECT id, system, type, name, fields, indexes, listRule, viewRule, createRule,
        updateRule, deleteRule, options, created, updated
 FROM _collections ORDER BY rowid";

fn entry_of(row: &CollectionRow) -> Result<Arc<Entry>> {
    crate::parsed::entry(row).map_err(|e| Error::Schema(format!("{}: {e}", row.name)))
}

fn read_collection_row(row: &Row<'_>) -> warren_store::sql::Result<CollectionRow> {
    Ok(CollectionRow {
        id: row.get(0)?,
        system: row.get(1)?,
        kind: row.get(2)?,
        name: row.get(3)?,
        fields: row.get(4)?,
        indexes: row.get(5)?,
        list_rule: row.get(6)?,
        view_rule: row.get(7)?,
        create_rule: row.get(8)?,
        update_rule: row.get(9)?,
        delete_rule: row.get(10)?,
        options: row.get(11)?,
        created: row.get(12)?,
        updated: row.get(13)?,
    })
}

/// A rule that fails to parse locks the action to superusers instead of opening it.
fn parse_rule(collection: &str, action: &str, rule: Option<&String>) -> Option<Filter> {
    let text = rule?;
    match Filter::parse(text) {
        Ok(filter) => Some(filter),
        Err(e) => {
            tracing::warn!(collection, action, error = %e, "stored rule does not parse; superusers only");
            None
        }
    }
}

fn parse_rules(c: &Collection) -> Rules {
    let name = c.name.as_str();
    let (auth, manage) = match c.auth_options() {
        Some(o) => (
            parse_rule(name, "auth", o.auth_rule.as_ref()),
            parse_rule(name, "manage", o.manage_rule.as_ref()),
        ),
        None => (None, None),
    };
    Rules {
        list: parse_rule(name, "list", c.list_rule.as_ref()),
        view: parse_rule(name, "view", c.view_rule.as_ref()),
        create: parse_rule(name, "create", c.create_rule.as_ref()),
        update: parse_rule(name, "update", c.update_rule.as_ref()),
        delete: parse_rule(name, "delete", c.delete_rule.as_ref()),
        auth,
        manage,
    }
}

/// The filter compiler's view of a collection.
pub fn filter_info(c: &Collection) -> CollectionInfo {
    let fields = c
        .fields
        .iter()
        .map(|f| {
            let mut info = FieldInfo::new(
                f.name.clone(),
                FieldType::from_name(f.type_name()).unwrap_or(FieldType::Text),
            );
            info.multiple = f.is_multiple();
            info.hidden = f.hidden;
            if let FieldKind::Relation(o) = &f.kind {
                info.relation_collection_id = Some(o.collection_id.clone());
            }
            info
        })
        .collect();
    let unique_fields = c
        .indexes
        .iter()
        .filter_map(|raw| Index::parse(raw))
        .filter(|index| index.unique && index.columns.len() == 1)
        .map(|index| index.columns[0].name.clone())
        .collect();
    CollectionInfo {
        id: c.id.clone(),
        name: c.name.clone(),
        collection_type: match c.kind() {
            warren_schema::CollectionType::Base => warren_filter::CollectionType::Base,
            warren_schema::CollectionType::Auth => warren_filter::CollectionType::Auth,
            warren_schema::CollectionType::View => warren_filter::CollectionType::View,
        },
        fields,
        list_rule: c.list_rule.clone(),
        unique_fields,
    }
}
