//! A tenant's code on disk — `pb_hooks/`, `pb_migrations/` and `pb_public/` beside its
//! database, as PocketBase keeps them beside `pb_data` — and deploys that replace them whole.
//!
//! Invariants:
//! - Every tree that becomes a tenant's code went through [`Staging`]: each path is relative,
//!   plain (no `..`, no empty or `.` segment, no NUL or backslash), at most [`Limits::max_depth`]
//!   deep, and names a directory or a regular file; links, devices and pipes are refused, so no
//!   path under a code folder ever leads out of it. File count and bytes are bounded as they are
//!   written, not as an archive claims.
//! - A deploy is staged in a directory inside the tenant directory (same file system), checked,
//!   and only then swapped in folder by folder: on Linux by one `renameat2(RENAME_EXCHANGE)`, so
//!   a reader sees the whole old folder or the whole new one, never a half-written one and never
//!   none. The old folder is removed only after the swap succeeded; a refused or failed deploy
//!   leaves the old code as it was and removes the staging directory.
//! - The hooks check (the JavaScript engine's "do these hooks load?") sees the staged
//!   `pb_hooks` before anything is swapped; its refusal is the deploy's error message. Then,
//!   on a node that runs code, the staged `pb_migrations` not applied yet run on the tenant
//!   ([`Staging::commit_migrating`]); a failure refuses the deploy the same way.
//!
//! Work here is blocking file-system work: call it from `spawn_blocking`.

use std::fs::{self, File, Metadata};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use crate::{Error, Result};

/// The hooks folder's name, beside the database.
pub const HOOKS: &str = "pb_hooks";
/// The migrations folder's name.
pub const MIGRATIONS: &str = "pb_migrations";
/// The static site folder's name.
pub const PUBLIC: &str = "pb_public";

/// Prefix of staging directories inside a tenant directory (left-overs of a crash are removed
/// by the next deploy).
const STAGING_PREFIX: &str = ".code-staging-";

/// `<tenant_dir>/pb_hooks`.
pub fn hooks_dir(tenant_dir: &Path) -> PathBuf {
    tenant_dir.join(HOOKS)
}

/// `<tenant_dir>/pb_migrations`.
pub fn migrations_dir(tenant_dir: &Path) -> PathBuf {
    tenant_dir.join(MIGRATIONS)
}

/// `<tenant_dir>/pb_public`.
pub fn public_dir(tenant_dir: &Path) -> PathBuf {
    tenant_dir.join(PUBLIC)
}

/// One of the three code folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Folder {
    /// `pb_hooks`: JavaScript hooks.
    Hooks,
    /// `pb_migrations`: JavaScript migrations.
    Migrations,
    /// `pb_public`: the static site.
    Public,
}

impl Folder {
    /// All three, in a fixed order.
    pub const ALL: [Folder; 3] = [Folder::Hooks, Folder::Migrations, Folder::Public];

    /// The folder's name on disk and in archives.
    pub fn name(self) -> &'static str {
        match self {
            Folder::Hooks => HOOKS,
            Folder::Migrations => MIGRATIONS,
            Folder::Public => PUBLIC,
        }
    }

    /// The folder named `name`, if it is one of the three.
    pub fn from_name(name: &str) -> Option<Folder> {
        Folder::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Where this folder lives in `tenant_dir`.
    pub fn path(self, tenant_dir: &Path) -> PathBuf {
        tenant_dir.join(self.name())
    }
}

/// Bounds on one deploy (all folders it brings together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most regular files.
    pub max_files: u64,
    /// Most bytes of all files together.
    pub max_bytes: u64,
    /// Most bytes of one file.
    pub max_file_bytes: u64,
    /// Most path segments below a code folder (`a/b/c.js` is 3).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_files: 10_000,
            max_bytes: 256 << 20,
            max_file_bytes: 32 << 20,
            max_depth: 16,
        }
    }
}

/// A check of the staged hooks folder before a deploy goes live (the JavaScript engine loads
/// them); `Err` refuses the deploy with that message and the old code stays.
pub type HooksCheck<'a> = &'a (dyn Fn(&Path) -> std::result::Result<(), String> + Send + Sync);

/// Applies a deploy's staged `pb_migrations` (those not applied yet) to the tenant before the
/// new code goes live; `Err` (the failing file and its error) refuses the deploy, and nothing
/// of the migrations stands.
pub type MigrationsRun<'a> =
    &'a (dyn Fn(&Path) -> std::result::Result<Vec<String>, String> + Send + Sync);

/// Files and bytes of one folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderSummary {
    /// Which folder.
    pub folder: Folder,
    /// Regular files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When it was last written (the deploy or import that brought it), if it exists.
    pub modified: Option<SystemTime>,
}

/// A tree being assembled for a deploy, inside the tenant directory. Dropped without
/// [`Staging::commit`], it removes itself and nothing of the tenant's code changes.
#[derive(Debug)]
pub struct Staging {
    /// The tenant directory the code goes into.
    tenant_dir: PathBuf,
    /// The staging directory (inside `tenant_dir`).
    dir: PathBuf,
    /// Bounds checked as files are written.
    limits: Limits,
    /// Files and bytes written so far, per folder (`None`: folder not part of this deploy).
    counts: [Option<(u64, u64)>; 3],
}

