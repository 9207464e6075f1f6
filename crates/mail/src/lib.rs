//! Outgoing email of a tenant: verification, password reset, email change and OTP messages
//! rendered from the tenant's templates and sent over SMTP.
//!
//! Each tenant's `settings.smtp` picks its relay; a tenant without one uses the platform
//! default (`WARREN_SMTP_URL`). Without a platform relay, mail is kept in the local
//! [`Outbox`] instead (when the server gave the mailer one), and the link or code it carries is
//! logged. This crate knows nothing of HTTP, records or storage: callers hand it settings JSON
//! and a rendered [`Email`].

pub mod message;
pub mod outbox;

pub use message::{Address, Message};
pub use outbox::{Kept, Outbox};

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

/// Errors of building or sending a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address, header or the relay URL is malformed.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The relay refused or could not be reached.
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The local outbox could not be written.
    #[error("outbox: {0}")]
    Outbox(#[from] std::io::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest time one delivery may take before it is abandoned.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// A rendered message for one recipient.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// HTML body.
    pub html: String,
    /// A one-time code the body carries (OTP), shown beside the message when it is kept in
    /// the outbox.
    pub code: Option<String>,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Handed to an SMTP relay.
    Sent,
    /// Kept in the local outbox (no relay).
    Kept(Box<Kept>),
    /// Neither a relay nor an outbox: nothing was done with it.
    Dropped,
}

/// Replaces `{NAME}` placeholders by their values. Values are inserted as given: callers
/// escape what comes from users before it reaches an HTML body.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// Escapes text for inclusion in HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Sends the platform's and tenants' mail. Cheap to clone.
#[derive(Clone, Default)]
pub struct Mailer {
    /// The relay for tenants that configure none (`smtp://` or `smtps://` URL).
    platform: Option<String>,
    /// Where mail goes when there is no platform relay.
    outbox: Option<Outbox>,
    /// The tenant whose mail this handle sends (`None`: the platform's console).
    tenant: Option<std::sync::Arc<str>>,
}

impl Mailer {
    /// A mailer with an optional platform-default relay URL (`smtp://user:pass@host:port`,
    /// `smtps://…`, lettre's URL syntax).
    pub fn new(platform: Option<String>) -> Self {
        Self {
            platform: platform.filter(|u| !u.trim().is_empty()),
            outbox: None,
            tenant: None,
        }
    }

    /// Keeps mail that no relay takes in `outbox`. Ignored when a platform relay is set: then
    /// nothing is ever kept locally.
    pub fn keeping(mut self, outbox: Outbox) -> Self {
        if self.platform.is_none() {
            self.outbox = Some(outbox);
        }
        self
    }

    /// The local outbox, when mail is kept in one (no platform relay).
    pub fn outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    /// The platform relay's `host:port` (never its credentials), when one is set.
    pub fn relay(&self) -> Option<String> {
        let url = self.platform.as_deref()?;
        let (scheme, rest) = url.split_once("://").unwrap_or(("smtp", url));
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        Some(format!("{scheme}://{host}"))
    }

    /// The same mailer, sending for tenant `id` (its mail kept in the outbox is labelled so).
    pub fn for_tenant(&self, id: &str) -> Self {
        Self {
            tenant: Some(id.into()),
            ..self.clone()
        }
    }

