//! An auth collection's `options` text split into its secrets and the rest, read without
//! parsing the rest: the key under which tenants share their parsed auth options.
//!
//! Every tenant's `users` and `_superusers` hold the same options but for their token secrets
//! (and OAuth2 client secrets). Parsing those options whole (five email templates among them)
//! was most of what opening a tenant cost. Here only the secrets are read: the parser skips the
//! rest, and each secret's string literal is found where the parser found it and blanked to
//! `""`. Two rows whose blanked texts are equal parse to the same options but for the secrets
//! at those places, so a row whose blanked text matches one parsed before takes that row's
//! options with its own secrets put in.

use serde::Deserialize;
use serde_json::value::RawValue;

use warren_schema::AuthOptions;

/// The secrets of an auth collection's `options` text, and the text without them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Split {
    /// The text with each secret's string literal replaced by `""`.
    pub(crate) blanked: String,
    /// The token secrets, in [`AuthOptions::tokens`] order (`None`: absent or `null`).
    tokens: [Option<String>; 5],
    /// Each OAuth2 provider's client secret, in the providers' order.
    client_secrets: Vec<Option<String>>,
}

/// The parts of the options holding secrets; everything else is skipped. A field given twice
/// is an error here (the caller then parses the text whole, which takes the last).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Secrets<'a> {
    #[serde(borrow)]
    auth_token: Option<Token<'a>>,
    #[serde(borrow)]
    password_reset_token: Option<Token<'a>>,
    #[serde(borrow)]
    email_change_token: Option<Token<'a>>,
    #[serde(borrow)]
    verification_token: Option<Token<'a>>,
    #[serde(borrow)]
    file_token: Option<Token<'a>>,
    #[serde(borrow)]
    oauth2: Option<OAuth2<'a>>,
}

#[derive(Deserialize)]
struct Token<'a> {
    #[serde(borrow)]
    secret: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OAuth2<'a> {
    #[serde(borrow)]
    providers: Option<Vec<Provider<'a>>>,
}

#[derive(Deserialize)]
struct Provider<'a> {
    #[serde(rename = "clientSecret", borrow)]
    client_secret: Option<&'a RawValue>,
}

impl Split {
    /// Splits `text`; `None` when it cannot be read this way (not an object, a secret that is
    /// not a string, a field given twice), and the caller parses it whole.
    pub(crate) fn read(text: &str) -> Option<Self> {
        let secrets: Secrets = serde_json::from_str(text).ok()?;
        let mut spans = Vec::new();
        let mut token = |t: Option<Token>| -> Option<Option<String>> {
            let raw = t.and_then(|t| t.secret);
            Some(match raw {
                Some(raw) => Some(literal(text, raw, &mut spans)?),
                None => None,
            })
        };
        let tokens = [
            token(secrets.auth_token)?,
            token(secrets.password_reset_token)?,
            token(secrets.email_change_token)?,
            token(secrets.verification_token)?,
            token(secrets.file_token)?,
        ];
        let mut client_secrets = Vec::new();
        for provider in secrets.oauth2.and_then(|o| o.providers).unwrap_or_default() {
            client_secrets.push(match provider.client_secret {
                Some(raw) => Some(literal(text, raw, &mut spans)?),
                None => None,
            });
        }
        spans.sort_unstable();
        let mut blanked = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in spans {
            // Literals of distinct values never overlap; anything else is not trusted.
            if start < at {
                return None;
            }
            blanked.push_str(&text[at..start]);
            blanked.push_str("\"\"");
            at = end;
        }
        blanked.push_str(&text[at..]);
        Some(Split {
            blanked,
            tokens,
            client_secrets,
        })
    }

    /// Whether `options` hold exactly these secrets.
    pub(crate) fn held_by(&self, options: &AuthOptions) -> bool {
        options
            .tokens()
            .iter()
            .zip(&self.tokens)
            .all(|((_, held), own)| held.secret == own.as_deref().unwrap_or_default())
            && options.oauth2.providers.len() == self.client_secrets.len()
            && options
                .oauth2
                .providers
                .iter()
                .zip(&self.client_secrets)
                .all(|(held, own)| held.client_secret == own.as_deref().unwrap_or_default())
    }

    /// Puts these secrets into `options` (parsed from a row with the same blanked text).
    pub(crate) fn apply(&self, options: &mut AuthOptions) {
        let tokens = [
            &mut options.auth_token,
            &mut options.password_reset_token,
            &mut options.email_change_token,
            &mut options.verification_token,
            &mut options.file_token,
        ];
        for (held, own) in tokens.into_iter().zip(&self.tokens) {
            held.secret = own.clone().unwrap_or_default();
        }
        // Every provider's secret is set, so none of the parsed row's could stay even if the
        // lists differed in length (equal blanked texts give equal lists).
        for (i, held) in options.oauth2.providers.iter_mut().enumerate() {
            held.client_secret = self
                .client_secrets
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_default();
        }
    }
}

