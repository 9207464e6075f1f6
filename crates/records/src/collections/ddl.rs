//! Running a collection's DDL statement by statement, so a failure names its index or view.

use warren_schema::{Collection, FieldError, Index, ValidationErrors, ddl};
use warren_store::sql::Connection;

use super::{CollectionError, invalid};

/// A failed schema statement, located so the API can report it under the right key.
#[derive(Debug)]
pub(super) enum DdlFailure {
    /// Index number `.0` of the collection could not be created.
    Index(usize, String, String),
    /// The view's query was rejected.
    View(String),
    /// Anything else (a column migration).
    Other(String),
}

impl DdlFailure {
    pub(super) fn into_error(self, message: &'static str) -> CollectionError {
        match self {
            DdlFailure::Index(i, name, raw) => {
                let mut nested = ValidationErrors::new();
                nested.add(
                    i.to_string(),
                    FieldError::new(
                        "validation_invalid_index_expression",
                        format!("Failed to create index {name} - {raw}"),
                    ),
                );
                let mut errors = ValidationErrors::new();
                errors.add_nested("indexes", nested);
                CollectionError::Invalid { message, errors }
            }
            DdlFailure::View(raw) => invalid(message, "viewQuery", view_query_error(&raw)),
            DdlFailure::Other(raw) => {
                CollectionError::Rejected(format!("{} Raw error: {raw}", message))
            }
        }
    }

    pub(super) fn raw(&self) -> String {
        match self {
            DdlFailure::Index(_, name, raw) => format!("failed to create index {name} - {raw}"),
            DdlFailure::View(raw) | DdlFailure::Other(raw) => raw.clone(),
        }
    }
}

pub(super) fn view_query_error(raw: &str) -> FieldError {
    FieldError::new(
        "validation_invalid_view_query",
        format!("Invalid query - {raw}"),
    )
}

/// Runs the statements that take the database from `old` to `new` (or create `new`). Each
/// statement is executed on its own so one holding several (a crafted view query) fails.
pub(super) fn apply_ddl(
    conn: &Connection,
    old: Option<&Collection>,
    new: &Collection,
) -> std::result::Result<(), DdlFailure> {
    let statements = match old {
        Some(old) => ddl::migrate_statements(old, new),
        None => ddl::create_statements(new),
    };
    // The schema crate appends the new indexes last; run them here to know which one failed.
    let indexes: Vec<(usize, Index)> = new
        .indexes
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| Index::parse(raw).map(|index| (i, index)))
        .collect();
    let body = statements
        .len()
        .saturating_sub(if new.is_view() { 0 } else { indexes.len() });
    for statement in &statements[..body] {
        if let Err(e) = conn.execute(statement, []) {
            let raw = e.to_string();
            return Err(if new.is_view() && statement.starts_with("CREATE VIEW") {
                DdlFailure::View(raw)
            } else {
                DdlFailure::Other(raw)
            });
        }
    }
    if new.is_view() {
        return Ok(());
    }
    for (i, mut index) in indexes {
        index.table.clone_from(&new.name);
        if let Err(e) = conn.execute(&index.build(), []) {
            return Err(DdlFailure::Index(i, index.name.clone(), e.to_string()));
        }
    }
    Ok(())
}
