//! The outbox pages on the platform host: the operator signs in with the operator token and
//! reads the mail kept locally (no SMTP relay), with its links clickable. With a relay
//! configured every route here answers 404.
//!
//! Signing in sets an `HttpOnly`, `SameSite=Strict` cookie holding an expiry and an HMAC (under
//! the console's key) over that expiry and the operator token, never the token itself; a new
//! token voids it. The sign-in and sign-out forms carry the console's CSRF token.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use crate::auth::{FormBody, failure, forbidden};
use crate::csrf;
use crate::html::{Notice, csrf_field, e, input, page, redirect};
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

fn sign_in_page(visitor: &Visitor, status: StatusCode, notice: Option<Notice>) -> Response {
    let body = format!(
        r#"<p class="lead">This platform has no SMTP relay, so the mail it sends is kept here.</p>
<form method="post" action="/outbox/login" class="card" id="outbox-login">{csrf}
{token}
<button type="submit">Open the outbox</button>
</form>
<p class="hint">The operator token is printed when the server first starts and kept in the <code>operator-token</code> file of its data directory (or set by <code>WARREN_OPERATOR_TOKEN</code>).</p>"#,
        csrf = csrf_field(visitor),
        token = input(
            "Operator token",
            "token",
            "password",
            "",
            r#"required maxlength="512" autocomplete="current-password""#
        ),
    );
    page(visitor, status, "Outbox", notice, &body)
}

/// Query of `GET /outbox`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Paging {
    page: Option<usize>,
}

/// A link shown as a clickable anchor (only `http(s)` links are ever kept).
fn anchor(link: &str) -> String {
    format!(
        r#"<a href="{link}" rel="noopener noreferrer">{link}</a>"#,
        link = e(link)
    )
}

/// The first link of a message, else its code, else nothing.
fn carries(message: &Message) -> String {
    match (message.kept.links.first(), &message.kept.code) {
        (Some(link), _) => anchor(link),
        (None, Some(code)) => format!("code <code>{}</code>", e(code)),
        (None, None) => String::new(),
    }
}

fn label(message: &Message) -> String {
    let class = if message.kept.tenant.is_none() {
        "active"
    } else {
        "pending"
    };
    format!(
        r#"<span class="badge {class}">{}</span>"#,
        e(&message.label())
    )
}

fn sign_out_form(visitor: &Visitor) -> String {
    format!(
        r#"<form method="post" action="/outbox/logout" class="inline">{}<button class="link">Close the outbox</button></form>"#,
        csrf_field(visitor)
    )
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
    let rows: String = messages
        .iter()
        .map(|m| {
            format!(
                r#"<tr><td>{created}</td><td>{label}</td><td>{to}</td><td><a href="/outbox/{id}">{subject}</a></td><td class="carries">{carries}</td></tr>"#,
                created = e(&m.kept.created),
                label = label(m),
                to = e(&m.kept.to),
                id = e(&m.kept.id),
                subject = e(&m.kept.subject),
                carries = carries(m),
            )
        })
        .collect();
    let table = if messages.is_empty() {
        r#"<p class="empty">No mail yet.</p>"#.to_string()
    } else {
        format!(
            r#"<table class="projects outbox" id="outbox"><thead><tr><th>Sent</th><th>For</th><th>To</th><th>Subject</th><th>Link or code</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let pages = total.div_ceil(PER_PAGE).max(1);
    let mut pager = String::new();
    if number > 1 {
        pager.push_str(&format!(
            r#"<a href="/outbox?page={}">Newer</a> "#,
            number - 1
        ));
    }
    if number < pages {
        pager.push_str(&format!(
            r#"<a href="/outbox?page={}">Older</a>"#,
            number + 1
        ));
    }
    let body = format!(
        r#"<p class="lead">Mail of the console and of every project without SMTP settings of its own, kept because no SMTP relay is configured. {total} kept (the newest {max} at most).</p>
{table}
<p>{pager}</p>
<p>{sign_out}</p>"#,
        max = warren_mail::outbox::MAX_MESSAGES,
        sign_out = sign_out_form(&visitor),
    );
    page(&visitor, StatusCode::OK, "Outbox", None, &body)
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
                r#"<p><a href="/outbox">Back to the outbox</a></p>"#,
            );
        }
        Err(error) => return failure(&visitor, error),
    };
    let kept = &message.kept;
    let links: String = kept
        .links
        .iter()
        .map(|l| format!("<li>{}</li>", anchor(l)))
        .collect();
    let links = if links.is_empty() {
        r#"<p class="empty">No links.</p>"#.to_string()
    } else {
        format!(r#"<ul class="links" id="links">{links}</ul>"#)
    };
    let code = match &kept.code {
        Some(code) => format!(
            r#"<dt>Code</dt><dd><code id="code">{}</code></dd>"#,
            e(code)
        ),
        None => String::new(),
    };
    let body = format!(
        r#"<p><a href="/outbox">← All mail</a></p>
<div class="card wide">
<h2>{subject}</h2>
<dl class="facts">
<dt>For</dt><dd>{label}</dd>
<dt>Sent</dt><dd>{created}</dd>
<dt>From</dt><dd>{from}</dd>
<dt>To</dt><dd>{to}</dd>
{code}
</dl>
</div>
<div class="card wide">
<h2>Links</h2>
{links}
</div>
<div class="card wide">
<h2>Message</h2>
<pre class="mail">{text}</pre>
<details><summary>HTML source</summary><pre class="mail">{source}</pre></details>
</div>"#,
        subject = e(&kept.subject),
        label = label(&message),
        created = e(&kept.created),
        from = e(&kept.from),
        to = e(&kept.to),
        text = e(&text_of(&kept.html)),
        source = e(&kept.html),
    );
    page(&visitor, StatusCode::OK, "Outbox", None, &body)
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
