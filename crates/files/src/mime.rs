//! Content types: sniffed from the first bytes of an upload (never trusted from the client),
//! matched against a field's `mimeTypes`, and the headers a download is served with.

/// How many leading bytes sniffing looks at.
pub const SNIFF_LEN: usize = 8192;

/// A sniffed content type and the extension that goes with it (`.png`, or `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    /// The MIME type, e.g. `image/png` or `text/plain; charset=utf-8`.
    pub mime: String,
    /// Its usual extension with the dot, or `""` when unknown.
    pub ext: String,
}

/// Sniffs the content type of a file from its first bytes.
pub fn sniff(head: &[u8]) -> Sniffed {
    if let Some(kind) = infer::get(head) {
        return Sniffed {
            mime: kind.mime_type().to_string(),
            ext: format!(".{}", kind.extension()),
        };
    }
    if head.is_empty() || looks_like_text(head) {
        return Sniffed {
            mime: "text/plain; charset=utf-8".into(),
            ext: ".txt".into(),
        };
    }
    Sniffed {
        mime: "application/octet-stream".into(),
        ext: String::new(),
    }
}

/// UTF-8 (allowing a character cut at the end of the sample) with no control bytes other than
/// whitespace.
fn looks_like_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() >= SNIFF_LEN,
    };
    valid
        && !head
            .iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c))
}

/// The type without parameters, lower-cased (`text/plain; charset=utf-8` → `text/plain`).
pub fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a sniffed type is one of `allowed` (empty allows everything). Parameters are ignored,
/// and a few aliases are accepted as the same type.
pub fn allowed(sniffed: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let got = essence(sniffed);
    allowed.iter().any(|a| {
        let want = essence(a);
        want == got
            || (want == "image/jpg" && got == "image/jpeg")
            || (want == "application/octet-stream")
    })
}

/// The content type a stored file is served with: a few extensions override what was sniffed
/// (so styles, scripts, SVG and Office files get their proper types).
pub fn served_type(filename: &str, stored: &str) -> String {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let by_ext = match ext.as_str() {
        "svg" => Some("image/svg+xml"),
        "css" => Some("text/css"),
        "js" | "mjs" => Some("text/javascript"),
        "xlsx" => Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        "docx" => Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        "pptx" => Some("application/vnd.openxmlformats-officedocument.presentationml.presentation"),
        _ => None,
    };
    match by_ext {
        Some(t) => t.to_string(),
        None if stored.is_empty() => "application/octet-stream".to_string(),
        None => stored.to_string(),
    }
}

/// Types a browser may show inline; everything else is served as an attachment.
pub fn is_inline(mime: &str) -> bool {
    const INLINE: &[&str] = &[
        "image/png",
        "image/jpg",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/x-icon",
        "image/bmp",
        "video/webm",
        "video/mp4",
        "video/3gpp",
        "video/quicktime",
        "video/x-ms-wmv",
        "audio/basic",
        "audio/aiff",
        "audio/mpeg",
        "audio/midi",
        "audio/mp3",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-mpeg",
        "audio/x-m4a",
        "audio/aac",
        "application/pdf",
        "application/x-pdf",
    ];
    INLINE.contains(&essence(mime).as_str())
}

/// Image types thumbs are made of.
pub fn is_thumbable(mime: &str) -> bool {
    matches!(
        essence(mime).as_str(),
        "image/png" | "image/jpg" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn sniffing_ignores_the_client_and_reads_the_bytes() {
        assert_eq!(sniff(PNG).mime, "image/png");
        assert_eq!(sniff(PNG).ext, ".png");
        assert_eq!(sniff(b"hello").mime, "text/plain; charset=utf-8");
        assert_eq!(sniff(b"%PDF-1.4\n").mime, "application/pdf");
        assert_eq!(
            sniff(b"\x00\x01\x02binary").mime,
            "application/octet-stream"
        );
    }

    #[test]
    fn allowed_types_ignore_parameters() {
        let list = vec!["text/plain".to_string(), "image/png".to_string()];
        assert!(allowed("text/plain; charset=utf-8", &list));
        assert!(!allowed("application/pdf", &list));
        assert!(allowed("application/pdf", &[]));
    }

    #[test]
    fn served_types_and_disposition() {
        assert_eq!(served_type("a.svg", "text/xml"), "image/svg+xml");
        assert_eq!(served_type("a.png", "image/png"), "image/png");
        assert!(is_inline("image/png"));
        assert!(is_inline("application/pdf"));
        assert!(!is_inline("text/plain; charset=utf-8"));
        assert!(!is_inline("image/svg+xml"));
    }
}
