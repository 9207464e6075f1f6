//! Every mail a tenant sends, its system mails and its code's: through the tenant's mail hooks
//! (`onMailerRecord…Send`, `onMailerSend`), its mail rate and counters, then the mailer with
//! the tenant's own mail settings. A tenant whose code has no mail hook pays one check.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Map, Value};
use warren_mail::{Delivery, Email, Mailer, Message};

use crate::Tenant;
use crate::hooks::{HookError, MailEvent};

/// The hook every mail passes.
pub const SEND_HOOK: &str = "onMailerSend";

/// Which system mail a record mail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `request-verification`.
    Verification,
    /// `request-password-reset`.
    PasswordReset,
    /// `request-email-change`.
    EmailChange,
    /// `request-otp`.
    Otp,
    /// A login from a new place.
    AuthAlert,
}

impl Kind {
    /// The record mail's own hook.
    pub fn hook(self) -> &'static str {
        match self {
            Self::Verification => "onMailerRecordVerificationSend",
            Self::PasswordReset => "onMailerRecordPasswordResetSend",
            Self::EmailChange => "onMailerRecordEmailChangeSend",
            Self::Otp => "onMailerRecordOTPSend",
            Self::AuthAlert => "onMailerRecordAuthAlertSend",
        }
    }
}

/// A system mail about an auth record.
#[derive(Debug, Clone)]
pub struct RecordMail {
    /// Which one.
    pub kind: Kind,
    /// The rendered mail.
    pub email: Email,
    /// The record it is about (API JSON), when the caller has it.
    pub record: Option<Map<String, Value>>,
    /// The record's collection name.
    pub collection: String,
    /// `e.meta` of the hook (the new address of an email change ...).
    pub meta: Map<String, Value>,
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tenant sent more mail than its rate allows.
    #[error(
        "the project sent more than {} mails a minute; try again later",
        crate::outbound::MAILS_PER_MINUTE
    )]
    Rate,
    /// A mail hook threw.
    #[error("{0}")]
    Hook(HookError),
    /// The message is invalid or the relay failed.
    #[error(transparent)]
    Mail(#[from] warren_mail::Error),
}

/// Sends a system mail: through the tenant's mail hooks, then [`send`]. `Ok(None)` when a hook
/// stopped it.
pub async fn send_record_mail(
    tenant: &Tenant,
    mailer: &Mailer,
    settings: &Value,
    mail: RecordMail,
) -> Result<Option<Delivery>, Error> {
    let message = Message::from_email(settings, &mail.email);
    let code = mail.email.code.clone();
    let hook = mail.kind.hook();
    let message = match tenant.code().await {
        Some(loaded) if loaded.listens_mail(hook) || loaded.listens_mail(SEND_HOOK) => {
            let event = MailEvent {
                hook: Some(hook),
                message: serde_json::to_value(&message).unwrap_or_default(),
                record: mail.record,
                collection: mail.collection,
                meta: mail.meta,
            };
            match loaded.mail(tenant, event).await.map_err(Error::Hook)? {
                None => {
                    tenant.meter().outbound.mails_refused.fetch_add(1, Relaxed);
                    return Ok(None);
                }
                Some(changed) => serde_json::from_value(changed).map_err(|e| {
                    Error::Mail(warren_mail::Error::Invalid(format!(
                        "the message a mail hook left: {e}"
                    )))
                })?,
            }
        }
        _ => message,
    };
    send(tenant, mailer, settings, &message, code)
        .await
        .map(Some)
}

/// Sends `message` (past the hooks) within the tenant's mail rate, counting it.
pub async fn send(
    tenant: &Tenant,
    mailer: &Mailer,
    settings: &Value,
    message: &Message,
    code: Option<String>,
) -> Result<Delivery, Error> {
    let outbound = &tenant.meter().outbound;
    if !outbound.admit_mail() {
        return Err(Error::Rate);
    }
    let delivery = mailer
        .for_tenant(tenant.id())
        .send_message(settings, message, code)
        .await?;
    outbound.mails.fetch_add(1, Relaxed);
    Ok(delivery)
}

/// [`send_record_mail`] in the background: the outcome is logged (and a hook's failure goes
/// to the tenant's logs), never reported to the request.
pub fn send_later(tenant: Tenant, mailer: Mailer, settings: Value, mail: RecordMail) {
    tokio::spawn(async move {
        let subject = mail.email.subject.clone();
        match send_record_mail(&tenant, &mailer, &settings, mail).await {
            Ok(Some(delivery)) => warren_mail::log_delivery(&subject, Ok(delivery)),
            Ok(None) => tracing::debug!(%subject, "a mail hook stopped the mail"),
            Err(Error::Mail(e)) => warren_mail::log_delivery(&subject, Err(e)),
            Err(e) => {
                let mut data = Map::new();
                data.insert("type".into(), "mail".into());
                data.insert("error".into(), e.to_string().into());
                tenant.logs().record(warren_logs::Entry::new(
                    warren_logs::level::ERROR,
                    format!("Mail {subject:?} not sent"),
                    data,
                ));
            }
        }
    });
}
