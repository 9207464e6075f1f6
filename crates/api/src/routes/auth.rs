//! Authentication routes of any auth collection: password, OTP and MFA logins, auth-methods,
//! refresh, impersonation, and the verification, password-reset and email-change flows.
//!
//! Every attempt passes Warren's brute-force limits first (per tenant, per client IP and, for
//! failed logins, per identity); a saturated password hasher answers 429 at once.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use warren_auth::login;
use warren_auth::origins::Origin;
use warren_records::{Caller, Entry};
use warren_tenant::hooks::HookRequest;
use warren_tenant::{Tenant, ops};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody, RequestHeaders, require_superuser};
use crate::fields::project;
use crate::query::Params;
use crate::router::{ApiState, Shared};
use crate::routes::records::{RequestInfo, hook_request, render};

const INVALID_DATA: &str = "An error occurred while validating the submitted data.";
/// Auth attempts one client IP may make against one tenant per [`PER_IP_WINDOW`], unless the
/// server is started with another budget (`ApiState::auth_limit_ip`).
pub const AUTH_LIMIT_IP: u32 = 120;
/// The window of the per-IP auth budget.
const PER_IP_WINDOW: Duration = Duration::from_secs(10);
/// Auth attempts one tenant accepts from everyone per window.
const PER_TENANT: (u32, Duration) = (2000, Duration::from_secs(10));
/// Failed logins for one identity before it is locked for the rest of the window.
const PER_IDENTITY: (u32, Duration) = (10, Duration::from_secs(300));

fn too_many() -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests.")
}

pub use crate::client::ClientIp;

/// Counts one auth attempt against the tenant's and the client's budgets.
pub(crate) fn limit(state: &ApiState, tenant: &Tenant, ip: &str) -> Result<(), ApiError> {
    let limiter = &state.limiter;
    if !limiter.allow(
        &format!("{}\0ip\0{ip}", tenant.id()),
        state.auth_limit_ip,
        PER_IP_WINDOW,
    ) || !limiter.allow(&format!("{}\0all", tenant.id()), PER_TENANT.0, PER_TENANT.1)
    {
        return Err(too_many());
    }
    Ok(())
}

fn identity_key(tenant: &Tenant, entry: &Entry, identity: &str) -> String {
    format!(
        "{}\0id\0{}\0{}",
        tenant.id(),
        entry.collection.id,
        identity.to_lowercase()
    )
}

/// The auth collection named in the path (404s as PocketBase words them).
pub(crate) fn auth_collection(tenant: &Tenant, collection: &str) -> Result<Arc<Entry>, ApiError> {
    let catalog = tenant.catalog();
    let entry = catalog.get(collection).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid collection context.",
        )
    })?;
    if !entry.collection.is_auth() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid auth collection context.",
        ));
    }
    Ok(entry)
}

fn validation(field: &str, code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, INVALID_DATA).field(field, code, message)
}

/// A required text field of 1–`max` characters.
fn required<'a>(body: &'a FormBody, field: &str, max: usize) -> Result<&'a str, ApiError> {
    let value = text(body, field);
    if value.is_empty() {
        return Err(validation(field, "validation_required", "Cannot be blank."));
    }
    if value.chars().count() > max {
        return Err(validation(
            field,
            "validation_length_out_of_range",
            &format!("The length must be between 1 and {max}."),
        ));
    }
    Ok(value)
}

fn text<'a>(body: &'a FormBody, key: &str) -> &'a str {
    body.data
        .get(key)
        .or_else(|| {
            body.data
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A required, well-formed email field.
fn email_field<'a>(body: &'a FormBody, field: &str) -> Result<&'a str, ApiError> {
    let value = text(body, field);
    if value.is_empty() {
        return Err(validation(field, "validation_required", "Cannot be blank."));
    }
    if value.len() > 255 || !warren_schema::value::is_email(value) {
        return Err(validation(
            field,
            "validation_is_email",
            "Must be a valid email address.",
        ));
    }
    Ok(value)
}

