//! A lean SSE client for thousands of subscribers: a raw HTTP/1.1 `GET` on a loopback TCP
//! stream, the response head checked by hand, chunked (or close-delimited, or length-bounded)
//! framing decoded incrementally in one reusable buffer per stream, and SSE messages split on
//! blank lines without copying or allocating per message.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::load::OpError;

/// Bytes a stream's buffer starts with (a few events; it grows only under a backlog).
const INITIAL_BUFFER: usize = 2048;
/// Free room ensured before each read.
const READ_ROOM: usize = 512;
/// Most bytes buffered at once: a response head, an SSE message or a backlog of them.
const MAX_BUFFER: usize = 4 * 1024 * 1024;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `transfer-encoding: chunked`.
    Chunked,
    /// `content-length: n`.
    Length(u64),
    /// Neither: the body runs until the server closes the connection.
    Close,
}

/// Where the chunked decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until a blank one.
    Trailers,
    /// The body is complete.
    Done,
}

/// What is left of the body to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Chunked(Chunk),
    Length(u64),
    Close,
}

/// Decodes one response body into SSE messages, in place.
///
/// `buf` holds, in order: messages already handed out (`..start`), decoded body bytes not yet
/// split into messages (`start..decoded`), and raw bytes not yet decoded (`decoded..`). Chunk
/// data moves down over the framing bytes before it, so decoding never allocates; handed-out
/// messages are dropped by [`SseReader::compact`] before the next read.
#[derive(Debug)]
pub struct SseReader {
    buf: Vec<u8>,
    start: usize,
    /// Where the line being searched for its end begins (`start..decoded`).
    line: usize,
    decoded: usize,
    body: Body,
}

impl SseReader {
    /// A reader for a body framed as `framing`, given the bytes already read past the head.
    pub fn new(framing: Framing, mut buf: Vec<u8>) -> Result<Self, OpError> {
        buf.reserve(INITIAL_BUFFER.saturating_sub(buf.len()));
        let body = match framing {
            Framing::Chunked => Body::Chunked(Chunk::Size),
            Framing::Length(n) => Body::Length(n),
            Framing::Close => Body::Close,
        };
        let mut reader = Self {
            buf,
            start: 0,
            line: 0,
            decoded: 0,
            body,
        };
        reader.decode()?;
        Ok(reader)
    }

    /// Whether the body has ended (last chunk or `content-length` reached).
    pub fn is_done(&self) -> bool {
        matches!(self.body, Body::Chunked(Chunk::Done) | Body::Length(0))
    }

