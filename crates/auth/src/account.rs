//! Email-driven account flows: verification, password reset and email change. Requests answer
//! the same whether or not the address exists (the caller replies 204 at once and mails later);
//! confirmations check a signed token of the right kind, collection, record and tenant.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use warren_mail::{Email, escape_html, render};
use warren_schema::collection::EmailTemplate;
use warren_schema::error::{FieldError, ValidationErrors};
use warren_schema::record::RecordData;
use warren_schema::{FieldKind, Visibility};
use warren_secrets::{Passwords, TokenKind};
use warren_store::Database;

use crate::tokens::{Extra, find_by_token, issue_kind, text};
use warren_records::catalog::{Catalog, Entry};
use warren_records::limits::Limiter;
use warren_records::{Error, Result};

const INVALID_DATA: &str = "An error occurred while validating the submitted data.";
const PASSWORD_AUTH_OFF: &str =
    "The collection is not configured to allow password authentication.";
/// One verification or reset mail per record per this long; extra requests still answer 204.
const RESEND: Duration = Duration::from_secs(120);

fn invalid(errors: ValidationErrors) -> Error {
    Error::Validation {
        message: INVALID_DATA,
        errors,
    }
}

fn invalid_token() -> FieldError {
    FieldError::new("validation_invalid_token", "Invalid or expired token.")
}

