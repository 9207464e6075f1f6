//! The certificate store: one directory per host under `<data>/certs/`, read lazily into a memory
//! cache that handshakes consult without touching the disk; a renewal swaps an entry atomically.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::x509::{self, Facts};

const CHAIN_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

/// Certificates by host name. Share it behind an `Arc`.
pub struct CertStore {
    /// `<data>/certs`.
    dir: PathBuf,
    /// `.<platform domain>`: the names the operator's wildcard covers end with it.
    wildcard_suffix: String,
    /// Every host with a certificate on disk, with its validity.
    index: RwLock<HashMap<String, Facts>>,
    /// Certificates read so far.
    cache: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// The operator's `*.<domain>` certificate, if any.
    wildcard: RwLock<Option<Arc<CertifiedKey>>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// Whether `name` is a plausible lowercase DNS name, safe as a directory name.
pub fn plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Parses a PEM chain (leaf first) and a PEM private key into a signing certificate.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<(CertifiedKey, Facts), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading the certificate chain: {e}"))?;
    let leaf = chain
        .first()
        .ok_or("the certificate file holds no certificate")?;
    let facts = x509::facts(leaf).ok_or("the certificate cannot be parsed")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("reading the private key: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    Ok((CertifiedKey::new(chain, signer), facts))
}

/// Writes `bytes` to `path` through a temporary file and a rename, with `mode`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl CertStore {
    /// Opens (creating, mode 0700) the store in `dir` and indexes the certificates there. Reads
    /// every certificate's validity but no key: run it off the async executor.
    pub fn open(dir: &Path, platform_domain: &str) -> std::io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut index = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !plausible_name(&name) {
                continue;
            }
            let Ok(pem) = std::fs::read(entry.path().join(CHAIN_FILE)) else {
                continue;
            };
            let leaf = CertificateDer::pem_slice_iter(&pem).next();
            if let Some(facts) = leaf.and_then(|c| c.ok()).and_then(|c| x509::facts(&c)) {
                index.insert(name, facts);
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            wildcard_suffix: format!(".{}", platform_domain.trim_end_matches('.')),
            index: RwLock::new(index),
            cache: RwLock::new(HashMap::new()),
            wildcard: RwLock::new(None),
        })
    }

    /// The certificate for `name` if it is in memory (its own, or the operator's wildcard when
    /// that covers it). Never touches the disk.
    pub fn get(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(found) = read(&self.cache).get(name) {
            return Some(found.clone());
        }
        self.wildcard_for(name)
    }

    /// The operator's wildcard if it covers `name` (exactly one label below the domain).
    fn wildcard_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let label = name.strip_suffix(self.wildcard_suffix.as_str())?;
        if label.is_empty() || label.contains('.') {
            return None;
        }
        read(&self.wildcard).clone()
    }

    /// Whether a certificate for `name` exists (on disk, in memory, or the wildcard).
    pub fn has(&self, name: &str) -> bool {
        read(&self.index).contains_key(name) || self.wildcard_for(name).is_some()
    }

    /// The certificate for `name`, reading it from disk on first use (on a blocking thread).
    pub async fn load(self: &Arc<Self>, name: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(found) = self.get(name) {
            return Some(found);
        }
        if !read(&self.index).contains_key(name) {
            return None;
        }
        let store = self.clone();
        let host = name.to_string();
        tokio::task::spawn_blocking(move || store.read_from_disk(&host))
            .await
            .ok()
            .flatten()
    }

    fn read_from_disk(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let dir = self.dir.join(name);
        let chain = std::fs::read(dir.join(CHAIN_FILE)).ok()?;
        let key = std::fs::read(dir.join(KEY_FILE)).ok()?;
        match certified_key(&chain, &key) {
            Ok((certified, _)) => {
                let certified = Arc::new(certified);
                write(&self.cache)
                    .entry(name.to_string())
                    .or_insert(certified)
                    .clone()
                    .into()
            }
            Err(e) => {
                tracing::warn!(host = name, error = %e, "a stored certificate cannot be used");
                None
            }
        }
    }

    /// Stores a new certificate for `name` (key file mode 0600) and swaps it in for new
    /// handshakes. Blocking: run it off the async executor.
    pub fn save(&self, name: &str, chain_pem: &str, key_pem: &str) -> Result<Facts, String> {
        certified_key(chain_pem.as_bytes(), key_pem.as_bytes())?;
        self.write_files(name, chain_pem, key_pem)?;
        self.install(name, chain_pem, key_pem)
    }

    /// Writes the files of `name`'s certificate (key file mode 0600) without touching memory.
    /// Blocking: run it off the async executor.
    pub fn write_files(&self, name: &str, chain_pem: &str, key_pem: &str) -> Result<(), String> {
        if !plausible_name(name) {
            return Err("not a host name".into());
        }
        let dir = self.dir.join(name);
        let io = |e: std::io::Error| format!("writing the certificate: {e}");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io)?;
        write_atomically(&dir.join(KEY_FILE), key_pem.as_bytes(), 0o600).map_err(io)?;
        write_atomically(&dir.join(CHAIN_FILE), chain_pem.as_bytes(), 0o644).map_err(io)
    }

    /// Reads the files of `name`'s certificate: (chain PEM, key PEM), when it has them.
    /// Blocking: run it off the async executor.
    pub fn read_files(&self, name: &str) -> Option<(String, String)> {
        if !plausible_name(name) || !read(&self.index).contains_key(name) {
            return None;
        }
        let dir = self.dir.join(name);
        let chain = std::fs::read_to_string(dir.join(CHAIN_FILE)).ok()?;
        let key = std::fs::read_to_string(dir.join(KEY_FILE)).ok()?;
        Some((chain, key))
    }

    /// Swaps a certificate for `name` in for new handshakes, in memory only (a copy kept
    /// elsewhere, such as a cluster's shared state). Parses but does no I/O.
    pub fn install(&self, name: &str, chain_pem: &str, key_pem: &str) -> Result<Facts, String> {
        if !plausible_name(name) {
            return Err("not a host name".into());
        }
        let (certified, facts) = certified_key(chain_pem.as_bytes(), key_pem.as_bytes())?;
        write(&self.cache).insert(name.to_string(), Arc::new(certified));
        write(&self.index).insert(name.to_string(), facts.clone());
        Ok(facts)
    }

    /// Forgets `name` at once and deletes its files.
    pub fn remove(&self, name: &str) {
        write(&self.cache).remove(name);
        let known = write(&self.index).remove(name).is_some();
        if known && plausible_name(name) {
            let _ = std::fs::remove_dir_all(self.dir.join(name));
        }
    }

    /// Validity of the stored certificate of `name`.
    pub fn facts(&self, name: &str) -> Option<Facts> {
        read(&self.index).get(name).cloned()
    }

    /// Every stored host with its certificate's validity.
    pub fn hosts(&self) -> Vec<(String, Facts)> {
        read(&self.index)
            .iter()
            .map(|(name, facts)| (name.clone(), facts.clone()))
            .collect()
    }

    /// How many certificates are in memory.
    pub fn loaded(&self) -> usize {
        read(&self.cache).len()
    }

    /// Installs (or replaces) the operator's wildcard certificate.
    pub fn set_wildcard(&self, certified: CertifiedKey) {
        *write(&self.wildcard) = Some(Arc::new(certified));
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A self-signed certificate for `names`: (chain PEM, key PEM).
    pub fn self_signed(names: &[&str]) -> (String, String) {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[tokio::test]
    async fn saved_certificates_survive_a_reopen_and_load_lazily() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::open(dir.path(), "example.com").unwrap();
        let (chain, key) = self_signed(&["a.example.com"]);
        store.save("a.example.com", &chain, &key).unwrap();
        let mode = std::fs::metadata(dir.path().join("a.example.com/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.get("a.example.com").is_some());

        let store = Arc::new(CertStore::open(dir.path(), "example.com").unwrap());
        assert!(store.has("a.example.com"));
        assert!(store.get("a.example.com").is_none(), "nothing read yet");
        assert!(store.load("a.example.com").await.is_some());
        assert!(store.get("a.example.com").is_some());
        assert!(store.load("b.example.com").await.is_none());
        assert_eq!(store.loaded(), 1);

        store.remove("a.example.com");
        assert!(store.get("a.example.com").is_none());
        assert!(!dir.path().join("a.example.com").exists());
    }

    #[test]
    fn the_wildcard_covers_one_label_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::open(dir.path(), "example.com").unwrap();
        let (chain, key) = self_signed(&["*.example.com"]);
        store.set_wildcard(certified_key(chain.as_bytes(), key.as_bytes()).unwrap().0);
        assert!(store.get("app.example.com").is_some());
        assert!(store.get("a.b.example.com").is_none());
        assert!(store.get("example.com").is_none());
        assert!(store.get("app.example.org").is_none());
    }

    #[test]
    fn odd_names_are_refused() {
        for name in ["", "../x", ".a", "a..b", "A.com", "a/b", "a.com."] {
            assert!(!plausible_name(name), "{name}");
        }
        assert!(plausible_name("app-1.example.com"));
    }
}