/// `mfaId` from the query or the body.
fn mfa_id<'a>(params: &'a Params, body: &'a FormBody) -> &'a str {
    match params.text("mfaId") {
        "" => text(body, "mfaId"),
        id => id,
    }
}

/// Where a request comes from, for `_authOrigins`.
pub(crate) fn origin(ip: &str, headers: &HeaderMap) -> Origin {
    Origin {
        ip: ip.to_string(),
        user_agent: headers
            .get(USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default(),
    }
}

/// After a completed password, OTP or OAuth2 login: when the collection's login alert is on,
/// records the origin and mails the alert for a new one (a failure here never fails the login).
pub(crate) async fn remember_origin(
    state: &ApiState,
    tenant: &Tenant,
    entry: &Arc<Entry>,
    data: &warren_schema::RecordData,
    origin: &Origin,
) {
    if !entry
        .collection
        .auth_options()
        .is_some_and(|o| o.auth_alert.enabled)
    {
        return;
    }
    let outcome = async {
        let settings = tenant.settings().await.map_err(|e| e.to_string())?;
        warren_auth::origins::remember(tenant.db(), entry, data, origin, &settings)
            .await
            .map(|mail| (settings, mail))
            .map_err(|e| e.to_string())
    }
    .await;
    match outcome {
        Ok((settings, Some(mail))) => {
            let mut meta = Map::new();
            meta.insert(
                "info".into(),
                format!("{} {}", origin.ip, origin.user_agent).into(),
            );
            crate::mails::send_later(
                state,
                tenant,
                entry,
                warren_tenant::mail::Kind::AuthAlert,
                (*settings).clone(),
                mail,
                Some(data),
                meta,
            )
        }
        Ok((_, None)) => {}
        Err(e) => tracing::warn!(error = %e, "login origin not recorded"),
    }
}

/// A login's answer: `{record, token}` (projected), or 401 `{"mfaId"}` when a second factor
/// is required.
async fn answer(
    state: &ApiState,
    tenant: &Tenant,
    entry: Arc<Entry>,
    outcome: Result<warren_schema::RecordData, warren_records::Error>,
    (params, method): (&Params, &str),
    origin: &Origin,
    request: impl FnOnce() -> HookRequest,
) -> Result<Response, ApiError> {
    if matches!(outcome, Ok(_) | Err(warren_records::Error::MfaRequired(_))) {
        // A superuser outside `superuserIPs` is refused before a second factor is asked for.
        crate::client::check_superuser_login(tenant, &entry.collection.name, &origin.ip).await?;
    }
    let data = match outcome {
        Ok(data) => data,
        Err(warren_records::Error::MfaRequired(id)) => {
            return Ok((StatusCode::UNAUTHORIZED, Json(json!({ "mfaId": id }))).into_response());
        }
        Err(other) => return Err(other.into()),
    };
    remember_origin(state, tenant, &entry, &data, origin).await;
    let token = login::auth_token(&entry, &data)?;
    let body = login::respond(
        tenant.db(),
        tenant.catalog(),
        entry.clone(),
        data,
        token,
        params.text("expand"),
    )
    .await?;
    let body = ops::auth_request(tenant, &entry, body, method, request).await?;
    render(body, params.text("fields"))
}

/// `POST /api/collections/{collection}/auth-with-password`
pub async fn auth_with_password(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    ClientIp(ip): ClientIp,
    Path(collection): Path<String>,
    RequestInfo {
        method,
        headers,
        params,
    }: RequestInfo,
    body: FormBody,
) -> Result<Response, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    limit(&state, &tenant, &ip)?;
    let (identity, password) = (text(&body, "identity"), text(&body, "password"));
    let mut invalid = ApiError::new(StatusCode::BAD_REQUEST, INVALID_DATA);
    for (name, value) in [("identity", identity), ("password", password)] {
        if value.is_empty() {
            invalid = invalid.field(name, "validation_required", "Cannot be blank.");
        } else if value.chars().count() > 255 {
            invalid = invalid.field(
                name,
                "validation_length_out_of_range",
                "The length must be between 1 and 255.",
            );
        }
    }
    if !invalid.data.is_empty() {
        return Err(invalid);
    }
    let key = identity_key(&tenant, &entry, identity);
    if state.limiter.blocked(&key, PER_IDENTITY.0) {
        return Err(too_many());
    }
    let catalog = tenant.catalog();
    let outcome = warren_auth::password::with_password(
        tenant.db(),
        &catalog,
        &entry,
        identity,
        text(&body, "identityField"),
        password,
        &state.passwords,
    )
    .await;
    let data = match outcome {
        Ok(auth) => auth.data,
        Err(warren_records::Error::BadRequest(message)) => {
            state.limiter.allow(&key, PER_IDENTITY.0, PER_IDENTITY.1);
            return Err(ApiError::new(StatusCode::BAD_REQUEST, message));
        }
        Err(other) => return Err(other.into()),
    };
    state.limiter.reset(&key);
    let ctx = crate::routes::records::context(&Caller::Guest, &method, &params, &headers);
    let outcome = async {
        login::finish(
            tenant.db(),
            &catalog,
            &entry,
            &data,
            &ctx,
            "password",
            mfa_id(&params, &body),
        )
        .await?;
        Ok(data)
    }
    .await;
    let request = || {
        hook_request(
            &Caller::Guest,
            &method,
            &params,
            &headers,
            body.data.clone(),
        )
    };
    answer(
        &state,
        &tenant,
        entry,
        outcome,
        (&params, "password"),
        &origin(&ip, &headers),
        request,
    )
    .await
}