impl Staging {
    /// Starts a deploy into `tenant_dir` (which must exist), removing staging left-overs of an
    /// earlier crash.
    pub fn new(tenant_dir: &Path, limits: Limits) -> Result<Self> {
        if !tenant_dir.is_dir() {
            return Err(Error::NotFound);
        }
        for entry in fs::read_dir(tenant_dir)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = tenant_dir.join(format!("{STAGING_PREFIX}{nanos}-{}", std::process::id()));
        fs::create_dir(&dir)?;
        Ok(Self {
            tenant_dir: tenant_dir.to_path_buf(),
            dir,
            limits,
            counts: [None; 3],
        })
    }

    /// The folders this deploy replaces so far.
    pub fn folders(&self) -> Vec<Folder> {
        Folder::ALL
            .into_iter()
            .filter(|f| self.counts[*f as usize].is_some())
            .collect()
    }

    /// The staged copy of `folder` (exists once the folder was added).
    pub fn staged(&self, folder: Folder) -> PathBuf {
        self.dir.join(folder.name())
    }

    /// Adds `folder` to the deploy (empty until files are written into it): the deploy then
    /// replaces it even if nothing more comes.
    pub fn include(&mut self, folder: Folder) -> Result<()> {
        if self.counts[folder as usize].is_none() {
            fs::create_dir(self.staged(folder))?;
            self.counts[folder as usize] = Some((0, 0));
        }
        Ok(())
    }

