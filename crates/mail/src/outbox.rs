//! The local outbox: where mail goes when the platform has no SMTP relay, so the person running
//! Warren can still read (and click) what the platform and its tenants send.
//!
//! One JSON file per message in one directory, written atomically (a private temporary file,
//! fsynced, then renamed) with mode 0600. File names start with a time stamp that only grows
//! within a process, so name order is sending order. After every write the oldest messages go
//! until at most `max_messages` remain and they hold at most `max_bytes` together.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Messages kept by default.
pub const MAX_MESSAGES: usize = 1000;
/// Bytes all kept messages may hold together by default.
pub const MAX_BYTES: u64 = 64 << 20;
/// Largest HTML body kept for one message; longer bodies are cut (at a character boundary).
pub const MAX_BODY: usize = 256 << 10;

/// A message kept in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    /// The message's name in the outbox (time stamp and random suffix).
    pub id: String,
    /// When it was kept (RFC 3339, UTC).
    pub created: String,
    /// The tenant it was sent for (its id); `None` for the platform's own console.
    pub tenant: Option<String>,
    /// The sender address.
    pub from: String,
    /// The recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// The `http(s)` links of the body, in order, without repeats.
    pub links: Vec<String>,
    /// A one-time code the message carries (OTP), if any.
    pub code: Option<String>,
    /// The HTML body.
    pub html: String,
}

impl Kept {
    /// What the message carries, for one log line: its first link, else its code.
    pub fn carries(&self) -> Option<String> {
        match (&self.links.first(), &self.code) {
            (Some(link), _) => Some(format!("link {link}")),
            (None, Some(code)) => Some(format!("code {code}")),
            (None, None) => None,
        }
    }
}

/// The outbox directory and its bounds. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The directory of message files.
    dir: PathBuf,
    /// Messages kept at most.
    max_messages: usize,
    /// Bytes kept at most.
    max_bytes: u64,
    /// Serializes writes and pruning; holds the last time stamp handed out.
    last_stamp: Mutex<u64>,
}

