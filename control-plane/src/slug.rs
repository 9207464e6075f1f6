//! Tenant slugs: the `<slug>` of `<slug>.<domain>`.

/// Names that may not be tenant slugs: they are, or may become, the platform's own hosts.
const RESERVED: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "auth",
    "billing",
    "blog",
    "cdn",
    "console",
    "dashboard",
    "docs",
    "edge",
    "ftp",
    "help",
    "imap",
    "localhost",
    "login",
    "mail",
    "metrics",
    "ns1",
    "ns2",
    "pop",
    "signup",
    "smtp",
    "static",
    "status",
    "support",
    "system",
    "warren",
    "www",
];

/// Checks a slug: 3–63 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`,
/// not reserved. The error says why.
pub fn validate(slug: &str) -> Result<(), String> {
    if !(3..=63).contains(&slug.len()) {
        return Err("The slug must be 3 to 63 characters long.".into());
    }
    if !slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("The slug may contain only lowercase letters, digits and hyphens.".into());
    }
    if slug.starts_with('-') || slug.ends_with('-') {
        return Err("The slug must not start or end with a hyphen.".into());
    }
    if slug.contains("--") {
        return Err("The slug must not contain two hyphens in a row.".into());
    }
    if RESERVED.contains(&slug) {
        return Err(format!("The slug \"{slug}\" is reserved."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_plain_slugs() {
        for slug in ["abc", "my-app", "app2", "a1-b2-c3", &"x".repeat(63)] {
            assert!(validate(slug).is_ok(), "{slug}");
        }
    }

    #[test]
    fn rejects_bad_slugs_with_a_reason() {
        for slug in [
            "ab",
            "",
            "My-App",
            "my_app",
            "-app",
            "app-",
            "a--b",
            "www",
            "console",
            "a.b",
            "ümlaut",
            &"x".repeat(64),
        ] {
            let reason = validate(slug).unwrap_err();
            assert!(reason.ends_with('.'), "{slug}: {reason}");
        }
    }
}
