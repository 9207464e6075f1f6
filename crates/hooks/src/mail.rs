//! The tenant's mail hooks run on a mail the node sends for it (a system mail): the record
//! mail's own hook, then `onMailerSend`, in one call into the sandbox.

use rquickjs::{Function, Object};
use serde_json::Value;
use warren_tenant::Tenant;
use warren_tenant::hooks::{HookError, MailEvent};

use crate::TenantCode;

impl TenantCode {
    /// Runs the mail hooks on `mail`: the message as they left it, `None` when one did not
    /// call `e.next()`.
    pub(crate) async fn dispatch_mail(
        &self,
        tenant: &Tenant,
        mail: MailEvent,
    ) -> Result<Option<Value>, HookError> {
        let hook = mail.hook.unwrap_or_default();
        let what = if hook.is_empty() {
            warren_tenant::mail::SEND_HOOK.to_string()
        } else {
            format!("{hook}({})", mail.collection)
        };
        let message = mail.message.to_string();
        let record = mail
            .record
            .map(Value::Object)
            .unwrap_or(Value::Null)
            .to_string();
        let meta = Value::Object(mail.meta).to_string();
        let collection = mail.collection;
        let answer = self
            .run(tenant, move |sandbox| {
                sandbox.call(move |ctx| {
                    let warren: Object = ctx.globals().get("__warren")?;
                    let dispatch: Function = warren.get("mail")?;
                    let answer: rquickjs::String =
                        dispatch.call((hook, message, record, collection, meta))?;
                    answer.to_string()
                })
            })
            .await?;
        let answer = self.answer(tenant, &what, answer)?;
        if answer["proceeded"] != Value::Bool(true) {
            return Ok(None);
        }
        Ok(Some(answer["message"].clone()))
    }
}
