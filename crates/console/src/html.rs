//! The console's HTML: one layout, small form helpers, and escaping of every value that is
//! not a literal of this file.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::visitor::Visitor;

/// Escapes text for HTML element content and quoted attribute values.
pub fn e(text: &str) -> String {
    warren_mail::escape_html(text)
}

/// A message shown above a page's content.
pub enum Notice {
    /// Something went as asked.
    Ok(String),
    /// Something was refused; says why.
    Error(String),
}

/// The hidden CSRF field of a form.
pub fn csrf_field(visitor: &Visitor) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        e(&visitor.csrf())
    )
}

/// A labelled input.
pub fn input(label: &str, name: &str, kind: &str, value: &str, extra: &str) -> String {
    format!(
        r#"<label>{label}<input type="{kind}" name="{name}" value="{value}" {extra}></label>"#,
        label = e(label),
        kind = e(kind),
        name = e(name),
        value = e(value),
    )
}

/// A whole page: layout around `body` (already HTML), with the visitor's navigation.
pub fn page(
    visitor: &Visitor,
    status: StatusCode,
    title: &str,
    notice: Option<Notice>,
    body: &str,
) -> Response {
    layout(visitor, status, title, notice, body, "")
}

/// A page that the browser reloads every `seconds` (progress of a job; no script needed).
pub fn page_refreshing(visitor: &Visitor, title: &str, seconds: u32, body: &str) -> Response {
    let head = format!(r#"<meta http-equiv="refresh" content="{seconds}">"#);
    layout(visitor, StatusCode::OK, title, None, body, &head)
}

fn layout(
    visitor: &Visitor,
    status: StatusCode,
    title: &str,
    notice: Option<Notice>,
    body: &str,
    head: &str,
) -> Response {
    let nav = match &visitor.account {
        Some(account) => format!(
            r#"<a href="/projects">Projects</a><span class="who">{email}</span>
<form method="post" action="/logout" class="inline">{csrf}<button class="link">Log out</button></form>"#,
            email = e(&account.email),
            csrf = csrf_field(visitor),
        ),
        None => r#"<a href="/login">Log in</a><a href="/signup" class="button">Sign up</a>"#.into(),
    };
    let notice = match notice {
        Some(Notice::Ok(text)) => format!(r#"<p class="notice ok" role="status">{}</p>"#, e(&text)),
        Some(Notice::Error(text)) => {
            format!(r#"<p class="notice error" role="alert">{}</p>"#, e(&text))
        }
        None => String::new(),
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Warren</title>
<link rel="stylesheet" href="/console.css">
{head}
</head>
<body>
<header class="top"><a class="brand" href="/">Warren</a><nav>{nav}</nav></header>
<main>
<h1>{title}</h1>
{notice}
{body}
</main>
</body>
</html>
"#,
        title = e(title),
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_escape_their_values() {
        let html = input(
            "Email",
            "email",
            "email",
            r#""><script>x</script>"#,
            "required",
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("&#34;&gt;&lt;script&gt;"));
    }
}