    /// Stages a copy of the directory `from` as `folder`. Links and special files in it refuse
    /// the whole deploy (a directory the user named should deploy as it is or not at all).
    pub fn add_dir(&mut self, folder: Folder, from: &Path) -> Result<()> {
        let meta = fs::symlink_metadata(from)
            .map_err(|e| Error::Invalid(format!("{} cannot be read: {e}", from.display())))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!(
                "{} is not a directory",
                from.display()
            )));
        }
        self.include(folder)?;
        // One open listing per level, with the relative path it lists.
        let mut levels = vec![(fs::read_dir(from)?, PathBuf::new())];
        while let Some((listing, relative)) = levels.last_mut() {
            let Some(entry) = listing.next() else {
                levels.pop();
                continue;
            };
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(Error::Invalid(format!(
                    "{}: file names must be UTF-8",
                    entry.path().display()
                )));
            };
            let path = relative.join(name);
            let path = path.to_string_lossy().into_owned();
            // `file_type` does not follow links.
            let kind = entry.file_type()?;
            if kind.is_dir() {
                self.make_dir(folder, &path)?;
                let child = PathBuf::from(&path);
                levels.push((fs::read_dir(entry.path())?, child));
            } else if kind.is_file() {
                let mut file = File::open(entry.path())?;
                self.write_file(folder, &path, &mut file)?;
            } else {
                return Err(unsafe_entry(
                    &format!("{}/{path}", folder.name()),
                    "links and special files are not deployed",
                ));
            }
        }
        Ok(())
    }

    /// Stages the folders found at the top of a gzip-compressed tar archive (`pb_hooks/…`,
    /// `pb_migrations/…`, `pb_public/…`, optionally under a leading `./`); only those present
    /// are replaced. Anything else at the top, any unsafe path, link or special entry, or an
    /// archive past the limits refuses the whole archive.
    pub fn add_tar_gz(&mut self, reader: impl Read) -> Result<()> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
        let entries = archive
            .entries()
            .map_err(|e| Error::Invalid(format!("the archive cannot be read: {e}")))?;
        let mut seen = 0u64;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| Error::Invalid(format!("the archive cannot be read: {e}")))?;
            seen += 1;
            // Directories count too, so an archive of endless empty folders stops.
            if seen > self.limits.max_files.saturating_mul(2) + 16 {
                return Err(Error::TooLarge(format!(
                    "the archive has more than {} files",
                    self.limits.max_files
                )));
            }
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8(raw)
                .map_err(|_| Error::Invalid("archive paths must be UTF-8".into()))?;
            let kind = entry.header().entry_type();
            let trimmed = name.strip_prefix("./").unwrap_or(&name);
            let trimmed = trimmed.trim_end_matches('/');
            if trimmed.is_empty() || trimmed == "." {
                if kind.is_dir() {
                    continue;
                }
                return Err(unsafe_entry(&name, "it has no name"));
            }
            check_relative(trimmed).map_err(|why| unsafe_entry(&name, why))?;
            let (top, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
            let Some(folder) = Folder::from_name(top) else {
                return Err(unsafe_entry(
                    &name,
                    "only pb_hooks/, pb_migrations/ and pb_public/ may be at the top",
                ));
            };
            match kind {
                tar::EntryType::Directory => {
                    self.include(folder)?;
                    if !rest.is_empty() {
                        self.make_dir(folder, rest)?;
                    }
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if rest.is_empty() {
                        return Err(unsafe_entry(&name, "a code folder must be a directory"));
                    }
                    self.include(folder)?;
                    self.write_file(folder, rest, &mut entry)?;
                }
                // Metadata entries of pax and GNU tar describe the next entry; the path checks
                // above already ran on the name they produce.
                tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName => {}
                _ => {
                    return Err(unsafe_entry(
                        &name,
                        "links and special files are not deployed",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Creates the directory `relative` (checked) inside the staged `folder`, with its parents.
    fn make_dir(&mut self, folder: Folder, relative: &str) -> Result<()> {
        let path = self.target(folder, relative)?;
        fs::create_dir_all(path)?;
        Ok(())
    }

    /// Writes `relative` (checked) inside the staged `folder` from `content`, counting its bytes
    /// against the limits as they come.
    fn write_file(&mut self, folder: Folder, relative: &str, content: &mut dyn Read) -> Result<()> {
        let path = self.target(folder, relative)?;
        let files: u64 = self.counts.iter().flatten().map(|c| c.0).sum();
        if files >= self.limits.max_files {
            return Err(Error::TooLarge(format!(
                "a deploy may hold at most {} files",
                self.limits.max_files
            )));
        }
        let total: u64 = self.counts.iter().flatten().map(|c| c.1).sum();
        let room = self
            .limits
            .max_file_bytes
            .min(self.limits.max_bytes.saturating_sub(total));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    Error::Invalid(format!("{}/{relative} appears twice", folder.name()))
                }
                _ => Error::Io(e),
            })?;
        // One byte past the room tells "too large" from "exactly at the limit".
        let written = std::io::copy(&mut content.take(room + 1), &mut out)?;
        if written > room {
            return Err(if room < self.limits.max_file_bytes {
                Error::TooLarge(format!(
                    "a deploy may hold at most {} bytes",
                    self.limits.max_bytes
                ))
            } else {
                Error::TooLarge(format!(
                    "{}/{relative} is larger than {} bytes",
                    folder.name(),
                    self.limits.max_file_bytes
                ))
            });
        }
        out.flush()?;
        let counts = self.counts[folder as usize].get_or_insert((0, 0));
        counts.0 += 1;
        counts.1 += written;
        Ok(())
    }

    /// The staged path of `relative` inside `folder`, after the path checks.
    fn target(&mut self, folder: Folder, relative: &str) -> Result<PathBuf> {
        check_relative(relative)
            .map_err(|why| unsafe_entry(&format!("{}/{relative}", folder.name()), why))?;
        if relative.split('/').count() > self.limits.max_depth {
            return Err(unsafe_entry(
                &format!("{}/{relative}", folder.name()),
                "it is nested too deep",
            ));
        }
        self.include(folder)?;
        Ok(self.staged(folder).join(relative))
    }

    /// Runs `check` on the staged hooks (when this deploy brings hooks), then swaps every
    /// staged folder in. Returns what was deployed. A refusal or failure leaves the tenant's
    /// code as it was.
    pub fn commit(self, check: Option<HooksCheck<'_>>) -> Result<Vec<FolderSummary>> {
        let folders = self.folders();
        if folders.is_empty() {
            return Err(Error::Invalid(
                "nothing to deploy: give pb_hooks, pb_migrations or pb_public".into(),
            ));
        }
        if let Some(check) = check
            && folders.contains(&Folder::Hooks)
        {
            check(&self.staged(Folder::Hooks))
                .map_err(|message| Error::Invalid(format!("the hooks were refused: {message}")))?;
        }
        // Every folder is swapped in; should one swap fail, the ones before it are swapped
        // back, so the tenant keeps all of its old code.
        let mut swapped: Vec<(Folder, bool)> = Vec::new();
        for folder in &folders {
            match swap_in(&self.staged(*folder), &folder.path(&self.tenant_dir)) {
                Ok(had_old) => swapped.push((*folder, had_old)),
                Err(e) => {
                    for (done, had_old) in swapped.into_iter().rev() {
                        let _ =
                            swap_back(&self.staged(done), &done.path(&self.tenant_dir), had_old);
                    }
                    return Err(e.into());
                }
            }
        }
        let modified = SystemTime::now();
        Ok(folders
            .into_iter()
            .map(|folder| {
                let (files, bytes) = self.counts[folder as usize].unwrap_or((0, 0));
                FolderSummary {
                    folder,
                    files,
                    bytes,
                    modified: Some(modified),
                }
            })
            .collect())
        // Dropping `self` removes the staging directory, which now holds the old folders.
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Puts the directory `staged` at `live`. Where `live` existed, the two are exchanged, so the
/// old tree is now at `staged`; returns whether it existed.
fn swap_in(staged: &Path, live: &Path) -> std::io::Result<bool> {
    match fs::symlink_metadata(live) {
        Ok(meta) if meta.is_dir() => {
            exchange(staged, live)?;
            Ok(true)
        }
        Ok(_) => {
            // A file or link where a code folder belongs was not made by a deploy; it goes.
            fs::remove_file(live)?;
            fs::rename(staged, live)?;
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::rename(staged, live)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Undoes [`swap_in`].
fn swap_back(staged: &Path, live: &Path, had_old: bool) -> std::io::Result<()> {
    if had_old {
        exchange(staged, live)
    } else {
        fs::rename(live, staged)
    }
}

/// Exchanges two directories in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

/// Exchanges two directories (in three renames where the system has no exchange).
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let aside = a.with_extension("aside");
    fs::rename(b, &aside)?;
    if let Err(e) = fs::rename(a, b) {
        let _ = fs::rename(&aside, b);
        return Err(e);
    }
    fs::rename(&aside, a)
}

fn unsafe_entry(name: &str, why: &str) -> Error {
    Error::Invalid(format!("{name:?} is not allowed: {why}"))
}

/// Checks a `/`-separated relative path: not empty, not absolute, no `..`, `.` or empty
/// segment, no backslash, NUL or control character.
fn check_relative(path: &str) -> std::result::Result<(), &'static str> {
    if path.is_empty() {
        return Err("it has no name");
    }
    if path.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err("backslashes and control characters are not allowed");
    }
    for segment in path.split('/') {
        match segment {
            "" | "." => return Err("empty or `.` path segments are not allowed"),
            ".." => return Err("`..` is not allowed"),
            _ => {}
        }
    }
    // The platform's own reading must agree that every part is a plain name.
    if !Path::new(path)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err("only plain names are allowed");
    }
    Ok(())
}

/// Files, bytes and last write of each existing code folder of `tenant_dir` (links and special
/// files are not counted).
pub fn summary(tenant_dir: &Path) -> Result<Vec<FolderSummary>> {
    let mut out = Vec::new();
    for folder in Folder::ALL {
        let path = folder.path(tenant_dir);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => meta,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let (files, bytes) = walk(&path, &mut |_, _, _| Ok(()))?;
        out.push(FolderSummary {
            folder,
            files,
            bytes,
            modified: meta.modified().ok(),
        });
    }
    Ok(out)
}

/// Walks the regular files under `dir` (links and special files skipped), calling `visit` with
/// each one's path relative to `dir` (`/`-separated), full path and metadata. Returns the files
/// and bytes seen.
fn walk(
    dir: &Path,
    visit: &mut dyn FnMut(&str, &Path, &Metadata) -> Result<()>,
) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut levels = vec![(fs::read_dir(dir)?, String::new())];
    while let Some((listing, prefix)) = levels.last_mut() {
        let Some(entry) = listing.next() else {
            levels.pop();
            continue;
        };
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            levels.push((fs::read_dir(entry.path())?, relative));
        } else if kind.is_file() {
            let meta = entry.metadata()?;
            visit(&relative, &entry.path(), &meta)?;
            files += 1;
            bytes += meta.len();
        }
    }
    Ok((files, bytes))
}

