//! The tenant's own routes (`routerAdd`): PocketBase's path patterns and matching.
//!
//! Patterns follow Go's `net/http` mux as PocketBase uses it: literal segments, `{name}` for
//! one segment, `{name...}` for the rest of the path, a trailing `/` for any path below it and
//! `{$}` for the exact path with its trailing slash. A `GET` route also answers `HEAD`; the
//! most specific pattern wins (literal segments over wildcards, longer over shorter).

use std::collections::HashMap;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// Must equal this text.
    Literal(String),
    /// Any one non-empty segment, bound to the name.
    Param(String),
    /// The rest of the path (possibly empty), bound to the name.
    Rest(String),
}

/// A registered route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Upper-case method; empty or `*` for any method.
    method: String,
    segments: Vec<Segment>,
    /// The pattern ends with `/` (not `{$}`): any path below matches.
    prefix: bool,
    /// Index of the handler in the tenant's JavaScript route list.
    pub index: usize,
}

/// Why a pattern was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid route path {path:?}: {why}")]
pub struct PatternError {
    path: String,
    why: &'static str,
}

impl Route {
    /// Parses `path` (`/api/hello/{name}`) for `method`.
    pub fn new(method: &str, path: &str, index: usize) -> Result<Self, PatternError> {
        let bad = |why| PatternError {
            path: path.to_string(),
            why,
        };
        // PocketBase also accepts "GET /path" style patterns in the path argument.
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(bad("it must start with /"));
        }
        if path.len() > 2048 {
            return Err(bad("it is too long"));
        }
        let mut segments = Vec::new();
        let mut prefix = false;
        let parts: Vec<&str> = path[1..].split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if part.is_empty() {
                if last {
                    prefix = !segments.is_empty() || path == "/";
                    break;
                }
                return Err(bad("it has an empty segment"));
            }
            if *part == "{$}" {
                if !last {
                    return Err(bad("{$} must end the path"));
                }
                segments.push(Segment::Literal(String::new()));
                break;
            }
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if let Some(name) = inner.strip_suffix("...") {
                    if !last {
                        return Err(bad("a {name...} wildcard must end the path"));
                    }
                    segments.push(Segment::Rest(name.to_string()));
                } else {
                    if inner.is_empty() {
                        return Err(bad("a wildcard needs a name"));
                    }
                    segments.push(Segment::Param(inner.to_string()));
                }
            } else if part.contains('{') || part.contains('}') {
                return Err(bad("a wildcard must be a whole segment"));
            } else {
                segments.push(Segment::Literal(part.to_string()));
            }
        }
        Ok(Self {
            method: method.trim().to_ascii_uppercase(),
            segments,
            prefix,
            index,
        })
    }

    /// The path parameters if `method` and `path` match this route.
    fn matches(&self, method: &str, path: &str) -> Option<HashMap<String, String>> {
        let method_ok = self.method.is_empty()
            || self.method == "*"
            || self.method == method
            || (self.method == "GET" && method == "HEAD");
        if !method_ok {
            return None;
        }
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let mut params = HashMap::new();
        let mut i = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => {
                    if parts.get(i)? != text {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let part = parts.get(i).filter(|p| !p.is_empty())?;
                    params.insert(name.clone(), decode(part));
                }
                Segment::Rest(name) => {
                    let tail = parts.get(i..).map(|p| p.join("/")).unwrap_or_default();
                    params.insert(name.clone(), decode(&tail));
                    return Some(params);
                }
            }
            i += 1;
        }
        if (!self.prefix && i == parts.len()) || (self.prefix && i < parts.len()) {
            Some(params)
        } else {
            None
        }
    }

    /// Orders routes by specificity: more literal segments first, then longer patterns,
    /// exact before prefix.
    fn rank(&self) -> (usize, usize, bool) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (literals, self.segments.len(), !self.prefix)
    }
}

/// Percent-decodes a path segment (invalid escapes stay as they are).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A tenant's routes, most specific first.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Adds a route.
    pub fn add(&mut self, route: Route) {
        self.routes.push(route);
        // Stable: among equally specific routes the first registered wins.
        self.routes.sort_by_key(|r| std::cmp::Reverse(r.rank()));
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route answering `method` and `path`, with its path parameters.
    pub fn find(&self, method: &str, path: &str) -> Option<(usize, HashMap<String, String>)> {
        self.routes
            .iter()
            .find_map(|r| r.matches(method, path).map(|params| (r.index, params)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(list: &[(&str, &str)]) -> Routes {
        let mut routes = Routes::default();
        for (i, (method, path)) in list.iter().enumerate() {
            routes.add(Route::new(method, path, i).unwrap());
        }
        routes
    }

    #[test]
    fn a_named_wildcard_binds_one_segment() {
        let r = routes(&[("GET", "/api/hello/{name}")]);
        let (index, params) = r.find("GET", "/api/hello/world").unwrap();
        assert_eq!(index, 0);
        assert_eq!(params["name"], "world");
        assert!(r.find("GET", "/api/hello/").is_none());
        assert!(r.find("GET", "/api/hello/a/b").is_none());
        assert!(r.find("POST", "/api/hello/world").is_none());
        assert!(r.find("HEAD", "/api/hello/world").is_some());
    }

    #[test]
    fn a_rest_wildcard_takes_the_remaining_path() {
        let r = routes(&[("GET", "/files/{path...}")]);
        assert_eq!(r.find("GET", "/files/a/b%20c").unwrap().1["path"], "a/b c");
        assert_eq!(r.find("GET", "/files/").unwrap().1["path"], "");
    }

    #[test]
    fn a_trailing_slash_matches_below_and_dollar_only_itself() {
        let r = routes(&[("GET", "/static/")]);
        assert!(r.find("GET", "/static/x/y").is_some());
        assert!(r.find("GET", "/static").is_none());
        let r = routes(&[("GET", "/exact/{$}")]);
        assert!(r.find("GET", "/exact/").is_some());
        assert!(r.find("GET", "/exact/x").is_none());
    }

    #[test]
    fn literal_routes_win_over_wildcards() {
        let r = routes(&[("GET", "/api/{x}"), ("GET", "/api/me")]);
        assert_eq!(r.find("GET", "/api/me").unwrap().0, 1);
        assert_eq!(r.find("GET", "/api/you").unwrap().0, 0);
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert!(Route::new("GET", "api", 0).is_err());
        assert!(Route::new("GET", "/a/{x...}/b", 0).is_err());
        assert!(Route::new("GET", "/a/b{x}", 0).is_err());
        assert!(Route::new("GET", "/a//b", 0).is_err());
    }
}
