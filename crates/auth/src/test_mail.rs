//! Test emails: one of an auth collection's mail templates rendered for a made-up record and
//! sent to the address a superuser names (`POST /api/settings/test/email`).

use serde_json::Value;
use warren_mail::{Email, escape_html};
use warren_schema::id::{ALPHANUMERIC, random_string};
use warren_schema::record::RecordData;
use warren_secrets::TokenKind;

use crate::account::compose;
use crate::tokens::{Extra, issue_kind};
use warren_records::catalog::Entry;
use warren_records::{Error, Result};

/// The templates a test email can use, by the names PocketBase's form takes.
pub const TEMPLATES: &[&str] = &[
    "verification",
    "password-reset",
    "email-change",
    "otp",
    "login-alert",
];

/// The email `template` (one of [`TEMPLATES`]) of auth collection `entry` would send, for a
/// record whose every visible field holds `__pb_test_<name>__` and whose address is `to`.
/// Links carry a correctly signed token for that record, which exists nowhere.
pub fn test_email(entry: &Entry, settings: &Value, template: &str, to: &str) -> Result<Email> {
    let collection = &entry.collection;
    let options = collection.auth_options().ok_or(Error::NotFound(
        "Missing or invalid auth collection context.",
    ))?;
    let mut data = RecordData::new();
    for field in collection.fields.iter().filter(|f| !f.hidden) {
        data.insert(
            field.name.clone(),
            Value::String(format!("__pb_test_{}__", field.name)),
        );
    }
    data.insert(
        "tokenKey".into(),
        Value::String(random_string(50, ALPHANUMERIC)),
    );
    data.insert("email".into(), Value::String(to.to_string()));
    let token = |kind: TokenKind| {
        let extra = Extra {
            email: Some(to.to_string()),
            new_email: (kind == TokenKind::EmailChange).then(|| to.to_string()),
            ..Extra::default()
        };
        issue_kind(collection, &data, kind, extra)
    };
    let email = match template {
        "verification" => {
            let token = token(TokenKind::Verification)?;
            let extra = [("TOKEN", token.as_str())];
            compose(
                entry,
                &data,
                settings,
                &options.verification_template,
                to,
                &extra,
            )
        }
        "password-reset" => {
            let token = token(TokenKind::PasswordReset)?;
            let extra = [("TOKEN", token.as_str())];
            compose(
                entry,
                &data,
                settings,
                &options.reset_password_template,
                to,
                &extra,
            )
        }
        "email-change" => {
            let token = token(TokenKind::EmailChange)?;
            let extra = [("TOKEN", token.as_str())];
            let template = &options.confirm_email_change_template;
            compose(entry, &data, settings, template, to, &extra)
        }
        "otp" => {
            let extra = [("OTP", "123456"), ("OTP_ID", "_PB_TEST_OTP_ID_")];
            compose(
                entry,
                &data,
                settings,
                &options.otp.email_template,
                to,
                &extra,
            )
        }
        "login-alert" => {
            let now = warren_schema::datetime::DateTime::now().format();
            let info = escape_html(&format!("{now} - TEST_IP TEST_USER_AGENT"));
            let extra = [("ALERT_INFO", info.as_str())];
            let template = &options.auth_alert.email_template;
            compose(entry, &data, settings, template, to, &extra)
        }
        _ => return Err(Error::BadRequest("Unknown email template.")),
    };
    Ok(email)
}