/// `GET /api/collections/{collection}/auth-methods`
pub async fn list_auth_methods(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Path(collection): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    let providers = crate::routes::oauth2::provider_listing(&state, &entry);
    let methods = login::methods(&entry, providers)?;
    Ok(Json(project(methods, params.text("fields"))?))
}

/// `POST /api/collections/{collection}/auth-refresh`
pub async fn auth_refresh(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
    method: Method,
    headers: RequestHeaders,
    params: Params,
) -> Result<Response, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let v = v.trim();
            match v.get(..7) {
                Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim(),
                _ => v,
            }
        })
        .unwrap_or_default();
    let ctx = crate::routes::records::context(&caller, &method, &params, &headers);
    let catalog = tenant.catalog();
    let (data, token) =
        login::refresh(tenant.db(), &catalog, &entry, &caller, presented, &ctx).await?;
    let body = login::respond(
        tenant.db(),
        catalog,
        entry.clone(),
        data,
        token,
        params.text("expand"),
    )
    .await?;
    let request = || hook_request(&caller, &method, &params, &headers, Map::new());
    let body = ops::auth_request(&tenant, &entry, body, "", request).await?;
    render(body, params.text("fields"))
}

/// `POST /api/collections/{collection}/impersonate/{id}` (superusers only)
pub async fn impersonate(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path((collection, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    params: Params,
    body: FormBody,
) -> Result<Response, ApiError> {
    require_superuser(&caller)?;
    let entry = auth_collection(&tenant, &collection)?;
    let duration = match body.data.get("duration") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(d) if d >= 0.0 && d.fract() == 0.0 && d < 1e12 => d as i64,
            Some(d) if d < 0.0 => {
                return Err(
                    ApiError::new(StatusCode::BAD_REQUEST, INVALID_DATA).field_params(
                        "duration",
                        "validation_min_greater_equal_than_required",
                        "Must be no less than 0.",
                        json!({"threshold": 0}),
                    ),
                );
            }
            _ => return Err(ApiError::bad_request()),
        },
        Some(_) => return Err(ApiError::bad_request()),
    };
    let (data, token) = login::impersonate(tenant.db(), &entry, &id, duration).await?;
    let answer = login::respond(
        tenant.db(),
        tenant.catalog(),
        entry.clone(),
        data,
        token,
        params.text("expand"),
    )
    .await?;
    let request = || hook_request(&caller, &method, &params, &headers, body.data.clone());
    let answer = ops::auth_request(&tenant, &entry, answer, "", request).await?;
    render(answer, params.text("fields"))
}