    /// Drops the messages already handed out and makes room for the next read.
    pub fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.decoded -= self.start;
            self.line -= self.start;
            self.start = 0;
        }
        self.buf.reserve(READ_ROOM);
    }

    /// The buffer to append newly read bytes to (after [`SseReader::compact`]); call
    /// [`SseReader::decode`] afterwards.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Decodes as much of the raw bytes as is complete.
    pub fn decode(&mut self) -> Result<(), OpError> {
        let mut raw = self.decoded;
        match &mut self.body {
            Body::Close => raw = self.buf.len(),
            Body::Length(left) => {
                let n = (*left).min((self.buf.len() - raw) as u64);
                *left -= n;
                raw += n as usize;
                // Bytes past the declared length are not part of this response: dropped.
                self.buf.truncate(raw);
            }
            Body::Chunked(state) => loop {
                let avail = &self.buf[raw..];
                match *state {
                    Chunk::Size => {
                        let Some(end) = line_end(avail, "chunk-size line")? else {
                            break;
                        };
                        let size = chunk_size(&avail[..end])?;
                        raw += end + 1;
                        *state = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(left) => {
                        let n = left.min(avail.len() as u64) as usize;
                        if n == 0 {
                            break;
                        }
                        if raw != self.decoded {
                            self.buf.copy_within(raw..raw + n, self.decoded);
                        }
                        self.decoded += n;
                        raw += n;
                        *state = if left == n as u64 {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left - n as u64)
                        };
                    }
                    Chunk::DataEnd => match avail {
                        [] | [b'\r'] => break,
                        [b'\r', b'\n', ..] => {
                            raw += 2;
                            *state = Chunk::Size;
                        }
                        [b'\n', ..] => {
                            raw += 1;
                            *state = Chunk::Size;
                        }
                        _ => return Err(OpError::other("chunk data not followed by CRLF")),
                    },
                    Chunk::Trailers => {
                        let Some(end) = line_end(avail, "trailer line")? else {
                            break;
                        };
                        raw += end + 1;
                        if matches!(&avail[..end], b"" | b"\r") {
                            *state = Chunk::Done;
                        }
                    }
                    Chunk::Done => {
                        // Nothing may follow a finished response on this stream.
                        raw = self.buf.len();
                        break;
                    }
                }
            },
        }
        if !matches!(self.body, Body::Close | Body::Length(_)) {
            // Close the gap the framing bytes left between decoded and raw bytes.
            let len = self.buf.len();
            if raw > self.decoded {
                self.buf.copy_within(raw..len, self.decoded);
                self.buf.truncate(self.decoded + (len - raw));
            }
        } else {
            self.decoded = raw;
        }
        if self.buf.len() > MAX_BUFFER {
            return Err(OpError::other(format!(
                "more than {MAX_BUFFER} bytes buffered without a complete SSE message"
            )));
        }
        Ok(())
    }

    /// The next complete SSE message (its lines with their line ends, without the blank line
    /// that ends it), or
    /// `None` until more bytes arrive. Lines may end in LF or CRLF.
    pub fn next_message(&mut self) -> Option<&[u8]> {
        loop {
            let rest = &self.buf[self.line..self.decoded];
            let end = rest.iter().position(|&b| b == b'\n')?;
            let line = &rest[..end];
            let line_start = self.line;
            self.line += end + 1;
            if matches!(line, b"" | b"\r") {
                let message = self.start..line_start;
                self.start = self.line;
                // A blank line with nothing before it ends no message.
                if !message.is_empty() {
                    return Some(&self.buf[message]);
                }
            }
        }
    }
}

/// The position of the `\n` ending the first line of `bytes`, if complete.
fn line_end(bytes: &[u8], what: &str) -> Result<Option<usize>, OpError> {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(end) if end <= MAX_LINE => Ok(Some(end)),
        None if bytes.len() <= MAX_LINE => Ok(None),
        _ => Err(OpError::other(format!(
            "{what} longer than {MAX_LINE} bytes"
        ))),
    }
}

/// Parses a chunk-size line (hex digits, optionally `;extensions`, optionally `\r`).
fn chunk_size(line: &[u8]) -> Result<u64, OpError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(OpError::other("bad chunk-size line"));
    }
    let mut size = 0u64;
    for &b in digits {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(OpError::other("bad chunk-size line")),
        };
        size = size * 16 + u64::from(digit);
    }
    Ok(size)
}

/// The value of the first `name:` field of an SSE message (one leading space dropped).
pub fn field<'a>(message: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    message.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let value = line.strip_prefix(name)?.strip_prefix(b":")?;
        Some(value.strip_prefix(b" ").unwrap_or(value))
    })
}

/// A response head: its status and how its body is framed.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    /// Whether `content-type` is `text/event-stream`.
    pub event_stream: bool,
}

/// Parses a response head (status line and headers, without the blank line ending it).
pub fn parse_head(head: &[u8]) -> Result<Head, OpError> {
    let bad = || OpError::other("malformed HTTP response head");
    let text = std::str::from_utf8(head).map_err(|_| bad())?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().ok_or_else(bad)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad());
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let mut chunked = None;
    let mut length = None;
    let mut event_stream = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            // A response whose last coding is not chunked runs until the connection closes.
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<u64>().map_err(|_| bad())?);
        } else if name.eq_ignore_ascii_case("content-type") {
            event_stream = value
                .get(..17)
                .is_some_and(|v| v.eq_ignore_ascii_case("text/event-stream"));
        }
    }
    let framing = match (chunked, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) | (None, None) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
    };
    Ok(Head {
        status,
        framing,
        event_stream,
    })
}

