//! The tenant's record hooks (`onRecordCreate` ... in its `pb_hooks`) around the pipeline's
//! writes. A tenant whose code listens for nothing pays one look at a loaded cell.
//!
//! Before-write hooks see the record as it will be written (for an update, the stored record
//! with the submitted fields over it) and may change it or refuse; only the fields the caller
//! submitted or a hook changed are written. The last `e.next()` (after the `…Execute` hooks)
//! stages the uploads and writes, so a refusal before it leaves nothing behind and code after
//! it sees the saved record; batch items run their hooks before the batch instead.
//! After-success hooks see the record as written, after-error hooks the failure; their own
//! failures are logged by the engine and change nothing.

use serde_json::{Map, Value};
use warren_records::{Caller, Entry, read};

use super::Error;
use crate::Tenant;
use crate::hooks::{HookRequest, RecordEvent};

/// Runs the `Create` (no `id`) or `Update` hooks on `body`, then the `…Execute` hooks, leaving
/// in it what is to be written.
pub(super) async fn before_save(
    tenant: &Tenant,
    entry: &Entry,
    id: Option<&str>,
    body: &mut Map<String, Value>,
) -> Result<(), Error> {
    let events = match id {
        Some(_) => [RecordEvent::Update, RecordEvent::UpdateExecute],
        None => [RecordEvent::Create, RecordEvent::CreateExecute],
    };
    for event in events {
        run_before_save(tenant, entry, event, id, body).await?;
    }
    Ok(())
}

/// Runs the hooks of one before-write `event` on `body`.
async fn run_before_save(
    tenant: &Tenant,
    entry: &Entry,
    event: RecordEvent,
    id: Option<&str>,
    body: &mut Map<String, Value>,
) -> Result<(), Error> {
    let name = entry.collection.name.as_str();
    let Some(code) = tenant.code().await.filter(|c| c.listens(event, name)) else {
        return Ok(());
    };
    let mut record = match id {
        Some(id) => stored(tenant, entry, id).await?,
        None => Map::new(),
    };
    for (key, value) in body.iter() {
        record.insert(key.clone(), value.clone());
    }
    record.insert("collectionName".into(), name.into());
    record.insert("collectionId".into(), entry.collection.id.as_str().into());
    let before = record.clone();
    let after = code.record_event(tenant, event, name, record).await?;
    merge_changes(body, &before, after, id.is_some());
    Ok(())
}

/// Saves `body` (a create without `id`) through the tenant's `Create`/`Update` and
/// `…Execute` hooks: their last `e.next()` runs `write` with the record as they left it and
/// hands them the saved record, so code after `e.next()` sees it; a throw after it answers the
/// caller with its refusal while the record stays written, as in PocketBase. Without
/// listeners `write` runs at once.
pub(super) async fn save_through_hooks<W, F>(
    tenant: &Tenant,
    entry: &Entry,
    id: Option<&str>,
    body: Map<String, Value>,
    write: W,
) -> Result<Value, Error>
where
    W: FnOnce(Map<String, Value>) -> F,
    F: std::future::Future<Output = Result<Value, Error>>,
{
    let events = match id {
        Some(_) => (RecordEvent::Update, RecordEvent::UpdateExecute),
        None => (RecordEvent::Create, RecordEvent::CreateExecute),
    };
    through_hooks(tenant, entry, events, id, body, write).await
}

/// Deletes record `id` through the tenant's `Delete` and `DeleteExecute` hooks: their last
/// `e.next()` runs `write` (which ignores the fields it is given), as
/// [`save_through_hooks`] does for saves.
pub(super) async fn delete_through_hooks<W, F>(
    tenant: &Tenant,
    entry: &Entry,
    id: &str,
    write: W,
) -> Result<Value, Error>
where
    W: FnOnce(Map<String, Value>) -> F,
    F: std::future::Future<Output = Result<Value, Error>>,
{
    let events = (RecordEvent::Delete, RecordEvent::DeleteExecute);
    through_hooks(tenant, entry, events, Some(id), Map::new(), write).await
}