/// Renders a template of the collection for `data` into an email to `to`. `{RECORD:field}`
/// placeholders take the record's non-hidden fields, HTML-escaped.
pub fn compose(
    entry: &Entry,
    data: &RecordData,
    settings: &Value,
    template: &EmailTemplate,
    to: &str,
    extra: &[(&str, &str)],
) -> Email {
    let meta = |key: &str| {
        settings
            .get("meta")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (app_name, app_url) = (escape_html(&meta("appName")), meta("appURL"));
    let app_url = app_url.trim_end_matches('/').to_string();
    let mut values: Vec<(String, String)> =
        vec![("APP_NAME".into(), app_name), ("APP_URL".into(), app_url)];
    values.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let shown = warren_schema::record::RecordJson::build(
        &entry.collection,
        data,
        Visibility {
            show_hidden: false,
            show_email: true,
        },
    )
    .to_value();
    if let Value::Object(fields) = shown {
        for (key, value) in fields {
            let text = match value {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            values.push((format!("RECORD:{key}"), escape_html(&text)));
        }
    }
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Email {
        to: to.to_string(),
        subject: render(&template.subject, &pairs),
        html: render(&template.body, &pairs),
        code: extra
            .iter()
            .find(|(name, _)| *name == "OTP")
            .map(|(_, code)| code.to_string()),
    }
}

fn auth_options(entry: &Entry) -> Result<&warren_schema::collection::AuthOptions> {
    entry.collection.auth_options().ok_or(Error::NotFound(
        "Missing or invalid auth collection context.",
    ))
}

fn throttled(limiter: &Limiter, tenant: &str, kind: &str, entry: &Entry, id: &str) -> bool {
    !limiter.allow(
        &format!("{tenant}\0{kind}\0{}\0{id}", entry.collection.id),
        1,
        RESEND,
    )
}

/// The email that carries a token of `kind` for record `data`, bound to its current address.
fn mail_token(
    entry: &Entry,
    data: &RecordData,
    settings: &Value,
    kind: TokenKind,
    template: &EmailTemplate,
) -> Result<Email> {
    let to = text(data, "email").to_string();
    let token = issue_kind(
        &entry.collection,
        data,
        kind,
        Extra {
            email: Some(to.clone()),
            ..Extra::default()
        },
    )?;
    Ok(compose(
        entry,
        data,
        settings,
        template,
        &to,
        &[("TOKEN", &token)],
    ))
}

/// `request-verification`: the email to send, if any (unknown, verified or throttled: none).
pub async fn request_verification(
    db: &Database,
    entry: &Arc<Entry>,
    tenant: &str,
    email: &str,
    settings: &Value,
    limiter: &Limiter,
) -> Result<Option<Email>> {
    let options = auth_options(entry)?;
    if entry.collection.id == warren_schema::system::SUPERUSERS_ID {
        return Err(Error::BadRequest("All superusers are verified by default."));
    }
    let Some(data) = crate::login::find_by_email(db, entry, email).await? else {
        return Ok(None);
    };
    if data.get("verified") == Some(&Value::Bool(true))
        || throttled(limiter, tenant, "verify", entry, text(&data, "id"))
    {
        return Ok(None);
    }
    mail_token(
        entry,
        &data,
        settings,
        TokenKind::Verification,
        &options.verification_template,
    )
    .map(Some)
}

/// `confirm-verification`: marks the token's record verified.
pub async fn confirm_verification(
    db: &Database,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    token: &str,
) -> Result<()> {
    let mut errors = ValidationErrors::new();
    if token.is_empty() {
        errors.add("token", FieldError::required());
        return Err(invalid(errors));
    }
    let claimed = warren_secrets::token::peek(token)
        .ok()
        .and_then(|c| c.email)
        .unwrap_or_default();
    if claimed.is_empty() {
        errors.add(
            "token",
            FieldError::new(
                "validation_invalid_token_claims",
                "Missing email token claim.",
            ),
        );
        return Err(invalid(errors));
    }
    let holder = check_holder(
        find_by_token(db, catalog, token, TokenKind::Verification).await?,
        entry,
    )?;
    if text(&holder.data, "email") != claimed {
        errors.add(
            "token",
            FieldError::new(
                "validation_token_email_mismatch",
                "The record email doesn't match with the requested token claims.",
            ),
        );
        return Err(invalid(errors));
    }
    if holder.data.get("verified") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    let id = text(&holder.data, "id").to_string();
    db.write(move |c| {
        crate::login::set_columns(c, &holder.entry, &id, &[("verified", 1i64.into())]).map(|_| ())
    })
    .await
}

/// A token holder of this collection, or the `token` field error.
fn check_holder(
    holder: Option<crate::tokens::Holder>,
    entry: &Entry,
) -> Result<crate::tokens::Holder> {
    let mut errors = ValidationErrors::new();
    match holder {
        None => {
            errors.add("token", invalid_token());
            Err(invalid(errors))
        }
        Some(h) if h.entry.collection.id != entry.collection.id => {
            errors.add(
                "token",
                FieldError::new(
                    "validation_token_collection_mismatch",
                    "The provided token is for different auth collection.",
                ),
            );
            Err(invalid(errors))
        }
        Some(h) => Ok(h),
    }
}

/// `request-password-reset`: the email to send, if any.
pub async fn request_password_reset(
    db: &Database,
    entry: &Arc<Entry>,
    tenant: &str,
    email: &str,
    settings: &Value,
    limiter: &Limiter,
) -> Result<Option<Email>> {
    let options = auth_options(entry)?;
    if !options.password_auth.enabled {
        return Err(Error::BadRequest(PASSWORD_AUTH_OFF));
    }
    let Some(data) = crate::login::find_by_email(db, entry, email).await? else {
        return Ok(None);
    };
    if throttled(limiter, tenant, "reset", entry, text(&data, "id")) {
        return Ok(None);
    }
    mail_token(
        entry,
        &data,
        settings,
        TokenKind::PasswordReset,
        &options.reset_password_template,
    )
    .map(Some)
}

/// The password field's length bounds (PocketBase: min from the field, max 255 here).
fn password_bounds(entry: &Entry) -> (i64, i64) {
    match entry.collection.field("password").map(|f| &f.kind) {
        Some(FieldKind::Password(o)) => (o.min.max(1), 255),
        _ => (8, 255),
    }
}

/// `confirm-password-reset`: sets the new password, rotates the token key (signing every
/// other session out) and verifies the record if the token's address is still its own.
#[allow(clippy::too_many_arguments)]
pub async fn confirm_password_reset(
    db: &Database,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    token: &str,
    password: &str,
    confirm: &str,
    passwords: &Passwords,
) -> Result<()> {
    let mut errors = ValidationErrors::new();
    let (min, max) = password_bounds(entry);
    let length = password.chars().count() as i64;
    if password.is_empty() {
        errors.add("password", FieldError::required());
    } else if length < min || length > max {
        errors.add("password", FieldError::length_out_of_range(min, max));
    }
    if confirm.is_empty() {
        errors.add("passwordConfirm", FieldError::required());
    } else if confirm != password {
        errors.add(
            "passwordConfirm",
            FieldError::new("validation_values_mismatch", "Values don't match."),
        );
    }
    let holder = if token.is_empty() {
        errors.add("token", FieldError::required());
        None
    } else {
        match check_holder(
            find_by_token(db, catalog, token, TokenKind::PasswordReset).await?,
            entry,
        ) {
            Ok(h) => Some(h),
            Err(Error::Validation { errors: e, .. }) => {
                if let Some(f) = e.get("token") {
                    errors.add("token", f.clone());
                }
                None
            }
            Err(other) => return Err(other),
        }
    };
    let Some(holder) = holder.filter(|_| errors.is_empty()) else {
        return Err(invalid(errors));
    };
    let hash = passwords
        .try_hash(password, crate::otp::HASH_WAIT)
        .await
        .map_err(crate::otp::busy)?;
    let verify = holder.claims.email.as_deref() == Some(text(&holder.data, "email"));
    let id = text(&holder.data, "id").to_string();
    db.write(move |c| {
        let mut values: Vec<(&str, warren_store::sql::Value)> = vec![
            ("password", hash.into()),
            ("tokenKey", warren_secrets::random::secret(50).into()),
        ];
        if verify {
            values.push(("verified", 1i64.into()));
        }
        crate::login::set_columns(c, &holder.entry, &id, &values)?;
        warren_records::auth::forget_origins(c, &holder.entry.collection.id, &id)
    })
    .await
}

/// `request-email-change` by the signed-in record `data`: the email to send to the new address.
pub async fn request_email_change(
    db: &Database,
    entry: &Arc<Entry>,
    data: &RecordData,
    new_email: &str,
    settings: &Value,
) -> Result<Email> {
    let options = auth_options(entry)?;
    if entry.collection.id == warren_schema::system::SUPERUSERS_ID {
        return Err(Error::BadRequest(
            "All superusers can change their emails directly.",
        ));
    }
    let mut errors = ValidationErrors::new();
    if new_email.is_empty() {
        errors.add("newEmail", FieldError::required());
    } else if new_email.len() > 255 || !warren_schema::value::is_email(new_email) {
        errors.add(
            "newEmail",
            FieldError::new("validation_is_email", "Must be a valid email address."),
        );
    } else if new_email.eq_ignore_ascii_case(text(data, "email")) {
        errors.add("newEmail", FieldError::not_in_invalid());
    } else if crate::login::find_by_email(db, entry, new_email)
        .await?
        .is_some()
    {
        errors.add(
            "newEmail",
            FieldError::new("validation_invalid_new_email", "Invalid new email address."),
        );
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let current = text(data, "email").to_string();
    let token = issue_kind(
        &entry.collection,
        data,
        TokenKind::EmailChange,
        Extra {
            email: Some(current),
            new_email: Some(new_email.to_string()),
            ..Extra::default()
        },
    )?;
    Ok(compose(
        entry,
        data,
        settings,
        &options.confirm_email_change_template,
        new_email,
        &[("TOKEN", &token)],
    ))
}

/// `confirm-email-change`: checks the token and the current password, then sets the new
/// address, marks it verified and rotates the token key.
pub async fn confirm_email_change(
    db: &Database,
    catalog: &Catalog,
    entry: &Arc<Entry>,
    token: &str,
    password: &str,
    passwords: &Passwords,
) -> Result<()> {
    let mut errors = ValidationErrors::new();
    let new_email = warren_secrets::token::peek(token)
        .ok()
        .and_then(|c| c.new_email)
        .unwrap_or_default();
    let mut holder = None;
    if token.is_empty() {
        errors.add("token", FieldError::required());
    } else if new_email.is_empty() {
        errors.add(
            "token",
            FieldError::new(
                "validation_invalid_token_payload",
                "Invalid token payload - newEmail must be set.",
            ),
        );
    } else {
        match check_holder(
            find_by_token(db, catalog, token, TokenKind::EmailChange).await?,
            entry,
        ) {
            Ok(h) => {
                if crate::login::find_by_email(db, entry, &new_email)
                    .await?
                    .is_some()
                {
                    errors.add(
                        "token",
                        FieldError::new(
                            "validation_invalid_token_email",
                            "The new email address is already registered.",
                        ),
                    );
                }
                holder = Some(h);
            }
            Err(Error::Validation { errors: e, .. }) => {
                if let Some(f) = e.get("token") {
                    errors.add("token", f.clone());
                }
            }
            Err(other) => return Err(other),
        }
    }
    let password_ok = match (&holder, password.is_empty()) {
        (_, true) => {
            errors.add("password", FieldError::required());
            false
        }
        (Some(h), false) => {
            let stored = text(&h.data, "password");
            !stored.is_empty()
                && passwords
                    .try_verify(password, stored, crate::otp::HASH_WAIT)
                    .await
                    .map_err(crate::otp::busy)?
        }
        (None, false) => false,
    };
    if !password.is_empty() && !password_ok {
        errors.add(
            "password",
            FieldError::new(
                "validation_invalid_password",
                "Missing or invalid auth record password.",
            ),
        );
    }
    let Some(holder) = holder.filter(|_| errors.is_empty()) else {
        return Err(invalid(errors));
    };
    let id = text(&holder.data, "id").to_string();
    db.write(move |c| {
        crate::login::set_columns(
            c,
            &holder.entry,
            &id,
            &[
                ("email", new_email.into()),
                ("verified", 1i64.into()),
                ("tokenKey", warren_secrets::random::secret(50).into()),
            ],
        )
        .map(|_| ())
    })
    .await
}
