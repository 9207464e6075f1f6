//! PocketBase data directories as zip files: unpacking an uploaded `pb_data` zip or PocketBase
//! backup zip under path checks and size bounds, and packing an export into a zip.
//!
//! Both kinds of zip hold a data directory's contents (`data.db`, `auxiliary.db`, `storage/…`),
//! either at the top or inside one folder (a zipped `pb_data/`). Unpacking refuses, before it
//! writes anything, an archive that cannot be read, any entry whose name is absolute or climbs
//! with `..`, symbolic links, more entries than allowed, and declared sizes above the bound; it
//! also counts the bytes it actually writes, so an entry that lies about its size is stopped at
//! the bound too. Work is blocking: call these from `spawn_blocking`.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use zip::ZipArchive;
use zip::write::SimpleFileOptions;

use crate::transfer::{Progress, Report};
use crate::{DATABASE_FILE, Error, Result};

/// Where [`unpack`] puts the code folders (`pb_hooks/`, `pb_migrations/`, `pb_public/`) that
/// sit at the top of a zip beside its `pb_data/` folder, inside the unpacked directory; a
/// data directory's own entries of that name are skipped.
pub const CODE_DIR: &str = ".warren-code";

/// Whether `name` (an entry's name without `./`) is a code folder entry at the top.
fn is_code(name: &str) -> bool {
    let top = name.split('/').next().unwrap_or_default();
    crate::code::Folder::from_name(top).is_some() && name.len() > top.len()
}

/// Bounds on what one archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries (files and folders).
    pub max_entries: usize,
    /// Most bytes of all files unpacked together.
    pub max_bytes: u64,
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The file is no zip, or a damaged one.
    #[error("the file is not a readable zip archive ({0})")]
    Damaged(String),
    /// An entry's name is absolute, climbs out with `..`, or is a link.
    #[error("the zip entry {0:?} is not allowed: {1}")]
    Unsafe(String, &'static str),
    /// More entries or bytes than the limits allow.
    #[error("{0}")]
    TooLarge(String),
    /// No `data.db` at the top or in one folder.
    #[error(
        "the zip holds no PocketBase data: it needs data.db at its top or inside one folder (pb_data/data.db)"
    )]
    NoData,
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::TooLarge(message) => Error::TooLarge(message),
            other => Error::Invalid(other.to_string()),
        }
    }
}

/// What [`check`] found in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// The folder inside the archive that holds `data.db` (`""` at the top, else `name/`).
    pub prefix: String,
    /// Entries under that folder.
    pub entries: usize,
    /// Their declared unpacked size.
    pub bytes: u64,
}

/// Reads the archive's directory and checks every entry against the rules and `limits`
/// without unpacking anything.
pub fn check(zip: &Path, limits: Limits) -> Result<Contents, Refusal> {
    let file = File::open(zip).map_err(|e| Refusal::Damaged(e.to_string()))?;
    let mut archive = ZipArchive::new(file).map_err(|e| Refusal::Damaged(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(Refusal::TooLarge(format!(
            "the zip has {} entries; at most {} are allowed",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut prefix = None;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| Refusal::Damaged(e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| Refusal::Damaged(e.to_string()))?
            .to_string();
        check_name(&name, entry.is_symlink())?;
        let inner = name.trim_start_matches("./");
        let found = if inner == DATABASE_FILE {
            Some(String::new())
        } else {
            inner
                .strip_suffix(DATABASE_FILE)
                .and_then(|dir| dir.strip_suffix('/'))
                .filter(|dir| !dir.is_empty() && !dir.contains('/'))
                .map(|dir| format!("{dir}/"))
        };
        if let Some(found) = found {
            // The top wins over a folder; two folders both holding data.db is ambiguous.
            prefix = match prefix {
                None => Some(found),
                Some(p) if p.is_empty() || found.is_empty() => Some(String::new()),
                Some(p) if p == found => Some(p),
                Some(_) => {
                    return Err(Refusal::Unsafe(
                        name,
                        "more than one folder holds a data.db",
                    ));
                }
            };
        }
    }
    let prefix = prefix.ok_or(Refusal::NoData)?;
    let (mut entries, mut bytes) = (0usize, 0u64);
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| Refusal::Damaged(e.to_string()))?;
        let name = entry.name().map_err(|e| Refusal::Damaged(e.to_string()))?;
        let inner = name.trim_start_matches("./");
        if inner.starts_with(&prefix) || (!prefix.is_empty() && is_code(inner)) {
            entries += 1;
            bytes = bytes.saturating_add(entry.size());
        }
    }
    if bytes > limits.max_bytes {
        return Err(Refusal::TooLarge(format!(
            "the zip unpacks to {bytes} bytes; at most {} are allowed",
            limits.max_bytes
        )));
    }
    Ok(Contents {
        prefix,
        entries,
        bytes,
    })
}

fn check_name(name: &str, symlink: bool) -> Result<(), Refusal> {
    let refuse = |why| Err(Refusal::Unsafe(name.to_string(), why));
    if symlink {
        return refuse("symbolic links are refused");
    }
    if name.is_empty() || name.contains('\0') || name.contains('\\') {
        return refuse("the name is empty or has a backslash or NUL");
    }
    if name.starts_with('/') || name.contains(':') {
        return refuse("absolute paths are refused");
    }
    for component in Path::new(name).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return refuse("paths with .. are refused"),
            Component::RootDir | Component::Prefix(_) => {
                return refuse("absolute paths are refused");
            }
        }
    }
    Ok(())
}

