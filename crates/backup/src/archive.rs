//! Compression with checksums: a file (or a directory as a tar stream) becomes one zstd object
//! while sha256 runs over both the raw and the compressed bytes; the reverse checks both.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::manifest::ObjectEntry;
use crate::{Error, Result};

/// Compression level: fast, and single-threaded so a backup never takes the node's CPUs.
const LEVEL: i32 = 3;

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hash.finalize()), self.size)
    }
}

/// Opens the compressed output at `dest` with hashing on both sides of zstd.
fn encoder(dest: &Path) -> Result<Hashing<zstd::Encoder<'static, Hashing<BufWriter<File>>>>> {
    let file = BufWriter::new(File::create(dest)?);
    Ok(Hashing::new(zstd::Encoder::new(Hashing::new(file), LEVEL)?))
}

fn finish(
    raw: Hashing<zstd::Encoder<'static, Hashing<BufWriter<File>>>>,
    name: &str,
    object: &str,
) -> Result<ObjectEntry> {
    let (encoder, raw_sha256, raw_size) = raw.finish();
    let (compressed, sha256, size) = encoder.finish()?.finish();
    // A scratch file: uploaded, then deleted; not synced (see the snapshot module).
    compressed.into_inner().map_err(|e| e.into_error())?;
    Ok(ObjectEntry {
        name: name.to_string(),
        object: object.to_string(),
        size,
        sha256,
        raw_size,
        raw_sha256,
    })
}

/// Compresses the file `source` into `dest`.
pub(crate) fn compress_file(source: &Path, dest: &Path, name: &str) -> Result<ObjectEntry> {
    let mut out = encoder(dest)?;
    std::io::copy(&mut BufReader::new(File::open(source)?), &mut out)?;
    finish(out, name, &object_name(dest))
}

/// Packs the directory `source` (regular files and directories only) as a tar stream and
/// compresses it into `dest`. A missing directory packs as an empty archive.
pub(crate) fn compress_dir(source: &Path, dest: &Path, name: &str) -> Result<ObjectEntry> {
    let out = encoder(dest)?;
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    if source.is_dir() {
        append_tree(&mut tar, source, Path::new(""))?;
    }
    let out = tar.into_inner()?;
    finish(out, name, &object_name(dest))
}

fn append_tree<W: Write>(tar: &mut tar::Builder<W>, root: &Path, rel: &Path) -> Result<()> {
    append_tree_under(tar, root, Path::new(""), rel)
}

/// Appends the tree at `root/rel` as `under/rel/...`.
fn append_tree_under<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    under: &Path,
    rel: &Path,
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        let path = rel.join(entry.file_name());
        let name = under.join(&path);
        if kind.is_dir() {
            tar.append_dir(&name, entry.path())?;
            append_tree_under(tar, root, under, &path)?;
        } else if kind.is_file() {
            // A file deleted while the tree is packed is simply not in the backup.
            match File::open(entry.path()) {
                Ok(mut file) => tar.append_file(&name, &mut file)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn object_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// Checks the compressed object at `source` against `entry`.
pub(crate) fn check_compressed(source: &Path, entry: &ObjectEntry) -> Result<()> {
    let mut hash = Sha256::new();
    let mut file = BufReader::new(File::open(source)?);
    let size = std::io::copy(&mut file, &mut hash)?;
    if size != entry.size {
        return Err(Error::Corrupt(format!(
            "{} is {size} bytes, the manifest says {}",
            entry.object, entry.size
        )));
    }
    if hex::encode(hash.finalize()) != entry.sha256 {
        return Err(Error::Corrupt(format!(
            "{} does not match its checksum",
            entry.object
        )));
    }
    Ok(())
}

/// A reader that hashes and counts what passes through, refusing to go past `limit`.
struct Checked<R> {
    inner: R,
    hash: Sha256,
    size: u64,
    limit: u64,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        if self.size > self.limit {
            return Err(std::io::Error::other("longer than the manifest says"));
        }
        Ok(n)
    }
}

fn decoder(
    source: &Path,
    entry: &ObjectEntry,
) -> Result<Checked<zstd::Decoder<'static, BufReader<File>>>> {
    Ok(Checked {
        inner: zstd::Decoder::new(File::open(source)?)?,
        hash: Sha256::new(),
        size: 0,
        limit: entry.raw_size,
    })
}

fn check_raw<R>(raw: Checked<R>, entry: &ObjectEntry) -> Result<()> {
    if raw.size != entry.raw_size || hex::encode(raw.hash.finalize()) != entry.raw_sha256 {
        return Err(Error::Corrupt(format!(
            "{} does not decompress to what was backed up",
            entry.object
        )));
    }
    Ok(())
}

fn corrupt(entry: &ObjectEntry) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Corrupt(format!("{} cannot be decompressed: {e}", entry.object))
}

