//! What of a request a rule's compiled SQL depends on, so callers can memoise compilations.
//!
//! Compiling a rule binds request values (`@request.auth.id`, a header, a body field) as SQL
//! parameters and lets some of them shape the SQL (a missing value becomes `NULL`, an empty one
//! folds a comparison). Two requests that agree on every value the rule reads therefore compile
//! to the same SQL and parameters; [`RequestReads::key`] writes exactly those values. A rule with
//! a date macro (`@now`, `@todayStart`, ...) depends on the clock and has no key.

use serde_json::{Map, Value};

use crate::ast::{Expr, Operand};
use crate::request::RequestContext;

/// One request value a rule reads.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    /// `@request.auth.<name>...`: the auth record's presence, collection and id, and the
    /// top-level value `name` (a path below it or a join through it depends on no more).
    Auth(String),
    /// `@request.body.<name>...`: the whole top-level body value `name`.
    Body(String),
    /// `@request.query.<name>`.
    Query(String),
    /// `@request.headers.<name>`.
    Header(String),
    /// `@request.method`.
    Method,
    /// `@request.context`.
    Context,
    /// An identifier under `@request.` of any other shape (it compiles to an error or NULL
    /// whatever the request holds).
    Nothing,
}

/// The request values one rule reads, in source order; `None` when the rule reads the clock.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestReads(Option<Vec<Read>>);

impl RequestReads {
    /// Collects the reads of `expr`.
    pub(crate) fn of(expr: Option<&Expr>) -> Self {
        let mut reads = Vec::new();
        let mut clock = false;
        if let Some(expr) = expr {
            expr.for_each_cmp(&mut |left, _, right| {
                collect(left, &mut reads, &mut clock);
                collect(right, &mut reads, &mut clock);
            });
        }
        reads.dedup();
        Self((!clock).then_some(reads))
    }

    /// Appends to `out` the values of `request` that the rule reads; two requests with equal
    /// keys compile the rule to the same SQL and parameters. False (and `out` unspecified) when
    /// the rule has no key because it reads the clock.
    pub fn key(&self, request: &RequestContext, out: &mut Vec<u8>) -> bool {
        let Some(reads) = &self.0 else {
            return false;
        };
        for read in reads {
            match read {
                Read::Auth(name) => match &request.auth {
                    None => out.push(b'N'),
                    Some(auth) => {
                        out.push(b'A');
                        for key in ["collectionId", "collectionName", "id", name.as_str()] {
                            value(auth, key, out);
                        }
                    }
                },
                Read::Body(name) => value(&request.body, name, out),
                Read::Query(name) => text(request.query.get(name).map(String::as_str), out),
                Read::Header(name) => text(request.headers.get(name), out),
                Read::Method => text(Some(&request.method), out),
                Read::Context => text(Some(&request.context), out),
                Read::Nothing => {}
            }
            out.push(0);
        }
        true
    }
}

/// Writes `map[key]` as JSON (which never holds a raw NUL byte), or `-` when absent.
fn value(map: &Map<String, Value>, key: &str, out: &mut Vec<u8>) {
    match map.get(key) {
        // Writing JSON into a Vec cannot fail.
        Some(v) => serde_json::to_writer(&mut *out, v).unwrap_or_default(),
        None => out.push(b'-'),
    }
    out.push(1);
}

fn text(value: Option<&str>, out: &mut Vec<u8>) {
    match value {
        Some(s) => serde_json::to_writer(&mut *out, s).unwrap_or_default(),
        None => out.push(b'-'),
    }
}

fn collect(operand: &Operand, reads: &mut Vec<Read>, clock: &mut bool) {
    match operand {
        Operand::Ident { name, .. } => {
            if let Some(read) = read_of(name) {
                reads.push(read);
            } else if crate::request::is_macro(name) {
                *clock = true;
            }
        }
        Operand::Call { args, .. } => {
            for arg in args {
                collect(arg, reads, clock);
            }
        }
        Operand::Text { .. } | Operand::Number { .. } => {}
    }
}

fn read_of(name: &str) -> Option<Read> {
    let rest = name.strip_prefix("@request.")?;
    // The first segment below the root, without a `:modifier`.
    let first = |path: &str| {
        let segment = path.split('.').next().unwrap_or_default();
        segment.split(':').next().unwrap_or_default().to_string()
    };
    Some(match rest.split_once('.') {
        Some(("auth", path)) => Read::Auth(first(path)),
        Some(("body", path)) => Read::Body(first(path)),
        Some(("query", path)) => Read::Query(first(path)),
        Some(("headers", path)) => Read::Header(first(path)),
        None if rest == "method" => Read::Method,
        None if rest == "context" => Read::Context,
        _ => Read::Nothing,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Filter;

    fn key(rule: &str, request: &RequestContext) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        Filter::parse(rule)
            .unwrap()
            .reads()
            .key(request, &mut out)
            .then_some(out)
    }

    fn user(id: &str) -> RequestContext {
        let mut ctx = RequestContext::guest();
        let auth =
            json!({"id": id, "collectionId": "_pb_users", "collectionName": "users", "role": "a"});
        ctx.auth = auth.as_object().cloned().map(Into::into);
        ctx
    }

    #[test]
    fn keys_differ_exactly_where_the_values_read_differ() {
        let rule = "@request.auth.id != '' && owner = @request.auth.id";
        assert_eq!(key(rule, &user("u1")), key(rule, &user("u1")));
        assert_ne!(key(rule, &user("u1")), key(rule, &user("u2")));
        assert_ne!(key(rule, &user("u1")), key(rule, &RequestContext::guest()));
        // A value the rule does not read does not split the key.
        let mut other = user("u1");
        other.set_header("X-Trace", "1");
        other.query.insert("page".into(), "2".into());
        assert_eq!(key(rule, &user("u1")), key(rule, &other));
        // One it reads does.
        let rule = "@request.auth.role = 'a' && @request.headers.x_trace = '1'";
        assert_ne!(key(rule, &user("u1")), key(rule, &other));
        let mut changed = user("u1");
        std::sync::Arc::make_mut(changed.auth.as_mut().unwrap())["role"] = json!("b");
        assert_ne!(key(rule, &user("u1")), key(rule, &changed));
    }

    #[test]
    fn the_clock_has_no_key() {
        assert_eq!(key("created > @now", &user("u1")), None);
        assert_eq!(key("title = 'x'", &user("u1")), Some(vec![]));
    }

    #[test]
    fn body_query_method_and_context_are_read() {
        let rule = "@request.body.title:length > 1 && @request.query.q = 'x' && @request.method = 'GET' && @request.context != 'oauth2'";
        let base = RequestContext::guest();
        let mut body = base.clone();
        body.body.insert("title".into(), json!("t"));
        let mut query = base.clone();
        query.query.insert("q".into(), "x".into());
        let mut method = base.clone();
        method.method = "POST".into();
        let mut context = base.clone();
        context.context = "realtime".into();
        for other in [body, query, method, context] {
            assert_ne!(key(rule, &base), key(rule, &other));
        }
    }
}
