//! The local filesystem store. A write lands in a temp file, is fsynced, renamed into place and
//! the directory fsynced (the garage block manager's recipe), so a crash leaves either the whole
//! blob or none of it, plus temp files that [`LocalBlobStore::open`] sweeps.
//!
//! Under the root: the keys themselves (`blobs/`, `variants/`, `staging/`) and `tmp/`, which
//! listings never show: `tmp/store` for writes in flight and `tmp/multipart/{id}` for each
//! multipart upload, a folder holding its key and one durable file per part. A folder is made
//! under a dotted name and renamed, so an upload either exists with its key or not at all.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use imgd_core::id::random_bytes;
use imgd_core::port::{
    BlobEntry, BlobKey, BlobPage, BlobRead, BlobStat, BlobStore, ByteRange, MultipartUpload,
    PartTag, PendingUpload,
};
use imgd_core::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

/// Read buffer for streaming; large enough that a 1 MB original takes a handful of reads.
const STREAM_CHUNK: usize = 128 * 1024;

use crate::multipart::{
    check_part_number, check_part_order, check_part_sizes, folder, page_size, part_tag,
};

/// The smallest part but the last. Files join at any size; 1 keeps callers honest about
/// ordering without forcing them to buffer.
const MIN_PART_BYTES: u64 = 1;

/// The file in an upload's folder that names its key.
const UPLOAD_KEY_FILE: &str = "key";

