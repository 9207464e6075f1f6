//! `$app`: the tenant's records and collections as its hooks see them, through Warren's record
//! engine and write pipeline with superuser rights (API rules do not apply, as in PocketBase).
//!
//! Calls come from a blocking thread running the tenant's JavaScript and wait for the
//! database there (`Handle::block_on`), within the call's CPU deadline for the JavaScript part.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use warren_filter::RequestContext;
use warren_records::read::{self, ListQuery};
use warren_records::{Caller, Entry};
use warren_tenant::{Tenant, ops};

use crate::native::Shared;

/// Most records one `$app` finder returns.
const MAX_RECORDS: u64 = read::MAX_PER_PAGE;

/// A refusal answered to the JavaScript side (`{"error":{status,message,data}}`).
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl From<warren_store::Error> for Refusal {
    fn from(e: warren_store::Error) -> Self {
        warren_records::Error::from(e).into()
    }
}

impl From<warren_records::Error> for Refusal {
    fn from(e: warren_records::Error) -> Self {
        use warren_records::Error as E;
        let status = match &e {
            E::NotFound(_) => 404,
            E::Forbidden(_) | E::ForbiddenOwned(_) => 403,
            E::Unauthorized(_) => 401,
            E::BadRequest(_) | E::Validation { .. } => 400,
            _ => 500,
        };
        let message = if status == 500 {
            "Something went wrong while processing your request.".to_string()
        } else {
            e.to_string()
        };
        Self { status, message }
    }
}

impl From<ops::Error> for Refusal {
    fn from(e: ops::Error) -> Self {
        match e {
            ops::Error::Records(e) => e.into(),
            ops::Error::Hook(e) => Self {
                status: e.status,
                message: e.message,
            },
            other => Self {
                status: 400,
                message: other.to_string(),
            },
        }
    }
}

pub(crate) fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// Runs `$app.<method>(...args)` (`args` a JSON array); answers `{"value":…}` or `{"error":…}`.
pub(crate) fn call(shared: &Shared, method: &str, args: &str) -> String {
    let answer = match shared.tenant() {
        None => Err(refuse(500, "$app is not available here")),
        Some(tenant) => match serde_json::from_str::<Vec<Value>>(args) {
            Ok(args) => match crate::transaction::call(shared, &tenant, method, &args) {
                Some(answer) => answer,
                None => shared
                    .handle
                    .block_on(dispatch(shared, &tenant, method, &args)),
            },
            Err(e) => Err(refuse(400, e.to_string())),
        },
    };
    match answer {
        Ok(value) => json!({ "value": value }).to_string(),
        Err(refusal) => json!({ "error": {
            "status": refusal.status,
            "message": refusal.message,
            "data": {},
        }})
        .to_string(),
    }
}

pub(crate) fn superuser() -> Caller {
    Caller::Superuser {
        record: Default::default(),
    }
}

async fn dispatch(
    shared: &Shared,
    tenant: &Tenant,
    method: &str,
    args: &[Value],
) -> Result<Value, Refusal> {
    let text = |i: usize| args.get(i).and_then(Value::as_str).unwrap_or_default();
    let number = |i: usize| args.get(i).and_then(Value::as_u64).unwrap_or(0);
    let params = |i: usize| {
        args.get(i)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let catalog = tenant.catalog();
    match method {
        "findCollectionByNameOrId" => {
            let entry = read::collection(&catalog, text(0))?;
            Ok(serde_json::from_str(&entry.collection.to_api_json()).unwrap_or_default())
        }
        "findRecordById" => {
            let entry = read::collection(&catalog, text(0))?;
            let ctx = superuser().context();
            Ok(read::view(tenant.db(), catalog, entry, &superuser(), ctx, text(1), "").await?)
        }
        "findFirstRecordByData" => {
            let entry = read::collection(&catalog, text(0))?;
            let field = text(1);
            if !field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                return Err(refuse(400, format!("invalid field name {field:?}")));
            }
            let mut values = Map::new();
            values.insert("value".into(), args.get(2).cloned().unwrap_or_default());
            let filter = bind(&format!("{field} = {{:value}}"), &values)?;
            first(tenant, entry, &filter).await
        }
        "findFirstRecordByFilter" => {
            let entry = read::collection(&catalog, text(0))?;
            let filter = bind(text(1), &params(2))?;
            first(tenant, entry, &filter).await
        }
        "findRecordsByFilter" => {
            let entry = read::collection(&catalog, text(0))?;
            let filter = bind(text(1), &params(5))?;
            let (limit, offset) = (number(3), number(4));
            let limit = if limit == 0 {
                MAX_RECORDS
            } else {
                limit.min(MAX_RECORDS)
            };
            let items = page(tenant, entry, &filter, text(2), limit, offset).await?;
            Ok(Value::Array(items))
        }
        "countRecords" => {
            let entry = read::collection(&catalog, text(0))?;
            let filter = bind(text(1), &params(2))?;
            let query = ListQuery {
                page: 1,
                per_page: 1,
                filter,
                ..Default::default()
            };
            let caller = superuser();
            let ctx = caller.context();
            let page = read::list(tenant.db(), catalog, entry, &caller, ctx, query).await?;
            Ok(json!(page.total_items.max(0)))
        }
        "save" => save(shared, tenant, text(0), args.get(1)).await,
        "delete" => {
            let entry = read::collection(&catalog, text(0))?;
            let services = services(shared)?;
            let caller = superuser();
            let request = ops::DeleteRecord {
                entry,
                id: text(1),
                caller: &caller,
                ctx: caller.context(),
            };
            ops::delete_record(tenant, services, request).await?;
            Ok(Value::Null)
        }
        _ => Err(refuse(
            500,
            format!("$app.{method}() is not supported by Warren yet"),
        )),
    }
}

