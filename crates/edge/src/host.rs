//! Hostname → destination: `<slug>.<domain>` is a tenant, `<domain>` and `console.<domain>`
//! are the platform, anything else is nobody's.

/// Where a request goes, decided from its Host header alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The platform itself (operator API, console).
    Platform,
    /// The tenant with this slug (it may or may not exist).
    Tenant(String),
    /// A host Warren does not serve.
    Unknown,
}

/// Classifies a Host header value (`name[:port]`, any case, optional trailing dot) against the
/// platform `domain`. Only one label may precede the domain: `a.b.<domain>` is unknown.
pub fn classify(host: Option<&str>, domain: &str) -> Destination {
    let Some(name) = host.and_then(host_name) else {
        return Destination::Unknown;
    };
    // Compared without case and without copies: this runs on every request.
    let domain = domain.trim_end_matches('.');
    let console = strip_prefix_ignoring_case(name, "console.");
    if name.eq_ignore_ascii_case(domain)
        || console.is_some_and(|rest| rest.eq_ignore_ascii_case(domain))
    {
        return Destination::Platform;
    }
    match strip_suffix_ignoring_case(name, domain).and_then(|rest| rest.strip_suffix('.')) {
        Some(label) if !label.is_empty() && !label.contains('.') => {
            Destination::Tenant(label.to_ascii_lowercase())
        }
        _ => Destination::Unknown,
    }
}

/// The host name of a Host header value, without port or trailing dot, in its own case. `None`
/// for bracketed IPv6 literals and anything that is not a plausible DNS name, so what it
/// returns is ASCII.
fn host_name(value: &str) -> Option<&str> {
    let value = value.trim();
    if value.starts_with('[') {
        return None;
    }
    let name = match value.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => value,
    };
    let name = name.trim_end_matches('.');
    let plausible = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    plausible.then_some(name)
}

/// `name` without `prefix`, compared without ASCII case. `name` is ASCII.
fn strip_prefix_ignoring_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// `name` without `suffix`, compared without ASCII case. `name` is ASCII.
fn strip_suffix_ignoring_case<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = name.len().checked_sub(suffix.len())?;
    let tail = name.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &name[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(slug: &str) -> Destination {
        Destination::Tenant(slug.into())
    }

    #[test]
    fn subdomains_are_tenants() {
        assert_eq!(
            classify(Some("myapp.localhost:8090"), "localhost"),
            tenant("myapp")
        );
        assert_eq!(
            classify(Some("MyApp.Example.COM"), "example.com"),
            tenant("myapp")
        );
        assert_eq!(
            classify(Some("myapp.example.com."), "example.com"),
            tenant("myapp")
        );
        assert_eq!(
            classify(Some("MYAPP.localhost"), "LocalHost."),
            tenant("myapp")
        );
    }

    #[test]
    fn the_bare_domain_and_console_are_the_platform() {
        assert_eq!(
            classify(Some("localhost:8090"), "localhost"),
            Destination::Platform
        );
        assert_eq!(
            classify(Some("console.localhost"), "localhost"),
            Destination::Platform
        );
        assert_eq!(
            classify(Some("Console.LOCALHOST."), "localhost"),
            Destination::Platform
        );
        assert_eq!(
            classify(Some("EXAMPLE.com"), "example.COM"),
            Destination::Platform
        );
    }

    #[test]
    fn everything_else_is_unknown() {
        for host in [
            "127.0.0.1:8090",
            "[::1]:8090",
            "a.b.localhost",
            ".localhost",
            "evil.com",
            "myapp.localhost.evil.com",
            "xlocalhost",
            "my app.localhost",
            "myapp.localhost:80x",
            "localhost.localhost.x",
            "console.",
            "ost",
            "",
        ] {
            assert_eq!(
                classify(Some(host), "localhost"),
                Destination::Unknown,
                "{host}"
            );
        }
        assert_eq!(classify(None, "localhost"), Destination::Unknown);
    }
}