/// Unpacks the data directory in `zip` into `dest` (created; must not exist) after [`check`],
/// reporting `unpack` progress in bytes. Returns what was unpacked. On failure `dest` is
/// removed again.
pub fn unpack(zip: &Path, dest: &Path, limits: Limits, report: Report<'_>) -> Result<Contents> {
    let contents = check(zip, limits)?;
    std::fs::create_dir(dest)?;
    let done = unpack_checked(zip, dest, &contents, limits, report);
    if done.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    done.map(|()| contents)
}

fn unpack_checked(
    zip: &Path,
    dest: &Path,
    contents: &Contents,
    limits: Limits,
    report: Report<'_>,
) -> Result<()> {
    let damaged = |e: zip::result::ZipError| Error::from(Refusal::Damaged(e.to_string()));
    let mut archive = ZipArchive::new(File::open(zip)?).map_err(damaged)?;
    let mut written = 0u64;
    let mut buffer = vec![0u8; 256 * 1024];
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(damaged)?;
        let name = entry
            .name()
            .map_err(damaged)?
            .trim_start_matches("./")
            .to_string();
        let relative = match name.strip_prefix(&contents.prefix) {
            Some(relative) if relative.split('/').next() == Some(CODE_DIR) => continue,
            Some(relative) => relative.to_string(),
            // Code beside a data folder comes along, for the import's code checks.
            None if !contents.prefix.is_empty() && is_code(&name) => format!("{CODE_DIR}/{name}"),
            None => continue,
        };
        if relative.is_empty() {
            continue;
        }
        let path = dest.join(&relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&path)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = File::create_new(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::from(Refusal::Unsafe(name.clone(), "it appears twice"))
            } else {
                Error::Io(e)
            }
        })?;
        loop {
            let n = entry
                .read(&mut buffer)
                .map_err(|e| Error::from(Refusal::Damaged(format!("{name}: {e}"))))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > limits.max_bytes {
                return Err(Refusal::TooLarge(format!(
                    "the zip unpacks to more than {} bytes",
                    limits.max_bytes
                ))
                .into());
            }
            out.write_all(&buffer[..n])?;
            report(Progress {
                step: "unpack",
                done: written,
                total: contents.bytes.max(written),
            });
        }
    }
    Ok(())
}

