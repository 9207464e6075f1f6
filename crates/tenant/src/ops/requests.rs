//! The tenant's request hooks around the record API (`onRecordCreateRequest` ...,
//! `onRecordsListRequest`, `onRecordViewRequest`, `onRecordAuthRequest`): they see the record
//! (or the page, or the login) and the request, and may change it, refuse it, or answer the
//! request themselves. The HTTP handlers call these and render what they return; a tenant whose
//! code does not listen for the event pays one `listens` check and the request is never copied.

use std::sync::Arc;

use serde_json::{Map, Value};
use warren_records::Entry;

use super::hooks::{merge_changes, stored};
use super::{DeleteRecord, Error, SaveRecord, Services, delete_record, save_record};
use crate::Tenant;
use crate::hooks::{Code, HookRequest, RecordEvent, RequestAnswer, RouteResponse};

/// The outcome of a request with hooks: the usual answer, or the one a hook wrote.
#[derive(Debug)]
pub enum Handled<T> {
    /// The request went through; the handler renders this as usual.
    Done(T),
    /// A hook answered the request itself (an empty 200 when it neither answered nor called
    /// `e.next()`, as PocketBase does).
    Answered(RouteResponse),
}

/// The tenant's code when it listens for `event` on `entry`'s collection.
async fn listening(tenant: &Tenant, entry: &Entry, event: RecordEvent) -> Option<Arc<dyn Code>> {
    let name = entry.collection.name.as_str();
    tenant.code().await.filter(|c| c.listens(event, name))
}

/// Runs the hooks of `event` on `data`: `Ok` with the data as they left it when the request
/// goes on, `Err` with the answer a hook wrote.
async fn ask(
    tenant: &Tenant,
    code: &dyn Code,
    entry: &Entry,
    event: RecordEvent,
    data: Map<String, Value>,
    request: HookRequest,
) -> Result<Result<Map<String, Value>, RouteResponse>, Error> {
    let collection = (entry.collection.name.as_str(), entry.collection.id.as_str());
    let answer = code
        .request_event(tenant, event, collection, data, &request)
        .await?;
    Ok(match answer {
        RequestAnswer::Next(data) => Ok(data),
        RequestAnswer::Written(response) => Err(response),
        RequestAnswer::Stopped => Err(RouteResponse {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        }),
    })
}

/// A record as a hook's `e.record` carries it: its fields with `collectionName` and
/// `collectionId`.
fn with_collection(entry: &Entry, mut record: Map<String, Value>) -> Map<String, Value> {
    record.insert(
        "collectionName".into(),
        entry.collection.name.as_str().into(),
    );
    record.insert("collectionId".into(), entry.collection.id.as_str().into());
    record
}

fn one(key: &str, value: Value) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert(key.into(), value);
    data
}

/// An API create or update: runs `onRecordCreateRequest`/`onRecordUpdateRequest` on the
/// submitted record (an update's stored record with the submitted fields over it), then the
/// write with what the hooks left.
pub async fn save_record_request(
    tenant: &Tenant,
    services: &Services,
    mut save: SaveRecord<'_>,
    request: impl FnOnce() -> HookRequest,
) -> Result<Handled<Value>, Error> {
    let event = match save.id {
        Some(_) => RecordEvent::UpdateRequest,
        None => RecordEvent::CreateRequest,
    };
    if let Some(code) = listening(tenant, &save.entry, event).await {
        let mut record = match save.id.as_deref() {
            Some(id) => stored(tenant, &save.entry, id).await?,
            None => Map::new(),
        };
        for (key, value) in &save.body {
            record.insert(key.clone(), value.clone());
        }
        let before = with_collection(&save.entry, record);
        let data = one("record", Value::Object(before.clone()));
        let request = HookRequest {
            body: save.body.clone(),
            ..request()
        };
        match ask(tenant, code.as_ref(), &save.entry, event, data, request).await? {
            Ok(mut data) => {
                let after = match data.remove("record") {
                    Some(Value::Object(after)) => after,
                    _ => before.clone(),
                };
                merge_changes(&mut save.body, &before, after, save.id.is_some());
            }
            Err(response) => return Ok(Handled::Answered(response)),
        }
    }
    save_record(tenant, services, save).await.map(Handled::Done)
}

/// An API delete: runs `onRecordDeleteRequest` on the stored record, then the delete.
pub async fn delete_record_request(
    tenant: &Tenant,
    services: &Services,
    delete: DeleteRecord<'_>,
    request: impl FnOnce() -> HookRequest,
) -> Result<Handled<()>, Error> {
    let event = RecordEvent::DeleteRequest;
    if let Some(code) = listening(tenant, &delete.entry, event).await {
        let record = stored(tenant, &delete.entry, delete.id).await?;
        let data = one(
            "record",
            Value::Object(with_collection(&delete.entry, record)),
        );
        let asked = ask(tenant, code.as_ref(), &delete.entry, event, data, request());
        if let Err(response) = asked.await? {
            return Ok(Handled::Answered(response));
        }
    }
    delete_record(tenant, services, delete)
        .await
        .map(Handled::Done)
}