async fn through_hooks<W, F>(
    tenant: &Tenant,
    entry: &Entry,
    (event, execute): (RecordEvent, RecordEvent),
    id: Option<&str>,
    body: Map<String, Value>,
    write: W,
) -> Result<Value, Error>
where
    W: FnOnce(Map<String, Value>) -> F,
    F: std::future::Future<Output = Result<Value, Error>>,
{
    let name = entry.collection.name.as_str();
    let Some(code) = tenant
        .code()
        .await
        .filter(|c| c.listens(event, name) || c.listens(execute, name))
    else {
        return write(body).await;
    };
    let mut record = match id {
        Some(id) => stored(tenant, entry, id).await?,
        None => Map::new(),
    };
    for (key, value) in &body {
        record.insert(key.clone(), value.clone());
    }
    record.insert("collectionName".into(), name.into());
    record.insert("collectionId".into(), entry.collection.id.as_str().into());
    let before = record.clone();
    let (writes, mut asked) = tokio::sync::mpsc::channel(1);
    let call = code.record_event_writing(tenant, event, name, record, writes);
    tokio::pin!(call);
    let mut pending = Some((body, write));
    let mut outcome: Option<Result<Value, Error>> = None;
    let answer = loop {
        tokio::select! {
            answer = &mut call => break answer,
            Some((after, reply)) = asked.recv() => {
                let done = match pending.take() {
                    Some((mut body, write)) => {
                        merge_changes(&mut body, &before, after, id.is_some());
                        write(body).await
                    }
                    None => Err(Error::Hook(crate::hooks::HookError::internal())),
                };
                let saved = match &done {
                    Ok(record) => Ok(record.as_object().cloned().unwrap_or_default()),
                    Err(error) => Err(crate::hooks::HookError {
                        status: 400,
                        message: describe(error),
                        data: Map::new(),
                    }),
                };
                let _ = reply.send(saved);
                outcome = Some(done);
            }
        }
    };
    match (answer, outcome) {
        // Written through `e.next()`, or its write failed: that is the answer.
        (Ok(_), Some(done)) | (Err(_), Some(done @ Err(_))) => done,
        // A throw after the write: the caller gets it, the record stays.
        (Err(refusal), Some(Ok(_))) | (Err(refusal), None) => Err(refusal.into()),
        // The hooks did not write from inside (a write `$app` made from the tenant's code):
        // write what they left.
        (Ok(after), None) => match pending.take() {
            Some((mut body, write)) => {
                merge_changes(&mut body, &before, after, id.is_some());
                write(body).await
            }
            None => Err(Error::Hook(crate::hooks::HookError::internal())),
        },
    }
}

/// Runs the `Delete` then the `DeleteExecute` hooks on the stored record `id`; their refusal
/// stops the delete.
pub(super) async fn before_delete(tenant: &Tenant, entry: &Entry, id: &str) -> Result<(), Error> {
    let name = entry.collection.name.as_str();
    for event in [RecordEvent::Delete, RecordEvent::DeleteExecute] {
        let Some(code) = tenant.code().await.filter(|c| c.listens(event, name)) else {
            continue;
        };
        let mut record = stored(tenant, entry, id).await?;
        record.insert("collectionName".into(), name.into());
        record.insert("collectionId".into(), entry.collection.id.as_str().into());
        code.record_event(tenant, event, name, record).await?;
    }
    Ok(())
}

/// The record an `After…Error` `event` will see if the write fails: `Some` only when the
/// tenant's code listens for it (so nothing is copied otherwise).
pub(super) async fn error_record(
    tenant: &Tenant,
    entry: &Entry,
    event: RecordEvent,
    id: Option<&str>,
    body: &Map<String, Value>,
) -> Option<Map<String, Value>> {
    let name = entry.collection.name.as_str();
    tenant.code().await.filter(|c| c.listens(event, name))?;
    let mut record = body.clone();
    if let Some(id) = id {
        record.insert("id".into(), id.into());
    }
    Some(record)
}

/// Runs the `After…Error` hooks of `event` on `record` with `error` as `e.error`; their own
/// failures are in the tenant's logs and do not change the caller's answer.
pub(super) async fn after_error(
    tenant: &Tenant,
    entry: &Entry,
    event: RecordEvent,
    record: Map<String, Value>,
    error: &Error,
) {
    let name = entry.collection.name.as_str();
    let Some(code) = tenant.loaded_code().filter(|c| c.listens(event, name)) else {
        return;
    };
    let mut data = Map::new();
    data.insert("record".into(), Value::Object(record));
    data.insert("error".into(), describe(error).into());
    let collection = (name, entry.collection.id.as_str());
    let request = HookRequest::default();
    let _ = code
        .request_event(tenant, event, collection, data, &request)
        .await;
}