/// Writes the data directory `dir` (its files, recursively; links and special files skipped)
/// into a new zip at `zip`, names relative to `dir` as a PocketBase backup has them. Reports
/// `pack` progress in bytes.
pub fn pack(dir: &Path, zip: &Path, report: Report<'_>) -> Result<u64> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    let mut total = 0u64;
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(dir.join(&relative))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = relative.join(entry.file_name());
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                total += entry.metadata()?.len();
                files.push(path);
            }
        }
    }
    files.sort();
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::new(File::create_new(zip)?));
    let mut done = 0u64;
    let mut buffer = vec![0u8; 256 * 1024];
    for relative in &files {
        let Some(name) = relative.to_str() else {
            continue;
        };
        let mut source = File::open(dir.join(relative))?;
        let size = source.metadata()?.len();
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1))
            .large_file(size >= u32::MAX as u64);
        writer
            .start_file(name, options)
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        loop {
            let n = source.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            writer.write_all(&buffer[..n])?;
            done += n as u64;
            report(Progress {
                step: "pack",
                done,
                total,
            });
        }
    }
    let mut out = writer
        .finish()
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(files.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_entries: 100,
        max_bytes: 1 << 20,
    };

    fn quiet(_: Progress) {}

    /// A zip at `path` with `(name, content)` entries, stored or deflated.
    fn make(path: &Path, entries: &[(&str, &[u8])]) {
        let mut w = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, content) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(content).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn a_zipped_pb_data_folder_and_a_flat_backup_both_unpack() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("folder.zip");
        make(
            &folder,
            &[
                ("pb_data/data.db", b"db"),
                ("pb_data/storage/c/r/a.txt", b"hello"),
                ("__MACOSX/._x", b"junk"),
            ],
        );
        let out = dir.path().join("out");
        let contents = unpack(&folder, &out, LIMITS, &quiet).unwrap();
        assert_eq!(contents.prefix, "pb_data/");
        assert_eq!(
            std::fs::read(out.join("storage/c/r/a.txt")).unwrap(),
            b"hello"
        );
        assert!(!out.join("__MACOSX").exists());

        let flat = dir.path().join("flat.zip");
        make(&flat, &[("data.db", b"db"), ("auxiliary.db", b"aux")]);
        assert_eq!(check(&flat, LIMITS).unwrap().prefix, "");
    }

    #[test]
    fn climbing_absolute_and_linked_entries_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../evil", "storage/../../evil", "/etc/evil", "c:/evil"] {
            let zip = dir.path().join("bad.zip");
            make(&zip, &[("data.db", b"db"), (bad, b"x")]);
            let out = dir.path().join("out");
            let err = unpack(&zip, &out, LIMITS, &quiet).unwrap_err();
            assert!(err.to_string().contains("not allowed"), "{bad}: {err}");
            assert!(!out.exists());
            std::fs::remove_file(&zip).unwrap();
        }
        let zip = dir.path().join("link.zip");
        let mut w = zip::ZipWriter::new(File::create(&zip).unwrap());
        w.start_file("data.db", SimpleFileOptions::default())
            .unwrap();
        w.add_symlink("storage", "/etc", SimpleFileOptions::default())
            .unwrap();
        w.finish().unwrap();
        let err = check(&zip, LIMITS).unwrap_err();
        assert!(err.to_string().contains("symbolic links"), "{err}");
    }

    #[test]
    fn damaged_empty_and_oversized_archives_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("a.zip");
        make(&zip, &[("data.db", &[7u8; 4096])]);
        let bytes = std::fs::read(&zip).unwrap();
        std::fs::write(&zip, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(check(&zip, LIMITS), Err(Refusal::Damaged(_))));

        make(&zip, &[("notes.txt", b"x")]);
        assert!(matches!(check(&zip, LIMITS), Err(Refusal::NoData)));

        make(&zip, &[("data.db", &[0u8; 2048])]);
        let small = Limits {
            max_entries: 10,
            max_bytes: 1024,
        };
        assert!(matches!(check(&zip, small), Err(Refusal::TooLarge(_))));
        let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
        let mut entries: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        entries.push(("data.db", b"db"));
        make(&zip, &entries);
        assert!(matches!(check(&zip, small), Err(Refusal::TooLarge(_))));
    }

    #[test]
    fn a_packed_directory_unpacks_to_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("storage/c/r")).unwrap();
        std::fs::write(src.join("data.db"), vec![3u8; 300_000]).unwrap();
        std::fs::write(src.join("storage/c/r/a.txt"), b"hello").unwrap();
        let zip = dir.path().join("out.zip");
        assert_eq!(pack(&src, &zip, &quiet).unwrap(), 2);
        let out = dir.path().join("out");
        unpack(&zip, &out, LIMITS, &quiet).unwrap();
        assert_eq!(
            std::fs::read(out.join("data.db")).unwrap(),
            vec![3u8; 300_000]
        );
        assert_eq!(
            std::fs::read(out.join("storage/c/r/a.txt")).unwrap(),
            b"hello"
        );
    }
}