/// Decompresses `source` into the file `dest`, checking the raw checksum; the file is synced.
pub(crate) fn decompress_file(source: &Path, dest: &Path, entry: &ObjectEntry) -> Result<()> {
    let mut raw = decoder(source, entry)?;
    let mut out = BufWriter::new(File::create(dest)?);
    std::io::copy(&mut raw, &mut out).map_err(corrupt(entry))?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    check_raw(raw, entry)
}

/// Unpacks the compressed tar `source` into the directory `dest`, checking the raw checksum.
/// Entries that would land outside `dest`, links and special files are refused.
pub(crate) fn decompress_dir(source: &Path, dest: &Path, entry: &ObjectEntry) -> Result<()> {
    let mut raw = decoder(source, entry)?;
    unpack_tar(&mut raw, dest, &entry.object)?;
    check_raw(raw, entry)
}

/// Unpacks the tar stream `raw` into the directory `dest` (created), read to its end. Entries
/// that would land outside `dest`, links and special files are refused; `what` names the
/// archive in errors.
fn unpack_tar(raw: &mut impl Read, dest: &Path, what: &str) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    let damaged = |e: std::io::Error| Error::Corrupt(format!("{what} cannot be unpacked: {e}"));
    let mut archive = tar::Archive::new(raw);
    for item in archive.entries().map_err(damaged)? {
        let mut item = item.map_err(damaged)?;
        let kind = item.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(Error::Corrupt(format!(
                "{what} holds a link or special file"
            )));
        }
        if !item.unpack_in(dest).map_err(damaged)? {
            return Err(Error::Corrupt(format!(
                "{what} holds a path outside its directory"
            )));
        }
    }
    // Read the tar padding to the end so a checksum covers every byte.
    std::io::copy(archive.into_inner(), &mut std::io::sink()).map_err(damaged)?;
    Ok(())
}

/// Packs `entries` (a name at the top of the archive, and the file or directory it comes
/// from; a directory packs its regular files and directories) as one tar stream compressed
/// into `dest`, with zstd's content checksum. Returns the compressed size.
pub(crate) fn pack_checksummed(dest: &Path, entries: &[(&str, &Path)]) -> Result<u64> {
    let file = BufWriter::new(File::create(dest)?);
    let mut encoder = zstd::Encoder::new(file, LEVEL)?;
    encoder.include_checksum(true)?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    for (name, path) in entries {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.is_dir() {
            tar.append_dir(name, path)?;
            append_tree_under(&mut tar, path, Path::new(name), Path::new(""))?;
        } else if meta.is_file() {
            tar.append_path_with_name(path, name)?;
        }
    }
    let file = tar.into_inner()?.finish()?;
    file.into_inner().map_err(|e| e.into_error())?;
    Ok(std::fs::metadata(dest)?.len())
}

/// Unpacks what [`pack_checksummed`] made into the directory `dest`, reading at most `limit`
/// raw bytes; a damaged object (checksum, size, unsafe path) is refused.
pub(crate) fn unpack_checksummed(source: &Path, dest: &Path, limit: u64) -> Result<()> {
    let what = object_name(source);
    let mut raw = Checked {
        inner: zstd::Decoder::new(File::open(source)?)?,
        hash: Sha256::new(),
        size: 0,
        limit,
    };
    unpack_tar(&mut raw, dest, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_trees_round_trip_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.db");
        std::fs::write(&src, vec![7u8; 100_000]).unwrap();
        let packed = dir.path().join("a.db.zst");
        let entry = compress_file(&src, &packed, "data.db").unwrap();
        assert_eq!(entry.raw_size, 100_000);
        assert!(entry.size < 1000);
        check_compressed(&packed, &entry).unwrap();
        let back = dir.path().join("back.db");
        decompress_file(&packed, &back, &entry).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), vec![7u8; 100_000]);

        let tree = dir.path().join("storage");
        std::fs::create_dir_all(tree.join("c1/r1")).unwrap();
        std::fs::write(tree.join("c1/r1/f.txt"), b"file").unwrap();
        let packed_tree = dir.path().join("storage.tar.zst");
        let tree_entry = compress_dir(&tree, &packed_tree, "storage").unwrap();
        let out = dir.path().join("out");
        decompress_dir(&packed_tree, &out, &tree_entry).unwrap();
        assert_eq!(std::fs::read(out.join("c1/r1/f.txt")).unwrap(), b"file");

        // A flipped byte fails the checksum; a truncated object fails size and decompression.
        let mut bytes = std::fs::read(&packed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&packed, &bytes).unwrap();
        assert!(matches!(
            check_compressed(&packed, &entry),
            Err(Error::Corrupt(_))
        ));
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&packed, &bytes).unwrap();
        assert!(matches!(
            check_compressed(&packed, &entry),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            decompress_file(&packed, &back, &entry),
            Err(Error::Corrupt(_))
        ));
    }
}
