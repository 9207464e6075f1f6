//! OAuth2 sign-in: `auth-with-oauth2` (code exchange, account linking or sign-up) and the
//! `/api/oauth2-redirect` callback that hands a code to the waiting realtime client.

use axum::Json;
use axum::extract::{Path, State};
use std::sync::Arc;

use axum::http::{StatusCode, header::LOCATION};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use warren_auth::{external, login};
use warren_oauth::Provider;
use warren_oauth::providers::Config;
use warren_records::{Caller, Entry};
use warren_schema::FieldKind;
use warren_schema::collection::{AuthOptions, OAuth2Config};
use warren_schema::record::RecordData;
use warren_tenant::hooks::HookRequest;
use warren_tenant::{Tenant, ops};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody, Upload};
use crate::query::Params;
use crate::router::{ApiState, Shared};
use crate::routes::auth::ClientIp;
use crate::routes::records::RequestInfo;

const LOAD_FAILED: &str = "An error occurred while loading the submitted data.";
/// Longest code, verifier, URL or provider name accepted.
const MAX_TEXT: usize = 2048;

fn config(provider: &warren_schema::collection::OAuth2Provider) -> Config {
    Config {
        name: provider.name.clone(),
        client_id: provider.client_id.clone(),
        client_secret: provider.client_secret.clone(),
        auth_url: provider.auth_url.clone(),
        token_url: provider.token_url.clone(),
        user_info_url: provider.user_info_url.clone(),
        display_name: provider.display_name.clone(),
        pkce: provider.pkce,
        extra: provider.extra.clone(),
    }
}

/// The providers `auth-methods` lists, each with fresh state and PKCE values.
pub(crate) fn provider_listing(state: &ApiState, entry: &Entry) -> Vec<Value> {
    let Some(options) = entry.collection.auth_options() else {
        return Vec::new();
    };
    if !options.oauth2.enabled {
        return Vec::new();
    }
    options
        .oauth2
        .providers
        .iter()
        .filter_map(|p| Provider::resolve(&config(p), state.oauth_loopback).ok())
        .filter_map(|p| warren_oauth::listing(&p).ok())
        .map(|l| {
            json!({
                "name": l.name, "displayName": l.display_name, "logo": "", "state": l.state,
                "authURL": l.auth_url, "authUrl": l.auth_url, "codeVerifier": l.code_verifier,
                "codeChallenge": l.code_challenge, "codeChallengeMethod": l.code_challenge_method,
            })
        })
        .collect()
}

fn field_text<'a>(body: &'a FormBody, key: &str) -> &'a str {
    body.data.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `POST /api/collections/{collection}/auth-with-oauth2`
pub async fn auth_with_oauth2(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    ClientIp(ip): ClientIp,
    Path(collection): Path<String>,
    info: RequestInfo,
    body: FormBody,
) -> Result<Response, ApiError> {
    let entry = crate::routes::auth::auth_collection(&tenant, &collection)?;
    let options = entry.collection.auth_options().cloned().unwrap_or_default();
    if !options.oauth2.enabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "The collection is not configured to allow OAuth2 authentication.",
        ));
    }
    crate::routes::auth::limit(&state, &tenant, &ip)?;
    let (provider, user) = fetch_user(&state, &options.oauth2, &body).await?;
    let found = find_account(&tenant, &entry, &caller, &provider.name, &user).await?;
    let is_new = found.is_none();
    let data = match found {
        Some(data) => data,
        None => sign_up(&state, &tenant, &entry, &options, &user, &body, &info).await?,
    };
    let id = data
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let record_email = data
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let verify = !user.email.is_empty()
        && record_email.eq_ignore_ascii_case(&user.email)
        && data.get("verified") != Some(&Value::Bool(true));
    let link = ops::LinkExternal {
        entry: &entry,
        id: &id,
        provider: &provider.name,
        provider_id: &user.id,
        verify,
    };
    ops::link_external(&tenant, link).await?;
    let data = login::load(tenant.db(), &entry, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let signed_in = SignedIn {
        entry,
        data,
        user,
        is_new,
    };
    sign_in(&state, &tenant, &ip, &info, &body, signed_in).await
}

