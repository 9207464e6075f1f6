//! The outbox pages on the platform host: the operator signs in with the operator token and
//! reads the mail kept locally (no SMTP relay), with its links clickable. With a relay
//! configured every route here answers 404.
//!
//! Signing in sets an `HttpOnly`, `SameSite=Strict` cookie holding an expiry and an HMAC (under
//! the console's key) over that expiry and the operator token, never the token itself; a new
//! token voids it. The sign-in and sign-out forms carry the console's CSRF token.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use crate::auth::{FormBody, failure, forbidden};
use crate::csrf;
use crate::html::{Link, Notice, page, redirect};
use crate::visitor::{Visitor, cookie, cookies};
use warren_control_plane::Error;
use warren_control_plane::outbox::{Message, enabled};

use crate::Console;

/// Name of the operator's outbox cookie.
pub const OPERATOR_COOKIE: &str = "warren_operator";
/// How long an outbox sign-in lasts.
const OPERATOR_SECONDS: i64 = 12 * 3600;
/// Messages per outbox page.
const PER_PAGE: usize = 50;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What the HMAC of an outbox cookie covers.
fn binding(state: &Console, expires: i64) -> String {
    format!("outbox:{expires}:{}", state.operator_token.reveal())
}

/// The cookie value for a sign-in that lasts until `expires`.
fn operator_value(state: &Console, expires: i64) -> String {
    let key = &state.inner.csrf_key;
    format!("{expires}.{}", csrf::token(key, &binding(state, expires)))
}

/// Whether the request carries a live outbox sign-in for the current operator token.
fn signed_in(state: &Console, headers: &axum::http::HeaderMap) -> bool {
    let key = &state.inner.csrf_key;
    cookies(headers, OPERATOR_COOKIE).any(|value| {
        let Some((expires, mac)) = value.split_once('.') else {
            return false;
        };
        let Ok(expires) = expires.parse::<i64>() else {
            return false;
        };
        expires > now() && csrf::matches(key, &binding(state, expires), mac)
    })
}

/// The outbox's sign-in form.
#[derive(Template)]
#[template(path = "outbox_login.html")]
struct SignInForm {
    csrf: String,
}

fn sign_in_page(visitor: &Visitor, status: StatusCode, notice: Option<Notice>) -> Response {
    let form = SignInForm {
        csrf: visitor.csrf(),
    };
    page(visitor, status, "Outbox", notice, &form)
}

/// Query of `GET /outbox`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Paging {
    page: Option<usize>,
}

/// A kept message as the outbox shows it.
struct MessageView {
    id: String,
    created: String,
    to: String,
    subject: String,
    /// The badge of whom it was sent for: its class and label.
    class: &'static str,
    label: String,
    /// The first link of the message (only `http(s)` links are ever kept).
    link: Option<String>,
    /// Its code, if any.
    code: Option<String>,
}

impl MessageView {
    fn of(message: &Message) -> Self {
        let kept = &message.kept;
        Self {
            id: kept.id.clone(),
            created: kept.created.clone(),
            to: kept.to.clone(),
            subject: kept.subject.clone(),
            class: if kept.tenant.is_none() {
                "active"
            } else {
                "pending"
            },
            label: message.label(),
            link: kept.links.first().cloned(),
            code: kept.code.clone(),
        }
    }
}

/// A page of the outbox, newest first.
#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    csrf: String,
    rows: Vec<MessageView>,
    /// Messages kept in all.
    total: usize,
    /// The most the outbox keeps.
    max: usize,
    /// The newer page's number, if any.
    newer: Option<usize>,
    /// The older page's number, if any.
    older: Option<usize>,
}

/// One message with all its links, its body as text and as HTML source.
#[derive(Template)]
#[template(path = "outbox_message.html")]
struct MessagePage<'a> {
    m: MessageView,
    from: &'a str,
    links: &'a [String],
    text: String,
    source: &'a str,
}

/// `GET /outbox`: the sign-in form, or the kept messages, newest first.
pub async fn show_outbox(
    State(state): State<Console>,
    visitor: Visitor,
    headers: axum::http::HeaderMap,
    Query(paging): Query<Paging>,
) -> Response {
    if !enabled(&state) {
        return crate::error::not_found();
    }
    if !signed_in(&state, &headers) {
        return sign_in_page(&visitor, StatusCode::OK, None);
    }
    let number = paging.page.unwrap_or(1).max(1);
    let (messages, total) = match warren_control_plane::outbox::page(&state, number, PER_PAGE).await
    {
        Ok(found) => found,
        Err(error) => return failure(&visitor, error),
    };
    let pages = total.div_ceil(PER_PAGE).max(1);
    let shown = OutboxPage {
        csrf: visitor.csrf(),
        rows: messages.iter().map(MessageView::of).collect(),
        total,
        max: warren_mail::outbox::MAX_MESSAGES,
        newer: (number > 1).then(|| number - 1),
        older: (number < pages).then(|| number + 1),
    };
    page(&visitor, StatusCode::OK, "Outbox", None, &shown)
}

