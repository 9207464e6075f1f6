//! `POST /api/sql`: the superuser SQL console, on the tenant's own `data.db` only.

use std::time::Instant;

use axum::Json;
use axum::http::StatusCode;
use serde_json::{Value, json};
use warren_tenant::ops::{self, SqlError};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody, require_superuser};

/// Longest query text, in characters (PocketBase's limit).
pub const MAX_QUERY_CHARS: usize = 5000;

/// The `query` member of a console or dry-run form, checked as PocketBase checks it: present,
/// at most 5000 characters.
pub fn query_text(body: &FormBody) -> Result<String, ApiError> {
    let query = match body.data.get("query") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "An error occurred while loading the submitted data.",
            ));
        }
    };
    let invalid = ApiError::new(
        StatusCode::BAD_REQUEST,
        "An error occurred while validating the submitted data.",
    );
    if query.is_empty() {
        return Err(invalid.field("query", "validation_required", "Cannot be blank."));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid.field_params(
            "query",
            "validation_length_too_long",
            "The length must be no more than 5000.",
            json!({ "max": MAX_QUERY_CHARS }),
        ));
    }
    Ok(query)
}

/// `POST /api/sql` `{query}`: `{execTime, affectedRows, columns, rows}` of the last statement.
pub async fn run_sql(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    body: FormBody,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let query = query_text(&body)?;
    let started = Instant::now();
    let output = ops::run_sql(&tenant, query).await.map_err(|e| match e {
        SqlError::Query(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            sentence(format!("Failed to execute query. Raw error:\n{e}")),
        ),
        SqlError::Store(e) => ApiError::internal(e),
        SqlError::Tenant(e) => e.into(),
    })?;
    let columns: Vec<Value> = output
        .columns
        .iter()
        .map(|c| json!({ "name": c.name, "type": c.decl_type, "nullable": true }))
        .collect();
    Ok(Json(json!({
        "execTime": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "affectedRows": output.affected_rows,
        "columns": columns,
        "rows": output.rows,
    })))
}

/// A message as PocketBase words every error: trimmed, ending with `.` unless it ends with
/// `.`, `?` or `!` (its raw errors included).
pub fn sentence(message: String) -> String {
    let trimmed = message.trim();
    if trimmed.is_empty() || trimmed.ends_with(['.', '?', '!']) {
        trimmed.to_string()
    } else {
        format!("{trimmed}.")
    }
}

#[cfg(test)]
mod tests {
    use super::sentence;

    #[test]
    fn raw_errors_end_as_sentences() {
        assert_eq!(
            sentence("Raw error: \nnot enabled".into()),
            "Raw error: \nnot enabled."
        );
        assert_eq!(sentence(" done! ".into()), "done!");
    }
}