/// Writes the existing code folders of `tenant_dir` into `out` as a gzip-compressed tar, each
/// folder at the archive's top (the shape a deploy takes). Returns what was packed.
pub fn pack_tar_gz(tenant_dir: &Path, out: impl Write) -> Result<Vec<FolderSummary>> {
    let found = summary(tenant_dir)?;
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    for folder in &found {
        let root = folder.folder.path(tenant_dir);
        append_dir(&mut builder, folder.folder.name())?;
        let mut dirs = std::collections::BTreeSet::new();
        walk(&root, &mut |relative, path, meta| {
            // Parent folders first, once each, so empty-looking trees unpack the same.
            let mut parent = String::new();
            for segment in relative
                .split('/')
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .skip(1)
                .rev()
            {
                parent = if parent.is_empty() {
                    (*segment).to_string()
                } else {
                    format!("{parent}/{segment}")
                };
                if dirs.insert(parent.clone()) {
                    append_dir(&mut builder, &format!("{}/{parent}", folder.folder.name()))?;
                }
            }
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            header.set_mode(0o644);
            header.set_mtime(mtime_secs(meta));
            let file = File::open(path)?;
            // `take` guards against a file growing while it is packed.
            builder.append_data(
                &mut header,
                format!("{}/{relative}", folder.folder.name()),
                file.take(meta.len()),
            )?;
            Ok(())
        })?;
    }
    let gz = builder.into_inner()?;
    gz.finish()?;
    Ok(found)
}

fn append_dir<W: Write>(builder: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    builder.append_data(&mut header, format!("{name}/"), std::io::empty())?;
    Ok(())
}

