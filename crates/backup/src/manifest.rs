//! The manifest of a backup: what it holds, each object's size and sha256 (compressed and
//! raw), and the record counts a restore drill compares against. Written after every object,
//! so its presence is what makes a backup complete.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// File name of the manifest inside a backup's directory.
pub const MANIFEST: &str = "manifest.json";
/// Largest manifest read back (a manifest is a few KiB).
pub const MAX_MANIFEST: u64 = 1 << 20;
/// The manifest format this version writes and reads.
pub const FORMAT: u32 = 1;

/// One object of a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectEntry {
    /// What it restores to: `data.db`, `auxiliary.db`, `storage` or `s3files` (files the
    /// tenant keeps in S3, put back there by a restore).
    pub name: String,
    /// Object name inside the backup's directory.
    pub object: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// sha256 of the compressed object, hex.
    pub sha256: String,
    /// Uncompressed size in bytes.
    pub raw_size: u64,
    /// sha256 of the uncompressed bytes, hex.
    pub raw_sha256: String,
}

/// A complete backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Manifest format.
    pub format: u32,
    /// Backup id: its start time and a random suffix, so ids sort by time.
    pub id: String,
    /// The tenant's stable id.
    pub tenant_id: String,
    /// The tenant's slug when the backup was made.
    pub slug: String,
    /// When the snapshot was taken (RFC 3339); it holds every write acknowledged before.
    pub created: String,
    /// When the upload finished (RFC 3339).
    pub finished: String,
    /// The objects, in restore order.
    pub objects: Vec<ObjectEntry>,
    /// Records per collection table at the snapshot.
    pub counts: BTreeMap<String, i64>,
    /// Set when the tenant's WAL is shipped: `data.db` is the database file right after a
    /// full checkpoint at this WAL position, and the segments under
    /// `wal/<tenant id>/<backup id>/` replay every later commit on top of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<crate::ship::WalStart>,
    /// The ownership generation of the node that took the snapshot (the cluster's fencing
    /// number for the tenant; 0 on a single node, and in backups made before clusters). It is
    /// also in the backup id (see [`new_id_owned`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ownership_generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Manifest {
    /// Total compressed size.
    pub fn size(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }

    /// The key of the backup's directory: `<tenant id>/<backup id>/`.
    pub fn dir(tenant_id: &str, id: &str) -> String {
        format!("{tenant_id}/{id}/")
    }

    /// Parses and checks a manifest read from `key`.
    pub fn parse(bytes: &[u8], tenant_id: &str, id: &str) -> Result<Self> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("the manifest cannot be read: {e}")))?;
        if manifest.format != FORMAT {
            return Err(Error::Corrupt(format!(
                "unknown manifest format {}",
                manifest.format
            )));
        }
        if manifest.tenant_id != tenant_id
            || manifest.id != id
            || ownership_of(id) != Some(manifest.ownership_generation)
        {
            return Err(Error::Corrupt(
                "the manifest belongs to another backup".into(),
            ));
        }
        let known = [
            "data.db",
            "auxiliary.db",
            "storage",
            crate::remote::NAME,
            crate::CODE_FOLDERS[0],
            crate::CODE_FOLDERS[1],
            crate::CODE_FOLDERS[2],
        ];
        if !manifest.objects.iter().any(|o| o.name == "data.db")
            || manifest.objects.iter().any(|o| {
                !known.contains(&o.name.as_str())
                    || o.object.contains('/')
                    || o.object.starts_with('.')
                    || o.sha256.len() != 64
                    || o.raw_sha256.len() != 64
            })
        {
            return Err(Error::Corrupt(
                "the manifest lists unexpected objects".into(),
            ));
        }
        Ok(manifest)
    }
}

/// A new backup id for a snapshot started at `now`: `YYYYMMDDTHHMMSSZ-xxxxxxxx`.
pub fn new_id(now: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{:08x}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        rand::random::<u32>()
    )
}

/// Length of the ownership tag `-o` + 10 digits that [`new_id_owned`] appends.
const OWNERSHIP_TAG: usize = 12;

/// A new backup id for a snapshot started at `now` by a node holding the tenant under
/// ownership generation `ownership`: [`new_id`] for 0 (the single-node layout), else
/// [`new_id`] followed by `-o` and the generation in 10 digits, so a listing of the target
/// shows which owner wrote each snapshot.
pub fn new_id_owned(now: time::OffsetDateTime, ownership: u64) -> String {
    let id = new_id(now);
    if ownership == 0 {
        id
    } else {
        format!("{id}-o{ownership:010}")
    }
}

/// The ownership generation a backup id carries (0 without a tag); `None` when `id` is not a
/// backup id.
pub fn ownership_of(id: &str) -> Option<u64> {
    let plain = |id: &str| {
        id.len() == 25
            && id.bytes().all(|b| {
                b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'T' || b == b'Z' || b == b'-'
            })
    };
    match id.len() {
        25 => plain(id).then_some(0),
        n if n == 25 + OWNERSHIP_TAG => {
            let (base, tag) = id.split_at(25);
            let digits = tag.strip_prefix("-o")?;
            if !plain(base) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok().filter(|g| *g > 0)
        }
        _ => None,
    }
}

/// Whether `id` has the shape [`new_id`] or [`new_id_owned`] makes.
pub fn is_id(id: &str) -> bool {
    ownership_of(id).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_ownership_generation() {
        let now = time::OffsetDateTime::now_utc();
        let single = new_id_owned(now, 0);
        assert_eq!(single.len(), 25);
        assert_eq!(ownership_of(&single), Some(0));
        let owned = new_id_owned(now, 7);
        assert!(owned.ends_with("-o0000000007"), "{owned}");
        assert_eq!(ownership_of(&owned), Some(7));
        assert!(is_id(&owned) && is_id(&single));
        for bad in [
            format!("{single}-o000000000x"),
            format!("{single}-o0000000000"),
            format!("{single}-x0000000007"),
            format!("{single}/"),
            "../x".to_string(),
        ] {
            assert!(!is_id(&bad), "{bad}");
        }
    }
}
