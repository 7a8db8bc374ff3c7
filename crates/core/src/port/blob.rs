//! The blob store port: immutable bytes under path-like keys.
//!
//! Keys follow DESIGN.md's layout: `blobs/{h[0..2]}/{h[2..4]}/{hash}` for originals and
//! `variants/{h[0..2]}/{source hash}/{variant key}` for renders. Writes are idempotent (the same
//! key always holds the same bytes), so a write to an existing key is a no-op.

use std::path::Path;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::Result;
use crate::id::{ContentHash, VariantKey};

/// A store key, built only from validated ids so it can never escape the store's root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Where an original's bytes live.
    pub fn original(hash: &ContentHash) -> Self {
        let h = hash.as_str();
        BlobKey(format!("blobs/{}/{}/{h}", &h[0..2], &h[2..4]))
    }

    /// Where a variant of `source` lives.
    pub fn variant(source: &ContentHash, key: &VariantKey) -> Self {
        BlobKey(format!("{}/{key}", Self::variant_prefix(source)))
    }

    /// The folder holding every variant of `source`, for cascading deletes.
    pub fn variant_prefix(source: &ContentHash) -> String {
        let h = source.as_str();
        format!("variants/{}/{h}", &h[0..2])
    }

    /// The key as a relative path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An inclusive byte range, already checked against the blob's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true for a valid range; here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A streaming read.
pub struct BlobRead {
    /// Bytes the stream will yield.
    pub len: u64,
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

/// Immutable, idempotent byte storage.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Moves or copies the local file `staged` (already fsynced) into the store under `key`,
    /// durably. If `key` exists, the store keeps what it has and `staged` is removed.
    async fn put_file(&self, key: &BlobKey, staged: &Path) -> Result<()>;

    /// Stores `bytes` under `key` durably; a no-op if `key` exists.
    async fn put_bytes(&self, key: &BlobKey, bytes: Bytes) -> Result<()>;

    /// Streams the blob, or the range of it. `None` if the key does not exist.
    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<Option<BlobRead>>;

    /// Reads the whole blob into memory. `None` if the key does not exist.
    async fn read_all(&self, key: &BlobKey) -> Result<Option<Bytes>>;

    /// The blob's size, or `None` if it does not exist.
    async fn size(&self, key: &BlobKey) -> Result<Option<u64>>;

    /// Removes the blob; removing a missing blob is fine.
    async fn delete(&self, key: &BlobKey) -> Result<()>;

    /// Removes every blob whose key starts with `prefix/`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;

    /// Answers whether the store is usable right now (for `/readyz`).
    async fn check(&self) -> Result<()>;
}