fn mtime_secs(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Copies the existing code folders of `tenant_dir` into `to` (`to/pb_hooks`, …), regular
/// files and directories only. Returns what was copied.
pub fn copy_out(tenant_dir: &Path, to: &Path) -> Result<Vec<FolderSummary>> {
    let found = summary(tenant_dir)?;
    for folder in &found {
        let root = folder.folder.path(tenant_dir);
        let dest = folder.folder.path(to);
        fs::create_dir_all(&dest)?;
        walk(&root, &mut |relative, path, _| {
            let target = dest.join(relative);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(path, target)?;
            Ok(())
        })?;
    }
    Ok(found)
}

impl Staging {
    /// [`Staging::commit`] on a node that runs migrations: the staged hooks are checked, then
    /// `migrate` applies the staged migrations (when this deploy brings them), and only then
    /// is anything swapped in. A refusal of either leaves the tenant's code as it was.
    pub fn commit_migrating(
        self,
        check: Option<HooksCheck<'_>>,
        migrate: MigrationsRun<'_>,
    ) -> Result<Vec<FolderSummary>> {
        let folders = self.folders();
        if let Some(check) = check
            && folders.contains(&Folder::Hooks)
        {
            check(&self.staged(Folder::Hooks))
                .map_err(|message| Error::Invalid(format!("the hooks were refused: {message}")))?;
        }
        if folders.contains(&Folder::Migrations) {
            migrate(&self.staged(Folder::Migrations)).map_err(|message| {
                Error::Invalid(format!("the migrations were refused: {message}"))
            })?;
        }
        self.commit(None)
    }
}

/// Stages the code folders found in `dir` (a directory holding `pb_hooks/`, `pb_migrations/`
/// and/or `pb_public/`) into `staging`; returns how many it found.
pub fn stage_found(staging: &mut Staging, dir: &Path) -> Result<usize> {
    let mut found = 0;
    for folder in Folder::ALL {
        let path = folder.path(dir);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            staging.add_dir(folder, &path)?;
            found += 1;
        }
    }
    Ok(found)
}

/// What a request path resolves to in a static site.
#[derive(Debug)]
pub enum Lookup {
    /// Serve this regular file.
    File(PathBuf, Metadata),
    /// Answer 301 with this location (a directory without its trailing slash, a file with one,
    /// or an `index.html` named outright).
    Redirect(String),
    /// Nothing to serve: 404.
    NotFound,
}

/// The file PocketBase's static handler would serve for the raw (still percent-encoded) URL
/// path `raw` from `public` (a tenant's `pb_public`), falling back to the top `index.html` for
/// missing files as `pocketbase serve` does by default.
///
/// Stricter than PocketBase, never looser: a path that climbs (`..`, encoded or not), holds an
/// encoded slash, backslash or NUL, or names a dotfile (other than under `.well-known`) is
/// refused with 404 rather than answered with the index; links are never followed.
pub fn lookup(public: &Path, raw: &str) -> Lookup {
    let Some(segments) = decode_segments(raw) else {
        return Lookup::NotFound;
    };
    let index = || index_file(public);
    if segments.is_empty() {
        return match index_file(public) {
            Some((path, meta)) => Lookup::File(path, meta),
            None => Lookup::NotFound,
        };
    }
    // Every step is checked with `symlink_metadata`, so a link anywhere on the way is missing.
    let mut path = public.to_path_buf();
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => {}
        _ => return Lookup::NotFound,
    }
    let mut meta = None;
    for segment in &segments {
        path.push(segment);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() || m.is_file() => meta = Some(m),
            _ => {
                return match index() {
                    Some((p, m)) => Lookup::File(p, m),
                    None => Lookup::NotFound,
                };
            }
        }
        if meta.as_ref().is_some_and(Metadata::is_file) {
            break;
        }
    }
    let Some(meta) = meta else {
        return Lookup::NotFound;
    };
    let trailing = raw.ends_with('/');
    if meta.is_dir() {
        if !trailing {
            return Lookup::Redirect(safe_redirect(&format!("{raw}/")));
        }
        return match fs::symlink_metadata(path.join("index.html")) {
            Ok(m) if m.is_file() => Lookup::File(path.join("index.html"), m),
            _ => match index() {
                Some((p, m)) => Lookup::File(p, m),
                None => Lookup::NotFound,
            },
        };
    }
    // A file part-way through the path (`/a.txt/more`) is missing, as PocketBase's `Stat` says.
    if segments_in(&path, public) != segments.len() {
        return match index() {
            Some((p, m)) => Lookup::File(p, m),
            None => Lookup::NotFound,
        };
    }
    if trailing {
        return Lookup::Redirect(safe_redirect(raw.trim_end_matches('/')));
    }
    if let Some(stripped) = raw.strip_suffix("index.html") {
        return Lookup::Redirect(safe_redirect(stripped));
    }
    Lookup::File(path, meta)
}

fn segments_in(path: &Path, root: &Path) -> usize {
    path.strip_prefix(root)
        .map_or(0, |p| p.components().count())
}

fn index_file(public: &Path) -> Option<(PathBuf, Metadata)> {
    let path = public.join("index.html");
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => {
            // The folder itself must not be a link either.
            fs::symlink_metadata(public)
                .ok()
                .filter(Metadata::is_dir)
                .map(|_| (path, meta))
        }
        _ => None,
    }
}

