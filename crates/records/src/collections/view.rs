//! View collections: their query checked by SQLite and their fields derived from it.

use warren_schema::collection::CollectionOptions;
use warren_schema::{Collection, Field, FieldError, ValidationErrors, view};
use warren_store::sql::Connection;

use super::ddl::view_query_error;
use super::{CollectionError, Result};

/// Checks a view's query with SQLite and infers its fields (kept ids for unchanged fields).
pub(super) fn prepare_view(
    conn: &Connection,
    new: &mut Collection,
    old: Option<&Collection>,
    all: &[Collection],
    message: &'static str,
) -> Result<()> {
    let Some(query) = new.view_query().map(str::to_owned) else {
        return Ok(());
    };
    if query.trim().is_empty() {
        return Ok(()); // validation reports the missing query
    }
    let fields = infer_view_fields(conn, &query, all).map_err(|raw| {
        // PocketBase derives the fields from the query first: a query without an id leaves
        // fields without a primary key, one that does not run leaves no fields at all.
        let mut errors = ValidationErrors::new();
        if raw.starts_with(view::MISSING_ID) {
            errors.add(
                "fields",
                FieldError::new(
                    "validation_missing_primary_key",
                    "Missing or invalid \"id\" PK field",
                ),
            );
        } else {
            errors.add("fields", FieldError::required());
        }
        errors.add("viewQuery", view_query_error(&raw));
        CollectionError::Invalid { message, errors }
    })?;
    new.fields = fields
        .into_iter()
        .map(|mut f| {
            if let Some(prev) = old.and_then(|o| o.field(&f.name))
                && prev.type_name() == f.type_name()
            {
                f.id.clone_from(&prev.id);
            }
            f
        })
        .collect();
    if let CollectionOptions::View { view_query } = &mut new.options {
        *view_query = query;
    }
    Ok(())
}

/// The fields of view `query`: SQLite names its result columns, the schema crate derives a
/// field for each from the query (see [`warren_schema::view`]).
pub fn infer_view_fields(
    conn: &Connection,
    query: &str,
    collections: &[Collection],
) -> std::result::Result<Vec<Field>, String> {
    let columns = {
        let stmt = conn
            .prepare(&format!("SELECT * FROM ({query}) LIMIT 0"))
            .map_err(|e| e.to_string())?;
        stmt.column_names()
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    view::fields(query, &columns, collections)
}
