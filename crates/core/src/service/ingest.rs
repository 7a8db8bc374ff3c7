//! Ingest, in two steps any transport can combine:
//!
//! 1. [`IngestService::stage`]: stream the bytes to a staging file while hashing and counting
//!    (bounded by the upload limit), giving a [`Staged`] file;
//! 2. [`IngestService::commit`]: check what the staged bytes are (sniff, pixel and frame limits,
//!    a scaled decode, BlurHash), store them durably under their hash (deduplicated), and only
//!    then record the image, charging the tenant's quota in the same transaction.
//!
//! [`IngestService::ingest`] is both for one request body. A transport whose bytes arrive
//! otherwise (resumable uploads, fetched sources) stages them its own way and commits the same.
//!
//! Order is the durability argument: a crash before the metadata commit leaves at worst an
//! unreferenced blob (collected by `gc`) or a staging file (swept at start), never an image
//! record without bytes. Against a concurrent collector, the blob row is pinned before the bytes
//! are written and the reference is taken through the pin (see [`super::gc`]).

use crate::Code;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::Ports;
use super::gc::{self, CollectTimings};
use super::id_filter::IdFilter;
use super::render_pool::RenderPool;
use super::staging::StagedFile;
use crate::id::{ContentHash, ImageId, TenantId};
use crate::model::{BlobPin, ImageRecord, PinOutcome, UserMetadata, now_millis};
use crate::port::{BlobKey, IngestLimits};
use crate::{Error, Result};

/// Ingest settings.
#[derive(Clone, Debug)]
pub struct IngestSettings {
    pub max_upload_bytes: u64,
    pub limits: IngestLimits,
    pub staging_dir: PathBuf,
    /// Pin lifetime and how long to wait for a collector removing the same bytes.
    pub collect: CollectTimings,
}

/// Caller-supplied facts about one upload.
#[derive(Clone, Debug, Default)]
pub struct UploadMeta {
    pub filename: Option<String>,
    pub tags: Vec<String>,
    pub metadata: UserMetadata,
}

/// Bytes on local disk, whole, hashed and counted, waiting for [`IngestService::commit`]. The
/// file is removed if it is dropped uncommitted.
pub struct Staged {
    file: StagedFile,
    len: u64,
    hash: ContentHash,
}

impl Staged {
    /// How many bytes were staged.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: staging refuses an empty upload. Here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The BLAKE3 hash of the bytes.
    pub fn hash(&self) -> &ContentHash {
        &self.hash
    }
}

/// Accepts uploads.
pub struct IngestService {
    ports: Ports,
    pool: Arc<RenderPool>,
    settings: IngestSettings,
    /// Learns each committed id, so delivery finds it.
    ids: Option<Arc<IdFilter>>,
}

