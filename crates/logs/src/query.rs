//! Reading logs back: list with PocketBase's `filter`/`sort` over `id, created, level, message,
//! data` (and JSON paths `data.<path>`), one log by id, hourly counts, and truncation.

use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value, json};
use warren_filter::{
    Access, CollectionInfo, CollectionType, FieldInfo, FieldType, Filter, Query, RequestContext,
    SqlValue, StaticSchema, parse_sort,
};
use warren_store::sql::Value as Sqlite;
use warren_store::sql::{OptionalExtension, Row, ToSql};

use crate::{Error, Logs, Result};

/// Largest page.
pub const MAX_PER_PAGE: u64 = 1000;

/// The logs table as the filter compiler sees it: plain columns, `data` a JSON column.
static SCHEMA: LazyLock<(StaticSchema, Arc<CollectionInfo>)> = LazyLock::new(|| {
    let info = CollectionInfo {
        id: "_logs".into(),
        name: "_logs".into(),
        collection_type: CollectionType::Base,
        fields: vec![
            FieldInfo::new("id", FieldType::Text),
            FieldInfo::new("created", FieldType::Text),
            FieldInfo::new("level", FieldType::Number),
            FieldInfo::new("message", FieldType::Text),
            FieldInfo::new("data", FieldType::Json),
        ],
        list_rule: None,
        unique_fields: vec!["id".into()],
    };
    (StaticSchema::new([info.clone()]), Arc::new(info))
});

/// What a list request asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// 1-based page (0 reads as 1).
    pub page: u64,
    /// Items per page (clamped to 1..=1000; 0 reads as 30).
    pub per_page: u64,
    /// The `sort` parameter.
    pub sort: String,
    /// The `filter` parameter.
    pub filter: String,
    /// Leave out the count (`totalItems`/`totalPages` are -1).
    pub skip_total: bool,
}

/// One page of logs: the same list shape (and type) as a page of records, of JSON objects.
pub type Page = warren_records::read::Page<Value>;

const COLUMNS: &str =
    r#""_logs"."id", "_logs"."created", "_logs"."data", "_logs"."message", "_logs"."level""#;

/// A log row as the API shows it.
fn from_row(row: &Row<'_>) -> warren_store::sql::Result<Value> {
    let data: Option<String> = row.get(2)?;
    let data = data
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .unwrap_or_else(|| Value::Object(Map::new()));
    Ok(json!({
        "id": row.get::<_, String>(0)?,
        "created": row.get::<_, String>(1)?,
        "data": data,
        "message": row.get::<_, String>(3)?,
        "level": row.get::<_, i64>(4)?,
    }))
}

fn bind(values: &[SqlValue]) -> Vec<Sqlite> {
    values
        .iter()
        .map(|v| match v {
            SqlValue::Null => Sqlite::Null,
            SqlValue::Integer(i) => Sqlite::Integer(*i),
            SqlValue::Real(f) => Sqlite::Real(*f),
            SqlValue::Text(s) => Sqlite::Text(s.clone()),
        })
        .collect()
}

fn refs(values: &[Sqlite]) -> Vec<&dyn ToSql> {
    values.iter().map(|v| v as &dyn ToSql).collect()
}

/// Compiles `filter` and `sort` against the logs table.
fn compile(filter: &str, sort: &str) -> Result<Query> {
    let (schema, info) = &*SCHEMA;
    let ctx = RequestContext::guest();
    let mut q = Query::for_collection(info.clone());
    if !filter.trim().is_empty() {
        q.and_where(schema, &ctx, &Filter::parse(filter)?, Access::Client)?;
    }
    if !sort.trim().is_empty() {
        q.order_by(schema, &ctx, &parse_sort(sort)?, Access::Client)?;
    }
    Ok(q)
}