/// An error as `e.error` reads it: its message, or PocketBase's `field: message.` list for
/// validation errors.
fn describe(error: &Error) -> String {
    let fields = match error {
        Error::Records(warren_records::Error::Validation { errors, .. }) => errors.to_value(),
        Error::Hook(hook) if !hook.data.is_empty() => Value::Object(hook.data.clone()),
        other => return other.to_string(),
    };
    let parts: Vec<String> = fields
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| {
            let message = value["message"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            format!("{key}: {message}")
        })
        .collect();
    format!("{}.", parts.join("; "))
}

/// Leaves in `body` what is to be written after hooks turned `before` into `after`: the
/// submitted fields (as the hooks left them) and every field a hook changed; an update keeps
/// its id.
pub(super) fn merge_changes(
    body: &mut Map<String, Value>,
    before: &Map<String, Value>,
    after: Map<String, Value>,
    update: bool,
) {
    for (key, value) in after {
        if key == "id" && update {
            continue;
        }
        if key == "collectionName" || key == "collectionId" || key == "expand" {
            continue;
        }
        if body.contains_key(&key) || before.get(&key) != Some(&value) {
            body.insert(key, value);
        }
    }
}

/// Runs the after-success hooks of `event` on the written `record`.
pub(super) async fn after(tenant: &Tenant, entry: &Entry, event: RecordEvent, record: &Value) {
    let name = entry.collection.name.as_str();
    let Some(code) = tenant.loaded_code().filter(|c| c.listens(event, name)) else {
        return;
    };
    let mut record = record.as_object().cloned().unwrap_or_default();
    record.remove("expand");
    // A failure is in the tenant's logs already; the write stands, as in PocketBase.
    let _ = code.record_event(tenant, event, name, record).await;
}

/// Whether record `id` exists (only asked when the tenant's code listens for updates or
/// creates of the collection, at any stage).
pub(super) async fn exists(tenant: &Tenant, entry: &Entry, id: Option<&str>) -> bool {
    let name = entry.collection.name.as_str();
    let listening = tenant.code().await.is_some_and(|c| {
        [
            RecordEvent::Create,
            RecordEvent::Update,
            RecordEvent::CreateRequest,
            RecordEvent::UpdateRequest,
            RecordEvent::CreateExecute,
            RecordEvent::UpdateExecute,
        ]
        .into_iter()
        .any(|event| c.listens(event, name))
    });
    match id {
        Some(id) if listening => stored(tenant, entry, id).await.is_ok(),
        // Without listeners the answer does not matter; with no id it is a create.
        _ => false,
    }
}

/// The stored record `id` as a superuser sees it.
pub(super) async fn stored(
    tenant: &Tenant,
    entry: &Entry,
    id: &str,
) -> Result<Map<String, Value>, Error> {
    let caller = Caller::Superuser {
        record: Default::default(),
    };
    let catalog = tenant.catalog();
    let entry = read::collection(&catalog, &entry.collection.id)?;
    let ctx = caller.context();
    let value = read::view(tenant.db(), catalog, entry, &caller, ctx, id, "").await?;
    Ok(value.as_object().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hooks::HookError;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn only_submitted_and_changed_fields_are_written() {
        let before = map(json!({"id": "a", "title": "x", "views": 1, "collectionName": "posts"}));
        let after = map(json!({"id": "b", "title": "x", "views": 2, "slug": "new",
            "collectionName": "posts", "expand": {}}));
        let mut body = map(json!({"title": "x"}));
        merge_changes(&mut body, &before, after.clone(), true);
        assert_eq!(
            Value::Object(body),
            json!({"title": "x", "views": 2, "slug": "new"})
        );
        // A create takes the id a hook gave it.
        let mut body = Map::new();
        merge_changes(&mut body, &before, after, false);
        assert_eq!(body["id"], "b");
    }

    #[test]
    fn errors_read_as_pocketbase_prints_them() {
        let plain = Error::Hook(HookError {
            status: 400,
            message: "Refused at execute.".into(),
            data: Map::new(),
        });
        assert_eq!(describe(&plain), "Refused at execute.");
        let fields = Error::Hook(HookError {
            status: 400,
            message: "Failed.".into(),
            data: map(json!({
                "b": {"code": "x", "message": "Cannot be blank."},
                "a": {"code": "y", "message": "Too long."},
            })),
        });
        assert_eq!(describe(&fields), "a: Too long.; b: Cannot be blank..");
    }
}