/// Most tags on one image.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;
/// Largest user metadata object, serialised.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Checks and normalises tags: trimmed, de-duplicated in order, `[A-Za-z0-9_.:-]`.
pub fn validate_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim();
        if tag.is_empty()
            || tag.len() > MAX_TAG_LEN
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
        {
            return Err(Error::invalid(
                Code::InvalidTag,
                format!("tag {tag:?} must be 1-{MAX_TAG_LEN} of [A-Za-z0-9_.:-]"),
            ));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_owned());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(Error::invalid(
            Code::InvalidTag,
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    Ok(out)
}

/// Checks the size of user metadata.
pub fn validate_metadata(metadata: &UserMetadata) -> Result<()> {
    let len = serde_json::to_vec(metadata).map_err(Error::internal)?.len();
    if len > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            Code::MetadataTooLarge,
            format!("metadata is {len} bytes, the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(())
}

fn clean_filename(name: Option<String>) -> Option<String> {
    let name = name?;
    // Keep only the last path component and printable characters; it is a label, never a path.
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    (!cleaned.is_empty()).then_some(cleaned)
}

impl IngestService {
    /// A service over the shared ports.
    pub fn new(ports: Ports, pool: Arc<RenderPool>, settings: IngestSettings) -> Self {
        IngestService {
            ports,
            pool,
            settings,
            ids: None,
        }
    }

    /// Adds every committed image id to `ids`.
    pub fn with_id_filter(mut self, ids: Arc<IdFilter>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// The configured byte limit, for transports that can reject early.
    pub fn max_upload_bytes(&self) -> u64 {
        self.settings.max_upload_bytes
    }

    /// Ingests one upload for `tenant`: [`IngestService::stage`], then
    /// [`IngestService::commit`]. Bad tags, bad metadata and a full quota are refused before a
    /// byte is read.
    pub async fn ingest<S, E>(
        &self,
        tenant: &TenantId,
        body: S,
        meta: UploadMeta,
    ) -> Result<ImageRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: Into<Error>,
    {
        validate_tags(&meta.tags)?;
        validate_metadata(&meta.metadata)?;
        self.refuse_when_full(tenant).await?;
        let staged = self.stage(body).await?;
        self.commit(tenant, staged, meta).await
    }

    /// Records `staged` as a new image of `tenant`: inspects the bytes, stores them under their
    /// hash and records the image, or stores and records nothing. The staged file is consumed.
    pub async fn commit(
        &self,
        tenant: &TenantId,
        staged: Staged,
        meta: UploadMeta,
    ) -> Result<ImageRecord> {
        let tags = validate_tags(&meta.tags)?;
        validate_metadata(&meta.metadata)?;
        let Staged { file, len, hash } = staged;
        // The upload went to disk only; it is read back into memory once admitted, its bytes
        // reserved from the memory budget (the decoder reserves its pixels on top).
        let slot = self.pool.admit(len).await?;
        let bytes = tokio::fs::read(file.path()).await?;
        let limits = self.settings.limits;
        let imaging = self.ports.imaging.clone();
        let inspection = slot
            .run(move |job| imaging.inspect(&bytes, &limits, job))
            .await?;

        let record = ImageRecord {
            id: ImageId::generate(),
            tenant: tenant.clone(),
            hash: hash.clone(),
            format: inspection.format,
            width: inspection.width,
            height: inspection.height,
            bytes: len,
            frames: inspection.frames,
            filename: clean_filename(meta.filename),
            blurhash: inspection.blurhash,
            tags,
            metadata: meta.metadata,
            created_at: now_millis(),
        };
        // Pin first: from here until the commit no collector claims the row, and a collector
        // already removing these bytes is waited for, so the write below really writes.
        let pin = self.pin(&hash, len).await?;
        let stored = self
            .ports
            .blobs
            .put_file(&BlobKey::original(&hash), file.path())
            .await;
        let committed = match stored {
            Ok(()) => self.ports.repo.insert_image(&record, &pin).await,
            Err(e) => Err(e),
        };
        if let Err(e) = committed {
            self.abandon(&pin).await;
            return Err(e);
        }
        if let Some(ids) = &self.ids {
            ids.insert(&record.id);
        }
        metrics::counter!("imgd_upload_bytes_total").increment(record.bytes);
        metrics::counter!("imgd_uploads_total", "format" => record.format.name()).increment(1);
        Ok(record)
    }

    /// Pins the blob row, waiting (bounded) while a collector removes the same bytes; past the
    /// bound, `Unavailable` and nothing stored.
    async fn pin(&self, hash: &ContentHash, size: u64) -> Result<BlobPin> {
        let timings = self.settings.collect;
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(10);
        loop {
            let now = now_millis();
            let until =
                now.saturating_add(i64::try_from(timings.pin_ttl.as_millis()).unwrap_or(i64::MAX));
            let outcome = self
                .ports
                .repo
                .pin_blob(hash, size, now, until, gc::random_token())
                .await?;
            if let PinOutcome::Pinned(pin) = outcome {
                return Ok(pin);
            }
            let waited = started.elapsed();
            if waited >= timings.pin_wait {
                return Err(Error::Unavailable(format!(
                    "blob {hash} is being removed by the collector; retry"
                )));
            }
            tokio::time::sleep(backoff.min(timings.pin_wait - waited)).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// After a failed store or commit: gives the pin back and, if no image ever referred to the
    /// bytes and no other upload holds a pin, removes them through a collector's claim (over
    /// quota, they must not stay behind). Failures here leave the bytes to `gc`.
    async fn abandon(&self, pin: &BlobPin) {
        if let Err(e) = self.ports.repo.release_pin(pin).await {
            tracing::warn!(error = %e, hash = %pin.hash, "could not release a blob pin; it expires");
            return;
        }
        if let Err(e) =
            gc::collect_unreferenced(&self.ports, &pin.hash, self.settings.collect).await
        {
            tracing::warn!(error = %e, hash = %pin.hash, "could not remove unreferenced bytes; gc will");
        }
    }

    /// Refuses before reading a byte when the tenant is already at its quota. The binding check
    /// is the conditional update in `insert_image`; this one spares the client a wasted upload.
    async fn refuse_when_full(&self, tenant: &TenantId) -> Result<()> {
        let Some(t) = self.ports.repo.tenant(tenant).await? else {
            return Err(Error::NotFound("tenant"));
        };
        let images_full = t.quota.images.is_some_and(|q| t.usage.images >= q);
        let bytes_full = t.quota.bytes.is_some_and(|q| t.usage.bytes >= q);
        if images_full || bytes_full {
            return Err(Error::QuotaExceeded(format!(
                "the tenant stores {} images and {} bytes, its quota is reached",
                t.usage.images, t.usage.bytes
            )));
        }
        Ok(())
    }

    /// Writes `body` to a staging file, hashing and counting, durably (fsynced): past the upload
    /// limit, 413 and nothing kept; an empty body is refused.
    pub async fn stage<S, E>(&self, body: S) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: Into<Error>,
    {
        let limit = self.settings.max_upload_bytes;
        let mut staged = StagedFile::create(&self.settings.staging_dir).await?;
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Into::into)?;
            len += chunk.len() as u64;
            if len > limit {
                return Err(Error::PayloadTooLarge { limit });
            }
            hasher.update(&chunk);
            staged.write(&chunk).await?;
        }
        if len == 0 {
            return Err(Error::invalid(Code::EmptyUpload, "the upload has no bytes"));
        }
        staged.finish().await?;
        Ok(Staged {
            file: staged,
            len,
            hash: ContentHash::from_blake3(hasher.finalize()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_deduplicated_and_checked() {
        let tags = |v: &[&str]| validate_tags(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(tags(&[" a ", "b", "a"]).unwrap(), vec!["a", "b"]);
        assert_eq!(tags(&["has space"]).unwrap_err().code(), "invalid_tag");
        assert_eq!(tags(&[""]).unwrap_err().code(), "invalid_tag");
        assert_eq!(tags(&[&"x".repeat(65)]).unwrap_err().code(), "invalid_tag");
        let many: Vec<String> = (0..33).map(|i| i.to_string()).collect();
        assert_eq!(validate_tags(&many).unwrap_err().code(), "invalid_tag");
    }

    #[test]
    fn filenames_are_labels_not_paths() {
        assert_eq!(
            clean_filename(Some("../../etc/passwd".into())),
            Some("passwd".into())
        );
        assert_eq!(
            clean_filename(Some("C:\\x\\cat.jpg".into())),
            Some("cat.jpg".into())
        );
        assert_eq!(clean_filename(Some("dir/".into())), None);
        assert_eq!(
            clean_filename(Some("a\u{0}b.png".into())),
            Some("ab.png".into())
        );
    }
}
