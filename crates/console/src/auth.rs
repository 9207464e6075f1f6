//! Console pages for accounts: sign up, verify the email, log in and out, reset the password.

use std::collections::HashMap;
use std::time::Duration;

use askama::Template;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::html::{Link, Notice, notice_page, page, redirect, render};
use crate::visitor::{SESSION_COOKIE, Visitor, cookie};
use warren_control_plane::Error;
use warren_control_plane::accounts::{self, LinkKind, SESSION_SECONDS};

use crate::Console;

/// Longest wait for a password-hashing permit before a request is refused as busy.
const HASH_WAIT: Duration = Duration::from_secs(10);

/// A form body; unreadable bodies get a plain 400. Missing fields are empty strings (each form
/// struct defaults them), so a post without a CSRF token reaches the CSRF check and is refused.
pub struct FormBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for FormBody<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(_) => Err((
                StatusCode::BAD_REQUEST,
                Html("<!doctype html><title>Bad request</title><p>The form could not be read.</p>"),
            )
                .into_response()),
        }
    }
}

/// The page for a refused CSRF token.
pub fn forbidden(visitor: &Visitor) -> Response {
    page(
        visitor,
        StatusCode::FORBIDDEN,
        "Form expired",
        Some(Notice::Error(
            "The form expired or did not come from this site. Reload the page and try again."
                .into(),
        )),
        &Link::to("/", "Back to the console"),
    )
}

/// The page for an unexpected failure (logged).
pub fn failure(visitor: &Visitor, error: Error) -> Response {
    tracing::error!(error = %error, "console request failed");
    notice_page(
        visitor,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        Notice::Error(
            "Something went wrong while processing your request. Please try again.".into(),
        ),
    )
}

fn too_many(visitor: &Visitor, retry_after: Duration, title: &str) -> Response {
    let mut response = notice_page(
        visitor,
        StatusCode::TOO_MANY_REQUESTS,
        title,
        Notice::Error("Too many attempts. Please wait a while and try again.".into()),
    );
    if let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn busy(visitor: &Visitor, title: &str) -> Response {
    notice_page(
        visitor,
        StatusCode::SERVICE_UNAVAILABLE,
        title,
        Notice::Error("The service is busy. Please try again in a moment.".into()),
    )
}

/// The console's own base URL (`http://<domain>:<port>`), for links in mail.
pub fn base_url(state: &Console) -> String {
    state.urls.platform_url()
}

fn session_cookie(visitor: &Visitor, secret: &str) -> String {
    cookie(
        SESSION_COOKIE,
        secret,
        SESSION_SECONDS,
        "Lax",
        visitor.secure,
    )
}

fn sends_verification(state: &Console, email: &str, secret: &str) {
    let link = format!("{}/verify?token={secret}", base_url(state));
    let html = render(&VerifyMail { link: &link });
    state.mail(email, "Verify your email for Warren", html);
}

/// The front page for visitors who are not signed in.
#[derive(Template)]
#[template(path = "home.html")]
struct Home;

/// The mail with the link that verifies an account's email.
#[derive(Template)]
#[template(path = "mail/verify.html")]
struct VerifyMail<'a> {
    link: &'a str,
}

/// The mail with the link that chooses a new password.
#[derive(Template)]
#[template(path = "mail/reset.html")]
struct ResetMail<'a> {
    link: &'a str,
}

/// `GET /`
pub async fn home(visitor: Visitor) -> Response {
    if visitor.account.is_some() {
        return redirect(&visitor, "/projects", &[]);
    }
    page(
        &visitor,
        StatusCode::OK,
        "Hosted backends in seconds",
        None,
        &Home,
    )
}

/// Fields of the signup and login forms.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Credentials {
    csrf: String,
    email: String,
    password: String,
}

/// The signup form, with the email typed so far.
#[derive(Template)]
#[template(path = "signup.html")]
struct SignupForm<'a> {
    csrf: String,
    email: &'a str,
}

fn signup_form<'a>(visitor: &Visitor, email: &'a str) -> SignupForm<'a> {
    SignupForm {
        csrf: visitor.csrf(),
        email,
    }
}

/// `GET /signup`
pub async fn signup_page(visitor: Visitor) -> Response {
    if visitor.account.is_some() {
        return redirect(&visitor, "/projects", &[]);
    }
    page(
        &visitor,
        StatusCode::OK,
        "Sign up",
        None,
        &signup_form(&visitor, ""),
    )
}