/// One SSE stream over a raw TCP connection.
pub struct SseStream {
    stream: TcpStream,
    reader: SseReader,
}

impl SseStream {
    /// Connects to `addr` (which must be loopback), sends `GET path` with `Host: authority`
    /// and checks for a 200 `text/event-stream` answer.
    pub async fn connect(addr: SocketAddr, authority: &str, path: &str) -> Result<Self, OpError> {
        if !addr.ip().is_loopback() {
            return Err(OpError::other(format!(
                "refusing non-loopback address {addr}"
            )));
        }
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| OpError::other(format!("connect {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\n\
             Cache-Control: no-store\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| OpError::other(format!("sending GET {path}: {e}")))?;
        let mut buf = Vec::with_capacity(INITIAL_BUFFER);
        let head_end = loop {
            if let Some(end) = head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_HEAD {
                return Err(OpError::other("response head too long"));
            }
            buf.reserve(READ_ROOM);
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| OpError::other(format!("reading the response head: {e}")))?;
            if n == 0 {
                return Err(OpError::other("connection closed before the response head"));
            }
        };
        let head = parse_head(&buf[..head_end.0])?;
        if head.status != 200 {
            return Err(OpError {
                status: Some(head.status),
                message: format!("GET {path} answered {}", head.status),
            });
        }
        if !head.event_stream {
            return Err(OpError::other(format!(
                "GET {path} did not answer text/event-stream"
            )));
        }
        buf.drain(..head_end.1);
        Ok(Self {
            stream,
            reader: SseReader::new(head.framing, buf)?,
        })
    }

    /// An SSE body on an already open connection (no HTTP head), framed as `framing`.
    pub fn from_body(stream: TcpStream, framing: Framing) -> Result<Self, OpError> {
        Ok(Self {
            stream,
            reader: SseReader::new(framing, Vec::with_capacity(INITIAL_BUFFER))?,
        })
    }

    /// Reads once from the connection and decodes what came; `Ok(false)` when the body has
    /// ended. Cancel-safe: a cancelled call reads nothing.
    pub async fn fill(&mut self) -> Result<bool, OpError> {
        self.reader.compact();
        if self.reader.is_done() {
            return Ok(false);
        }
        let n = self
            .stream
            .read_buf(self.reader.buffer())
            .await
            .map_err(|e| OpError::other(format!("reading the stream: {e}")))?;
        if n == 0 {
            return match self.reader.body {
                Body::Close => Ok(false),
                _ => Err(OpError::other("connection closed inside the response body")),
            };
        }
        self.reader.decode()?;
        Ok(true)
    }

    /// The next complete SSE message already read, if any.
    pub fn next_message(&mut self) -> Option<&[u8]> {
        self.reader.next_message()
    }
}

/// The end of the head in `buf` (at its blank line) and where the body starts.
fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut line = 0;
    while let Some(end) = buf[line..].iter().position(|&b| b == b'\n') {
        let text = &buf[line..line + end];
        if matches!(text, b"" | b"\r") {
            return Some((line, line + end + 1));
        }
        line += end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT: &str = "id:abc\nevent:PB_CONNECT\ndata:{\"clientId\":\"abc\"}\n\n";
    const EVENT: &str = "id:abc\nevent:posts/*\ndata:{\"record\":{\"title\":\"rt 3\"}}\n\n";

    fn chunk(payload: &str) -> String {
        format!("{:x}\r\n{payload}\r\n", payload.len())
    }

    /// Feeds `wire` to a reader in the given pieces and returns every message it yields.
    fn messages(framing: Framing, pieces: &[&[u8]]) -> (Vec<String>, SseReader) {
        let mut reader = SseReader::new(framing, Vec::new()).unwrap();
        let mut out = Vec::new();
        for piece in pieces {
            reader.compact();
            reader.buffer().extend_from_slice(piece);
            reader.decode().unwrap();
            while let Some(m) = reader.next_message() {
                out.push(String::from_utf8(m.to_vec()).unwrap());
            }
        }
        (out, reader)
    }

    fn expected(events: &[&str]) -> Vec<String> {
        events
            .iter()
            .map(|e| e.strip_suffix('\n').unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_chunked_body_split_at_every_byte_pair_yields_the_same_messages() {
        // Several messages in one chunk, one message across two chunks, a chunk extension,
        // uppercase hex and the last chunk with a trailer.
        let (head, tail) = EVENT.split_at(20);
        let three = EVENT.repeat(3);
        let wire = format!(
            "{}{}{}{:X}\r\n{three}\r\n0\r\nx-trailer: 1\r\n\r\n",
            chunk(&format!("{CONNECT}{EVENT}")),
            chunk(head).replacen("\r\n", ";ext=1\r\n", 1),
            chunk(tail),
            three.len(),
        );
        assert!(
            format!("{:X}", three.len())
                .bytes()
                .any(|b| b.is_ascii_uppercase())
        );
        let want = expected(&[CONNECT, EVENT, EVENT, EVENT, EVENT, EVENT]);
        let bytes = wire.as_bytes();
        for i in 0..bytes.len() {
            for j in i..bytes.len() {
                let (got, reader) =
                    messages(Framing::Chunked, &[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(got, want, "split at {i} and {j}");
                assert!(reader.is_done());
            }
        }
    }

    #[test]
    fn a_chunked_body_fed_one_byte_at_a_time_yields_every_message() {
        let wire = format!("{}{}", chunk(CONNECT), chunk(&EVENT.repeat(3)));
        let pieces: Vec<&[u8]> = wire.as_bytes().chunks(1).collect();
        let (got, reader) = messages(Framing::Chunked, &pieces);
        assert_eq!(got, expected(&[CONNECT, EVENT, EVENT, EVENT]));
        assert!(!reader.is_done());
    }

    #[test]
    fn close_delimited_and_length_bounded_bodies_are_read_as_is() {
        let wire = format!("{CONNECT}{EVENT}id:par");
        let (got, _) = messages(
            Framing::Close,
            &[&wire.as_bytes()[..9], &wire.as_bytes()[9..]],
        );
        assert_eq!(got, expected(&[CONNECT, EVENT]));
        let body = format!("{CONNECT}{EVENT}");
        let wire = format!("{body}garbage past the length\n\n");
        let (got, reader) = messages(Framing::Length(body.len() as u64), &[wire.as_bytes()]);
        assert_eq!(got, expected(&[CONNECT, EVENT]));
        assert!(reader.is_done());
    }

    #[test]
    fn crlf_line_endings_end_messages_too() {
        let wire = "\nevent:a\r\ndata:1\r\n\r\n\r\n\nevent:b\ndata:2\n\r\n";
        let (got, _) = messages(Framing::Close, &[wire.as_bytes()]);
        assert_eq!(got, ["event:a\r\ndata:1\r\n", "event:b\ndata:2\n"]);
        assert_eq!(field(got[0].as_bytes(), b"data"), Some(&b"1"[..]));
        assert_eq!(field(b"event: spaced", b"event"), Some(&b"spaced"[..]));
        assert_eq!(field(b"eventual:x", b"event"), None);
    }

    #[test]
    fn bad_chunk_framing_is_an_error() {
        for wire in ["zz\r\nabc\r\n", "3\r\nabcX\r\n", "\r\n"] {
            let mut reader = SseReader::new(Framing::Chunked, Vec::new()).unwrap();
            reader.buffer().extend_from_slice(wire.as_bytes());
            assert!(reader.decode().is_err(), "{wire:?}");
        }
        let mut reader = SseReader::new(Framing::Chunked, Vec::new()).unwrap();
        reader.buffer().extend_from_slice(&[b'1'; MAX_LINE + 2]);
        assert!(reader.decode().is_err());
    }

    #[test]
    fn the_buffer_does_not_grow_while_messages_are_taken() {
        let wire = chunk(EVENT);
        let mut reader = SseReader::new(Framing::Chunked, Vec::new()).unwrap();
        let capacity = reader.buffer().capacity();
        for _ in 0..10_000 {
            reader.compact();
            reader.buffer().extend_from_slice(wire.as_bytes());
            reader.decode().unwrap();
            assert!(reader.next_message().is_some());
            assert!(reader.next_message().is_none());
        }
        assert_eq!(reader.buffer().capacity(), capacity);
    }

    #[test]
    fn response_heads_give_status_and_framing() {
        let head = parse_head(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\
              Transfer-Encoding: gzip, Chunked\r\n",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                framing: Framing::Chunked,
                event_stream: true
            }
        );
        let head = parse_head(b"HTTP/1.0 200 OK\ncontent-type: text/event-stream\n").unwrap();
        assert_eq!(head.framing, Framing::Close);
        let head = parse_head(b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n").unwrap();
        assert_eq!((head.status, head.framing), (404, Framing::Length(12)));
        assert!(!head.event_stream);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nno colon here\r\n").is_err());
    }

    /// Serves `wire` in `pieces` on a loopback listener, then closes; returns its address.
    async fn serve(pieces: Vec<Vec<u8>>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 1024];
            let n = conn.read(&mut request).await.unwrap();
            assert!(
                request[..n].starts_with(b"GET /api/realtime HTTP/1.1\r\nHost: t.localhost:1\r\n")
            );
            for piece in pieces {
                conn.write_all(&piece).await.unwrap();
                conn.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_stream_reads_its_head_and_events_off_a_socket() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        // The first event arrives in the same segment as the head.
        let first = format!("{head}{}", chunk(CONNECT));
        let rest = format!("{}0\r\n\r\n", chunk(&EVENT.repeat(2)));
        let addr = serve(vec![first.into_bytes(), rest.into_bytes()]).await;
        let mut sse = SseStream::connect(addr, "t.localhost:1", "/api/realtime")
            .await
            .unwrap();
        let mut got = Vec::new();
        loop {
            while let Some(m) = sse.next_message() {
                got.push(String::from_utf8(m.to_vec()).unwrap());
            }
            if !sse.fill().await.unwrap() {
                break;
            }
        }
        assert_eq!(got, expected(&[CONNECT, EVENT, EVENT]));
    }

    #[tokio::test]
    async fn a_stream_refuses_other_statuses_and_cut_bodies() {
        let addr = serve(vec![
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
        ])
        .await;
        let err = SseStream::connect(addr, "t.localhost:1", "/api/realtime")
            .await
            .err()
            .unwrap();
        assert_eq!(err.status, Some(404));
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n".to_vec(),
        ])
        .await;
        assert!(
            SseStream::connect(addr, "t.localhost:1", "/api/realtime")
                .await
                .is_err()
        );
        let cut = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{}",
            chunk(CONNECT)
        );
        let addr = serve(vec![cut.into_bytes()]).await;
        let mut sse = SseStream::connect(addr, "t.localhost:1", "/api/realtime")
            .await
            .unwrap();
        let mut result = Ok(true);
        while matches!(result, Ok(true)) {
            result = sse.fill().await;
        }
        assert!(result.is_err(), "a chunked body cut short is an error");
        let refused = SseStream::connect("10.0.0.1:80".parse().unwrap(), "x", "/").await;
        assert!(refused.is_err());
    }

    #[test]
    fn the_head_ends_at_its_blank_line() {
        let wire = b"HTTP/1.1 200 OK\r\na: b\r\n\r\nbody";
        let (end, body) = head_end(wire).unwrap();
        assert_eq!(&wire[..end], b"HTTP/1.1 200 OK\r\na: b\r\n");
        assert_eq!(&wire[body..], b"body");
        assert!(head_end(b"HTTP/1.1 200 OK\r\na: b\r\n").is_none());
    }
}
