//! SQLite WAL frames as Warren ships them: reading the committed frames of a `-wal` file past
//! a known position (salts and checksums checked, exactly as SQLite's recovery does), sealing
//! them into a segment (frames, commit times, sha256, zstd), and replaying segments onto a
//! database file up to a moment.
//!
//! A segment holds whole transactions only: it ends on a commit frame. Replay writes the pages
//! of a transaction only once its commit frame is read and its commit time is not after the
//! requested moment, and sets the file's size from the commit frame's database size.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Size of the WAL header.
pub const WAL_HEADER: u64 = 32;
/// Size of a frame header.
pub const FRAME_HEADER: u64 = 24;
/// First bytes of a segment once decompressed.
const SEGMENT_MAGIC: &[u8; 8] = b"WRNWAL01";
/// Largest segment accepted on restore, compressed or not.
pub const MAX_SEGMENT: u64 = 1 << 30;

/// Where a WAL was read up to: the WAL's salts and page size, how many frames were consumed,
/// and the running checksum after the last of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// Salt 1 of the WAL header.
    pub salt1: u32,
    /// Salt 2 of the WAL header.
    pub salt2: u32,
    /// Page size.
    pub page_size: u32,
    /// Whether checksums are computed on big-endian words.
    pub big_endian: bool,
    /// Frames consumed (the next frame's index, 0-based).
    pub frames: u32,
    /// Running checksum after the consumed frames (or the header's).
    pub checksum: (u32, u32),
}

