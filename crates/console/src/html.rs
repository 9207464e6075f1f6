//! The console's pages as responses: the layout template around each page's own template,
//! redirects, and the security headers every answer carries. Templates escape every value.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::visitor::Visitor;

/// A message shown above a page's content.
pub enum Notice {
    /// Something went as asked.
    Ok(String),
    /// Something was refused; says why.
    Error(String),
}

/// The page around every body: title, navigation for the visitor, the notice.
#[derive(Template)]
#[template(path = "layout.html")]
struct Layout<'a> {
    /// The page's title (also its heading).
    title: &'a str,
    /// Seconds after which the browser reloads the page, if it should.
    refresh: Option<u32>,
    /// The signed-in account's email, for the navigation.
    account: Option<&'a str>,
    /// The CSRF token of the log-out form.
    csrf: &'a str,
    /// The message above the content.
    notice: Option<Notice>,
    /// The page's content, already rendered from its template.
    body: &'a str,
}

/// A paragraph holding one link (the body of short answers).
#[derive(Template)]
#[template(path = "link.html")]
pub struct Link<'a> {
    /// Where it goes.
    pub href: &'a str,
    /// What it says.
    pub text: &'a str,
    /// Whether it looks like a button.
    pub button: bool,
}

impl<'a> Link<'a> {
    /// A plain link.
    pub fn to(href: &'a str, text: &'a str) -> Self {
        Self {
            href,
            text,
            button: false,
        }
    }

    /// A link drawn as a button.
    pub fn button(href: &'a str, text: &'a str) -> Self {
        Self {
            href,
            text,
            button: true,
        }
    }
}

/// `template` as HTML. Rendering only fails when a value's `Display` does, which none of the
/// console's values do; such a failure is logged and leaves the part empty.
pub fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|error| {
        tracing::error!(error = %error, "a console template failed to render");
        String::new()
    })
}

/// A whole page: layout around `body`, with the visitor's navigation.
pub fn page(
    visitor: &Visitor,
    status: StatusCode,
    title: &str,
    notice: Option<Notice>,
    body: &impl Template,
) -> Response {
    layout(visitor, status, title, notice, &render(body), None)
}

/// A page with only a notice under its title.
pub fn notice_page(visitor: &Visitor, status: StatusCode, title: &str, notice: Notice) -> Response {
    layout(visitor, status, title, Some(notice), "", None)
}

/// A page that the browser reloads every `seconds` (progress of a job; no script needed).
pub fn page_refreshing(
    visitor: &Visitor,
    title: &str,
    seconds: u32,
    body: &impl Template,
) -> Response {
    layout(
        visitor,
        StatusCode::OK,
        title,
        None,
        &render(body),
        Some(seconds),
    )
}

fn layout(
    visitor: &Visitor,
    status: StatusCode,
    title: &str,
    notice: Option<Notice>,
    body: &str,
    refresh: Option<u32>,
) -> Response {
    let csrf = visitor.csrf();
    let html = render(&Layout {
        title,
        refresh,
        account: visitor.account.as_ref().map(|a| a.email.as_str()),
        csrf: &csrf,
        notice,
        body,
    });
    visitor.finish(secure_headers((status, Html(html)).into_response()))
}

/// A redirect after a form (303 See Other), with extra `Set-Cookie` values.
pub fn redirect(visitor: &Visitor, to: &str, cookies: &[String]) -> Response {
    let mut response =
        (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response();
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    visitor.finish(secure_headers(response))
}

/// Headers every console response carries: no framing, no inline scripts or foreign
/// resources, no caching of pages with secrets, no referrer (with its link tokens) sent to
/// other sites. `same-origin` rather than `no-referrer`: with the latter browsers send
/// `Origin: null` on the console's own form posts, which the CSRF check refuses.
fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let pairs = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
