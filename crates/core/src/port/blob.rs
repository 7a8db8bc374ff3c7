//! The blob store port: immutable bytes under path-like keys.
//!
//! Keys follow DESIGN.md's layout: `blobs/{h[0..2]}/{h[2..4]}/{hash}` for originals and
//! `variants/{h[0..2]}/{source hash}/{variant key}` for renders. Writes are idempotent (the same
//! key always holds the same bytes), so a write to an existing key is a no-op.
//!
//! Beyond reads and writes a store lists keys a page at a time (collection and scrubbing walk it),
//! and takes data that arrives in pieces as a multipart upload whose id and part tags are plain
//! strings: one process can create it, others put parts, and any of them complete or abort it.
//! `staging/{name}` keys hold such uploads until their bytes are committed as an image.

use std::path::Path;
use std::time::SystemTime;

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
        BlobKey(format!("{ORIGINALS_PREFIX}/{}/{}/{h}", &h[0..2], &h[2..4]))
    }

    /// Where a variant of `source` lives.
    pub fn variant(source: &ContentHash, key: &VariantKey) -> Self {
        BlobKey(format!("{}/{key}", Self::variant_prefix(source)))
    }

    /// The folder holding every variant of `source`, for cascading deletes.
    pub fn variant_prefix(source: &ContentHash) -> String {
        let h = source.as_str();
        format!("{VARIANTS_PREFIX}/{}/{h}", &h[0..2])
    }

    /// Where bytes that arrive in pieces collect before they are committed (`name`: 1 to 64
    /// characters of `[A-Za-z0-9_-]`, checked, so the key stays inside the store's root).
    pub fn staging(name: &str) -> Option<Self> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| BlobKey(format!("{STAGING_PREFIX}/{name}")))
    }

    /// Reads back a key this type made (one that a listing returned, or that a caller persisted),
    /// `None` for anything else. The layouts are checked piece by piece, so a parsed key can
    /// never name a path outside the store.
    pub fn parse(key: &str) -> Option<Self> {
        let parts: Vec<&str> = key.split('/').collect();
        let parsed = match parts.as_slice() {
            [ORIGINALS_PREFIX, a, b, hash] => {
                let hash = ContentHash::parse(hash).ok()?;
                (hash.as_str()[0..2] == **a && hash.as_str()[2..4] == **b)
                    .then(|| Self::original(&hash))
            }
            [VARIANTS_PREFIX, a, source, key] => {
                let source = ContentHash::parse(source).ok()?;
                let key = VariantKey::parse(key)?;
                (source.as_str()[0..2] == **a).then(|| Self::variant(&source, &key))
            }
            [STAGING_PREFIX, name] => Self::staging(name),
            _ => None,
        };
        parsed.filter(|k| k.0 == key)
    }

    /// The content hash an original's or a variant's key is under (`None` for staging keys).
    pub fn source_hash(&self) -> Option<ContentHash> {
        let mut parts = self.0.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(ORIGINALS_PREFIX), _, _, Some(hash))
            | (Some(VARIANTS_PREFIX), _, Some(hash), _) => ContentHash::parse(hash).ok(),
            _ => None,
        }
    }

    /// The key as a relative path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The folder of [`BlobKey::staging`] keys.
pub const STAGING_PREFIX: &str = "staging";
/// The folder of originals.
pub const ORIGINALS_PREFIX: &str = "blobs";
/// The folder of variants.
pub const VARIANTS_PREFIX: &str = "variants";

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

/// What a store knows of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobStat {
    pub size: u64,
    /// When the bytes were written (the store's clock).
    pub modified: SystemTime,
}

/// One key of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    /// The key relative to the store's root, as [`BlobKey::as_str`] spells it.
    pub key: String,
    pub stat: BlobStat,
}

/// A page of a listing, in ascending byte order of the keys.
#[derive(Clone, Debug, Default)]
pub struct BlobPage {
    pub entries: Vec<BlobEntry>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next: Option<String>,
}