/// `POST /signup`: creates the account, mails the verification link, signs in.
pub async fn signup(
    State(state): State<Console>,
    visitor: Visitor,
    FormBody(form): FormBody<Credentials>,
) -> Response {
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    let console = &state;
    let refuse = |status, message: String| {
        page(
            &visitor,
            status,
            "Sign up",
            Some(Notice::Error(message)),
            &signup_form(&visitor, &form.email),
        )
    };
    if !console.inner.per_ip.allow(&visitor.ip) {
        return too_many(&visitor, state.inner.config.signup_window, "Sign up");
    }
    let email = match accounts::normalize_email(&form.email) {
        Ok(email) => email,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if !console.inner.per_email.allow(&email) {
        return too_many(&visitor, state.inner.config.signup_window, "Sign up");
    }
    if let Err(e) = accounts::check_password(&form.password) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    let hash = match console
        .inner
        .passwords
        .try_hash(&form.password, HASH_WAIT)
        .await
    {
        Ok(hash) => hash,
        Err(warren_secrets::Error::Busy) => return busy(&visitor, "Sign up"),
        Err(e) => return failure(&visitor, e.into()),
    };
    let plan = &console.inner.config.signup_plan;
    let account = match console.accounts().create_on(&email, hash, plan).await {
        Ok(account) => account,
        Err(Error::EmailTaken) => {
            return refuse(
                StatusCode::CONFLICT,
                "An account with this email exists. Log in, or reset its password.".into(),
            );
        }
        Err(e) => return failure(&visitor, e),
    };
    let link = match console
        .accounts()
        .issue_link(&account.id, LinkKind::Verify)
        .await
    {
        Ok(link) => link,
        Err(e) => return failure(&visitor, e),
    };
    sends_verification(&state, &account.email, &link);
    tracing::info!(account = %account.id, "account signed up");
    match console.accounts().start_session(&account.id).await {
        Ok(secret) => redirect(&visitor, "/projects", &[session_cookie(&visitor, &secret)]),
        Err(e) => failure(&visitor, e),
    }
}

/// The login form, with the email typed so far.
#[derive(Template)]
#[template(path = "login.html")]
struct LoginForm<'a> {
    csrf: String,
    email: &'a str,
}

fn login_form<'a>(visitor: &Visitor, email: &'a str) -> LoginForm<'a> {
    LoginForm {
        csrf: visitor.csrf(),
        email,
    }
}

/// `GET /login`
pub async fn login_page(visitor: Visitor) -> Response {
    if visitor.account.is_some() {
        return redirect(&visitor, "/projects", &[]);
    }
    page(
        &visitor,
        StatusCode::OK,
        "Log in",
        None,
        &login_form(&visitor, ""),
    )
}

/// `POST /login`
pub async fn login(
    State(state): State<Console>,
    visitor: Visitor,
    FormBody(form): FormBody<Credentials>,
) -> Response {
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    let console = &state;
    let refuse = |status, message: &str| {
        page(
            &visitor,
            status,
            "Log in",
            Some(Notice::Error(message.into())),
            &login_form(&visitor, &form.email),
        )
    };
    if !console.inner.logins.allow(&visitor.ip) {
        return too_many(&visitor, crate::LOGIN_WINDOW, "Log in");
    }
    if form.password.chars().count() > 71 || form.email.len() > accounts::MAX_EMAIL {
        return refuse(StatusCode::BAD_REQUEST, "Wrong email or password.");
    }
    let found = match console.accounts().find_by_email(&form.email).await {
        Ok(found) => found,
        Err(e) => return failure(&visitor, e),
    };
    let passwords = &console.inner.passwords;
    let Some((account, hash)) = found else {
        // As slow as a wrong password, so unknown emails cannot be told apart.
        return match passwords.try_burn(&form.password, HASH_WAIT).await {
            Err(warren_secrets::Error::Busy) => busy(&visitor, "Log in"),
            _ => refuse(StatusCode::BAD_REQUEST, "Wrong email or password."),
        };
    };
    match passwords.try_verify(&form.password, &hash, HASH_WAIT).await {
        Ok(true) => {}
        Ok(false) => return refuse(StatusCode::BAD_REQUEST, "Wrong email or password."),
        Err(warren_secrets::Error::Busy) => return busy(&visitor, "Log in"),
        Err(e) => return failure(&visitor, e.into()),
    }
    if account.disabled {
        return refuse(
            StatusCode::FORBIDDEN,
            "This account is disabled. Contact the operator.",
        );
    }
    // A fresh session at every sign-in: a session id planted beforehand is never upgraded.
    if let Some(old) = visitor.session() {
        let _ = console.accounts().end_session(old).await;
    }
    match console.accounts().start_session(&account.id).await {
        Ok(secret) => redirect(&visitor, "/projects", &[session_cookie(&visitor, &secret)]),
        Err(e) => failure(&visitor, e),
    }
}

