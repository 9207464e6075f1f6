//! The request a rule is evaluated for: the values `@request.*` reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

/// Everything `@request.*` can see. Values are bound as SQL parameters at
/// compile time, so a compiled rule belongs to one request.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The authenticated record, exported with every field (hidden ones and
    /// `email` included) plus `id`, `collectionId` and `collectionName`.
    /// `None` for guests: every `@request.auth.*` is then NULL.
    /// Shared with the caller it came from (a context is built per rule check).
    pub auth: Option<Arc<Map<String, Value>>>,
    /// The submitted body after modifier resolution (`views+` already `views`).
    pub body: Map<String, Value>,
    /// First value of each query parameter.
    pub query: BTreeMap<String, String>,
    /// The request's headers, read by their normalised names (see [`Headers`]).
    pub headers: Headers,
    /// HTTP method (`GET` for realtime checks).
    pub method: String,
    /// `default`, `oauth2`, `otp`, `password`, `realtime`, `protectedFile`, `batch` or `expand`.
    pub context: String,
    /// "Now" for the date macros, in Unix milliseconds; the system clock when `None`.
    pub now_millis: Option<i64>,
}

impl RequestContext {
    /// A guest `GET` in the `default` context.
    pub fn guest() -> Self {
        RequestContext {
            method: "GET".into(),
            context: "default".into(),
            ..Default::default()
        }
    }

    /// Stores a header under PocketBase's name for it: lower case, `-` → `_`.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.set(name, value);
    }

    /// The auth record's collection name or id, if authenticated.
    pub(crate) fn auth_collection(&self) -> Option<&str> {
        let auth = self.auth.as_ref()?;
        auth.get("collectionName")
            .or_else(|| auth.get("collectionId"))
            .and_then(Value::as_str)
    }

    pub(crate) fn now(&self) -> i64 {
        self.now_millis.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        })
    }
}

/// `X-Forwarded-For` → `x_forwarded_for`.
pub fn normalize_header_name(name: &str) -> String {
    let mut normal = name.replace('-', "_");
    normal.make_ascii_lowercase();
    normal
}

/// Whether a header sent as `header` has the normalised name `name`, without normalising it
/// into a new string: `X-Trace` and `x-trace` are `x_trace`.
pub fn header_name_is(header: &str, name: &str) -> bool {
    header.len() == name.len()
        && header.bytes().zip(name.bytes()).all(|(h, n)| {
            let h = if h == b'-' {
                b'_'
            } else {
                h.to_ascii_lowercase()
            };
            h == n
        })
}

/// A request's headers as the server received them, asked for one header at a time.
pub trait HeaderSource: Send + Sync {
    /// The first value of the first header whose normalised name is `name` (see
    /// [`header_name_is`]).
    fn first(&self, name: &str) -> Option<&str>;
}

/// What `@request.headers.<name>` reads: the first value of each header, by the normalised
/// name. A served request shares its headers as they arrived and a rule that reads one looks
/// it up then, so a request whose rules read none copies none; headers set one by one (a
/// realtime subscription's, a test's) are kept normalised and come first.
#[derive(Clone, Default)]
pub struct Headers {
    set: BTreeMap<String, String>,
    shared: Option<Arc<dyn HeaderSource>>,
}

impl Headers {
    /// Headers read from `source` when asked.
    pub fn shared(source: Arc<dyn HeaderSource>) -> Self {
        Headers {
            set: BTreeMap::new(),
            shared: Some(source),
        }
    }

    /// Stores a header under its normalised name; a later value of the same name replaces it.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.set.insert(normalize_header_name(name), value.into());
    }

    /// The value of the header whose normalised name is `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        match self.set.get(name) {
            Some(value) => Some(value),
            None => self.shared.as_ref()?.first(name),
        }
    }
}

impl<N: AsRef<str>, V: Into<String>> FromIterator<(N, V)> for Headers {
    /// Sets each pair in turn (see [`Headers::set`]).
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut headers = Headers::default();
        for (name, value) in pairs {
            headers.set(name.as_ref(), value);
        }
        headers
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Headers")
            .field("set", &self.set.keys().collect::<Vec<_>>())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// UTC calendar parts of a Unix millisecond instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millis: i64,
    pub weekday: i64,
}

// Howard Hinnant's days-from-civil / civil-from-days, valid for the whole i64
// millisecond range we can meet.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Civil {
    pub fn from_millis(ms: i64) -> Civil {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: rem / 3_600_000,
            minute: rem / 60_000 % 60,
            second: rem / 1000 % 60,
            millis: rem % 1000,
            weekday: (days + 4).rem_euclid(7),
        }
    }

    fn to_millis(y: i64, m: i64, d: i64, time_ms: i64) -> i64 {
        days_from_civil(y, m, d) * 86_400_000 + time_ms
    }
}