/// `POST /api/collections/{collection}/request-verification` — 204 whether or not the
/// address exists; the lookup and the mail happen after the answer.
pub async fn request_verification(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    ClientIp(ip): ClientIp,
    Path(collection): Path<String>,
    body: FormBody,
) -> Result<StatusCode, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    limit(&state, &tenant, &ip)?;
    let email = email_field(&body, "email")?.to_string();
    if entry.collection.id == warren_schema::system::SUPERUSERS_ID {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "All superusers are verified by default.",
        ));
    }
    mail_later(state, tenant, entry, email, AccountMail::Verification);
    Ok(StatusCode::NO_CONTENT)
}

/// Which account mail a background request sends.
#[derive(Debug, Clone, Copy)]
enum AccountMail {
    Verification,
    PasswordReset,
}

/// Looks the address up and sends the mail after the answer has gone, so that neither the
/// answer nor its timing tells whether the address exists.
fn mail_later(state: Shared, tenant: Tenant, entry: Arc<Entry>, email: String, kind: AccountMail) {
    tokio::spawn(async move {
        let outcome = async {
            let settings =
                tenant.with_public_url(warren_records::settings::load(tenant.db()).await?);
            let (db, id, limiter) = (tenant.db(), tenant.id(), &state.limiter);
            let mail = match kind {
                AccountMail::Verification => {
                    warren_auth::account::request_verification(
                        db, &entry, id, &email, &settings, limiter,
                    )
                    .await?
                }
                AccountMail::PasswordReset => {
                    warren_auth::account::request_password_reset(
                        db, &entry, id, &email, &settings, limiter,
                    )
                    .await?
                }
            };
            if let Some(mail) = mail {
                let kind = match kind {
                    AccountMail::Verification => warren_tenant::mail::Kind::Verification,
                    AccountMail::PasswordReset => warren_tenant::mail::Kind::PasswordReset,
                };
                let record = crate::mails::record_for_hooks(&tenant, &entry, kind, &email).await;
                crate::mails::send_later(
                    &state,
                    &tenant,
                    &entry,
                    kind,
                    settings,
                    mail,
                    record.as_ref(),
                    Map::new(),
                );
            }
            Ok::<_, warren_records::Error>(())
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, ?kind, "account mail request failed");
        }
    });
}