/// Blobs as files under `root`.
pub struct LocalBlobStore {
    root: PathBuf,
    tmp: PathBuf,
    uploads: PathBuf,
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
        let uploads = root.join("tmp").join("multipart");
        std::fs::create_dir_all(&tmp)?;
        std::fs::create_dir_all(&uploads)?;
        let swept = imgd_core::service::staging::sweep(&tmp)?;
        if swept > 0 {
            tracing::info!(swept, "removed temp files left by an interrupted write");
        }
        Ok(LocalBlobStore { root, tmp, uploads })
    }

    /// The folder of an upload; `None` for an id this store cannot have made (ids are read back
    /// from other processes' records, so they are checked before they become a path).
    fn upload_dir(&self, upload: &MultipartUpload) -> Option<PathBuf> {
        let valid = upload.id.len() == 32 && upload.id.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| self.uploads.join(&upload.id))
    }

    /// The folder of a live upload of `upload.key`, or not found.
    async fn live_upload_dir(&self, upload: &MultipartUpload) -> Result<PathBuf> {
        let dir = self
            .upload_dir(upload)
            .ok_or(Error::NotFound("multipart upload"))?;
        match tokio::fs::read_to_string(dir.join(UPLOAD_KEY_FILE)).await {
            Ok(key) if key == upload.key.as_str() => Ok(dir),
            Ok(_) => Err(Error::NotFound("multipart upload")),
            Err(e) if missing(&e) => Err(Error::NotFound("multipart upload")),
            Err(e) => Err(e.into()),
        }
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

    async fn stat(&self, key: &BlobKey) -> Result<Option<BlobStat>> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(meta) => Ok(Some(stat_of(&meta)?)),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<BlobPage> {
        if prefix.split('/').any(|part| part == "..") {
            return Err(Error::internal(format!(
                "refusing to list prefix {prefix:?}"
            )));
        }
        let root = self.root.clone();
        let folder = folder(prefix);
        let after = after.map(str::to_owned);
        let limit = page_size(limit);
        let entries = tokio::task::spawn_blocking(move || {
            let mut entries = Vec::new();
            let mut walk = Walk {
                after: after.as_deref(),
                limit,
                out: &mut entries,
            };
            walk.dir(&root.join(&folder), &folder).map(|()| entries)
        })
        .await
        .map_err(|e| Error::internal(format!("listing task: {e}")))??;
        let next = (entries.len() == limit).then(|| entries[limit - 1].key.clone());
        Ok(BlobPage { entries, next })
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

    fn min_part_bytes(&self) -> u64 {
        MIN_PART_BYTES
    }

    async fn create_multipart(&self, key: &BlobKey) -> Result<MultipartUpload> {
        let upload = MultipartUpload {
            key: key.clone(),
            id: hex::encode(random_bytes::<16>()),
        };
        let building = self.uploads.join(format!(".{}.new", upload.id));
        tokio::fs::create_dir(&building).await?;
        let mut file = tokio::fs::File::create(building.join(UPLOAD_KEY_FILE)).await?;
        file.write_all(key.as_str().as_bytes()).await?;
        file.sync_all().await?;
        tokio::fs::File::open(&building).await?.sync_all().await?;
        tokio::fs::rename(&building, self.uploads.join(&upload.id)).await?;
        tokio::fs::File::open(&self.uploads)
            .await?
            .sync_all()
            .await?;
        Ok(upload)
    }

    async fn put_part(
        &self,
        upload: &MultipartUpload,
        number: u32,
        bytes: Bytes,
    ) -> Result<PartTag> {
        check_part_number(number)?;
        let dir = self.live_upload_dir(upload).await?;
        let temp = dir.join(format!(".part-{}.tmp", hex::encode(random_bytes::<6>())));
        let mut guard = TempGuard(Some(temp.clone()));
        let mut file = tokio::fs::File::create(&temp).await?;
        file.write_all(&bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temp, part_path(&dir, number)).await?;
        guard.0 = None;
        tokio::fs::File::open(&dir).await?.sync_all().await?;
        Ok(PartTag {
            number,
            tag: part_tag(&bytes),
        })
    }

    async fn complete_multipart(&self, upload: &MultipartUpload, parts: &[PartTag]) -> Result<()> {
        check_part_order(parts)?;
        let dir = self.live_upload_dir(upload).await?;
        let mut sizes = Vec::with_capacity(parts.len());
        for part in parts {
            match tokio::fs::metadata(part_path(&dir, part.number)).await {
                Ok(meta) => sizes.push(meta.len()),
                Err(e) if missing(&e) => {
                    return Err(Error::internal(format!(
                        "part {} is not stored",
                        part.number
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        check_part_sizes(&sizes, MIN_PART_BYTES)?;
        // Joined part by part into a temp file, each checked against its tag on the way, so a
        // part replaced since its tag was recorded is refused rather than joined.
        let temp = self.temp_path();
        let mut guard = TempGuard(Some(temp.clone()));
        let mut joined = tokio::fs::File::create(&temp).await?;
        for part in parts {
            let bytes = tokio::fs::read(part_path(&dir, part.number)).await?;
            if part_tag(&bytes) != part.tag {
                return Err(Error::internal(format!(
                    "part {} changed since it was tagged",
                    part.number
                )));
            }
            joined.write_all(&bytes).await?;
        }
        joined.sync_all().await?;
        drop(joined);
        if !self.exists(&upload.key).await? {
            self.install(&temp, &upload.key).await?;
            guard.0 = None;
        }
        tokio::fs::remove_dir_all(&dir).await?;
        Ok(())
    }

    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()> {
        let Ok(dir) = self.live_upload_dir(upload).await else {
            return Ok(());
        };
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if !missing(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn pending_multipart(&self) -> Result<Vec<PendingUpload>> {
        let mut pending = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.uploads).await?;
        while let Some(entry) = entries.next_entry().await? {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let key_file = entry.path().join(UPLOAD_KEY_FILE);
            let (Ok(key), Ok(meta)) = (
                tokio::fs::read_to_string(&key_file).await,
                tokio::fs::metadata(&key_file).await,
            ) else {
                continue;
            };
            let upload = BlobKey::parse(&key).map(|key| MultipartUpload { key, id });
            if let Some(upload) = upload.filter(|u| self.upload_dir(u).is_some()) {
                pending.push(PendingUpload {
                    upload,
                    started: meta.modified()?,
                });
            }
        }
        Ok(pending)
    }

    async fn leftovers(&self, older_than: SystemTime, remove: bool) -> Result<Vec<String>> {
        let tmp = self.tmp.clone();
        let uploads = self.uploads.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
            // Writes in flight that a crash stopped.
            let files = imgd_core::service::staging::leftovers(&tmp, older_than, remove)?;
            let mut found: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            // Uploads whose creation never finished (their folder still has its dotted name).
            for entry in std::fs::read_dir(&uploads)? {
                let entry = entry?;
                let unfinished = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with('.'));
                if unfinished && entry.metadata()?.modified()? < older_than {
                    if remove {
                        std::fs::remove_dir_all(entry.path())?;
                    }
                    found.push(entry.path().display().to_string());
                }
            }
            Ok(found)
        })
        .await
        .map_err(|e| Error::internal(format!("sweep task: {e}")))?
    }
}

/// Where part `number` of an upload lives.
fn part_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("part-{number:05}"))
}

fn stat_of(meta: &std::fs::Metadata) -> Result<BlobStat> {
    Ok(BlobStat {
        size: meta.len(),
        modified: meta.modified()?,
    })
}

/// A depth-first walk that yields keys in the byte order S3 lists them: a folder's entries are
/// visited sorted by their key, a subfolder standing for all the keys under `name/`, which form
/// one contiguous run in that order. Subtrees wholly at or before `after` are skipped unread.
struct Walk<'a> {
    after: Option<&'a str>,
    limit: usize,
    out: &'a mut Vec<BlobEntry>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, key_prefix: &str) -> Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if missing(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut children = Vec::new();
        for entry in entries {
            let entry = entry?;
            let is_dir = entry.file_type()?.is_dir();
            // Names that are not UTF-8 are no key of ours; `tmp/` at the root is bookkeeping.
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if key_prefix.is_empty() && name == "tmp" {
                continue;
            }
            let key = if is_dir {
                format!("{key_prefix}{name}/")
            } else {
                format!("{key_prefix}{name}")
            };
            children.push((key, entry.path(), is_dir));
        }
        children.sort_unstable();
        for (key, path, is_dir) in children {
            if self.out.len() >= self.limit {
                return Ok(());
            }
            let after = self.after.unwrap_or("");
            if is_dir {
                let wholly_before = after >= key.as_str() && !after.starts_with(&key);
                if !wholly_before {
                    self.dir(&path, &key)?;
                }
            } else if key.as_str() > after {
                match std::fs::metadata(&path) {
                    Ok(meta) => self.out.push(BlobEntry {
                        stat: stat_of(&meta)?,
                        key,
                    }),
                    // Deleted while we listed.
                    Err(e) if missing(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn local_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let open = || -> Arc<dyn BlobStore> { Arc::new(LocalBlobStore::open(dir.path()).unwrap()) };
        crate::contract::run([open(), open()], dir.path()).await;
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
