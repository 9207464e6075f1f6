//! Uploads on their way in: each file part is streamed to a temporary file next to the
//! tenant's storage (so moving it into place is a hard link, not a copy), with a size cap, and
//! its first bytes kept for content sniffing.

use std::path::Path;

use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use crate::mime::{SNIFF_LEN, Sniffed, sniff};
use crate::{Error, Result};

/// A file being received.
pub struct Spool {
    /// The open temporary file.
    file: tokio::fs::File,
    /// Its path; the file is removed when this drops.
    path: TempPath,
    /// Bytes written so far.
    size: u64,
    /// The first bytes, for sniffing.
    head: Vec<u8>,
    /// Most bytes accepted.
    cap: u64,
}

/// A received upload, kept on disk until dropped.
#[derive(Debug)]
pub struct Staged {
    /// The client's file name.
    pub client_name: String,
    /// Size in bytes.
    pub size: u64,
    /// The first bytes of the file.
    pub head: Vec<u8>,
    /// The temporary file (removed on drop).
    path: TempPath,
}

impl Staged {
    /// Where the bytes are.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The content type read from the bytes.
    pub fn sniffed(&self) -> Sniffed {
        sniff(&self.head)
    }
}

impl Spool {
    /// Starts a temporary file in `dir` (created if missing) accepting at most `cap` bytes.
    pub async fn create(dir: &Path, cap: u64) -> Result<Self> {
        tokio::fs::create_dir_all(dir).await?;
        let dir = dir.to_path_buf();
        let named = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new().prefix("upload-").tempfile_in(dir)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        let (file, path) = named.into_parts();
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            path,
            size: 0,
            head: Vec::new(),
            cap,
        })
    }

    /// Appends a chunk; [`Error::TooLarge`] once the cap is passed (the partial file is
    /// removed when the spool drops).
    pub async fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.cap {
            return Err(Error::TooLarge);
        }
        if self.head.len() < SNIFF_LEN {
            let take = (SNIFF_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.file.write_all(chunk).await?;
        Ok(())
    }

    /// Completes the file.
    pub async fn finish(mut self, client_name: String) -> Result<Staged> {
        self.file.flush().await?;
        Ok(Staged {
            client_name,
            size: self.size,
            head: self.head,
            path: self.path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spooled_files_are_capped_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path(), 10).await.unwrap();
        spool.push(b"hello").await.unwrap();
        let staged = spool.finish("a.txt".into()).await.unwrap();
        assert_eq!(staged.size, 5);
        assert_eq!(std::fs::read(staged.path()).unwrap(), b"hello");
        let path = staged.path().to_path_buf();
        drop(staged);
        assert!(!path.exists());

        let mut spool = Spool::create(dir.path(), 4).await.unwrap();
        assert!(matches!(spool.push(b"hello").await, Err(Error::TooLarge)));
        drop(spool);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

/// A file part of a multipart body, spooled to a temporary file as it arrived.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The form key it came with (`field`, `field+`, `+field`, `requests.N.field`).
    pub key: String,
    /// The client's file name.
    pub filename: String,
    /// The received file (removed when the last clone drops).
    pub file: std::sync::Arc<Staged>,
}
