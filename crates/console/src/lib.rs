//! The console: server-rendered pages on the platform host where developers sign up, verify
//! their email, sign in and manage their projects. No JavaScript is needed to use it. It works
//! through the control plane's domain API (`warren-control-plane`) and never through the
//! operator API.
//!
//! Every form carries a CSRF token signed with a key from the control database (bound to the
//! session when signed in, to a nonce cookie before); posts without a valid one are refused.

mod auth;
mod code;
mod csrf;
mod dashboard;
mod domains;
mod elsewhere;
mod error;
mod html;
mod limit;
mod outbox;
mod projects;
mod secrets;
mod transfers;
mod usage;
mod visitor;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use warren_control_plane::accounts::Accounts;
use warren_control_plane::projects::Projects;
use warren_control_plane::{ControlPlane, Result};
use warren_mail::Email;
use warren_secrets::Passwords;

pub use elsewhere::Elsewhere;
pub use limit::RateLimit;

/// Largest console form body.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Login attempts allowed per client IP per [`LOGIN_WINDOW`] (password guessing; the hasher's
/// bounded concurrency already keeps a flood from starving the server).
const LOGINS_PER_IP: u32 = 30;
/// The login limit's window.
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Settings of the console.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Signups allowed per client IP per `signup_window`.
    pub signups_per_ip: u32,
    /// Signups (and password-reset mails) allowed per email address per `signup_window`.
    pub signups_per_email: u32,
    /// The rate limits' window.
    pub signup_window: Duration,
    /// The `From` address of the console's mail.
    pub mail_from: String,
    /// The plan new accounts start on (the default plan when no plan has this name).
    pub signup_plan: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            signups_per_ip: 10,
            signups_per_email: 3,
            signup_window: Duration::from_secs(3600),
            mail_from: "noreply@localhost".into(),
            signup_plan: warren_control_plane::plans::DEFAULT_PLAN.into(),
        }
    }
}

/// What the console's handlers share: the control plane and the console's own keys, limits and
/// settings. Cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    /// Tenants, accounts, metering, backups: the domain the pages show.
    control: ControlPlane,
    /// Bounded argon2id hashing, shared with the tenant API.
    passwords: Passwords,
    /// Signs CSRF tokens.
    csrf_key: Vec<u8>,
    /// Signups per client IP.
    per_ip: RateLimit,
    /// Signups and reset mails per email address.
    per_email: RateLimit,
    /// Login attempts per client IP.
    logins: RateLimit,
    /// Settings.
    config: ConsoleConfig,
    /// Cluster mode: where actions on a project this node does not serve run.
    elsewhere: std::sync::OnceLock<Arc<dyn Elsewhere>>,
}

impl Console {
    /// The console over `control`, hashing passwords with `passwords`.
    pub async fn new(
        control: ControlPlane,
        passwords: Passwords,
        config: ConsoleConfig,
    ) -> Result<Self> {
        let known = warren_control_plane::plans::Plans::new(control.tenants.db().clone())
            .find(&config.signup_plan)
            .await?;
        if known.is_none() {
            tracing::warn!(plan = %config.signup_plan, "no such plan: new accounts start on the default plan");
        }
        let csrf_key = control.console.accounts().csrf_key().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                control,
                passwords,
                csrf_key,
                per_ip: RateLimit::new(config.signups_per_ip, config.signup_window),
                per_email: RateLimit::new(config.signups_per_email, config.signup_window),
                logins: RateLimit::new(LOGINS_PER_IP, LOGIN_WINDOW),
                config,
                elsewhere: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Cluster mode: actions on the data of a project another node serves (or none does yet)
    /// run through `elsewhere` from now on.
    pub fn set_elsewhere(&self, elsewhere: Arc<dyn Elsewhere>) {
        let _ = self.inner.elsewhere.set(elsewhere);
    }

    /// The accounts store.
    pub fn accounts(&self) -> &Accounts {
        self.inner.control.console.accounts()
    }

    /// Accounts' projects.
    pub fn projects(&self) -> &Projects {
        self.inner.control.console.projects()
    }

    /// Sends `subject`/`html` to `to` in the background through the platform relay.
    fn mail(&self, to: &str, subject: &str, html: String) {
        let settings = json!({
            "meta": { "senderName": "Warren", "senderAddress": self.inner.config.mail_from }
        });
        self.console.mailer().send_later(
            settings,
            Email {
                to: to.to_string(),
                subject: subject.to_string(),
                html,
                code: None,
            },
        );
    }
}

/// The console's pages are views of the control plane: handlers read its tenants, accounts and
/// metering through this, and the console's own settings through [`Console`]'s fields.
impl Deref for Console {
    type Target = ControlPlane;

    fn deref(&self) -> &ControlPlane {
        &self.inner.control
    }
}

/// The console's routes, to merge into the platform host's router.
pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(auth::home))
        .route("/console.css", get(stylesheet))
        .route("/signup", get(auth::signup_page).post(auth::signup))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/verify", get(auth::verify))
        .route("/verify/resend", post(auth::resend_verification))
        .route("/reset", get(auth::reset_page).post(auth::request_reset))
        .route(
            "/reset/confirm",
            get(auth::reset_confirm_page).post(auth::reset_confirm),
        )
        .route(
            "/projects",
            get(projects::list_projects).post(projects::create_project),
        )
        .route("/projects/{id}", get(projects::show_project))
        .route("/outbox", get(outbox::show_outbox))
        .route("/outbox/login", post(outbox::sign_in))
        .route("/outbox/logout", post(outbox::sign_out))
        .route("/outbox/{id}", get(outbox::show_message))
        .route("/projects/{id}/superuser", post(projects::set_superuser))
        .route("/projects/{id}/delete", post(projects::delete_project))
        .route("/projects/{id}/domains", post(domains::add_domain))
        .route("/projects/{id}/domains/check", post(domains::check_domain))
        .route(
            "/projects/{id}/domains/remove",
            post(domains::remove_domain),
        )
        .route(
            "/projects/{id}/import",
            get(transfers::show_import)
                .post(transfers::import_project)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/projects/{id}/export", post(transfers::export_project))
        .route(
            "/projects/{id}/code",
            post(code::deploy_code).layer(DefaultBodyLimit::disable()),
        )
        .route("/projects/{id}/code/download", post(code::download_code))
        .route("/projects/{id}/dashboard", post(dashboard::open_dashboard))
        .route("/projects/{id}/secrets", post(secrets::set_secret))
        .route(
            "/projects/{id}/secrets/remove",
            post(secrets::remove_secret),
        )
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response_with_state(
            console.clone(),
            allow_project_hosts,
        ))
        .with_state(console)
}

/// Lets the console's forms lead on to projects' hosts: "Open dashboard" posts to the console,
/// which redirects to `<slug>.<domain>`, and browsers hold the redirect after a form to the
/// `form-action` of the form's page.
async fn allow_project_hosts(State(console): State<Console>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    let widened = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .map(|csp| {
            csp.replace(
                "form-action 'self'",
                &format!("form-action 'self' {}", console.urls.tenant_url("*")),
            )
        })
        .and_then(|csp| HeaderValue::from_str(&csp).ok());
    if let Some(csp) = widened {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// `GET /console.css`
async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("console.css"),
    )
}