/// `GET /outbox/{id}`: one message, its links clickable, its body as text and as HTML source.
pub async fn show_message(
    State(state): State<Console>,
    visitor: Visitor,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !enabled(&state) {
        return crate::error::not_found();
    }
    if !signed_in(&state, &headers) {
        return redirect(&visitor, "/outbox", &[]);
    }
    let message = match warren_control_plane::outbox::one(&state, &id).await {
        Ok(message) => message,
        Err(Error::NotFound) => {
            return page(
                &visitor,
                StatusCode::NOT_FOUND,
                "Outbox",
                Some(Notice::Error(
                    "There is no such message; it may have been pruned.".into(),
                )),
                &Link::to("/outbox", "Back to the outbox"),
            );
        }
        Err(error) => return failure(&visitor, error),
    };
    let kept = &message.kept;
    let shown = MessagePage {
        m: MessageView::of(&message),
        from: &kept.from,
        links: &kept.links,
        text: text_of(&kept.html),
        source: &kept.html,
    };
    page(&visitor, StatusCode::OK, "Outbox", None, &shown)
}

/// Fields of the outbox sign-in form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignIn {
    csrf: String,
    token: String,
}

/// `POST /outbox/login`: checks the operator token (constant time) and sets the outbox cookie.
pub async fn sign_in(
    State(state): State<Console>,
    visitor: Visitor,
    form: Result<FormBody<SignIn>, Response>,
) -> Response {
    if !enabled(&state) {
        return crate::error::not_found();
    }
    let form = match form {
        Ok(FormBody(form)) => form,
        Err(rejection) => return rejection,
    };
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    if !state.inner.logins.allow(&visitor.ip) {
        let mut response = sign_in_page(
            &visitor,
            StatusCode::TOO_MANY_REQUESTS,
            Some(Notice::Error(
                "Too many attempts. Please wait a while and try again.".into(),
            )),
        );
        let wait = crate::LOGIN_WINDOW.as_secs().to_string();
        if let Ok(value) = HeaderValue::from_str(&wait) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let given = form.token.trim();
    if given.len() > 512
        || !state
            .operator_token
            .accepts(Some(&format!("Bearer {given}")))
    {
        tracing::warn!(ip = %visitor.ip, "outbox sign-in with a wrong operator token");
        return sign_in_page(
            &visitor,
            StatusCode::UNAUTHORIZED,
            Some(Notice::Error("That is not the operator token.".into())),
        );
    }
    let value = operator_value(&state, now() + OPERATOR_SECONDS);
    let set = cookie(
        OPERATOR_COOKIE,
        &value,
        OPERATOR_SECONDS,
        "Strict",
        visitor.secure,
    );
    redirect(&visitor, "/outbox", &[set])
}

/// Fields of the sign-out form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignOut {
    csrf: String,
}

/// `POST /outbox/logout`: removes the outbox cookie.
pub async fn sign_out(
    State(state): State<Console>,
    visitor: Visitor,
    form: Result<FormBody<SignOut>, Response>,
) -> Response {
    if !enabled(&state) {
        return crate::error::not_found();
    }
    let form = match form {
        Ok(FormBody(form)) => form,
        Err(rejection) => return rejection,
    };
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    let clear = cookie(OPERATOR_COOKIE, "", 0, "Strict", visitor.secure);
    redirect(&visitor, "/outbox", &[clear])
}

/// A readable text rendering of an HTML mail body: tags dropped, line breaks kept, the
/// entities mail templates use decoded. The result is escaped again before it is shown.
fn text_of(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    // As in HTML, whitespace in the source is one space; only tags break lines.
    let push = |text: &mut String, source: &str| {
        let mut space = false;
        for c in source.chars() {
            if c.is_whitespace() {
                space = true;
            } else {
                if space {
                    text.push(' ');
                    space = false;
                }
                text.push(c);
            }
        }
        if space {
            text.push(' ');
        }
    };
    while let Some(open) = rest.find('<') {
        push(&mut text, &rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].to_ascii_lowercase();
        let name = tag.trim_start_matches('/');
        if ["br", "p", "div", "tr", "li", "h1", "h2", "h3"]
            .iter()
            .any(|t| {
                name == *t
                    || name.starts_with(&format!("{t} "))
                    || name.starts_with(&format!("{t}/"))
            })
        {
            text.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    push(&mut text, rest);
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut out = String::new();
    let mut blank = true;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
        } else {
            out.push_str(line);
            out.push('\n');
            blank = false;
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_as_text() {
        let html = "<p>Hello,</p>\n<p>Click <a href=\"x\">here</a> &amp; go.</p><p>Thanks,<br/>\n  Acme &lt;team&gt;</p>";
        assert_eq!(
            text_of(html),
            "Hello,\n\nClick here & go.\n\nThanks,\nAcme <team>"
        );
        assert_eq!(text_of("a <b>b</b> <unclosed"), "a b");
    }
}
