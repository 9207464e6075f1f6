//! Conversions between the schema's and filter's SQL values and the store's, and row reading.

use std::collections::BTreeMap;

use warren_schema::SqlValue;
use warren_store::sql::{Row, ToSql};
use warren_store::sql::{Value as Sqlite, ValueRef};

/// A schema value as a store value.
pub fn from_schema(v: &SqlValue) -> Sqlite {
    match v {
        SqlValue::Null => Sqlite::Null,
        SqlValue::Integer(i) => Sqlite::Integer(*i),
        SqlValue::Real(f) => Sqlite::Real(*f),
        SqlValue::Text(s) => Sqlite::Text(s.clone()),
    }
}

/// A filter parameter as a store value.
pub fn from_filter(v: &warren_filter::SqlValue) -> Sqlite {
    match v {
        warren_filter::SqlValue::Null => Sqlite::Null,
        warren_filter::SqlValue::Integer(i) => Sqlite::Integer(*i),
        warren_filter::SqlValue::Real(f) => Sqlite::Real(*f),
        warren_filter::SqlValue::Text(s) => Sqlite::Text(s.clone()),
    }
}

/// Filter parameters ready to bind.
pub fn params(values: &[warren_filter::SqlValue]) -> Vec<Sqlite> {
    values.iter().map(from_filter).collect()
}

/// Borrowed binding of a slice of store values.
pub fn bind(values: &[Sqlite]) -> Vec<&dyn ToSql> {
    values.iter().map(|v| v as &dyn ToSql).collect()
}

/// Reads a row into column name → schema value (blobs read as text).
pub fn read_row(
    row: &Row<'_>,
    names: &[String],
) -> warren_store::sql::Result<BTreeMap<String, SqlValue>> {
    let mut out = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let value = match row.get_ref(i)? {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(n) => SqlValue::Integer(n),
            ValueRef::Real(f) => SqlValue::Real(f),
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                SqlValue::Text(String::from_utf8_lossy(t).into_owned())
            }
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// Quotes an identifier for SQLite (identifiers come from the schema, never from input).
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}