/// The committed frames found past a cursor.
#[derive(Debug, Default)]
pub struct Frames {
    /// Frames, each `(page number, database size if commit else 0, page)`.
    pub frames: Vec<(u32, u32, Vec<u8>)>,
    /// 1-based WAL index of each commit frame among them.
    pub commits: Vec<u32>,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`.
fn checksum(big_endian: bool, data: &[u8], s: (u32, u32)) -> (u32, u32) {
    let (mut s0, mut s1) = s;
    for pair in data.chunks_exact(8) {
        let (x0, x1) = if big_endian {
            (be32(&pair[..4]), be32(&pair[4..]))
        } else {
            (
                u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]),
                u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]),
            )
        };
        s0 = s0.wrapping_add(x0).wrapping_add(s1);
        s1 = s1.wrapping_add(x1).wrapping_add(s0);
    }
    (s0, s1)
}

/// Reads the header of the WAL at `path`: `None` when there is no WAL or it holds no valid
/// header (an empty or reset WAL).
pub fn read_header(path: &Path) -> Result<Option<Cursor>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut header = [0u8; WAL_HEADER as usize];
    if file.read_exact(&mut header).is_err() {
        return Ok(None);
    }
    let magic = be32(&header[0..4]);
    if magic & !1 != 0x377f0682 {
        return Ok(None);
    }
    let big_endian = magic & 1 == 1;
    let page_size = be32(&header[8..12]);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Ok(None);
    }
    let sum = checksum(big_endian, &header[..24], (0, 0));
    if sum != (be32(&header[24..28]), be32(&header[28..32])) {
        return Ok(None);
    }
    Ok(Some(Cursor {
        salt1: be32(&header[16..20]),
        salt2: be32(&header[20..24]),
        page_size,
        big_endian,
        frames: 0,
        checksum: sum,
    }))
}

/// Reads the valid frames of the WAL at `path` past `cursor` (which must carry the WAL's
/// current salts), up to the last commit frame. Returns them with the cursor after that
/// commit. Frames past the last commit (a transaction being written) are left for later.
/// Stops at the first commit at or past `limit` frames (a larger transaction is read whole).
pub fn read_frames(path: &Path, cursor: &Cursor, limit: usize) -> Result<(Frames, Cursor)> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Frames::default(), *cursor));
        }
        Err(e) => return Err(e.into()),
    };
    let size = u64::from(cursor.page_size) + FRAME_HEADER;
    file.seek(SeekFrom::Start(
        WAL_HEADER + u64::from(cursor.frames) * size,
    ))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut out = Frames::default();
    let mut committed = *cursor;
    let mut at = *cursor;
    let mut pending = Vec::new();
    let mut frame = vec![0u8; size as usize];
    while out.frames.len() < limit {
        if reader.read_exact(&mut frame).is_err() {
            break;
        }
        let (page_no, db_size) = (be32(&frame[0..4]), be32(&frame[4..8]));
        if be32(&frame[8..12]) != at.salt1 || be32(&frame[12..16]) != at.salt2 || page_no == 0 {
            break;
        }
        let sum = checksum(at.big_endian, &frame[..8], at.checksum);
        let sum = checksum(at.big_endian, &frame[FRAME_HEADER as usize..], sum);
        if sum != (be32(&frame[16..20]), be32(&frame[20..24])) {
            break;
        }
        at.checksum = sum;
        at.frames += 1;
        pending.push((page_no, db_size, frame[FRAME_HEADER as usize..].to_vec()));
        if db_size != 0 {
            out.frames.append(&mut pending);
            out.commits.push(at.frames);
            committed = at;
        }
    }
    Ok((out, committed))
}

/// Whether the WAL at `path` holds a valid frame (committed or not) that `cursor` has not
/// consumed: checkpointing now could copy a frame into the database that was never shipped.
pub fn has_frame_after(path: &Path, cursor: &Cursor) -> Result<bool> {
    let from = match read_header(path)? {
        Some(header) if header.salt1 == cursor.salt1 && header.salt2 == cursor.salt2 => *cursor,
        Some(header) => header,
        None => return Ok(false),
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let size = u64::from(from.page_size) + FRAME_HEADER;
    file.seek(SeekFrom::Start(WAL_HEADER + u64::from(from.frames) * size))?;
    let mut frame = vec![0u8; size as usize];
    if file.read_exact(&mut frame).is_err() {
        return Ok(false);
    }
    if be32(&frame[8..12]) != from.salt1 || be32(&frame[12..16]) != from.salt2 {
        return Ok(false);
    }
    let sum = checksum(from.big_endian, &frame[..8], from.checksum);
    let sum = checksum(from.big_endian, &frame[FRAME_HEADER as usize..], sum);
    Ok(sum == (be32(&frame[16..20]), be32(&frame[20..24])))
}

/// A shipped segment: whole transactions with their commit times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Page size of the database.
    pub page_size: u32,
    /// Position of the segment in its generation (0, 1, 2, …).
    pub seq: u64,
    /// Frames, each `(page number, database size if commit else 0, page)`.
    pub frames: Vec<(u32, u32, Vec<u8>)>,
    /// Commit time (ms since the Unix epoch) of each commit frame, in order.
    pub commit_times: Vec<i64>,
}

impl Segment {
    /// Time of the first and last commit.
    pub fn span(&self) -> (i64, i64) {
        (
            self.commit_times.first().copied().unwrap_or(0),
            self.commit_times.last().copied().unwrap_or(0),
        )
    }

    /// The raw bytes: magic, header, commit times, frames, then sha256 of all before it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.frames.len() * (8 + self.page_size as usize) + self.commit_times.len() * 8,
        );
        out.extend_from_slice(SEGMENT_MAGIC);
        out.extend_from_slice(&self.page_size.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&(self.frames.len() as u32).to_be_bytes());
        out.extend_from_slice(&(self.commit_times.len() as u32).to_be_bytes());
        for time in &self.commit_times {
            out.extend_from_slice(&time.to_be_bytes());
        }
        for (page_no, db_size, page) in &self.frames {
            out.extend_from_slice(&page_no.to_be_bytes());
            out.extend_from_slice(&db_size.to_be_bytes());
            out.extend_from_slice(page);
        }
        let hash = Sha256::digest(&out);
        out.extend_from_slice(&hash);
        out
    }

    /// Parses and checks raw segment bytes.
    pub fn decode(raw: &[u8]) -> Result<Self> {
        let bad = |why: &str| Error::Corrupt(format!("a WAL segment is damaged: {why}"));
        if raw.len() < 8 + 20 + 32 {
            return Err(bad("too short"));
        }
        let (body, hash) = raw.split_at(raw.len() - 32);
        if Sha256::digest(body)[..] != *hash {
            return Err(bad("its checksum does not match"));
        }
        if &body[..8] != SEGMENT_MAGIC {
            return Err(bad("unknown format"));
        }
        let page_size = be32(&body[8..12]);
        let seq = u64::from_be_bytes(body[12..20].try_into().map_err(|_| bad("header"))?);
        let frame_count = be32(&body[20..24]) as usize;
        let commit_count = be32(&body[24..28]) as usize;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(bad("page size"));
        }
        let expected = 28usize
            .checked_add(commit_count.checked_mul(8).ok_or_else(|| bad("header"))?)
            .and_then(|n| n.checked_add(frame_count.checked_mul(8 + page_size as usize)?))
            .ok_or_else(|| bad("header"))?;
        if expected != body.len() || commit_count == 0 || frame_count == 0 {
            return Err(bad("its size does not match its header"));
        }
        let mut at = 28;
        let mut commit_times = Vec::with_capacity(commit_count);
        for _ in 0..commit_count {
            commit_times.push(i64::from_be_bytes(
                body[at..at + 8]
                    .try_into()
                    .map_err(|_| bad("commit times"))?,
            ));
            at += 8;
        }
        let mut frames = Vec::with_capacity(frame_count);
        for _ in 0..frame_count {
            let page_no = be32(&body[at..]);
            let db_size = be32(&body[at + 4..]);
            at += 8;
            frames.push((page_no, db_size, body[at..at + page_size as usize].to_vec()));
            at += page_size as usize;
        }
        let commits = frames.iter().filter(|f| f.1 != 0).count();
        if commits != commit_count || frames.last().is_none_or(|f| f.1 == 0) {
            return Err(bad("its transactions are incomplete"));
        }
        Ok(Self {
            page_size,
            seq,
            frames,
            commit_times,
        })
    }

    /// The compressed object: zstd of [`Segment::encode`].
    pub fn seal(&self) -> Result<Vec<u8>> {
        Ok(zstd::bulk::compress(&self.encode(), 3)?)
    }

    /// Reads a compressed object back, refusing anything damaged or truncated.
    pub fn open(sealed: &[u8]) -> Result<Self> {
        let raw = unseal(sealed)?;
        Self::decode(&raw)
    }
}

/// Decompresses a sealed object (segment or shipped file), at most [`MAX_SEGMENT`] bytes.
pub fn unseal(sealed: &[u8]) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    zstd::Decoder::new(sealed)
        .map_err(|e| Error::Corrupt(format!("a shipped object cannot be decompressed: {e}")))?
        .take(MAX_SEGMENT + 1)
        .read_to_end(&mut raw)
        .map_err(|e| Error::Corrupt(format!("a shipped object cannot be decompressed: {e}")))?;
    if raw.len() as u64 > MAX_SEGMENT {
        return Err(Error::Corrupt("a shipped object is too large".into()));
    }
    Ok(raw)
}

/// A shipped file's object: zstd of the bytes followed by their sha256.
pub fn seal_file(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut raw = bytes.to_vec();
    raw.extend_from_slice(&Sha256::digest(bytes));
    Ok(zstd::bulk::compress(&raw, 3)?)
}

/// A shipped file's bytes, checked.
pub fn open_file(sealed: &[u8]) -> Result<Vec<u8>> {
    let mut raw = unseal(sealed)?;
    if raw.len() < 32 {
        return Err(Error::Corrupt("a shipped file is truncated".into()));
    }
    let hash = raw.split_off(raw.len() - 32);
    if Sha256::digest(&raw)[..] != hash[..] {
        return Err(Error::Corrupt(
            "a shipped file does not match its checksum".into(),
        ));
    }
    Ok(raw)
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Transactions applied.
    pub transactions: u64,
    /// Commit time of the last one applied (ms since the Unix epoch; 0 when none).
    pub last_ms: i64,
    /// Whether a transaction after `until` was met (the replay stopped there).
    pub stopped: bool,
}

/// Replays the transactions of `segment` committed at or before `until_ms` onto the database
/// file `db` (opened by the caller), continuing `done`. Returns `false` once a later
/// transaction is met: nothing after it may be applied.
pub fn replay(
    db: &mut File,
    segment: &Segment,
    until_ms: i64,
    done: &mut Replayed,
) -> Result<bool> {
    let page = u64::from(segment.page_size);
    let mut commit = 0;
    let mut start = 0;
    for (i, frame) in segment.frames.iter().enumerate() {
        if frame.1 == 0 {
            continue;
        }
        let time = segment.commit_times[commit];
        commit += 1;
        if time > until_ms {
            done.stopped = true;
            return Ok(false);
        }
        for (page_no, _, bytes) in &segment.frames[start..=i] {
            db.seek(SeekFrom::Start(u64::from(page_no - 1) * page))?;
            db.write_all(bytes)?;
        }
        db.set_len(u64::from(frame.1) * page)?;
        start = i + 1;
        done.transactions += 1;
        done.last_ms = time;
    }
    Ok(true)
}

/// The page size recorded in the header of the database file `db`.
pub fn db_page_size(db: &mut File) -> Result<u32> {
    let mut header = [0u8; 18];
    db.seek(SeekFrom::Start(0))?;
    db.read_exact(&mut header)
        .map_err(|_| Error::Corrupt("the database file is truncated".into()))?;
    let raw = u16::from_be_bytes([header[16], header[17]]);
    Ok(if raw == 1 { 65536 } else { u32::from(raw) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_store::sql::Connection;

    fn segment(n: usize) -> Segment {
        Segment {
            page_size: 512,
            seq: 7,
            frames: (0..n)
                .map(|i| {
                    (
                        i as u32 + 1,
                        if i + 1 == n { 9 } else { 0 },
                        vec![i as u8; 512],
                    )
                })
                .collect(),
            commit_times: vec![1234],
        }
    }

    #[test]
    fn segments_round_trip_and_damage_is_refused() {
        let s = segment(3);
        let sealed = s.seal().unwrap();
        assert_eq!(Segment::open(&sealed).unwrap(), s);
        let mut raw = s.encode();
        raw[40] ^= 1;
        assert!(matches!(Segment::decode(&raw), Err(Error::Corrupt(_))));
        assert!(Segment::open(&sealed[..sealed.len() / 2]).is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x55;
        assert!(Segment::open(&flipped).is_err());
        let file = seal_file(b"hello").unwrap();
        assert_eq!(open_file(&file).unwrap(), b"hello");
        assert!(open_file(&file[..file.len() - 2]).is_err());
    }

    /// Frames read from a live WAL and replayed onto a copy of the database file give the
    /// same database, and a replay stops at the requested moment.
    #[test]
    fn frames_replay_onto_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (v TEXT); PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
        let base = dir.path().join("base.db");
        std::fs::copy(&path, &base).unwrap();
        let wal = dir.path().join("a.db-wal");
        for i in 0..5 {
            conn.execute("INSERT INTO t VALUES (?1)", [format!("row {i}")])
                .unwrap();
        }
        let header = read_header(&wal).unwrap().unwrap();
        let (frames, cursor) = read_frames(&wal, &header, usize::MAX).unwrap();
        assert_eq!(frames.commits.len(), 5);
        assert_eq!(cursor.frames as usize, frames.frames.len());
        assert!(!has_frame_after(&wal, &cursor).unwrap());
        conn.execute("INSERT INTO t VALUES ('later')", []).unwrap();
        assert!(has_frame_after(&wal, &cursor).unwrap());

        let seg = Segment {
            page_size: header.page_size,
            seq: 0,
            frames: frames.frames,
            commit_times: vec![10, 20, 30, 40, 50],
        };
        let seg = Segment::open(&seg.seal().unwrap()).unwrap();
        let count = |p: &Path| -> i64 {
            let c = Connection::open(p).unwrap();
            c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        let partial = dir.path().join("partial.db");
        std::fs::copy(&base, &partial).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&partial)
            .unwrap();
        assert_eq!(db_page_size(&mut file).unwrap(), header.page_size);
        let mut done = Replayed::default();
        assert!(!replay(&mut file, &seg, 35, &mut done).unwrap());
        assert_eq!(
            (done.transactions, done.last_ms, done.stopped),
            (3, 30, true)
        );
        drop(file);
        assert_eq!(count(&partial), 3);
        crate::restore::integrity_check(&partial).unwrap();

        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&base)
            .unwrap();
        let mut done = Replayed::default();
        assert!(replay(&mut file, &seg, i64::MAX, &mut done).unwrap());
        drop(file);
        assert_eq!(count(&base), 5);
    }
}