/// The provider and code of the form, checked; the provider's user the code stands for.
async fn fetch_user(
    state: &ApiState,
    oauth2: &OAuth2Config,
    body: &FormBody,
) -> Result<(Provider, warren_oauth::User), ApiError> {
    let name = field_text(body, "provider");
    let code = field_text(body, "code");
    let verifier = field_text(body, "codeVerifier");
    let redirect = match field_text(body, "redirectURL") {
        "" => field_text(body, "redirectUrl"),
        url => url,
    };
    let mut invalid = ApiError::new(StatusCode::BAD_REQUEST, LOAD_FAILED);
    let configured = oauth2.providers.iter().find(|p| p.name == name);
    if name.is_empty() {
        invalid = invalid.field("provider", "validation_required", "Cannot be blank.");
    } else if configured.is_none() || name.len() > MAX_TEXT {
        invalid = invalid.field_params(
            "provider",
            "validation_invalid_provider",
            &format!("Provider with name {name} is missing or is not enabled."),
            json!({"name": name}),
        );
    }
    if code.is_empty() {
        invalid = invalid.field("code", "validation_required", "Cannot be blank.");
    }
    if [code, verifier, redirect]
        .iter()
        .any(|v| v.len() > MAX_TEXT)
    {
        return Err(ApiError::bad_request());
    }
    if !invalid.data.is_empty() {
        return Err(invalid);
    }
    let Some(configured) = configured else {
        return Err(invalid);
    };
    let provider = Provider::resolve(&config(configured), state.oauth_loopback).map_err(|e| {
        tracing::warn!(error = %e, "unusable OAuth2 provider configuration");
        ApiError::new(StatusCode::BAD_REQUEST, LOAD_FAILED).field_params(
            "provider",
            "validation_invalid_provider",
            &format!("Provider with name {name} is missing or is not enabled."),
            json!({"name": name}),
        )
    })?;
    match warren_oauth::exchange(&provider, &state.oauth_keys, code, verifier, redirect).await {
        Ok(user) => Ok((provider, user)),
        Err(warren_oauth::Error::User(e)) => {
            tracing::debug!(error = %e, "OAuth2 user fetch failed");
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Failed to fetch OAuth2 user.",
            ))
        }
        Err(e) => {
            tracing::debug!(error = %e, "OAuth2 token exchange failed");
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Failed to fetch OAuth2 token.",
            ))
        }
    }
}

/// The record the provider's user signs in as: the one linked to it, else the signed-in
/// caller's, else the one with the provider's email.
async fn find_account(
    tenant: &Tenant,
    entry: &Arc<Entry>,
    caller: &Caller,
    provider: &str,
    user: &warren_oauth::User,
) -> Result<Option<RecordData>, ApiError> {
    let db = tenant.db();
    let mut found = external::find_linked(db, entry, provider, &user.id).await?;
    if found.is_none()
        && caller.collection_id() == Some(entry.collection.id.as_str())
        && let Some(id) = caller.id()
    {
        found = login::load(db, entry, id).await?;
    }
    if found.is_none() && !user.email.is_empty() {
        found = login::find_by_email(db, entry, &user.email).await?;
    }
    Ok(found)
}