/// The decoded, checked segments of a raw URL path (`None`: refused). Empty segments (`//`,
/// the trailing slash) are skipped as `filepath.Clean` does.
fn decode_segments(raw: &str) -> Option<Vec<String>> {
    if raw.len() > 2048 || !raw.starts_with('/') {
        return None;
    }
    let mut out = Vec::new();
    for part in raw.split('/') {
        if part.is_empty() {
            continue;
        }
        let decoded = percent_decode(part)?;
        if decoded.contains(['/', '\\', '\0']) || decoded.chars().any(char::is_control) {
            return None;
        }
        if decoded == "." || decoded == ".." {
            return None;
        }
        if decoded.starts_with('.') && !(out.is_empty() && decoded == ".well-known") {
            return None;
        }
        out.push(decoded);
    }
    if out.len() > 32 {
        return None;
    }
    Some(out)
}

fn percent_decode(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Collapses leading slashes and backslashes to one slash, so a redirect never leaves the
/// host (`//evil.example` would).
fn safe_redirect(path: &str) -> String {
    let rest = path.trim_start_matches(['/', '\\']);
    format!("/{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_link_name("/etc/passwd").unwrap();
            }
            // Raw names, so tests can write what a hostile archiver would.
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn site(tenant: &Path) {
        let public = public_dir(tenant);
        fs::create_dir_all(public.join("docs")).unwrap();
        fs::create_dir_all(public.join("empty")).unwrap();
        fs::write(public.join("index.html"), "<h1>home</h1>").unwrap();
        fs::write(public.join("app.js"), "console.log(1)").unwrap();
        fs::write(public.join("docs/index.html"), "docs").unwrap();
        fs::write(public.join(".env"), "SECRET=1").unwrap();
    }

    #[test]
    fn a_tar_gz_deploys_only_the_folders_it_brings() {
        let tenant = tempfile::tempdir().unwrap();
        fs::create_dir_all(hooks_dir(tenant.path())).unwrap();
        fs::write(hooks_dir(tenant.path()).join("old.pb.js"), "old").unwrap();
        let archive = tar_gz(&[
            ("pb_public/", tar::EntryType::Directory, b""),
            (
                "pb_public/index.html",
                tar::EntryType::Regular,
                b"<p>hi</p>",
            ),
            ("./pb_public/css/site.css", tar::EntryType::Regular, b"p{}"),
        ]);
        let mut staging = Staging::new(tenant.path(), Limits::default()).unwrap();
        staging.add_tar_gz(archive.as_slice()).unwrap();
        let done = staging.commit(None).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(
            (done[0].folder, done[0].files, done[0].bytes),
            (Folder::Public, 2, 12)
        );
        assert_eq!(
            fs::read(public_dir(tenant.path()).join("css/site.css")).unwrap(),
            b"p{}"
        );
        assert!(hooks_dir(tenant.path()).join("old.pb.js").exists());
        // Nothing of the staging is left.
        let names: Vec<_> = fs::read_dir(tenant.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn unsafe_archives_are_refused_whole_and_the_old_code_stays() {
        let tenant = tempfile::tempdir().unwrap();
        fs::create_dir_all(public_dir(tenant.path())).unwrap();
        fs::write(public_dir(tenant.path()).join("index.html"), "old").unwrap();
        let good: (&str, tar::EntryType, &[u8]) =
            ("pb_public/index.html", tar::EntryType::Regular, b"new");
        let cases: Vec<Vec<(&str, tar::EntryType, &[u8])>> = vec![
            vec![good, ("pb_public/../../x", tar::EntryType::Regular, b"x")],
            vec![good, ("../pb_public/x", tar::EntryType::Regular, b"x")],
            vec![good, ("/pb_public/x", tar::EntryType::Regular, b"x")],
            vec![good, ("pb_public/link", tar::EntryType::Symlink, b"")],
            vec![good, ("pb_public/hard", tar::EntryType::Link, b"")],
            vec![good, ("pb_public/dev", tar::EntryType::Char, b"")],
            vec![good, ("pb_data/data.db", tar::EntryType::Regular, b"x")],
            vec![good, ("pb_public", tar::EntryType::Regular, b"x")],
        ];
        for case in cases {
            let archive = tar_gz(&case);
            let mut staging = Staging::new(tenant.path(), Limits::default()).unwrap();
            let refused = staging
                .add_tar_gz(archive.as_slice())
                .and_then(|()| staging.commit(None).map(|_| ()));
            assert!(
                matches!(refused, Err(Error::Invalid(_))),
                "{case:?}: {refused:?}"
            );
            assert_eq!(
                fs::read_to_string(public_dir(tenant.path()).join("index.html")).unwrap(),
                "old"
            );
        }
        let mut staging = Staging::new(tenant.path(), Limits::default()).unwrap();
        assert!(staging.add_tar_gz(&b"not gzip"[..]).is_err());
        drop(staging);
        assert_eq!(fs::read_dir(tenant.path()).unwrap().count(), 1);
    }

    #[test]
    fn limits_stop_a_deploy_as_it_is_written() {
        let tenant = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_files: 2,
            max_bytes: 10,
            max_file_bytes: 6,
            max_depth: 2,
        };
        let deploy = |entries: &[(&str, tar::EntryType, &[u8])]| {
            let mut staging = Staging::new(tenant.path(), limits).unwrap();
            staging.add_tar_gz(tar_gz(entries).as_slice())
        };
        let reg = tar::EntryType::Regular;
        assert!(matches!(
            deploy(&[("pb_public/a", reg, b"1234567")]),
            Err(Error::TooLarge(_))
        ));
        assert!(matches!(
            deploy(&[
                ("pb_public/a", reg, b"123456"),
                ("pb_public/b", reg, b"12345")
            ]),
            Err(Error::TooLarge(_))
        ));
        assert!(matches!(
            deploy(&[
                ("pb_public/a", reg, b"1"),
                ("pb_public/b", reg, b"1"),
                ("pb_hooks/c", reg, b"1")
            ]),
            Err(Error::TooLarge(_))
        ));
        assert!(matches!(
            deploy(&[("pb_public/a/b/c", reg, b"1")]),
            Err(Error::Invalid(_))
        ));
        assert!(
            deploy(&[
                ("pb_public/a/b", reg, b"123456"),
                ("pb_hooks/c", reg, b"1234")
            ])
            .is_ok()
        );
    }

    #[test]
    fn a_refused_hooks_check_keeps_the_old_code() {
        let tenant = tempfile::tempdir().unwrap();
        fs::create_dir_all(hooks_dir(tenant.path())).unwrap();
        fs::write(hooks_dir(tenant.path()).join("main.pb.js"), "old").unwrap();
        let source = tempfile::tempdir().unwrap();
        fs::create_dir_all(source.path().join("pb_hooks")).unwrap();
        fs::write(source.path().join("pb_hooks/main.pb.js"), "broken(").unwrap();
        fs::create_dir_all(source.path().join("pb_public")).unwrap();
        fs::write(source.path().join("pb_public/index.html"), "new").unwrap();

        let mut staging = Staging::new(tenant.path(), Limits::default()).unwrap();
        assert_eq!(stage_found(&mut staging, source.path()).unwrap(), 2);
        let check = |dir: &Path| {
            let code = fs::read_to_string(dir.join("main.pb.js")).map_err(|e| e.to_string())?;
            if code.ends_with('(') {
                Err("main.pb.js:1 unexpected end of input".to_string())
            } else {
                Ok(())
            }
        };
        let err = staging.commit(Some(&check)).unwrap_err();
        assert!(err.to_string().contains("unexpected end"), "{err}");
        assert_eq!(
            fs::read_to_string(hooks_dir(tenant.path()).join("main.pb.js")).unwrap(),
            "old"
        );
        assert!(!public_dir(tenant.path()).exists());

        fs::write(source.path().join("pb_hooks/main.pb.js"), "ok()").unwrap();
        let mut staging = Staging::new(tenant.path(), Limits::default()).unwrap();
        stage_found(&mut staging, source.path()).unwrap();
        staging.commit(Some(&check)).unwrap();
        assert_eq!(
            fs::read_to_string(hooks_dir(tenant.path()).join("main.pb.js")).unwrap(),
            "ok()"
        );
        assert_eq!(summary(tenant.path()).unwrap().len(), 2);
    }

    #[test]
    fn a_failing_migration_refuses_the_deploy_after_the_hooks_check_and_before_the_swap() {
        let tenant = tempfile::tempdir().unwrap();
        fs::create_dir_all(migrations_dir(tenant.path())).unwrap();
        fs::write(migrations_dir(tenant.path()).join("1_old.js"), "old").unwrap();
        let source = tempfile::tempdir().unwrap();
        fs::create_dir_all(source.path().join("pb_hooks")).unwrap();
        fs::write(source.path().join("pb_hooks/main.pb.js"), "ok()").unwrap();
        fs::create_dir_all(source.path().join("pb_migrations")).unwrap();
        fs::write(source.path().join("pb_migrations/2_new.js"), "fails").unwrap();
        let check = |dir: &Path| match fs::read_to_string(dir.join("main.pb.js")) {
            Ok(code) if code == "ok()" => Ok(()),
            _ => Err("the hooks do not load".to_string()),
        };
        let ran = std::sync::atomic::AtomicUsize::new(0);
        let migrate = |dir: &Path| {
            ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match fs::read_to_string(dir.join("2_new.js")).map_err(|e| e.to_string())? {
                code if code == "fails" => {
                    Err("failed to apply migration 2_new.js: boom".to_string())
                }
                _ => Ok(vec!["2_new.js".to_string()]),
            }
        };

        let mut staging = Staging::new(tenant.path(), Limits::default()).unwrap();
        stage_found(&mut staging, source.path()).unwrap();
        let err = staging
            .commit_migrating(Some(&check), &migrate)
            .unwrap_err();
        assert!(err.to_string().contains("2_new.js: boom"), "{err}");
        assert!(migrations_dir(tenant.path()).join("1_old.js").exists());
        assert!(!hooks_dir(tenant.path()).exists());

        // Hooks that do not load are refused before any migration runs.
        fs::write(source.path().join("pb_hooks/main.pb.js"), "broken(").unwrap();
        let mut staging = Staging::new(tenant.path(), Limits::default()).unwrap();
        stage_found(&mut staging, source.path()).unwrap();
        let err = staging
            .commit_migrating(Some(&check), &migrate)
            .unwrap_err();
        assert!(err.to_string().contains("the hooks were refused"), "{err}");
        assert_eq!(ran.load(std::sync::atomic::Ordering::Relaxed), 1);

        fs::write(source.path().join("pb_hooks/main.pb.js"), "ok()").unwrap();
        fs::write(source.path().join("pb_migrations/2_new.js"), "works").unwrap();
        let mut staging = Staging::new(tenant.path(), Limits::default()).unwrap();
        stage_found(&mut staging, source.path()).unwrap();
        staging.commit_migrating(Some(&check), &migrate).unwrap();
        assert!(migrations_dir(tenant.path()).join("2_new.js").exists());
        assert!(!migrations_dir(tenant.path()).join("1_old.js").exists());
        assert!(hooks_dir(tenant.path()).join("main.pb.js").exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_with_a_link_is_refused() {
        let tenant = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        fs::create_dir_all(source.path().join("pb_public")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", source.path().join("pb_public/p")).unwrap();
        let mut staging = Staging::new(tenant.path(), Limits::default()).unwrap();
        assert!(matches!(
            stage_found(&mut staging, source.path()),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn packed_code_deploys_back_the_same() {
        let tenant = tempfile::tempdir().unwrap();
        site(tenant.path());
        fs::create_dir_all(migrations_dir(tenant.path())).unwrap();
        fs::write(migrations_dir(tenant.path()).join("1_init.js"), "migrate()").unwrap();
        let mut packed = Vec::new();
        let found = pack_tar_gz(tenant.path(), &mut packed).unwrap();
        assert_eq!(found.len(), 2);

        let other = tempfile::tempdir().unwrap();
        let mut staging = Staging::new(other.path(), Limits::default()).unwrap();
        // The dotfile packs and unpacks; it is only never served.
        staging.add_tar_gz(packed.as_slice()).unwrap();
        let deployed = staging.commit(None).unwrap();
        assert_eq!(deployed.iter().map(|d| d.files).sum::<u64>(), 5);
        assert_eq!(
            fs::read(public_dir(other.path()).join("docs/index.html")).unwrap(),
            b"docs"
        );

        let out = tempfile::tempdir().unwrap();
        copy_out(other.path(), out.path()).unwrap();
        assert_eq!(
            fs::read(out.path().join("pb_migrations/1_init.js")).unwrap(),
            b"migrate()"
        );
    }

    #[test]
    fn lookup_follows_pocketbase_static_rules() {
        let tenant = tempfile::tempdir().unwrap();
        site(tenant.path());
        let public = public_dir(tenant.path());
        let file = |raw: &str| match lookup(&public, raw) {
            Lookup::File(path, _) => path
                .strip_prefix(&public)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            other => format!("{other:?}"),
        };
        let redirect = |raw: &str| match lookup(&public, raw) {
            Lookup::Redirect(to) => to,
            other => format!("{other:?}"),
        };
        assert_eq!(file("/"), "index.html");
        assert_eq!(file("/app.js"), "app.js");
        assert_eq!(file("/docs/"), "docs/index.html");
        assert_eq!(file("/empty/"), "index.html");
        assert_eq!(file("/no/such/page"), "index.html");
        assert_eq!(file("/app.js/more"), "index.html");
        assert_eq!(redirect("/docs"), "/docs/");
        assert_eq!(redirect("/app.js/"), "/app.js");
        assert_eq!(redirect("/index.html"), "/");
        assert_eq!(redirect("/docs/index.html"), "/docs/");
        assert_eq!(redirect("//docs"), "/docs/");
        for refused in [
            "/../secret",
            "/docs/../app.js",
            "/%2e%2e/secret",
            "/docs%2F..%2Fapp.js",
            "/docs%5capp.js",
            "/.env",
            "/docs/.hidden",
            "/a%00b",
            "/%zz",
            "relative",
        ] {
            assert!(
                matches!(lookup(&public, refused), Lookup::NotFound),
                "{refused}"
            );
        }
        fs::remove_file(public.join("index.html")).unwrap();
        assert!(matches!(lookup(&public, "/"), Lookup::NotFound));
        assert!(matches!(lookup(&public, "/nothing"), Lookup::NotFound));
        assert!(matches!(
            lookup(&tenant.path().join("none"), "/"),
            Lookup::NotFound
        ));
    }

    #[cfg(unix)]
    #[test]
    fn lookup_never_follows_a_link() {
        let tenant = tempfile::tempdir().unwrap();
        site(tenant.path());
        let public = public_dir(tenant.path());
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), public.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), public.join("s.txt"))
            .unwrap();
        for raw in ["/out/secret.txt", "/s.txt"] {
            match lookup(&public, raw) {
                Lookup::File(path, _) => assert!(path.ends_with("index.html"), "{raw}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }
}