impl Logs {
    /// One page of logs matching `query`.
    pub async fn list(&self, query: ListQuery) -> Result<Page> {
        let sqlf = compile(&query.filter, &query.sort)?.to_sql();
        // Sort items may bind parameters too; the count binds only the filter's.
        let counted = compile(&query.filter, "")?.to_sql();
        let per_page = match query.per_page {
            0 => 30,
            n => n.min(MAX_PER_PAGE),
        };
        let page = query.page.max(1);
        let offset = (page - 1).saturating_mul(per_page);
        // The page size is part of the statement: SQLite plans with a bound LIMIT's value, so a
        // bound one makes it prepare the statement twice.
        let select = format!("{} LIMIT {per_page} OFFSET ?", sqlf.select(COLUMNS));
        let joins = if counted.joins.is_empty() {
            String::new()
        } else {
            format!(" {}", counted.joins)
        };
        let count = (!query.skip_total).then(|| {
            format!(
                "SELECT COUNT(DISTINCT \"_logs\".\"id\") FROM \"_logs\"{joins} WHERE {}",
                counted.where_clause
            )
        });
        let (params, count_params) = (bind(&sqlf.params), bind(&counted.params));
        let (items, total) = self
            .database()
            .await?
            .read(move |c| {
                // One read transaction: the page and its count see the same snapshot while
                // new entries are being written.
                let _snapshot = c.unchecked_transaction()?;
                let mut values = params.clone();
                values.push(Sqlite::Integer(offset.min(i64::MAX as u64) as i64));
                let items = c
                    .prepare(&select)?
                    .query_map(refs(&values).as_slice(), from_row)?
                    .collect::<warren_store::sql::Result<Vec<_>>>()?;
                let total = match count {
                    Some(sql) => Some(
                        c.prepare(&sql)?
                            .query_row(refs(&count_params).as_slice(), |r| r.get::<_, i64>(0))?,
                    ),
                    None => None,
                };
                Ok::<_, Error>((items, total))
            })
            .await?;
        let (total_items, total_pages) = match total {
            Some(n) => (n, (n + per_page as i64 - 1) / per_page as i64),
            None => (-1, -1),
        };
        Ok(Page {
            items,
            page,
            per_page,
            total_items,
            total_pages,
            slow: None,
        })
    }

    /// The log with `id`, if any.
    pub async fn view(&self, id: &str) -> Result<Option<Value>> {
        let id = id.to_string();
        self.database()
            .await?
            .read(move |c| {
                Ok::<_, Error>(
                    c.prepare_cached(&format!("SELECT {COLUMNS} FROM \"_logs\" WHERE id = ?1"))?
                        .query_row([id], from_row)
                        .optional()?,
                )
            })
            .await
    }

    /// Counts of logs matching `filter` per hour: `[{"date":"… HH:00:00.000Z","total":N}]`,
    /// oldest first.
    pub async fn stats(&self, filter: &str) -> Result<Vec<Value>> {
        let sqlf = compile(filter, "")?.to_sql();
        let joins = if sqlf.joins.is_empty() {
            String::new()
        } else {
            format!(" {}", sqlf.joins)
        };
        // Grouped by the hourly index's own expression, so the hours are read in order from it.
        let sql = format!(
            "SELECT COUNT(DISTINCT \"_logs\".\"id\") AS total, {hour} AS hour
             FROM \"_logs\"{joins} WHERE {} GROUP BY {hour} ORDER BY {hour}",
            sqlf.where_clause,
            hour = crate::HOUR_KEY,
        );
        let params = bind(&sqlf.params);
        self.database()
            .await?
            .read(move |c| {
                let rows = c
                    .prepare(&sql)?
                    .query_map(refs(&params).as_slice(), |r| {
                        let hour: Option<String> = r.get(1)?;
                        Ok(json!({
                            "date": hour.map(|h| format!("{h}:00:00.000Z")).unwrap_or_default(),
                            "total": r.get::<_, i64>(0)?,
                        }))
                    })?
                    .collect::<warren_store::sql::Result<Vec<_>>>()?;
                Ok::<_, Error>(rows)
            })
            .await
    }

    /// Deletes every log (pending ones included) and compacts the file.
    pub async fn truncate(&self) -> Result<()> {
        drop(self.inner.take());
        let db = self.database().await?;
        db.write(|c| {
            c.execute("DELETE FROM _logs", [])?;
            Ok::<_, Error>(())
        })
        .await?;
        // PocketBase compacts the file too; a busy database just stays large until next time.
        if let Err(e) = db.vacuum().await {
            tracing::debug!(error = %e, "the logs database was not compacted");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_reach_json_paths_and_refuse_unknown_fields() {
        let sql = compile("data.status = 400 && level > 0", "-created")
            .unwrap()
            .to_sql();
        assert!(sql.where_clause.contains("JSON_EXTRACT"), "{sql:?}");
        assert!(sql.order_by.contains("created"));
        assert!(compile("bogus = 1", "").is_err());
        assert!(compile("@request.auth.id != ''", "").is_err());
        assert!(compile("", "nope").is_err());
    }
}