/// Signs the provider's user up: `createData`, the provider's mapped fields, a random
/// password and the avatar, created as a guest would through the tenant's write pipeline.
async fn sign_up(
    state: &ApiState,
    tenant: &Tenant,
    entry: &Arc<Entry>,
    options: &AuthOptions,
    user: &warren_oauth::User,
    body: &FormBody,
    info: &RequestInfo,
) -> Result<RecordData, ApiError> {
    if entry.collection.id == warren_schema::system::SUPERUSERS_ID {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Failed to authenticate.",
        ));
    }
    let mut create: Map<String, Value> = match body.data.get("createData") {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let has_email = create
        .get("email")
        .and_then(Value::as_str)
        .is_some_and(|e| !e.is_empty());
    if !has_email && !user.email.is_empty() {
        create.insert("email".into(), json!(user.email));
    }
    let mapped = &options.oauth2.mapped_fields;
    for (field, value) in [
        (&mapped.name, &user.name),
        (&mapped.username, &user.username),
        (&mapped.id, &user.id),
    ] {
        if !field.is_empty() && !value.is_empty() && !create.contains_key(field.as_str()) {
            create.insert(field.clone(), json!(value));
        }
    }
    let password = warren_secrets::random::secret(30);
    create.insert("password".into(), json!(password));
    create.insert("passwordConfirm".into(), json!(password));
    let avatar = avatar(state, tenant, entry, options, user, &mut create).await;
    let request = ops::OAuth2SignUp {
        entry: entry.clone(),
        ctx: info.context(&Caller::Guest),
        body: create,
        avatar,
    };
    let id = ops::sign_up_oauth2(tenant, &crate::uploads::services(state), request).await?;
    login::load(tenant.db(), entry, &id)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// The provider's picture for the mapped avatar field: downloaded for a file field, its URL
/// put into `create` for any other field.
async fn avatar(
    state: &ApiState,
    tenant: &Tenant,
    entry: &Entry,
    options: &AuthOptions,
    user: &warren_oauth::User,
    create: &mut Map<String, Value>,
) -> Option<Upload> {
    let field = options.oauth2.mapped_fields.avatar_url.as_str();
    if field.is_empty() || user.avatar_url.is_empty() || create.contains_key(field) {
        return None;
    }
    match entry.collection.field(field).map(|f| &f.kind) {
        Some(FieldKind::File(options)) => {
            match avatar_upload(state, tenant, field, &user.avatar_url, options.max_size).await {
                Ok(upload) => Some(upload),
                Err(e) => {
                    tracing::warn!(error = %e, "OAuth2 avatar not downloaded");
                    None
                }
            }
        }
        Some(_) => {
            create.insert(field.to_string(), json!(user.avatar_url));
            None
        }
        None => None,
    }
}

/// A record the provider's user signs in as.
struct SignedIn {
    /// Its collection.
    entry: Arc<Entry>,
    /// The record, as stored.
    data: RecordData,
    /// The provider's user.
    user: warren_oauth::User,
    /// Whether it was signed up by this request.
    is_new: bool,
}

/// Finishes the sign-in (MFA, superuser IP rules, origins) and answers the token, the record
/// and the provider's `meta`.
async fn sign_in(
    state: &ApiState,
    tenant: &Tenant,
    ip: &str,
    info: &RequestInfo,
    body: &FormBody,
    signed_in: SignedIn,
) -> Result<Response, ApiError> {
    let SignedIn {
        entry,
        data,
        user,
        is_new,
    } = signed_in;
    let (db, catalog) = (tenant.db(), tenant.catalog());
    let ctx = info.context(&Caller::Guest);
    let params = &info.params;
    let mfa = match params.text("mfaId") {
        "" => field_text(body, "mfaId"),
        id => id,
    };
    crate::client::check_superuser_login(tenant, &entry.collection.name, ip).await?;
    if let Err(e) = login::finish(db, &catalog, &entry, &data, &ctx, "oauth2", mfa).await {
        return match e {
            warren_records::Error::MfaRequired(id) => {
                Ok((StatusCode::UNAUTHORIZED, Json(json!({ "mfaId": id }))).into_response())
            }
            other => Err(other.into()),
        };
    }
    let origin = crate::routes::auth::origin(ip, &info.headers);
    crate::routes::auth::remember_origin(state, tenant, &entry, &data, &origin).await;
    let token = login::auth_token(&entry, &data)?;
    let hooked = entry.clone();
    let mut answer = login::respond(db, catalog, entry, data, token, params.text("expand")).await?;
    if let Value::Object(map) = &mut answer {
        let meta = json!({
            "id": user.id, "name": user.name, "username": user.username, "email": user.email,
            "avatarURL": user.avatar_url, "avatarUrl": user.avatar_url,
            "accessToken": user.access_token, "refreshToken": user.refresh_token,
            "expiry": user.expires_at
                .map(|ms| warren_schema::datetime::DateTime { unix_millis: ms }.format())
                .unwrap_or_default(),
            "rawUser": user.raw, "isNew": is_new,
        });
        let mut ordered = Map::new();
        ordered.insert("meta".into(), meta);
        ordered.append(map);
        *map = ordered;
    }
    let request = || info.hook_request(&Caller::Guest);
    let request = || HookRequest {
        body: body.data.clone(),
        ..request()
    };
    let answer = ops::auth_request(tenant, &hooked, answer, "oauth2", request).await?;
    crate::routes::records::render(answer, params.text("fields"))
}

/// Downloads a provider's avatar picture into a staged upload for `field` (at most the
/// field's `maxSize`; loopback pictures only where local test providers are allowed).
async fn avatar_upload(
    state: &ApiState,
    tenant: &Tenant,
    field: &str,
    url: &str,
    max_size: i64,
) -> Result<Upload, String> {
    let max = if max_size > 0 {
        max_size as usize
    } else {
        warren_schema::field::DEFAULT_FILE_MAX_SIZE as usize
    };
    let picture = warren_oauth::avatar::download(url, max, state.oauth_loopback)
        .await
        .map_err(|e| e.to_string())?;
    let dir = warren_files::Files::upload_dir(tenant.dir());
    let mut spool = warren_files::Spool::create(&dir, max as u64)
        .await
        .map_err(|e| e.to_string())?;
    spool
        .push(&picture.bytes)
        .await
        .map_err(|e| e.to_string())?;
    let staged = spool
        .finish(picture.name.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Upload {
        key: field.to_string(),
        filename: picture.name,
        file: std::sync::Arc::new(staged),
    })
}

fn redirect(status: StatusCode, ok: bool) -> Response {
    let target = if ok {
        "../_/#/auth/oauth2-redirect-success"
    } else {
        "../_/#/auth/oauth2-redirect-failure"
    };
    (status, [(LOCATION, target)]).into_response()
}

fn forward(tenant: &Tenant, state: &str, code: &str, error: &str) -> bool {
    if state.is_empty() || state.len() > 255 || code.len() > MAX_TEXT || error.len() > MAX_TEXT {
        return false;
    }
    let mut message = json!({ "state": state, "code": code });
    if !error.is_empty() {
        message["error"] = json!(error);
    }
    tenant.broker().send(state, "@oauth2", &message.to_string()) && error.is_empty()
}

/// `GET /api/oauth2-redirect` — 307 to the success or failure page.
pub async fn oauth2_redirect_get(CurrentTenant(tenant): CurrentTenant, params: Params) -> Response {
    let ok = forward(
        &tenant,
        params.text("state"),
        params.text("code"),
        params.text("error"),
    );
    redirect(StatusCode::TEMPORARY_REDIRECT, ok)
}

/// `POST /api/oauth2-redirect` (providers' `form_post`) — 303 to the success or failure page.
pub async fn oauth2_redirect_post(
    CurrentTenant(tenant): CurrentTenant,
    body: FormBody,
) -> Response {
    let ok = forward(
        &tenant,
        field_text(&body, "state"),
        field_text(&body, "code"),
        field_text(&body, "error"),
    );
    redirect(StatusCode::SEE_OTHER, ok)
}
