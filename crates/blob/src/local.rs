//! The local filesystem store. A write lands in a temp file, is fsynced, renamed into place and
//! the directory fsynced (the garage block manager's recipe), so a crash leaves either the whole
//! blob or none of it, plus temp files that [`LocalBlobStore::open`] sweeps.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use imgd_core::id::random_bytes;
use imgd_core::port::{BlobKey, BlobRead, BlobStore, ByteRange};
use imgd_core::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

/// Read buffer for streaming; large enough that a 1 MB original takes a handful of reads.
const STREAM_CHUNK: usize = 128 * 1024;

/// Blobs as files under `root`.
pub struct LocalBlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

/// Removes a temp file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn missing(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

impl LocalBlobStore {
    /// Opens (creating) a store rooted at `root`, sweeping temp files a crash left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let tmp = root.join("tmp").join("store");
        std::fs::create_dir_all(&tmp)?;
        let swept = imgd_core::service::staging::sweep(&tmp)?;
        if swept > 0 {
            tracing::info!(swept, "removed temp files left by an interrupted write");
        }
        Ok(LocalBlobStore { root, tmp })
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// Renames `from` to `key`'s path durably.
    async fn install(&self, from: &Path, key: &BlobKey) -> std::io::Result<()> {
        let to = self.path(key);
        let dir = to
            .parent()
            .ok_or_else(|| std::io::Error::other("blob key without a folder"))?;
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::rename(from, &to).await?;
        tokio::fs::File::open(dir).await?.sync_all().await
    }

    /// A fresh name in the store's temp folder (on the store's filesystem, so it renames).
    fn temp_path(&self) -> PathBuf {
        self.tmp
            .join(format!("{}.tmp", hex::encode(random_bytes::<12>())))
    }

    async fn exists(&self, key: &BlobKey) -> Result<bool> {
        Ok(tokio::fs::try_exists(self.path(key)).await?)
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn put_file(&self, key: &BlobKey, staged: &Path) -> Result<()> {
        if self.exists(key).await? {
            tokio::fs::remove_file(staged)
                .await
                .or_else(|e| if missing(&e) { Ok(()) } else { Err(e) })?;
            return Ok(());
        }
        match self.install(staged, key).await {
            // Staging on another filesystem (EXDEV, a store named by `local:PATH` on another
            // mount): copy, never read whole, through our temp folder instead.
            Err(e) if e.raw_os_error() == Some(18) => {
                let temp = self.temp_path();
                let mut guard = TempGuard(Some(temp.clone()));
                tokio::fs::copy(staged, &temp).await?;
                tokio::fs::File::open(&temp).await?.sync_all().await?;
                self.install(&temp, key).await?;
                guard.0 = None;
                tokio::fs::remove_file(staged).await?;
                Ok(())
            }
            other => Ok(other?),
        }
    }

    async fn put_bytes(&self, key: &BlobKey, bytes: Bytes) -> Result<()> {
        if self.exists(key).await? {
            return Ok(());
        }
        let temp = self.temp_path();
        let mut guard = TempGuard(Some(temp.clone()));
        let mut file = tokio::fs::File::create(&temp).await?;
        file.write_all(&bytes).await?;
        file.sync_all().await?;
        drop(file);
        self.install(&temp, key).await?;
        guard.0 = None;
        Ok(())
    }

    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<Option<BlobRead>> {
        let mut file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(e) if missing(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        let (start, len) = match range {
            Some(r) if r.end < size => (r.start, r.len()),
            Some(_) => return Err(Error::internal("range past the end of the blob")),
            None => (0, size),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await?;
        }
        let body = ReaderStream::with_capacity(file.take(len), STREAM_CHUNK).boxed();
        Ok(Some(BlobRead { len, body }))
    }

    async fn read_all(&self, key: &BlobKey) -> Result<Option<Bytes>> {
        match tokio::fs::read(self.path(key)).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if !missing(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        if prefix.is_empty() || prefix.contains("..") {
            return Err(Error::internal(format!(
                "refusing to delete prefix {prefix:?}"
            )));
        }
        let dir = self.root.join(prefix);
        let mut count = 0;
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if missing(&e) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_type().await?.is_file() {
                count += 1;
            }
        }
        tokio::fs::remove_dir_all(&dir)
            .await
            .or_else(|e| if missing(&e) { Ok(()) } else { Err(e) })?;
        Ok(count)
    }

    async fn check(&self) -> Result<()> {
        // A write proves more than a stat: a full or read-only disk fails here.
        let probe = self
            .tmp
            .join(format!("ready-{}.tmp", hex::encode(random_bytes::<6>())));
        let result = tokio::fs::write(&probe, b"ok").await;
        let _ = tokio::fs::remove_file(&probe).await;
        result.map_err(|e| Error::Unavailable(format!("data dir is not writable: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn local_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalBlobStore::open(dir.path()).unwrap());
        crate::contract::run(store, dir.path()).await;
    }

    #[tokio::test]
    async fn open_sweeps_interrupted_writes() {
        let dir = tempfile::tempdir().unwrap();
        let leftover = dir.path().join("tmp/store/dead.tmp");
        std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
        std::fs::write(&leftover, b"half").unwrap();
        LocalBlobStore::open(dir.path()).unwrap();
        assert!(!leftover.exists());
    }
}