/// Fields of forms that carry only the CSRF token.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Plain {
    csrf: String,
}

/// `POST /logout`
pub async fn logout(
    State(state): State<Console>,
    visitor: Visitor,
    FormBody(form): FormBody<Plain>,
) -> Response {
    if visitor.session().is_none() {
        return redirect(&visitor, "/", &[]);
    }
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    if let Some(secret) = visitor.session()
        && let Err(e) = state.console.accounts().end_session(secret).await
    {
        return failure(&visitor, e);
    }
    let clear = cookie(SESSION_COOKIE, "", 0, "Lax", visitor.secure);
    redirect(&visitor, "/", &[clear])
}

/// `GET /verify?token=…`: the link from the verification mail.
pub async fn verify(
    State(state): State<Console>,
    visitor: Visitor,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = query.get("token").map(String::as_str).unwrap_or("");
    let accounts = state.console.accounts();
    let account = match accounts.redeem_link(token, LinkKind::Verify).await {
        Ok(Some(id)) => accounts.mark_verified(&id).await,
        Ok(None) => {
            return page(
                &visitor,
                StatusCode::BAD_REQUEST,
                "Verify your email",
                Some(Notice::Error(
                    "This link is invalid or has expired. Log in to request a new one.".into(),
                )),
                &Link::to("/login", "Log in"),
            );
        }
        Err(e) => Err(e),
    };
    match account {
        Ok(account) => page(
            &visitor,
            StatusCode::OK,
            "Email verified",
            Some(Notice::Ok(format!(
                "{} is verified. You can create projects now.",
                account.email
            ))),
            &Link::button("/projects", "Go to your projects"),
        ),
        Err(e) => failure(&visitor, e),
    }
}

/// `POST /verify/resend`: a new verification link for the signed-in account.
pub async fn resend_verification(
    State(state): State<Console>,
    visitor: Visitor,
    FormBody(form): FormBody<Plain>,
) -> Response {
    let Some(account) = visitor.account.clone() else {
        return redirect(&visitor, "/login", &[]);
    };
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    if account.verified {
        return redirect(&visitor, "/projects", &[]);
    }
    if !state.inner.per_email.allow(&account.email) {
        return too_many(
            &visitor,
            state.inner.config.signup_window,
            "Verify your email",
        );
    }
    match state
        .console
        .accounts()
        .issue_link(&account.id, LinkKind::Verify)
        .await
    {
        Ok(link) => sends_verification(&state, &account.email, &link),
        Err(e) => return failure(&visitor, e),
    }
    page(
        &visitor,
        StatusCode::OK,
        "Verify your email",
        Some(Notice::Ok(format!(
            "We sent a new link to {}.",
            account.email
        ))),
        &Link::to("/projects", "Back to your projects"),
    )
}

/// Fields of the password-reset request.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResetRequest {
    csrf: String,
    email: String,
}

/// The form that asks for a reset link.
#[derive(Template)]
#[template(path = "reset.html")]
struct ResetForm {
    csrf: String,
}

fn reset_form(visitor: &Visitor) -> ResetForm {
    ResetForm {
        csrf: visitor.csrf(),
    }
}

/// `GET /reset`
pub async fn reset_page(visitor: Visitor) -> Response {
    page(
        &visitor,
        StatusCode::OK,
        "Reset your password",
        None,
        &reset_form(&visitor),
    )
}

