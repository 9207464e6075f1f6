//! Conversions between the schema's and filter's SQL values and the store's, and row reading.

use std::collections::BTreeMap;

use warren_schema::record::RecordData;
use warren_schema::{Collection, SqlRef, SqlValue};
use warren_store::sql::{Row, ToSql, ToSqlOutput};
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

/// A schema value bound where it is, without copying its text.
pub struct Bound<'a>(pub &'a SqlValue);

impl ToSql for Bound<'_> {
    fn to_sql(&self) -> warren_store::sql::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
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
            // Checked first: valid text (nearly always) is copied without the lossy scan.
            ValueRef::Text(t) | ValueRef::Blob(t) => SqlValue::Text(match std::str::from_utf8(t) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(t).into_owned(),
            }),
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// Reads a row of [`crate::read::columns`] (the collection's fields, in order) straight into
/// a record: no name → value map in between, and text copied once, into the record's value.
pub fn read_record(
    row: &Row<'_>,
    collection: &Collection,
) -> warren_store::sql::Result<RecordData> {
    // Gathered first, then made a map at once: sorting a handful of names and building the
    // map's nodes in order costs about two thirds of inserting each name into it.
    let mut out = Vec::with_capacity(collection.fields.len());
    for (i, field) in collection.fields.iter().enumerate() {
        let value = match row.get_ref(i)? {
            ValueRef::Null => field.from_sql_ref(SqlRef::Null),
            ValueRef::Integer(n) => field.from_sql_ref(SqlRef::Integer(n)),
            ValueRef::Real(f) => field.from_sql_ref(SqlRef::Real(f)),
            ValueRef::Text(t) | ValueRef::Blob(t) => match std::str::from_utf8(t) {
                Ok(text) => field.from_sql_ref(SqlRef::Text(text)),
                Err(_) => field.from_sql_ref(SqlRef::Text(&String::from_utf8_lossy(t))),
            },
        };
        out.push((field.name.clone(), value));
    }
    Ok(out.into_iter().collect())
}

/// Quotes an identifier for SQLite (identifiers come from the schema, never from input).
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use warren_store::sql::{Connection, params_from_iter};

    use super::*;

    #[test]
    fn bound_values_reach_sqlite_as_they_are() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a, b, c, d)").unwrap();
        let values = [
            SqlValue::Null,
            SqlValue::Integer(-7),
            SqlValue::Real(2.5),
            SqlValue::Text("it's \"quoted\" ✓".into()),
        ];
        c.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            params_from_iter(values.iter().map(Bound)),
        )
        .unwrap();
        let names = ["a", "b", "c", "d"].map(String::from);
        let row = c
            .query_row("SELECT a, b, c, d FROM t", [], |row| read_row(row, &names))
            .unwrap();
        let read: Vec<SqlValue> = names.iter().map(|n| row[n].clone()).collect();
        assert_eq!(read, values);
    }
}
