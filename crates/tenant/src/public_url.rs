//! A tenant's public URL as its `meta.appURL`: settings that leave the app URL at PocketBase's
//! default (or empty) follow the URL the tenant is reached at, so mail links and the OAuth2
//! redirect point at the tenant's own pages; a URL a superuser chose is kept.

use serde_json::Value;

/// The app URL PocketBase (and a new tenant) starts with: "not chosen by anyone".
pub const DEFAULT_APP_URL: &str = "http://localhost:8090";

/// Whether `app_url` is one nobody chose, so the public URL stands in for it.
pub fn follows_public_url(app_url: &str) -> bool {
    let trimmed = app_url.trim().trim_end_matches('/');
    trimmed.is_empty() || trimmed == DEFAULT_APP_URL
}

/// Whether [`apply`] changes `settings`: they have a `meta` whose app URL nobody chose.
pub fn applies(settings: &Value) -> bool {
    settings
        .get("meta")
        .and_then(Value::as_object)
        .is_some_and(|meta| {
            follows_public_url(meta.get("appURL").and_then(Value::as_str).unwrap_or(""))
        })
}

/// Puts `public_url` in `settings.meta.appURL` when the stored one follows it.
pub fn apply(settings: &mut Value, public_url: &str) {
    if !applies(settings) {
        return;
    }
    if let Some(meta) = settings.get_mut("meta").and_then(Value::as_object_mut) {
        meta.insert("appURL".into(), Value::String(public_url.to_string()));
    }
}

/// A settings patch as it should be stored: an `appURL` equal to the public URL it would show
/// anyway is stored as the default, so the tenant keeps following its public URL (the
/// dashboard sends the whole form back, unchanged fields included).
pub fn unpin(patch: &mut Value, public_url: &str) {
    let Some(meta) = patch.get_mut("meta").and_then(Value::as_object_mut) else {
        return;
    };
    let same = meta
        .get("appURL")
        .and_then(Value::as_str)
        .is_some_and(|url| url.trim().trim_end_matches('/') == public_url.trim_end_matches('/'));
    if same {
        meta.insert("appURL".into(), Value::String(DEFAULT_APP_URL.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_app_url_follows_and_a_chosen_one_is_kept() {
        let mut fresh = json!({"meta": {"appURL": DEFAULT_APP_URL}});
        apply(&mut fresh, "https://shop.example.com");
        assert_eq!(fresh["meta"]["appURL"], "https://shop.example.com");
        let mut chosen = json!({"meta": {"appURL": "https://www.shop.test"}});
        apply(&mut chosen, "https://shop.example.com");
        assert_eq!(chosen["meta"]["appURL"], "https://www.shop.test");
    }

    #[test]
    fn saving_the_shown_public_url_keeps_following_it() {
        let mut patch = json!({"meta": {"appURL": "https://shop.example.com/"}});
        unpin(&mut patch, "https://shop.example.com");
        assert_eq!(patch["meta"]["appURL"], DEFAULT_APP_URL);
        let mut other = json!({"meta": {"appURL": "https://elsewhere.test"}});
        unpin(&mut other, "https://shop.example.com");
        assert_eq!(other["meta"]["appURL"], "https://elsewhere.test");
    }
}