/// PocketBase's datetime text: `YYYY-MM-DD HH:MM:SS.mmmZ`.
pub(crate) fn format_datetime(ms: i64) -> String {
    let c = Civil::from_millis(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// The value of a date macro (`@now`, `@monthEnd`, ...) at `now`, or `None`
/// when `name` is not a macro. Text macros yield datetimes, the others integers.
/// Whether `name` is a date macro (`@now`, `@todayStart`, ...), whose value is the clock's.
pub(crate) fn is_macro(name: &str) -> bool {
    matches!(
        name,
        "@now"
            | "@yesterday"
            | "@tomorrow"
            | "@todayStart"
            | "@todayEnd"
            | "@monthStart"
            | "@monthEnd"
            | "@yearStart"
            | "@yearEnd"
            | "@second"
            | "@minute"
            | "@hour"
            | "@day"
            | "@month"
            | "@weekday"
            | "@year"
    )
}

pub(crate) fn macro_value(name: &str, now: i64) -> Option<MacroValue> {
    let c = Civil::from_millis(now);
    const END_OF_DAY: i64 = 86_400_000 - 1;
    let text = |ms: i64| MacroValue::Text(format_datetime(ms));
    Some(match name {
        "@now" => text(now),
        "@yesterday" => text(now - 86_400_000),
        "@tomorrow" => text(now + 86_400_000),
        "@todayStart" => text(Civil::to_millis(c.year, c.month, c.day, 0)),
        "@todayEnd" => text(Civil::to_millis(c.year, c.month, c.day, END_OF_DAY)),
        "@monthStart" => text(Civil::to_millis(c.year, c.month, 1, 0)),
        "@monthEnd" => {
            let (ny, nm) = if c.month == 12 {
                (c.year + 1, 1)
            } else {
                (c.year, c.month + 1)
            };
            text(Civil::to_millis(ny, nm, 1, 0) - 1)
        }
        "@yearStart" => text(Civil::to_millis(c.year, 1, 1, 0)),
        "@yearEnd" => text(Civil::to_millis(c.year + 1, 1, 1, 0) - 1),
        "@second" => MacroValue::Int(c.second),
        "@minute" => MacroValue::Int(c.minute),
        "@hour" => MacroValue::Int(c.hour),
        "@day" => MacroValue::Int(c.day),
        "@month" => MacroValue::Int(c.month),
        "@weekday" => MacroValue::Int(c.weekday),
        "@year" => MacroValue::Int(c.year),
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MacroValue {
    Text(String),
    Int(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_format_like_pocketbase() {
        // 2024-02-29 13:45:30.123 UTC, a Thursday.
        let ms = 1_709_214_330_123;
        assert_eq!(format_datetime(ms), "2024-02-29 13:45:30.123Z");
        let m = |n| macro_value(n, ms);
        assert_eq!(
            m("@monthEnd"),
            Some(MacroValue::Text("2024-02-29 23:59:59.999Z".into()))
        );
        assert_eq!(
            m("@monthStart"),
            Some(MacroValue::Text("2024-02-01 00:00:00.000Z".into()))
        );
        assert_eq!(
            m("@yearEnd"),
            Some(MacroValue::Text("2024-12-31 23:59:59.999Z".into()))
        );
        assert_eq!(
            m("@todayStart"),
            Some(MacroValue::Text("2024-02-29 00:00:00.000Z".into()))
        );
        assert_eq!(
            m("@yesterday"),
            Some(MacroValue::Text("2024-02-28 13:45:30.123Z".into()))
        );
        assert_eq!(m("@weekday"), Some(MacroValue::Int(4)));
        assert_eq!(m("@month"), Some(MacroValue::Int(2)));
        assert_eq!(m("@year"), Some(MacroValue::Int(2024)));
        assert_eq!(m("@hour"), Some(MacroValue::Int(13)));
        assert_eq!(m("@nope"), None);
    }

    #[test]
    fn header_names_are_normalised() {
        let mut r = RequestContext::guest();
        r.set_header("X-Forwarded-For", "1.2.3.4");
        assert_eq!(r.headers.get("x_forwarded_for"), Some("1.2.3.4"));
    }

    /// Headers as a server holds them: names as sent, in order, several values per name.
    struct Sent(Vec<(&'static str, &'static str)>);

    impl HeaderSource for Sent {
        fn first(&self, name: &str) -> Option<&str> {
            let mut found = self.0.iter().filter(|(n, _)| header_name_is(n, name));
            found.next().map(|(_, v)| *v)
        }
    }

    #[test]
    fn shared_headers_are_found_by_their_normalised_names() {
        let sent = Sent(vec![
            ("x-trace", "first"),
            ("X-Trace", "second"),
            ("content-type", "application/json"),
            ("x_plain", "underscored"),
        ]);
        let mut headers = Headers::shared(Arc::new(sent));
        assert_eq!(
            headers.get("x_trace"),
            Some("first"),
            "the first value wins"
        );
        assert_eq!(headers.get("content_type"), Some("application/json"));
        assert_eq!(headers.get("x_plain"), Some("underscored"));
        assert_eq!(
            headers.get("content-type"),
            None,
            "only normalised names are asked"
        );
        assert_eq!(headers.get("x_trac"), None);
        assert_eq!(headers.get("x_tracex"), None);
        headers.set("X-Trace", "set");
        assert_eq!(
            headers.get("x_trace"),
            Some("set"),
            "a header set by name comes first"
        );
    }

    #[test]
    fn a_sent_name_matches_exactly_what_normalising_it_gives() {
        for sent in [
            "X-Forwarded-For",
            "x-forwarded-for",
            "X_FORWARDED_for",
            "a",
            "",
        ] {
            let normal = normalize_header_name(sent);
            assert!(header_name_is(sent, &normal), "{sent}");
        }
        assert!(!header_name_is("x-token", "x-token"));
        assert!(!header_name_is("x-tokens", "x_token"));
        assert!(!header_name_is("X-Token", "X_TOKEN"));
    }
}