/// `POST /reset`: mails a reset link when the account exists; the answer is the same either
/// way, so it does not tell who has an account.
pub async fn request_reset(
    State(state): State<Console>,
    visitor: Visitor,
    FormBody(form): FormBody<ResetRequest>,
) -> Response {
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    let console = &state;
    let Ok(email) = accounts::normalize_email(&form.email) else {
        return page(
            &visitor,
            StatusCode::BAD_REQUEST,
            "Reset your password",
            Some(Notice::Error("Enter a valid email address.".into())),
            &reset_form(&visitor),
        );
    };
    if !console.inner.per_ip.allow(&visitor.ip) || !console.inner.per_email.allow(&email) {
        return too_many(
            &visitor,
            state.inner.config.signup_window,
            "Reset your password",
        );
    }
    match console.accounts().find_by_email(&email).await {
        Ok(Some((account, _))) if !account.disabled => {
            match console
                .accounts()
                .issue_link(&account.id, LinkKind::Reset)
                .await
            {
                Ok(secret) => {
                    let link = format!("{}/reset/confirm?token={secret}", base_url(&state));
                    let html = render(&ResetMail { link: &link });
                    console.mail(&account.email, "Reset your Warren password", html);
                }
                Err(e) => return failure(&visitor, e),
            }
        }
        Ok(_) => {}
        Err(e) => return failure(&visitor, e),
    }
    notice_page(
        &visitor,
        StatusCode::OK,
        "Reset your password",
        Notice::Ok(
            "If an account with that email exists, we sent it a link to choose a new password."
                .into(),
        ),
    )
}

/// Fields of the new-password form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResetConfirm {
    csrf: String,
    token: String,
    password: String,
}

/// The form that sets a new password with a reset link's token.
#[derive(Template)]
#[template(path = "new_password.html")]
struct NewPasswordForm<'a> {
    csrf: String,
    token: &'a str,
}

fn new_password_form<'a>(visitor: &Visitor, token: &'a str) -> NewPasswordForm<'a> {
    NewPasswordForm {
        csrf: visitor.csrf(),
        token,
    }
}

fn bad_link(visitor: &Visitor) -> Response {
    page(
        visitor,
        StatusCode::BAD_REQUEST,
        "Reset your password",
        Some(Notice::Error(
            "This link is invalid or has expired. Ask for a new one.".into(),
        )),
        &Link::to("/reset", "Ask for a new link"),
    )
}

/// `GET /reset/confirm?token=…`: the link from the reset mail.
pub async fn reset_confirm_page(
    State(state): State<Console>,
    visitor: Visitor,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = query.get("token").map(String::as_str).unwrap_or("");
    match state
        .console
        .accounts()
        .link_is_valid(token, LinkKind::Reset)
        .await
    {
        Ok(true) => page(
            &visitor,
            StatusCode::OK,
            "Choose a new password",
            None,
            &new_password_form(&visitor, token),
        ),
        Ok(false) => bad_link(&visitor),
        Err(e) => failure(&visitor, e),
    }
}

/// `POST /reset/confirm`: sets the password, ends every session of the account, and counts as
/// proof of the email address.
pub async fn reset_confirm(
    State(state): State<Console>,
    visitor: Visitor,
    FormBody(form): FormBody<ResetConfirm>,
) -> Response {
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    if let Err(e) = accounts::check_password(&form.password) {
        return page(
            &visitor,
            StatusCode::BAD_REQUEST,
            "Choose a new password",
            Some(Notice::Error(e.to_string())),
            &new_password_form(&visitor, &form.token),
        );
    }
    let console = &state;
    let hash = match console
        .inner
        .passwords
        .try_hash(&form.password, HASH_WAIT)
        .await
    {
        Ok(hash) => hash,
        Err(warren_secrets::Error::Busy) => return busy(&visitor, "Choose a new password"),
        Err(e) => return failure(&visitor, e.into()),
    };
    let id = match console
        .accounts()
        .redeem_link(&form.token, LinkKind::Reset)
        .await
    {
        Ok(Some(id)) => id,
        Ok(None) => return bad_link(&visitor),
        Err(e) => return failure(&visitor, e),
    };
    let changed = async {
        console.accounts().set_password(&id, hash).await?;
        console.accounts().mark_verified(&id).await
    };
    if let Err(e) = changed.await {
        return failure(&visitor, e);
    }
    let clear = cookie(SESSION_COOKIE, "", 0, "Lax", visitor.secure);
    let mut response = page(
        &visitor,
        StatusCode::OK,
        "Password changed",
        Some(Notice::Ok(
            "Your password was changed and every session signed out. Log in with the new one."
                .into(),
        )),
        &Link::button("/login", "Log in"),
    );
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_escape_the_values_they_show_again() {
        let html = render(&SignupForm {
            csrf: "t".into(),
            email: r#""><script>x</script>"#,
        });
        assert!(!html.contains("<script>"));
        assert!(html.contains("&#34;&#62;&#60;script&#62;"));
    }
}