/// The string a secret's literal holds, noting where the literal sits in `text`; `None` when
/// it is not a string or not a slice of `text`.
fn literal(text: &str, raw: &RawValue, spans: &mut Vec<(usize, usize)>) -> Option<String> {
    let found = raw.get();
    let start = (found.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(found.len())?;
    if text.get(start..end)? != found {
        return None;
    }
    let value: String = serde_json::from_str(found).ok()?;
    spans.push((start, end));
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &str) -> AuthOptions {
        AuthOptions::from_options_column(text).unwrap()
    }

    fn stored(change: impl FnOnce(&mut AuthOptions)) -> String {
        let mut options = AuthOptions::new_default();
        options.oauth2.providers = vec![
            warren_schema::collection::OAuth2Provider {
                name: "github".into(),
                client_id: "id".into(),
                client_secret: "gh-secret".into(),
                ..Default::default()
            },
            warren_schema::collection::OAuth2Provider {
                name: "google".into(),
                ..Default::default()
            },
        ];
        change(&mut options);
        serde_json::to_string(&options).unwrap()
    }

    #[test]
    fn rows_differing_in_secrets_only_blank_alike_and_take_their_own_secrets() {
        let (a, b) = (
            stored(|_| {}),
            stored(|o| o.oauth2.providers[0].client_secret = "x".into()),
        );
        assert_ne!(a, b);
        let (sa, sb) = (Split::read(&a).unwrap(), Split::read(&b).unwrap());
        assert_eq!(sa.blanked, sb.blanked);
        assert!(!sa.blanked.contains("gh-secret"));
        for (_, t) in full(&a).tokens() {
            assert!(!sa.blanked.contains(&t.secret));
        }
        // B's options: A's, parsed, with B's secrets put in.
        let mut taken = full(&a);
        assert!(sa.held_by(&taken) && !sb.held_by(&taken));
        sb.apply(&mut taken);
        assert_eq!(taken, full(&b));
        assert!(sb.held_by(&taken));
    }

    /// `users` options as real PocketBase releases wrote them (Go's JSON: `<` as `\u003c`),
    /// two 0.40.6 data directories and a 0.23.12 one, each made by `superuser upsert`.
    const POCKETBASE_40_A: &str =
        include_str!("../testdata/pocketbase-0.40.6-a-users-options.json");
    const POCKETBASE_40_B: &str =
        include_str!("../testdata/pocketbase-0.40.6-b-users-options.json");
    const POCKETBASE_23: &str = include_str!("../testdata/pocketbase-0.23.12-users-options.json");

    #[test]
    fn options_real_pocketbase_releases_wrote_split_and_share_alike() {
        for text in [POCKETBASE_40_A, POCKETBASE_40_B, POCKETBASE_23] {
            let split = Split::read(text).expect("a PocketBase row splits");
            let parsed = full(text);
            for (_, t) in parsed.tokens() {
                assert!(!t.secret.is_empty() && !split.blanked.contains(&t.secret));
            }
            assert!(split.held_by(&parsed));
            let mut taken = full(&split.blanked);
            split.apply(&mut taken);
            assert_eq!(taken, parsed);
        }
        // Two directories of one release differ only in their secrets.
        let (a, b) = (
            Split::read(POCKETBASE_40_A).unwrap(),
            Split::read(POCKETBASE_40_B).unwrap(),
        );
        assert_ne!(POCKETBASE_40_A, POCKETBASE_40_B);
        assert_eq!(a.blanked, b.blanked);
        let mut taken = full(POCKETBASE_40_A);
        b.apply(&mut taken);
        assert_eq!(taken, full(POCKETBASE_40_B));
    }

    #[test]
    fn applying_never_leaves_a_secret_of_the_parsed_row() {
        let none = Split::read("{}").unwrap();
        let mut options = full(&stored(|_| {}));
        none.apply(&mut options);
        assert!(options.tokens().iter().all(|(_, t)| t.secret.is_empty()));
        assert!(
            options
                .oauth2
                .providers
                .iter()
                .all(|p| p.client_secret.is_empty())
        );
    }

    #[test]
    fn any_other_difference_blanks_apart() {
        let a = Split::read(&stored(|_| {})).unwrap();
        let b = Split::read(&stored(|o| o.auth_token.duration += 1)).unwrap();
        let c = Split::read(&stored(|o| {
            o.oauth2.providers[1].client_id = "other".into()
        }))
        .unwrap();
        assert_ne!(a.blanked, b.blanked);
        assert_ne!(a.blanked, c.blanked);
    }

    #[test]
    fn secrets_written_escaped_or_missing_are_read_as_the_full_parse_reads_them() {
        let text = r#"{"authToken":{"secret":"a\u0062c","duration":5},"fileToken":{"secret":null},
            "verificationToken":{},"oauth2":{"providers":[{"name":"x"},{"clientSecret":"s\"t"}]}}"#;
        let split = Split::read(text).unwrap();
        let mut options = full(&split.blanked);
        split.apply(&mut options);
        assert_eq!(options, full(text));
        assert_eq!(options.auth_token.secret, "abc");
        assert_eq!(options.oauth2.providers[1].client_secret, "s\"t");
    }

    #[test]
    fn what_this_cannot_read_is_left_to_the_full_parse() {
        for text in [
            "",
            "null",
            "[1]",
            r#"{"authToken":{"secret":5}}"#,
            r#"{"authToken":"x"}"#,
            r#"{"authToken":{"secret":"a"},"authToken":{"secret":"b"}}"#,
            r#"{"authToken":{"secret":"a","secret":"b"}}"#,
        ] {
            assert!(Split::read(text).is_none(), "{text}");
        }
    }
}