/// The request hook of one batch item (`onRecordCreateRequest`, `…UpdateRequest`,
/// `…DeleteRequest`, as PocketBase fires them for batch items): changes `body` as the hooks
/// left the record. A hook that answers an item itself cannot be part of Warren's batch
/// answer, so the item fails with that said.
pub(super) async fn batch_item(
    tenant: &Tenant,
    entry: &Entry,
    (event, id): (RecordEvent, Option<&str>),
    body: &mut Map<String, Value>,
    request: &HookRequest,
) -> Result<(), Error> {
    let Some(code) = listening(tenant, entry, event).await else {
        return Ok(());
    };
    let mut record = match id {
        Some(id) => stored(tenant, entry, id).await?,
        None => Map::new(),
    };
    if event != RecordEvent::DeleteRequest {
        for (key, value) in body.iter() {
            record.insert(key.clone(), value.clone());
        }
    }
    let before = with_collection(entry, record);
    let data = one("record", Value::Object(before.clone()));
    let request = HookRequest {
        body: body.clone(),
        ..request.clone()
    };
    match ask(tenant, code.as_ref(), entry, event, data, request).await? {
        Ok(mut data) if event != RecordEvent::DeleteRequest => {
            if let Some(Value::Object(after)) = data.remove("record") {
                merge_changes(body, &before, after, id.is_some());
            }
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Hook(crate::hooks::HookError {
            status: 400,
            message: "A hook answered a batch item itself; batch items need e.next().".into(),
            data: Map::new(),
        })),
    }
}

/// A page of an API list (`{page, perPage, totalItems, totalPages, items}`) through
/// `onRecordsListRequest`: `e.records` are the items, `e.result` the page.
pub async fn list_request(
    tenant: &Tenant,
    entry: &Entry,
    page: Value,
    request: impl FnOnce() -> HookRequest,
) -> Result<Handled<Value>, Error> {
    let event = RecordEvent::ListRequest;
    let Some(code) = listening(tenant, entry, event).await else {
        return Ok(Handled::Done(page));
    };
    let Value::Object(mut page) = page else {
        return Ok(Handled::Done(page));
    };
    let records = page
        .remove("items")
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let mut data = one("result", Value::Object(page));
    data.insert("records".into(), records);
    Ok(
        match ask(tenant, code.as_ref(), entry, event, data, request()).await? {
            Ok(mut data) => Handled::Done(data.remove("result").unwrap_or_default()),
            Err(response) => Handled::Answered(response),
        },
    )
}

/// A record of an API view through `onRecordViewRequest`.
pub async fn view_request(
    tenant: &Tenant,
    entry: &Entry,
    record: Value,
    request: impl FnOnce() -> HookRequest,
) -> Result<Handled<Value>, Error> {
    let event = RecordEvent::ViewRequest;
    let Some(code) = listening(tenant, entry, event).await else {
        return Ok(Handled::Done(record));
    };
    let data = one("record", record);
    Ok(
        match ask(tenant, code.as_ref(), entry, event, data, request()).await? {
            Ok(mut data) => Handled::Done(data.remove("record").unwrap_or_default()),
            Err(response) => Handled::Answered(response),
        },
    )
}

/// A successful login's answer (`{token, record, meta?}`) through `onRecordAuthRequest`, with
/// `method` (`password`, `otp`, `oauth2`, ...) as `e.authMethod`.
pub async fn auth_request(
    tenant: &Tenant,
    entry: &Entry,
    answer: Value,
    method: &str,
    request: impl FnOnce() -> HookRequest,
) -> Result<Handled<Value>, Error> {
    let event = RecordEvent::AuthRequest;
    let Some(code) = listening(tenant, entry, event).await else {
        return Ok(Handled::Done(answer));
    };
    let Value::Object(mut answer) = answer else {
        return Ok(Handled::Done(answer));
    };
    let mut data = Map::new();
    data.insert("record".into(), answer.remove("record").unwrap_or_default());
    data.insert("token".into(), answer.remove("token").unwrap_or_default());
    data.insert("authMethod".into(), method.into());
    if let Some(meta) = answer.remove("meta") {
        data.insert("meta".into(), meta);
    }
    let asked = ask(tenant, code.as_ref(), entry, event, data, request());
    Ok(match asked.await? {
        Ok(data) => {
            let mut out = Map::new();
            if let Some(meta) = data.get("meta").filter(|m| !m.is_null()) {
                out.insert("meta".into(), meta.clone());
            }
            out.insert("record".into(), data["record"].clone());
            out.insert("token".into(), data["token"].clone());
            Handled::Done(Value::Object(out))
        }
        Err(response) => Handled::Answered(response),
    })
}
