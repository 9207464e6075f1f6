//! What the compiler needs to know about collections, supplied by the caller
//! through [`SchemaSource`]. This crate never reads collections itself.

use std::sync::Arc;

/// A field's type, as PocketBase names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Text,
    Editor,
    Number,
    Bool,
    Email,
    Url,
    Date,
    Autodate,
    Select,
    File,
    Relation,
    Json,
    Password,
    GeoPoint,
}

impl FieldType {
    /// Parses PocketBase's type name (`"text"`, `"geoPoint"`, ...).
    pub fn from_name(name: &str) -> Option<FieldType> {
        Some(match name {
            "text" => FieldType::Text,
            "editor" => FieldType::Editor,
            "number" => FieldType::Number,
            "bool" => FieldType::Bool,
            "email" => FieldType::Email,
            "url" => FieldType::Url,
            "date" => FieldType::Date,
            "autodate" => FieldType::Autodate,
            "select" => FieldType::Select,
            "file" => FieldType::File,
            "relation" => FieldType::Relation,
            "json" => FieldType::Json,
            "password" => FieldType::Password,
            "geoPoint" => FieldType::GeoPoint,
            _ => return None,
        })
    }

    /// Select, file and relation fields hold lists when `maxSelect > 1` and
    /// accept the `:each`/`:length` modifiers whatever their arity.
    pub fn is_multi_valuer(self) -> bool {
        matches!(
            self,
            FieldType::Select | FieldType::File | FieldType::Relation
        )
    }
}

/// One field of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    /// Column name.
    pub name: String,
    pub field_type: FieldType,
    /// `maxSelect > 1`: the column holds a JSON array.
    pub multiple: bool,
    /// For relation fields: the target collection's id.
    pub relation_collection_id: Option<String>,
    /// Hidden fields are usable only in rules and superuser filters.
    pub hidden: bool,
}

impl FieldInfo {
    /// A visible single-valued field.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        FieldInfo {
            name: name.into(),
            field_type,
            multiple: false,
            relation_collection_id: None,
            hidden: false,
        }
    }

    /// Marks the field as multi-valued (`maxSelect > 1`).
    pub fn multiple(mut self) -> Self {
        self.multiple = true;
        self
    }

    /// Marks the field as hidden.
    pub fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    /// A relation field pointing at `collection_id`.
    pub fn relation(name: impl Into<String>, collection_id: impl Into<String>) -> Self {
        let mut f = FieldInfo::new(name, FieldType::Relation);
        f.relation_collection_id = Some(collection_id.into());
        f
    }
}

/// The kind of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CollectionType {
    Base,
    Auth,
    View,
}

/// A collection as the compiler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    pub id: String,
    /// Also the table name.
    pub name: String,
    pub collection_type: CollectionType,
    /// Every field, system fields (`id`, `created`, ...) included.
    pub fields: Vec<FieldInfo>,
    /// `None` = superusers only; `Some("")` = everyone.
    pub list_rule: Option<String>,
    /// Fields covered by a single-column UNIQUE index; a back-relation through
    /// such a single relation field is single-valued.
    pub unique_fields: Vec<String>,
}

impl CollectionInfo {
    /// Looks a field up by its exact name.
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Where the compiler looks collections up. Implemented by whoever caches a
/// tenant's schema; lookups must be cheap (they happen per path segment).
pub trait SchemaSource {
    /// The collection with this name or id, if any.
    fn collection(&self, name_or_id: &str) -> Option<Arc<CollectionInfo>>;
}

impl<S: SchemaSource + ?Sized> SchemaSource for &S {
    fn collection(&self, name_or_id: &str) -> Option<Arc<CollectionInfo>> {
        (**self).collection(name_or_id)
    }
}

/// A ready-made [`SchemaSource`] over a list of collections.
#[derive(Debug, Clone, Default)]
pub struct StaticSchema {
    collections: Vec<Arc<CollectionInfo>>,
}

impl StaticSchema {
    pub fn new(collections: impl IntoIterator<Item = CollectionInfo>) -> Self {
        StaticSchema {
            collections: collections.into_iter().map(Arc::new).collect(),
        }
    }
}

impl SchemaSource for StaticSchema {
    fn collection(&self, name_or_id: &str) -> Option<Arc<CollectionInfo>> {
        self.collections
            .iter()
            .find(|c| c.name == name_or_id || c.id == name_or_id)
            .cloned()
    }
}
