//! Warren's implementation of PocketBase's filter and rule language.
//!
//! This crate owns the language end to end: the lexer and parser
//! ([`Filter::parse`]), resolution of identifiers against a collection schema
//! supplied through [`SchemaSource`], compilation to parameterised SQLite SQL
//! ([`Query::to_sql`]), and an in-memory evaluator ([`Query::matches`]) for rules
//! that need no join. It also parses the `sort`, `fields` and `expand` parameters.
//!
//! It must not depend on HTTP, on SQLite, or on how collections are stored:
//! callers hand it schemas and request values and run the SQL themselves (its tests run it
//! through `store`).
//!
//! ```
//! use warren_filter::*;
//! let schema = StaticSchema::new([CollectionInfo {
//!     id: "pbc_1".into(),
//!     name: "posts".into(),
//!     collection_type: CollectionType::Base,
//!     fields: vec![FieldInfo::new("id", FieldType::Text), FieldInfo::new("title", FieldType::Text)],
//!     list_rule: Some(String::new()),
//!     unique_fields: vec![],
//! }]);
//! let q = compile(&schema, "posts", "title ~ 'hello'", &RequestContext::guest(), Access::Client).unwrap();
//! let sql = q.to_sql();
//! assert_eq!(sql.where_clause, r#""posts"."title" LIKE ? ESCAPE '\'"#);
//! let record = serde_json::json!({"id": "a", "title": "Hello world"});
//! assert!(q.matches(record.as_object().unwrap()).unwrap());
//! ```

mod ast;
mod compile;
mod error;
mod fields;
mod ir;
mod parser;
mod query;
mod reads;
mod request;
mod schema;
mod sort;
mod value;

pub use ast::{Expr, Op, Operand, Pos};
pub use compile::{Access, MAX_JOINS, MAX_PARAMS, MAX_RELATION_DEPTH};
pub use error::{Error, Result};
pub use fields::{Excerpt, FieldPath, MAX_EXPAND_DEPTH, parse_expand, parse_fields};
pub use parser::{MAX_CALL_DEPTH, MAX_COMPARISONS, MAX_FILTER_LEN, MAX_NESTING};
pub use query::{Filter, Query, SqlFilter, compile};
pub use reads::RequestReads;
pub use request::{HeaderSource, Headers, RequestContext, header_name_is, normalize_header_name};
pub use schema::{
    CollectionInfo, CollectionType, FieldInfo, FieldType, SchemaSource, StaticSchema,
};
pub use sort::{MAX_SORT_ITEMS, SortItem, parse_sort};
pub use value::{SqlValue, column_type, go_json, storage_value};