/// The most keys one [`BlobStore::list`] call returns (S3's own page size).
pub const MAX_LIST_PAGE: usize = 1000;

/// The most parts of one multipart upload (S3's limit).
pub const MAX_PARTS: u32 = 10_000;

/// A multipart upload in progress: everything another process needs to continue it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartUpload {
    pub key: BlobKey,
    /// The store's id for it; opaque.
    pub id: String,
}

/// A stored part: its number (1 to [`MAX_PARTS`]) and the tag the store gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartTag {
    pub number: u32,
    pub tag: String,
}

/// A multipart upload that was created and neither completed nor aborted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    pub upload: MultipartUpload,
    pub started: SystemTime,
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

    /// The blob's size and age, or `None` if it does not exist.
    async fn stat(&self, key: &BlobKey) -> Result<Option<BlobStat>>;

    /// Up to `limit` (at most [`MAX_LIST_PAGE`]) keys under `prefix/`, in ascending byte order,
    /// starting after the key `after`.
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<BlobPage>;

    /// Removes the blob; removing a missing blob is fine.
    async fn delete(&self, key: &BlobKey) -> Result<()>;

    /// Removes every blob whose key starts with `prefix/`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;

    /// Answers whether the store is usable right now (for `/readyz`).
    async fn check(&self) -> Result<()>;

    /// The store's own leftovers untouched since before `older_than` (temp files of writes that a
    /// crash interrupted, uploads whose creation never finished), removed when `remove` is set.
    async fn leftovers(&self, older_than: SystemTime, remove: bool) -> Result<Vec<String>>;

    /// The smallest part but the last that [`BlobStore::put_part`] takes.
    fn min_part_bytes(&self) -> u64;

    /// Starts a multipart upload to `key`; its bytes appear under `key` only when completed.
    async fn create_multipart(&self, key: &BlobKey) -> Result<MultipartUpload>;

    /// Stores part `number` durably; putting the same number again replaces it.
    async fn put_part(
        &self,
        upload: &MultipartUpload,
        number: u32,
        bytes: Bytes,
    ) -> Result<PartTag>;

    /// Joins `parts` (ascending numbers, every one but the last at least
    /// [`BlobStore::min_part_bytes`]) into the key, durably, and forgets the upload.
    async fn complete_multipart(&self, upload: &MultipartUpload, parts: &[PartTag]) -> Result<()>;

    /// Discards the upload and its parts; aborting one that is gone is fine.
    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()>;

    /// Uploads created and not yet completed or aborted, by any process.
    async fn pending_multipart(&self) -> Result<Vec<PendingUpload>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_and_nothing_else_does() {
        let hash = ContentHash::of(b"x");
        let variant = VariantKey::parse(&"ab".repeat(32)).unwrap();
        for key in [
            BlobKey::original(&hash),
            BlobKey::variant(&hash, &variant),
            BlobKey::staging("u_0123-abc").unwrap(),
        ] {
            assert_eq!(BlobKey::parse(key.as_str()), Some(key.clone()));
        }
        assert_eq!(
            BlobKey::variant(&hash, &variant).source_hash(),
            Some(hash.clone())
        );
        assert_eq!(BlobKey::original(&hash).source_hash(), Some(hash.clone()));
        let h = hash.as_str();
        for bad in [
            String::new(),
            format!("blobs/00/00/{h}"),
            format!("blobs/{}/{}/{h}/x", &h[0..2], &h[2..4]),
            format!("variants/{}/{h}/../../x", &h[0..2]),
            "staging/../../etc".to_owned(),
            "staging/a/b".to_owned(),
            format!("staging/{}", "a".repeat(65)),
            "tmp/store/x.tmp".to_owned(),
        ] {
            assert_eq!(BlobKey::parse(&bad), None, "{bad}");
        }
    }
}