impl Outbox {
    /// The outbox in `dir` (created at the first message) with the default bounds.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_bounds(dir, MAX_MESSAGES, MAX_BYTES)
    }

    /// The outbox in `dir` keeping at most `max_messages` messages and `max_bytes` bytes.
    pub fn with_bounds(dir: impl Into<PathBuf>, max_messages: usize, max_bytes: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: dir.into(),
                max_messages: max_messages.max(1),
                max_bytes,
                last_stamp: Mutex::new(0),
            }),
        }
    }

    /// The directory messages are kept in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Keeps a message and prunes the oldest beyond the bounds. Blocking: call it off the
    /// async runtime's worker threads.
    pub fn keep(
        &self,
        tenant: Option<&str>,
        from: &str,
        email: &crate::Email,
    ) -> std::io::Result<Kept> {
        let mut last = self
            .inner
            .last_stamp
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let stamp = now.max(*last + 1);
        *last = stamp;
        let id = format!("{stamp:013}-{:08x}", rand::random::<u32>());
        let mut html = email.html.clone();
        if html.len() > MAX_BODY {
            let mut end = MAX_BODY;
            while !html.is_char_boundary(end) {
                end -= 1;
            }
            html.truncate(end);
        }
        let kept = Kept {
            created: rfc3339(stamp),
            id,
            tenant: tenant.map(str::to_string),
            from: from.to_string(),
            to: email.to.clone(),
            subject: email.subject.clone(),
            links: links(&email.html),
            code: email.code.clone(),
            html,
        };
        let bytes = serde_json::to_vec(&kept).map_err(std::io::Error::other)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.inner.dir)?;
        let temporary = self.inner.dir.join(format!(".{}.tmp", kept.id));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, self.inner.dir.join(file_name(&kept.id)))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(e);
        }
        self.prune()?;
        Ok(kept)
    }

    /// Removes the oldest messages beyond the bounds (the caller holds the write lock).
    fn prune(&self) -> std::io::Result<()> {
        let files = self.names()?;
        let mut sizes = Vec::with_capacity(files.len());
        for id in &files {
            let size = std::fs::metadata(self.inner.dir.join(file_name(id)))
                .map(|m| m.len())
                .unwrap_or(0);
            sizes.push(size);
        }
        let mut total: u64 = sizes.iter().sum();
        let mut count = files.len();
        // Oldest first; the newest message always stays.
        let mut index = 0;
        while count > 1 && (count > self.inner.max_messages || total > self.inner.max_bytes) {
            match std::fs::remove_file(self.inner.dir.join(file_name(&files[index]))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            total -= sizes[index];
            count -= 1;
            index += 1;
        }
        Ok(())
    }

    /// The ids of kept messages, oldest first.
    fn names(&self) -> std::io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.inner.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json"))
                && valid_id(id)
            {
                ids.push(id.to_string());
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// A page of kept messages, newest first (`page` from 1), and how many are kept. Blocking.
    pub fn list(&self, page: usize, per_page: usize) -> std::io::Result<(Vec<Kept>, usize)> {
        let mut ids = self.names()?;
        ids.reverse();
        let total = ids.len();
        let mut items = Vec::new();
        for id in ids
            .iter()
            .skip(page.saturating_sub(1).saturating_mul(per_page))
            .take(per_page)
        {
            // A message pruned between listing and reading is skipped.
            if let Some(kept) = self.get(id)? {
                items.push(kept);
            }
        }
        Ok((items, total))
    }

    /// The kept message `id`, if there is one. Blocking.
    pub fn get(&self, id: &str) -> std::io::Result<Option<Kept>> {
        if !valid_id(id) {
            return Ok(None);
        }
        match std::fs::read(self.inner.dir.join(file_name(id))) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn file_name(id: &str) -> String {
    format!("{id}.json")
}

/// Whether `id` has the outbox's shape (13 digits, a dash, 8 hex digits): the only names ever
/// joined to the directory, so no path can leave it.
pub fn valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 22
        && bytes[..13].iter().all(u8::is_ascii_digit)
        && bytes[13] == b'-'
        && bytes[14..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds.
fn rfc3339(millis: u64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The `http(s)` targets of `href` attributes in `html`, entity-decoded, without repeats.
pub fn links(html: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut rest = 0;
    while let Some(at) = lower[rest..].find("href=") {
        let start = rest + at + 5;
        rest = start;
        let Some(quote) = html[start..].chars().next() else {
            break;
        };
        if quote != '"' && quote != '\'' {
            continue;
        }
        let Some(len) = html[start + 1..].find(quote) else {
            break;
        };
        let link = decode_entities(html[start + 1..start + 1 + len].trim());
        rest = start + 1 + len;
        let scheme = link.to_ascii_lowercase();
        if (scheme.starts_with("http://") || scheme.starts_with("https://"))
            && !found.contains(&link)
        {
            found.push(link);
        }
    }
    found
}

/// Decodes the entities [`crate::escape_html`] writes.
fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::Email;

    fn email(subject: &str, html: &str) -> Email {
        Email {
            to: "ann@example.com".into(),
            subject: subject.into(),
            html: html.into(),
            code: None,
        }
    }

    #[test]
    fn links_are_found_decoded_and_only_http() {
        let html = r#"<a href="http://a.localhost/x?y=1&amp;z=2">x</a> <A HREF='https://b/'>b</A>
            <a href="javascript:alert(1)">no</a> <a href="http://a.localhost/x?y=1&amp;z=2">again</a>
            <a href=unquoted>u</a> <a href="mailto:a@b">m</a>"#;
        assert_eq!(links(html), ["http://a.localhost/x?y=1&z=2", "https://b/"]);
        assert!(links("<a href=\"http://cut").is_empty());
    }

    #[test]
    fn messages_are_kept_privately_and_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().join("outbox"));
        let first = outbox
            .keep(
                None,
                "noreply@localhost",
                &email("one", r#"<a href="http://localhost/verify?token=t">go</a>"#),
            )
            .unwrap();
        let second = outbox
            .keep(
                Some("tenant1"),
                "s@x",
                &Email {
                    code: Some("123456".into()),
                    ..email("two", "<p>123456</p>")
                },
            )
            .unwrap();
        assert!(first.id < second.id);
        assert_eq!(
            first.carries().unwrap(),
            "link http://localhost/verify?token=t"
        );
        assert_eq!(second.carries().unwrap(), "code 123456");
        let (items, total) = outbox.list(1, 10).unwrap();
        assert_eq!(total, 2);
        assert_eq!(items, [second.clone(), first.clone()]);
        assert_eq!(outbox.get(&first.id).unwrap().unwrap(), first);
        for entry in std::fs::read_dir(outbox.dir()).unwrap() {
            let entry = entry.unwrap();
            assert!(!entry.file_name().to_string_lossy().ends_with(".tmp"));
            assert_eq!(
                entry.metadata().unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (page, _) = outbox.list(2, 1).unwrap();
        assert_eq!(page, [first]);
    }

    #[test]
    fn the_oldest_messages_go_beyond_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::with_bounds(dir.path(), 3, u64::MAX);
        let ids: Vec<String> = (0..5)
            .map(|i| {
                outbox
                    .keep(None, "f@x", &email(&format!("m{i}"), ""))
                    .unwrap()
                    .id
            })
            .collect();
        let (items, total) = outbox.list(1, 10).unwrap();
        assert_eq!(total, 3);
        let kept: Vec<&str> = items.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(kept, [&ids[4], &ids[3], &ids[2]]);

        let sized = Outbox::with_bounds(dir.path().join("sized"), 100, 3000);
        for i in 0..10 {
            sized
                .keep(None, "f@x", &email(&format!("m{i}"), &"x".repeat(1000)))
                .unwrap();
        }
        let (items, total) = sized.list(1, 100).unwrap();
        assert_eq!((total, items[0].subject.as_str()), (2, "m9"));
    }

    #[test]
    fn bodies_are_cut_and_ids_cannot_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path());
        let kept = outbox
            .keep(None, "f@x", &email("big", &"é".repeat(MAX_BODY)))
            .unwrap();
        assert!(kept.html.len() <= MAX_BODY);
        for bad in ["../control", "0000000000000-0000000g", "", "x.json"] {
            assert!(outbox.get(bad).unwrap().is_none(), "{bad}");
        }
        assert!(valid_id(&kept.id));
    }
}
