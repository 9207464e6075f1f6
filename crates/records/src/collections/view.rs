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

/// How long a view query's dry run may take.
const DRY_RUN_TIME: std::time::Duration = std::time::Duration::from_secs(5);
/// Records a dry run returns as a sample.
const DRY_RUN_SAMPLE: usize = 10;

/// What a view query would give, without saving anything: its fields and a few records.
#[derive(Debug)]
pub struct DryRun {
    /// The fields a view collection with this query would have.
    pub fields: Vec<Field>,
    /// The first records it would list (as a superuser sees them).
    pub sample: Vec<serde_json::Value>,
}

impl DryRun {
    /// The answer's JSON: `{fields, sample}`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({ "fields": self.fields, "sample": self.sample })
    }
}

/// Checks view `query` on a read connection, under the SQL console's fence (no attached
/// files, no extensions, a time limit): the error is the raw reason, as PocketBase words it.
pub async fn dry_run_view(
    db: &warren_store::Database,
    query: String,
) -> std::result::Result<DryRun, String> {
    let run = db.read(move |conn| Ok::<_, warren_store::Error>(dry_run_on(conn, &query)));
    run.await.map_err(|e| e.to_string())?
}

fn dry_run_on(conn: &Connection, query: &str) -> std::result::Result<DryRun, String> {
    let all = super::load_all(conn).map_err(|e| e.to_string())?;
    let fence = warren_store::Fence::new(conn, DRY_RUN_TIME).map_err(|e| e.to_string())?;
    let query = query.trim().trim_end_matches(';').trim();
    let fields =
        infer_view_fields(conn, query, &all).map_err(|raw| fence.explain(raw).to_string())?;
    let mut temp = Collection::new(
        warren_schema::CollectionType::View,
        &format!(
            "temp_view_{}",
            warren_schema::id::random_string(5, warren_schema::id::ID_ALPHABET)
        ),
    );
    temp.fields = fields.clone().into();
    let sample = sample_records(conn, query, &temp).map_err(|e| fence.explain(e).to_string())?;
    let mut ids = std::collections::HashSet::new();
    for record in &sample {
        let id = record
            .get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        if id.is_empty() {
            return Err("the query could return records with empty or invalid ids".into());
        }
        if !ids.insert(id.to_string()) {
            return Err("the query could return records with non-unique ids".into());
        }
    }
    Ok(DryRun { fields, sample })
}

/// The first records of `query` read as records of the temporary view `temp`.
fn sample_records(
    conn: &Connection,
    query: &str,
    temp: &Collection,
) -> warren_store::sql::Result<Vec<serde_json::Value>> {
    let sql = format!("SELECT * FROM (SELECT * FROM ({query})) LIMIT {DRY_RUN_SAMPLE}");
    let mut stmt = conn.prepare(&sql)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let row = crate::sql::read_row(row, &names)?;
        let data = warren_schema::record::record_from_row(temp, &row);
        let who = warren_schema::Visibility {
            show_hidden: true,
            show_email: true,
        };
        out.push(warren_schema::record::RecordJson::build(temp, &data, who).into_value());
    }
    Ok(out)
}