fn services(shared: &Shared) -> Result<&ops::Services, Refusal> {
    shared
        .services
        .as_ref()
        .ok_or_else(|| refuse(500, "this node does not let hooks write records"))
}

/// `$app.save(record)`: updates the record when its id exists, creates it otherwise.
async fn save(
    shared: &Shared,
    tenant: &Tenant,
    collection: &str,
    data: Option<&Value>,
) -> Result<Value, Refusal> {
    let catalog = tenant.catalog();
    let entry = read::collection(&catalog, collection)?;
    let services = services(shared)?;
    let (mut body, id) = save_body(data);
    let exists = match &id {
        None => false,
        Some(id) => {
            let caller = superuser();
            let ctx = caller.context();
            read::view(
                tenant.db(),
                catalog.clone(),
                entry.clone(),
                &caller,
                ctx,
                id,
                "",
            )
            .await
            .is_ok()
        }
    };
    if exists {
        body.remove("id");
    }
    let caller = superuser();
    let request = ops::SaveRecord {
        entry,
        id: if exists { id } else { None },
        caller: &caller,
        ctx: RequestContext::default(),
        body,
        uploads: Vec::new(),
        expand: "",
    };
    Ok(ops::save_record(tenant, services, request).await?)
}

async fn first(tenant: &Tenant, entry: Arc<Entry>, filter: &str) -> Result<Value, Refusal> {
    let items = page(tenant, entry, filter, "", 1, 0).await?;
    items
        .into_iter()
        .next()
        .ok_or_else(|| refuse(404, "The requested resource wasn't found."))
}

/// Records `offset..offset+limit` of the filtered, sorted list.
async fn page(
    tenant: &Tenant,
    entry: Arc<Entry>,
    filter: &str,
    sort: &str,
    limit: u64,
    offset: u64,
) -> Result<Vec<Value>, Refusal> {
    // Pages are aligned on `limit`; an offset between pages reads the span up to it.
    let (page, per_page, skip) = if offset.is_multiple_of(limit) {
        (offset / limit + 1, limit, 0)
    } else if offset + limit <= MAX_RECORDS {
        (1, offset + limit, offset)
    } else {
        return Err(refuse(
            400,
            "the offset must be a multiple of the limit past 1000 records",
        ));
    };
    let query = ListQuery {
        page,
        per_page,
        sort: sort.to_string(),
        filter: filter.to_string(),
        skip_total: true,
        ..Default::default()
    };
    let caller = superuser();
    let ctx = caller.context();
    let catalog = tenant.catalog();
    let result = read::list(tenant.db(), catalog, entry, &caller, ctx, query).await?;
    Ok(result
        .items
        .iter()
        .skip(skip as usize)
        .map(|record| record.to_value())
        .collect())
}

/// Puts `params` into the `{:name}` placeholders of `filter` as literals (strings quoted and
/// escaped for the filter language); the filter is then parsed, never spliced into SQL (the
/// compiled query binds every literal).
pub(crate) fn bind(filter: &str, params: &Map<String, Value>) -> Result<String, Refusal> {
    let mut out = String::with_capacity(filter.len());
    let mut rest = filter;
    while let Some(start) = rest.find("{:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(refuse(400, "unterminated {:placeholder} in the filter"));
        };
        let name = &after[..end];
        let value = params
            .get(name)
            .ok_or_else(|| refuse(400, format!("missing filter parameter {name:?}")))?;
        out.push_str(&literal(value)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn literal(value: &Value) -> Result<String, Refusal> {
    match value {
        Value::Null => Ok("null".into()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(format!(
            "'{}'",
            s.replace('\\', "\\\\").replace('\'', "\\'")
        )),
        other => literal(&Value::String(other.to_string())),
    }
}

/// What `$app.save(record)` writes: the record's fields without the ones the API adds, and its
/// id when it has one (an update if that record exists, else a create with that id).
pub(crate) fn save_body(data: Option<&Value>) -> (Map<String, Value>, Option<String>) {
    let mut body = data.and_then(Value::as_object).cloned().unwrap_or_default();
    for key in ["collectionId", "collectionName", "expand"] {
        body.remove(key);
    }
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    (body, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_quoted_literals() {
        let params = json!({"a": "it's", "n": 3, "b": "x"});
        let params = params.as_object().unwrap();
        assert_eq!(
            bind("title = {:a} && n > {:n} || t = {:b}", params)
                .ok()
                .unwrap(),
            "title = 'it\\'s' && n > 3 || t = 'x'"
        );
        assert!(bind("x = {:missing}", params).is_err());
        let tricky = json!({"q": "a\\' || 1=1"});
        let bound = bind("x = {:q}", tricky.as_object().unwrap()).ok().unwrap();
        assert_eq!(bound, "x = 'a\\\\\\' || 1=1'");
    }
}