    /// Sends `email` with the tenant's `settings` (its `smtp` and `meta` sections): through the
    /// tenant's own relay when it has one enabled, else the platform relay, else into the
    /// outbox.
    pub async fn send(&self, settings: &Value, email: &Email) -> Result<Delivery> {
        let transport = match self.transport(settings)? {
            Some(t) => t,
            None => return self.keep(settings, email).await,
        };
        let message = build(settings, email)?;
        match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
            Ok(outcome) => outcome.map(|_| Delivery::Sent).map_err(Error::from),
            Err(_) => Err(Error::Invalid("delivery timed out".into())),
        }
    }

    /// Sends a full `message` (one a tenant's code built, or a system mail after the tenant's
    /// mail hooks) the way [`Mailer::send`] does; a message naming no sender gets the tenant's
    /// sender. Kept in the outbox, it is kept for its first recipient, with the one-time
    /// `code` it carries.
    pub async fn send_message(
        &self,
        settings: &Value,
        message: &Message,
        code: Option<String>,
    ) -> Result<Delivery> {
        message.check()?;
        let transport = match self.transport(settings)? {
            Some(t) => t,
            None => return self.keep(settings, &message.to_email(code)).await,
        };
        let sender = Message::from_email(settings, &Email::default()).from;
        let built = message.build(&sender)?;
        match tokio::time::timeout(SEND_TIMEOUT, transport.send(built)).await {
            Ok(outcome) => outcome.map(|_| Delivery::Sent).map_err(Error::from),
            Err(_) => Err(Error::Invalid("delivery timed out".into())),
        }
    }

    async fn keep(&self, settings: &Value, email: &Email) -> Result<Delivery> {
        let Some(outbox) = self.outbox.clone() else {
            return Ok(Delivery::Dropped);
        };
        let from = settings
            .get("meta")
            .and_then(|m| m.get("senderAddress"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (tenant, email) = (self.tenant.clone(), email.clone());
        let kept =
            tokio::task::spawn_blocking(move || outbox.keep(tenant.as_deref(), &from, &email))
                .await
                .map_err(|e| Error::Outbox(std::io::Error::other(e)))??;
        Ok(Delivery::Kept(Box::new(kept)))
    }

    /// Sends in the background; failures are logged, never reported to the request. A message
    /// kept in the outbox is logged on one line with the link or code it carries.
    pub fn send_later(&self, settings: Value, email: Email) {
        let mailer = self.clone();
        tokio::spawn(async move {
            let outcome = mailer.send(&settings, &email).await;
            log_delivery(&email.subject, outcome);
        });
    }
}

/// Logs what became of a mail sent in the background (a kept one with the link or code it
/// carries).
pub fn log_delivery(subject: &str, outcome: Result<Delivery>) {
    match outcome {
        Ok(Delivery::Sent) => tracing::debug!(%subject, "mail sent"),
        Ok(Delivery::Kept(kept)) => {
            let source = match &kept.tenant {
                Some(id) => format!("tenant {id}"),
                None => "console".into(),
            };
            let carries = kept.carries().unwrap_or_else(|| "no link".into());
            tracing::info!(
                "mail kept in the outbox ({source}) to {}: {:?}, {carries}",
                kept.to,
                kept.subject
            );
        }
        Ok(Delivery::Dropped) => tracing::info!(%subject, "no SMTP relay; mail dropped"),
        Err(e) => tracing::warn!(error = %e, "mail delivery failed"),
    }
}

impl Mailer {
    fn transport(&self, settings: &Value) -> Result<Option<AsyncSmtpTransport<Tokio1Executor>>> {
        let smtp = settings.get("smtp").cloned().unwrap_or(Value::Null);
        if smtp.get("enabled").and_then(Value::as_bool) == Some(true) {
            return tenant_transport(&smtp).map(Some);
        }
        match &self.platform {
            Some(url) => AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map(|b| Some(b.timeout(Some(SEND_TIMEOUT)).build()))
                .map_err(Error::from),
            None => Ok(None),
        }
    }
}

/// A relay from a tenant's `settings.smtp`: `tls` means implicit TLS; otherwise STARTTLS is
/// used when offered, except on loopback (test sinks), which is plain.
fn tenant_transport(smtp: &Value) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let text = |key: &str| {
        smtp.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let host = text("host");
    if host.is_empty() || host.len() > 255 {
        return Err(Error::Invalid("smtp host".into()));
    }
    let port = smtp
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(587);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let tls = if smtp.get("tls").and_then(Value::as_bool) == Some(true) {
        Tls::Wrapper(TlsParameters::new(host.clone())?)
    } else if loopback {
        Tls::None
    } else {
        Tls::Opportunistic(TlsParameters::new(host.clone())?)
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(port)
        .tls(tls)
        .timeout(Some(SEND_TIMEOUT));
    let (username, password) = (text("username"), text("password"));
    if !username.is_empty() {
        builder = builder.credentials(Credentials::new(username, password));
        if text("authMethod").eq_ignore_ascii_case("LOGIN") {
            builder = builder.authentication(vec![Mechanism::Login]);
        }
    }
    let local_name = text("localName");
    if !local_name.is_empty() {
        builder = builder.hello_name(lettre::transport::smtp::extension::ClientId::Domain(
            local_name,
        ));
    }
    Ok(builder.build())
}

fn build(settings: &Value, email: &Email) -> Result<lettre::Message> {
    let meta = |key: &str| {
        settings
            .get("meta")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let sender_address = meta("senderAddress");
    let from: Mailbox = format!("{} <{}>", meta("senderName"), sender_address)
        .parse()
        .or_else(|_| sender_address.parse())
        .map_err(|e: lettre::address::AddressError| Error::Invalid(e.to_string()))?;
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|e: lettre::address::AddressError| Error::Invalid(e.to_string()))?;
    lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(email.subject.clone())
        .header(ContentType::TEXT_HTML)
        .body(email.html.clone())
        .map_err(|e| Error::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn placeholders_are_replaced() {
        let out = render(
            "{APP_NAME}: {APP_URL}/x/{TOKEN} {OTP} {UNKNOWN}",
            &[
                ("APP_NAME", "Acme"),
                ("APP_URL", "http://a"),
                ("TOKEN", "t"),
                ("OTP", "123"),
            ],
        );
        assert_eq!(out, "Acme: http://a/x/t 123 {UNKNOWN}");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href='x'>&"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
    }

    #[test]
    fn messages_carry_sender_and_recipient() {
        let settings =
            json!({"meta": {"senderName": "Support", "senderAddress": "support@example.com"}});
        let email = Email {
            to: "u@example.com".into(),
            subject: "Hi".into(),
            html: "<p>x</p>".into(),
            code: None,
        };
        let raw = String::from_utf8(build(&settings, &email).unwrap().formatted()).unwrap();
        assert!(raw.contains("From: Support <support@example.com>"));
        assert!(raw.contains("To: u@example.com"));
        assert!(raw.contains("Subject: Hi"));
    }

    #[test]
    fn bad_recipients_are_refused() {
        let settings = json!({"meta": {"senderName": "S", "senderAddress": "s@example.com"}});
        let email = Email {
            to: "not an address".into(),
            subject: "Hi".into(),
            html: String::new(),
            code: None,
        };
        assert!(build(&settings, &email).is_err());
    }

    #[tokio::test]
    async fn without_any_relay_nothing_is_sent() {
        let sent = Mailer::new(None)
            .send(
                &json!({"smtp": {"enabled": false}}),
                &Email {
                    to: "u@example.com".into(),
                    subject: "s".into(),
                    ..Email::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(sent, Delivery::Dropped);
    }

    #[tokio::test]
    async fn without_a_relay_mail_is_kept_labelled_with_its_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(None).keeping(Outbox::new(dir.path()));
        let settings = json!({"meta": {"senderAddress": "s@example.com"}});
        let email = Email {
            to: "u@example.com".into(),
            subject: "Verify".into(),
            html: r#"<a href="http://app.localhost/v/t">v</a>"#.into(),
            code: None,
        };
        let Delivery::Kept(kept) = mailer
            .for_tenant("t1")
            .send(&settings, &email)
            .await
            .unwrap()
        else {
            panic!("not kept")
        };
        assert_eq!(kept.tenant.as_deref(), Some("t1"));
        assert_eq!(kept.from, "s@example.com");
        assert_eq!(kept.links, ["http://app.localhost/v/t"]);
        let Delivery::Kept(console) = mailer.send(&settings, &email).await.unwrap() else {
            panic!("not kept")
        };
        assert_eq!(console.tenant, None);
    }

    #[test]
    fn a_relay_means_no_outbox_and_its_credentials_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(Some("smtp://user:secret@mail.example.com:2525".into()))
            .keeping(Outbox::new(dir.path()));
        assert!(mailer.outbox().is_none());
        assert_eq!(mailer.relay().unwrap(), "smtp://mail.example.com:2525");
        assert_eq!(Mailer::new(None).relay(), None);
    }
}
