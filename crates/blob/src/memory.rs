//! An in-memory store: the simplest correct implementation, used to check the contract suite
//! itself and in unit tests of services.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream;
use imgd_core::id::random_bytes;
use imgd_core::port::{
    BlobEntry, BlobKey, BlobPage, BlobRead, BlobStat, BlobStore, ByteRange, MultipartUpload,
    PartTag, PendingUpload,
};
use imgd_core::{Error, Result};

use crate::multipart::{
    check_part_number, check_part_order, check_part_sizes, folder, page_size, part_tag,
};

/// The smallest part but the last; small, so tests of callers exercise many parts.
const MIN_PART_BYTES: u64 = 1;

/// Blobs in a map.
#[derive(Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<BTreeMap<String, (Bytes, SystemTime)>>,
    uploads: Mutex<HashMap<String, Upload>>,
}

struct Upload {
    key: BlobKey,
    started: SystemTime,
    parts: BTreeMap<u32, Bytes>,
}

impl MemoryBlobStore {
    fn lookup(&self, key: &BlobKey) -> Option<Bytes> {
        self.blobs
            .lock()
            .expect("blob map lock")
            .get(key.as_str())
            .map(|(bytes, _)| bytes.clone())
    }
}

#[async_trait::async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put_file(&self, key: &BlobKey, staged: &Path) -> Result<()> {
        let bytes = tokio::fs::read(staged).await?;
        self.put_bytes(key, Bytes::from(bytes)).await?;
        tokio::fs::remove_file(staged).await?;
        Ok(())
    }

    async fn put_bytes(&self, key: &BlobKey, bytes: Bytes) -> Result<()> {
        self.blobs
            .lock()
            .expect("blob map lock")
            .entry(key.as_str().to_owned())
            .or_insert((bytes, SystemTime::now()));
        Ok(())
    }

    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<Option<BlobRead>> {
        let Some(bytes) = self.lookup(key) else {
            return Ok(None);
        };
        let slice = match range {
            Some(r) if (r.end as usize) < bytes.len() => {
                bytes.slice(r.start as usize..=r.end as usize)
            }
            Some(_) => return Err(Error::internal("range past the end of the blob")),
            None => bytes,
        };
        Ok(Some(BlobRead {
            len: slice.len() as u64,
            body: Box::pin(stream::once(async move { Ok(slice) })),
        }))
    }

    async fn read_all(&self, key: &BlobKey) -> Result<Option<Bytes>> {
        Ok(self.lookup(key))
    }

    async fn stat(&self, key: &BlobKey) -> Result<Option<BlobStat>> {
        let blobs = self.blobs.lock().expect("blob map lock");
        Ok(blobs.get(key.as_str()).map(|(bytes, modified)| BlobStat {
            size: bytes.len() as u64,
            modified: *modified,
        }))
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<BlobPage> {
        let folder = folder(prefix);
        let limit = page_size(limit);
        let blobs = self.blobs.lock().expect("blob map lock");
        let start = match after {
            Some(after) if after > folder.as_str() => after.to_owned(),
            _ => folder.clone(),
        };
        let entries: Vec<BlobEntry> = blobs
            .range(start..)
            .filter(|(key, _)| after != Some(key.as_str()))
            .take_while(|(key, _)| key.starts_with(&folder))
            .take(limit)
            .map(|(key, (bytes, modified))| BlobEntry {
                key: key.clone(),
                stat: BlobStat {
                    size: bytes.len() as u64,
                    modified: *modified,
                },
            })
            .collect();
        let next = (entries.len() == limit).then(|| entries[limit - 1].key.clone());
        Ok(BlobPage { entries, next })
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        self.blobs
            .lock()
            .expect("blob map lock")
            .remove(key.as_str());
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let folder = format!("{prefix}/");
        let mut blobs = self.blobs.lock().expect("blob map lock");
        let before = blobs.len();
        blobs.retain(|k, _| !k.starts_with(&folder));
        Ok((before - blobs.len()) as u64)
    }

    async fn check(&self) -> Result<()> {
        Ok(())
    }

    async fn leftovers(&self, _older_than: SystemTime, _remove: bool) -> Result<Vec<String>> {
        // Nothing is ever half-written in a map.
        Ok(Vec::new())
    }

    fn min_part_bytes(&self) -> u64 {
        MIN_PART_BYTES
    }

    async fn create_multipart(&self, key: &BlobKey) -> Result<MultipartUpload> {
        let id = hex::encode(random_bytes::<16>());
        let upload = Upload {
            key: key.clone(),
            started: SystemTime::now(),
            parts: BTreeMap::new(),
        };
        self.uploads
            .lock()
            .expect("upload map lock")
            .insert(id.clone(), upload);
        Ok(MultipartUpload {
            key: key.clone(),
            id,
        })
    }

    async fn put_part(
        &self,
        upload: &MultipartUpload,
        number: u32,
        bytes: Bytes,
    ) -> Result<PartTag> {
        check_part_number(number)?;
        let mut uploads = self.uploads.lock().expect("upload map lock");
        let pending = uploads
            .get_mut(&upload.id)
            .filter(|u| u.key == upload.key)
            .ok_or(Error::NotFound("multipart upload"))?;
        let tag = part_tag(&bytes);
        pending.parts.insert(number, bytes);
        Ok(PartTag { number, tag })
    }

    async fn complete_multipart(&self, upload: &MultipartUpload, parts: &[PartTag]) -> Result<()> {
        check_part_order(parts)?;
        let pending = self
            .uploads
            .lock()
            .expect("upload map lock")
            .remove(&upload.id)
            .filter(|u| u.key == upload.key)
            .ok_or(Error::NotFound("multipart upload"))?;
        let mut chosen = Vec::with_capacity(parts.len());
        for part in parts {
            let bytes = pending
                .parts
                .get(&part.number)
                .filter(|b| part_tag(b) == part.tag)
                .ok_or_else(|| Error::internal(format!("part {} is not stored", part.number)))?;
            chosen.push(bytes.clone());
        }
        let sizes: Vec<u64> = chosen.iter().map(|b| b.len() as u64).collect();
        check_part_sizes(&sizes, MIN_PART_BYTES)?;
        self.put_bytes(&upload.key, Bytes::from(chosen.concat()))
            .await
    }

    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()> {
        self.uploads
            .lock()
            .expect("upload map lock")
            .remove(&upload.id);
        Ok(())
    }

    async fn pending_multipart(&self) -> Result<Vec<PendingUpload>> {
        let uploads = self.uploads.lock().expect("upload map lock");
        Ok(uploads
            .iter()
            .map(|(id, u)| PendingUpload {
                upload: MultipartUpload {
                    key: u.key.clone(),
                    id: id.clone(),
                },
                started: u.started,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::default());
        crate::contract::run([store.clone(), store], dir.path()).await;
    }
}
