//! An in-memory store: the simplest correct implementation, used to check the contract suite
//! itself and in unit tests of services.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use futures::stream;
use imgd_core::port::{BlobKey, BlobRead, BlobStore, ByteRange};
use imgd_core::{Error, Result};

/// Blobs in a map.
#[derive(Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryBlobStore {
    fn lookup(&self, key: &BlobKey) -> Option<Bytes> {
        self.blobs
            .lock()
            .expect("blob map lock")
            .get(key.as_str())
            .cloned()
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
            .or_insert(bytes);
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

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>> {
        Ok(self.lookup(key).map(|b| b.len() as u64))
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        crate::contract::run(Arc::new(MemoryBlobStore::default()), dir.path()).await;
    }
}
