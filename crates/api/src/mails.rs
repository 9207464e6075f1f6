//! A tenant's system mails on their way out: the record they are about is looked up only when
//! the tenant's code has a mail hook for them; then [`warren_tenant::mail`] runs the hooks,
//! the tenant's mail rate and its settings.

use std::sync::Arc;

use serde_json::{Map, Value};
use warren_mail::Email;
use warren_records::Entry;
use warren_schema::RecordData;
use warren_tenant::Tenant;
use warren_tenant::mail::{Kind, RecordMail, SEND_HOOK};

use crate::router::ApiState;

/// Whether the tenant's code has a hook for a `kind` mail.
pub(crate) async fn hooked(tenant: &Tenant, kind: Kind) -> bool {
    tenant
        .code()
        .await
        .is_some_and(|code| code.listens_mail(kind.hook()) || code.listens_mail(SEND_HOOK))
}

/// The record as its mail hooks see it: its fields without secrets, with its collection.
fn record_json(entry: &Entry, data: &RecordData) -> Map<String, Value> {
    let mut record: Map<String, Value> = data
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "password" | "tokenKey"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    record.insert("collectionId".into(), entry.collection.id.clone().into());
    record.insert(
        "collectionName".into(),
        entry.collection.name.clone().into(),
    );
    record
}

/// Sends a `kind` mail about `record` in the background.
pub(crate) fn send_later(
    state: &ApiState,
    tenant: &Tenant,
    entry: &Arc<Entry>,
    kind: Kind,
    settings: Value,
    email: Email,
    record: Option<&RecordData>,
    meta: Map<String, Value>,
) {
    let mail = RecordMail {
        kind,
        email,
        record: record.map(|data| record_json(entry, data)),
        collection: entry.collection.name.clone(),
        meta,
    };
    warren_tenant::mail::send_later(tenant.clone(), state.mailer.clone(), settings, mail);
}

/// The record of `email` in `entry`, when the tenant's code has a hook for a `kind` mail.
pub(crate) async fn record_for_hooks(
    tenant: &Tenant,
    entry: &Arc<Entry>,
    kind: Kind,
    email: &str,
) -> Option<RecordData> {
    if !hooked(tenant, kind).await {
        return None;
    }
    warren_auth::login::find_by_email(tenant.db(), entry, email)
        .await
        .ok()
        .flatten()
}