/// `POST /api/collections/{collection}/confirm-verification`
pub async fn confirm_verification(
    CurrentTenant(tenant): CurrentTenant,
    Path(collection): Path<String>,
    body: FormBody,
) -> Result<StatusCode, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    warren_auth::account::confirm_verification(
        tenant.db(),
        &tenant.catalog(),
        &entry,
        text(&body, "token"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/collections/{collection}/request-password-reset` — 204 whether or not the
/// address exists.
pub async fn request_password_reset(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    ClientIp(ip): ClientIp,
    Path(collection): Path<String>,
    body: FormBody,
) -> Result<StatusCode, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    limit(&state, &tenant, &ip)?;
    let email = email_field(&body, "email")?.to_string();
    if !entry
        .collection
        .auth_options()
        .is_some_and(|o| o.password_auth.enabled)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "The collection is not configured to allow password authentication.",
        ));
    }
    mail_later(state, tenant, entry, email, AccountMail::PasswordReset);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/collections/{collection}/confirm-password-reset`
pub async fn confirm_password_reset(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    ClientIp(ip): ClientIp,
    Path(collection): Path<String>,
    body: FormBody,
) -> Result<StatusCode, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    limit(&state, &tenant, &ip)?;
    warren_auth::account::confirm_password_reset(
        tenant.db(),
        &tenant.catalog(),
        &entry,
        text(&body, "token"),
        text(&body, "password"),
        text(&body, "passwordConfirm"),
        &state.passwords,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/collections/{collection}/request-email-change` (the record itself)
pub async fn request_email_change(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
    body: FormBody,
) -> Result<StatusCode, ApiError> {
    login::require_auth(&caller)?;
    let entry = auth_collection(&tenant, &collection)?;
    let id = login::require_own(&entry, &caller)?.to_string();
    let data = login::load(tenant.db(), &entry, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let settings = tenant.with_public_url(warren_records::settings::load(tenant.db()).await?);
    let new_email = text(&body, "newEmail");
    let mail = warren_auth::account::request_email_change(
        tenant.db(),
        &entry,
        &data,
        new_email,
        &settings,
    )
    .await?;
    let mut meta = Map::new();
    meta.insert("newEmail".into(), new_email.into());
    crate::mails::send_later(
        &state,
        &tenant,
        &entry,
        warren_tenant::mail::Kind::EmailChange,
        settings,
        mail,
        Some(&data),
        meta,
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/collections/{collection}/confirm-email-change`
pub async fn confirm_email_change(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    ClientIp(ip): ClientIp,
    Path(collection): Path<String>,
    body: FormBody,
) -> Result<StatusCode, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    limit(&state, &tenant, &ip)?;
    warren_auth::account::confirm_email_change(
        tenant.db(),
        &tenant.catalog(),
        &entry,
        text(&body, "token"),
        text(&body, "password"),
        &state.passwords,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/collections/{collection}/request-otp` — always `{otpId}`; only a real address
/// gets a code.
pub async fn request_otp(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    ClientIp(ip): ClientIp,
    Path(collection): Path<String>,
    body: FormBody,
) -> Result<Json<Value>, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    warren_auth::otp::require_enabled(&entry)?;
    limit(&state, &tenant, &ip)?;
    let email = email_field(&body, "email")?;
    let settings = tenant.with_public_url(warren_records::settings::load(tenant.db()).await?);
    let (id, mail) =
        warren_auth::otp::request(tenant.db(), &entry, email, &settings, &state.passwords).await?;
    if let Some(mail) = mail {
        let kind = warren_tenant::mail::Kind::Otp;
        let record = crate::mails::record_for_hooks(&tenant, &entry, kind, email).await;
        let mut meta = Map::new();
        meta.insert("otpId".into(), id.clone().into());
        crate::mails::send_later(
            &state,
            &tenant,
            &entry,
            kind,
            settings,
            mail,
            record.as_ref(),
            meta,
        );
    }
    Ok(Json(json!({ "otpId": id })))
}

/// `POST /api/collections/{collection}/auth-with-otp`
pub async fn auth_with_otp(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    ClientIp(ip): ClientIp,
    Path(collection): Path<String>,
    RequestInfo {
        method,
        headers,
        params,
    }: RequestInfo,
    body: FormBody,
) -> Result<Response, ApiError> {
    let entry = auth_collection(&tenant, &collection)?;
    warren_auth::otp::require_enabled(&entry)?;
    limit(&state, &tenant, &ip)?;
    let otp_id = required(&body, "otpId", 255)?;
    let code = required(&body, "password", 71)?;
    let ctx = crate::routes::records::context(&Caller::Guest, &method, &params, &headers);
    let outcome = warren_auth::otp::authenticate(
        tenant.db(),
        &tenant.catalog(),
        &entry,
        tenant.id(),
        otp_id,
        code,
        &ctx,
        mfa_id(&params, &body),
        &state.passwords,
        &state.limiter,
    )
    .await;
    let request = || {
        hook_request(
            &Caller::Guest,
            &method,
            &params,
            &headers,
            body.data.clone(),
        )
    };
    answer(
        &state,
        &tenant,
        entry,
        outcome,
        (&params, "otp"),
        &origin(&ip, &headers),
        request,
    )
    .await
}
