//! A full message as tenants' code builds it (PocketBase's `MailerMessage`): sender, several
//! recipients, copies, text and HTML bodies, extra headers; bounded in size.

use lettre::Message as Built;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Email, Error, Result};

/// Most recipients (to, cc and bcc together) of one message.
pub const MAX_RECIPIENTS: usize = 50;
/// Most bytes of a message's subject, bodies and headers together.
pub const MAX_BYTES: usize = 1 << 20;
/// Most extra headers of one message.
pub const MAX_HEADERS: usize = 32;

/// A mail address with an optional display name (`{address, name}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    /// `user@example.com`
    pub address: String,
    /// The display name ("" for none).
    pub name: String,
}

impl Address {
    fn mailbox(&self) -> Result<Mailbox> {
        let email = self
            .address
            .trim()
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                Error::Invalid(format!("{:?}: {e}", self.address))
            })?;
        let name = self.name.trim();
        Ok(Mailbox::new(
            (!name.is_empty()).then(|| name.to_string()),
            email,
        ))
    }
}

/// A message with everything PocketBase's `MailerMessage` carries but attachments.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// The sender (the tenant's sender address when empty).
    pub from: Address,
    /// Recipients.
    pub to: Vec<Address>,
    /// Copies.
    pub cc: Vec<Address>,
    /// Blind copies.
    pub bcc: Vec<Address>,
    /// Subject line.
    pub subject: String,
    /// HTML body.
    pub html: String,
    /// Plain-text body.
    pub text: String,
    /// Extra headers (name → value).
    pub headers: std::collections::BTreeMap<String, String>,
}

impl Message {
    /// The message of a system mail (`email`), from the tenant's sender in `settings.meta`.
    pub fn from_email(settings: &Value, email: &Email) -> Self {
        let meta = |key: &str| {
            settings
                .get("meta")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Self {
            from: Address {
                address: meta("senderAddress"),
                name: meta("senderName"),
            },
            to: vec![Address {
                address: email.to.clone(),
                name: String::new(),
            }],
            subject: email.subject.clone(),
            html: email.html.clone(),
            ..Self::default()
        }
    }

    /// The message as a system mail's [`Email`] (its first recipient), for the local outbox.
    pub fn to_email(&self, code: Option<String>) -> Email {
        Email {
            to: self
                .to
                .first()
                .map(|a| a.address.clone())
                .unwrap_or_default(),
            subject: self.subject.clone(),
            html: if self.html.is_empty() {
                crate::escape_html(&self.text)
            } else {
                self.html.clone()
            },
            code,
        }
    }

    /// Every recipient (to, cc, bcc).
    pub fn recipients(&self) -> impl Iterator<Item = &Address> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }

    /// Bytes of the subject, bodies and headers.
    pub fn size(&self) -> usize {
        self.subject.len()
            + self.html.len()
            + self.text.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// Checks the bounds and that there is a recipient.
    pub fn check(&self) -> Result<()> {
        let recipients = self.recipients().count();
        if recipients == 0 {
            return Err(Error::Invalid("the message has no recipient".into()));
        }
        if recipients > MAX_RECIPIENTS {
            return Err(Error::Invalid(format!(
                "more than {MAX_RECIPIENTS} recipients"
            )));
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(Error::Invalid(format!("more than {MAX_HEADERS} headers")));
        }
        if self.size() > MAX_BYTES {
            return Err(Error::Invalid(format!(
                "the message is larger than {} KiB",
                MAX_BYTES >> 10
            )));
        }
        Ok(())
    }

    /// The message for the wire; `fallback` is the sender when the message names none.
    pub(crate) fn build(&self, fallback: &Address) -> Result<Built> {
        self.check()?;
        let from = if self.from.address.trim().is_empty() {
            fallback
        } else {
            &self.from
        };
        let mut builder = Built::builder()
            .from(from.mailbox()?)
            .subject(self.subject.clone());
        for a in &self.to {
            builder = builder.to(a.mailbox()?);
        }
        for a in &self.cc {
            builder = builder.cc(a.mailbox()?);
        }
        for a in &self.bcc {
            builder = builder.bcc(a.mailbox()?);
        }
        for (name, value) in &self.headers {
            let bad = |what: &str| Error::Invalid(format!("header {name:?}: {what}"));
            if value.contains(['\r', '\n']) {
                return Err(bad("line breaks are not allowed"));
            }
            let name = HeaderName::new_from_ascii(name.clone()).map_err(|_| bad("invalid name"))?;
            // Headers the builder sets itself cannot be replaced this way.
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "from" | "to" | "cc" | "bcc" | "subject" | "content-type" | "mime-version"
            ) || lower.starts_with("content-")
            {
                return Err(bad("set by the message itself"));
            }
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        let html = SinglePart::builder()
            .header(ContentType::TEXT_HTML)
            .body(self.html.clone());
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(self.text.clone());
        let built = match (self.html.is_empty(), self.text.is_empty()) {
            (false, false) => {
                builder.multipart(MultiPart::alternative().singlepart(text).singlepart(html))
            }
            (true, false) => builder.singlepart(text),
            _ => builder.singlepart(html),
        };
        built.map_err(|e| Error::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn address(a: &str) -> Address {
        Address {
            address: a.into(),
            name: String::new(),
        }
    }

    #[test]
    fn a_full_message_carries_every_part() {
        let message: Message = serde_json::from_value(json!({
            "from": {"address": "app@example.com", "name": "App"},
            "to": [{"address": "a@example.com", "name": "A"}, {"address": "b@example.com"}],
            "cc": [{"address": "c@example.com"}],
            "bcc": [{"address": "d@example.com"}],
            "subject": "Hello",
            "html": "<p>hi</p>",
            "text": "hi",
            "headers": {"X-Tag": "welcome"},
        }))
        .unwrap();
        let raw = String::from_utf8(
            message
                .build(&address("x@example.com"))
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(raw.contains("From: App <app@example.com>"), "{raw}");
        assert!(
            raw.contains("To: A <a@example.com>, b@example.com"),
            "{raw}"
        );
        assert!(raw.contains("Cc: c@example.com"), "{raw}");
        assert!(!raw.contains("d@example.com"), "bcc is not a header: {raw}");
        assert!(raw.contains("X-Tag: welcome"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
    }

    #[test]
    fn bad_messages_are_refused() {
        let fallback = address("x@example.com");
        let base = Message {
            to: vec![address("a@example.com")],
            subject: "s".into(),
            ..Message::default()
        };
        assert!(base.build(&fallback).is_ok());
        assert!(
            Message {
                to: vec![],
                ..base.clone()
            }
            .build(&fallback)
            .is_err()
        );
        let many = vec![address("a@example.com"); MAX_RECIPIENTS + 1];
        assert!(
            Message {
                to: many,
                ..base.clone()
            }
            .build(&fallback)
            .is_err()
        );
        let big = "x".repeat(MAX_BYTES + 1);
        assert!(
            Message {
                html: big,
                ..base.clone()
            }
            .build(&fallback)
            .is_err()
        );
        for (name, value) in [
            ("X-A", "a\r\nBcc: evil@example.com"),
            ("From", "e@example.com"),
            ("Bad Name", "v"),
        ] {
            let mut message = base.clone();
            message.headers.insert(name.into(), value.into());
            assert!(message.build(&fallback).is_err(), "{name}");
        }
        let mut message = base.clone();
        message.to = vec![address("not an address")];
        assert!(message.build(&fallback).is_err());
    }
}
