//! Outgoing email of a tenant: verification, password reset, email change and OTP messages
//! rendered from the tenant's templates and sent over SMTP.
//!
//! Each tenant's `settings.smtp` picks its relay; a tenant without one uses the platform
//! default (`WARREN_SMTP_URL`), and with neither nothing is sent. This crate knows nothing of
//! HTTP, records or storage: callers hand it settings JSON and a rendered [`Email`].

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
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
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest time one delivery may take before it is abandoned.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// A rendered message for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// HTML body.
    pub html: String,
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

/// Sends tenants' mail. Cheap to clone.
#[derive(Clone, Default)]
pub struct Mailer {
    /// The relay for tenants that configure none (`smtp://` or `smtps://` URL).
    platform: Option<String>,
}

impl Mailer {
    /// A mailer with an optional platform-default relay URL (`smtp://user:pass@host:port`,
    /// `smtps://…`, lettre's URL syntax).
    pub fn new(platform: Option<String>) -> Self {
        Self {
            platform: platform.filter(|u| !u.trim().is_empty()),
        }
    }

    /// Sends `email` with the tenant's `settings` (its `smtp` and `meta` sections).
    /// Returns `Ok(false)` when the tenant has no relay and there is no platform default.
    pub async fn send(&self, settings: &Value, email: &Email) -> Result<bool> {
        let transport = match self.transport(settings)? {
            Some(t) => t,
            None => return Ok(false),
        };
        let message = build(settings, email)?;
        match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
            Ok(outcome) => outcome.map(|_| true).map_err(Error::from),
            Err(_) => Err(Error::Invalid("delivery timed out".into())),
        }
    }

    /// Sends in the background; failures are logged, never reported to the request.
    pub fn send_later(&self, settings: Value, email: Email) {
        let mailer = self.clone();
        tokio::spawn(async move {
            match mailer.send(&settings, &email).await {
                Ok(true) => tracing::debug!(subject = %email.subject, "mail sent"),
                Ok(false) => {
                    tracing::info!(subject = %email.subject, "no SMTP relay; mail dropped")
                }
                Err(e) => tracing::warn!(error = %e, "mail delivery failed"),
            }
        });
    }

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

fn build(settings: &Value, email: &Email) -> Result<Message> {
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
    Message::builder()
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
                    html: String::new(),
                },
            )
            .await
            .unwrap();
        assert!(!sent);
    }
}
