//! The write a hook chain asks for with `e.next()` of `onRecordCreate/Update/Delete`: the
//! pipeline's channel for the running call (a thread-local, as the call runs on this thread)
//! and the native function the prelude calls.

use std::cell::RefCell;

use rquickjs::{Ctx, Function, Object};
use serde_json::{Map, Value, json};
use warren_tenant::hooks::WriteRequest;

thread_local! {
    static WRITER: RefCell<Option<tokio::sync::mpsc::Sender<WriteRequest>>> = const { RefCell::new(None) };
}

/// Sets (or clears) where the running call's write goes; returns the previous one.
pub(crate) fn set(
    writer: Option<tokio::sync::mpsc::Sender<WriteRequest>>,
) -> Option<tokio::sync::mpsc::Sender<WriteRequest>> {
    WRITER.with(|w| w.replace(writer))
}

/// Hands `record` to the pipeline and waits for the write (on the call's blocking thread):
/// `{"record":…}`, `{"error":{status,message,data}}`, or `{"none":true}` when the call has no
/// pipeline waiting (the engine writes after the hooks then).
fn write(record: &str) -> String {
    let Some(writer) = WRITER.with(|w| w.borrow_mut().take()) else {
        return json!({ "none": true }).to_string();
    };
    let record: Map<String, Value> = serde_json::from_str(record).unwrap_or_default();
    let (reply, answer) = tokio::sync::oneshot::channel();
    if writer.blocking_send((record, reply)).is_err() {
        return json!({ "none": true }).to_string();
    }
    // Waiting for the pipeline (the writer's queue, the commit) is not the tenant's CPU time.
    // A call past its whole wait budget still waits for its write (then counted as CPU time).
    let mut pending = Some(answer);
    let waited = crate::sandbox::waiting(|_| pending.take().map(|a| a.blocking_recv()));
    let answer = match waited {
        Ok(Some(answer)) => Some(answer),
        _ => pending.map(|a| a.blocking_recv()),
    };
    match answer.and_then(|a| a.ok()) {
        Some(Ok(saved)) => json!({ "record": saved }).to_string(),
        Some(Err(e)) => {
            json!({ "error": { "status": e.status, "message": e.message, "data": e.data } })
                .to_string()
        }
        None => json!({ "error": { "status": 500, "message": "", "data": {} } }).to_string(),
    }
}

/// Adds `write` to the prelude's native functions.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> rquickjs::Result<()> {
    native.set(
        "write",
        Function::new(ctx.clone(), move |record: String| write(&record))?,
    )
}
