//! `POST /api/settings/test/email` and `/test/s3`: a superuser checks the tenant's mail and S3
//! settings by using them once.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use warren_files::S3Config;
use warren_tenant::mail::{Kind, RecordMail};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody, require_superuser};
use crate::router::Shared;

/// A text member of the form (`""` when missing or not a string).
fn text<'a>(body: &'a FormBody, key: &str) -> &'a str {
    body.data.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Whether `email` has the shape of an address (one `@`, something each side, no spaces).
fn looks_like_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// `POST /api/settings/test/email` `{email, template, collection?}`: sends the collection's
/// (default `_superusers`) template to `email` through the tenant's mailer.
pub async fn test_email(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    body: FormBody,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    let (email, template) = (text(&body, "email"), text(&body, "template"));
    let collection = text(&body, "collection");
    let mut invalid = ApiError::new(StatusCode::BAD_REQUEST, "Failed to send the test email.");
    let catalog = tenant.catalog();
    let entry = catalog.get(if collection.is_empty() {
        "_superusers"
    } else {
        collection
    });
    if !collection.is_empty()
        && (collection.len() > 255 || !entry.as_ref().is_some_and(|e| e.collection.is_auth()))
    {
        invalid = invalid.field(
            "collection",
            "validation_invalid_auth_collection",
            "Must be a valid auth collection id or name.",
        );
    }
    if email.is_empty() {
        invalid = invalid.field("email", "validation_required", "Cannot be blank.");
    } else if email.chars().count() > 255 {
        invalid = invalid.field(
            "email",
            "validation_length_out_of_range",
            "The length must be between 1 and 255.",
        );
    } else if !looks_like_email(email) {
        invalid = invalid.field(
            "email",
            "validation_is_email",
            "Must be a valid email address.",
        );
    }
    if template.is_empty() {
        invalid = invalid.field("template", "validation_required", "Cannot be blank.");
    } else if !warren_auth::test_mail::TEMPLATES.contains(&template) {
        invalid = invalid.field(
            "template",
            "validation_in_invalid",
            "Must be a valid value.",
        );
    }
    if !invalid.data.is_empty() {
        return Err(invalid);
    }
    let entry = entry.ok_or_else(ApiError::not_found)?;
    let settings = tenant.settings().await?;
    let mail = warren_auth::test_mail::test_email(entry, &settings, template, email)?;
    // The test mail passes the tenant's mail hooks and its mail rate like the real one would.
    let kind = match template {
        "password-reset" => Kind::PasswordReset,
        "email-change" => Kind::EmailChange,
        "otp" => Kind::Otp,
        "login-alert" => Kind::AuthAlert,
        _ => Kind::Verification,
    };
    let mail = RecordMail {
        kind,
        email: mail,
        record: None,
        collection: entry.collection.name.clone(),
        meta: serde_json::Map::new(),
    };
    warren_tenant::mail::send_record_mail(&tenant, &state.mailer, &settings, mail)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                crate::routes::sql::sentence(format!(
                    "Failed to send the test email. Raw error: \n{e}"
                )),
            )
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/settings/test/s3` `{filesystem: storage|backups}`: writes, lists and deletes a
/// probe object with the tenant's S3 settings for files or for backups.
pub async fn test_s3(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    body: FormBody,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    let filesystem = text(&body, "filesystem");
    let invalid = ApiError::new(StatusCode::BAD_REQUEST, "Failed to test the S3 filesystem.");
    let path = match filesystem {
        "storage" => "/s3",
        "backups" => "/backups/s3",
        "" => return Err(invalid.field("filesystem", "validation_required", "Cannot be blank.")),
        _ => {
            return Err(invalid.field(
                "filesystem",
                "validation_in_invalid",
                "Must be a valid value.",
            ));
        }
    };
    let settings = tenant.settings().await?;
    let config: S3Config = settings
        .pointer(path)
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    warren_files::probe::probe_s3(&config).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            crate::routes::sql::sentence(format!(
                "Failed to test the S3 filesystem. Raw error: \n{e}"
            )),
        )
    })?;
    Ok(StatusCode::NO_CONTENT)
}
