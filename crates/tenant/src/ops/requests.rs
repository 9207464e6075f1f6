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
use crate::hooks::{
    Code, HookError, HookRequest, RecordEvent, RequestAnswer, RouteResponse, WriteRequest,
};

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

/// Whether the tenant's code listens for `event` on `entry`'s collection: when it does not,
/// a read's answer can be written out as it was read, without the JSON value hooks work on.
pub async fn listens(tenant: &Tenant, entry: &Entry, event: RecordEvent) -> bool {
    listening(tenant, entry, event).await.is_some()
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

/// What the write hooks of a request decided.
enum Asked<T> {
    /// The last `e.next()` made the write (the rest of the request); this is its result.
    Wrote(T),
    /// The chain ended without writing from inside: the request goes on with the data.
    Next(Map<String, Value>),
    /// A hook answered the request itself.
    Answered(RouteResponse),
}

/// A write's failure as the hook that called `e.next()` sees it thrown.
fn thrown(error: &Error) -> HookError {
    use warren_records::Error as E;
    match error {
        Error::Hook(hook) => hook.clone(),
        Error::Records(e) => {
            let status = match e {
                E::NotFound(_) => 404,
                E::Forbidden(_) | E::ForbiddenOwned(_) => 403,
                E::Unauthorized(_) => 401,
                E::BadRequest(_) | E::Validation { .. } => 400,
                _ => return HookError::internal(),
            };
            let data = match e {
                E::Validation { errors, .. } => match errors.to_value() {
                    Value::Object(data) => data,
                    _ => Map::new(),
                },
                _ => Map::new(),
            };
            HookError {
                status,
                message: e.to_string(),
                data,
            }
        }
        _ => HookError::internal(),
    }
}

/// Runs the request hooks of `event` with the last `e.next()` running `write` on the record
/// as the hooks left it, so code after `e.next()` sees the saved record (`shown` is what it
/// sees). Once written, the request's answer is the write's, as PocketBase has sent its
/// response by then; a failed write is the answer whatever the hook does with it.
async fn ask_writing<T>(
    tenant: &Tenant,
    code: &dyn Code,
    entry: &Entry,
    (event, data, request): (RecordEvent, Map<String, Value>, HookRequest),
    write: impl AsyncFnOnce(Map<String, Value>) -> Result<T, Error>,
    shown: impl Fn(&T) -> Map<String, Value>,
) -> Result<Asked<T>, Error> {
    let collection = (entry.collection.name.as_str(), entry.collection.id.as_str());
    let (writes, mut asked) = tokio::sync::mpsc::channel::<WriteRequest>(1);
    let call = code.request_event_writing(tenant, event, collection, data, &request, writes);
    tokio::pin!(call);
    let mut write = Some(write);
    let mut outcome: Option<Result<T, Error>> = None;
    let answer = loop {
        tokio::select! {
            answer = &mut call => break answer,
            Some((record, reply)) = asked.recv() => {
                let done = match write.take() {
                    Some(write) => crate::hooks::nested(write(record)).await,
                    None => Err(Error::Hook(HookError::internal())),
                };
                let _ = reply.send(done.as_ref().map(&shown).map_err(thrown));
                outcome = Some(done);
            }
        }
    };
    Ok(match (answer, outcome) {
        (_, Some(done)) => Asked::Wrote(done?),
        (Err(refusal), None) => return Err(refusal.into()),
        (Ok(RequestAnswer::Next(data)), None) => Asked::Next(data),
        (Ok(RequestAnswer::Written(response)), None) => Asked::Answered(response),
        (Ok(RequestAnswer::Stopped), None) => Asked::Answered(RouteResponse {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        }),
    })
}

/// An API create or update: runs `onRecordCreateRequest`/`onRecordUpdateRequest` on the
/// submitted record (an update's stored record with the submitted fields over it); their last
/// `e.next()` writes what they left (or the write follows them when they did not call it
/// from inside).
pub async fn save_record_request(
    tenant: &Tenant,
    services: &Services,
    save: SaveRecord<'_>,
    request: impl FnOnce() -> HookRequest,
) -> Result<Handled<Value>, Error> {
    let event = match save.id {
        Some(_) => RecordEvent::UpdateRequest,
        None => RecordEvent::CreateRequest,
    };
    let Some(code) = listening(tenant, &save.entry, event).await else {
        return save_record(tenant, services, save).await.map(Handled::Done);
    };
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
    let entry = save.entry.clone();
    let updating = save.id.is_some();
    let mut pending = Some(save);
    let write = async |after: Map<String, Value>| match pending.take() {
        Some(mut save) => {
            merge_changes(&mut save.body, &before, after, updating);
            save_record(tenant, services, save).await
        }
        None => Err(Error::Hook(HookError::internal())),
    };
    let shown = |saved: &Value| saved.as_object().cloned().unwrap_or_default();
    let asked = (event, data, request);
    // Boxed: with the write it may run inside, this future would otherwise make every write
    // request's, hooks or not, that much larger.
    let asked = Box::pin(ask_writing(
        tenant,
        code.as_ref(),
        &entry,
        asked,
        write,
        shown,
    ))
    .await?;
    match asked {
        Asked::Wrote(saved) => Ok(Handled::Done(saved)),
        Asked::Answered(response) => Ok(Handled::Answered(response)),
        Asked::Next(mut data) => {
            let Some(mut save) = pending.take() else {
                return Err(Error::Hook(HookError::internal()));
            };
            let after = match data.remove("record") {
                Some(Value::Object(after)) => after,
                _ => before.clone(),
            };
            merge_changes(&mut save.body, &before, after, updating);
            save_record(tenant, services, save).await.map(Handled::Done)
        }
    }
}

/// An API delete: runs `onRecordDeleteRequest` on the stored record; its last `e.next()`
/// deletes it (or the delete follows the hooks when they did not call it from inside).
pub async fn delete_record_request(
    tenant: &Tenant,
    services: &Services,
    delete: DeleteRecord<'_>,
    request: impl FnOnce() -> HookRequest,
) -> Result<Handled<()>, Error> {
    let event = RecordEvent::DeleteRequest;
    let Some(code) = listening(tenant, &delete.entry, event).await else {
        return delete_record(tenant, services, delete)
            .await
            .map(Handled::Done);
    };
    let record = stored(tenant, &delete.entry, delete.id).await?;
    let data = one(
        "record",
        Value::Object(with_collection(&delete.entry, record)),
    );
    let entry = delete.entry.clone();
    let mut pending = Some(delete);
    let write = async |_: Map<String, Value>| match pending.take() {
        Some(delete) => delete_record(tenant, services, delete).await,
        None => Err(Error::Hook(HookError::internal())),
    };
    let asked = (event, data, request());
    let asked = ask_writing(tenant, code.as_ref(), &entry, asked, write, |_| Map::new());
    let asked = Box::pin(asked).await?;
    match asked {
        Asked::Wrote(()) => Ok(Handled::Done(())),
        Asked::Answered(response) => Ok(Handled::Answered(response)),
        Asked::Next(_) => match pending.take() {
            Some(delete) => delete_record(tenant, services, delete)
                .await
                .map(Handled::Done),
            None => Err(Error::Hook(HookError::internal())),
        },
    }
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
