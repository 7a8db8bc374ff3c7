//! The S3-compatible store (AWS, MinIO, Garage, Ceph, s3s) through `object_store`.
//!
//! Content-addressed keys never change their bytes, so a write is "put if absent": small blobs go
//! up in one `PUT` with `If-None-Match: *` (an existing key answers 412, which is success here),
//! large ones as a multipart upload after a `HEAD` finds the key missing (S3 has no conditional
//! multipart; two racing uploads of the same key write the same bytes, so the loser is harmless).
//! Reads stream, with ranges passed through as `Range` headers. Retries and timeouts are
//! `object_store`'s, bounded so that a store that is down answers `unavailable` in seconds
//! rather than hanging a request.
//!
//! Listings are ListObjectsV2 pages resumed with `start-after` (stateless, so any process can
//! continue one). Multipart uploads are S3's own; each also leaves a small marker object under
//! `multipart/` naming its key and id, so uploads that nobody completed can be found and aborted
//! on servers without ListMultipartUploads (s3s, some gateways). A crash between creating an
//! upload and writing its marker leaves one that only the bucket's
//! `AbortIncompleteMultipartUpload` lifecycle rule removes; the README recommends one.

use imgd_core::Code;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use imgd_core::port::{
    BlobEntry, BlobKey, BlobPage, BlobRead, BlobStat, BlobStore, ByteRange, MultipartUpload,
    PartTag, PendingUpload,
};
use imgd_core::{Error, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, PutMode, PutOptions, PutPayload,
    RetryConfig, WriteMultipart,
};

use crate::multipart::{check_part_number, check_part_order, folder, page_size};
use tokio::io::AsyncReadExt;

/// Part size of multipart uploads; S3's minimum is 5 MiB.
const PART_BYTES: usize = 8 * 1024 * 1024;

/// S3's smallest part but the last.
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// The folder of multipart markers.
const MARKERS: &str = "multipart";

/// Where and how to reach the bucket.
#[derive(Clone, Debug)]
pub struct S3Settings {
    pub bucket: String,
    /// Keys are stored under this prefix (from `s3://bucket/prefix`); empty for the bucket root.
    pub prefix: String,
    /// `None` for AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    /// `http://host:port/bucket/key` instead of `http://bucket.host:port/key`; what most
    /// self-hosted servers want.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Files larger than this go up as multipart uploads.
    pub multipart_threshold: u64,
}

impl S3Settings {
    /// Parses `s3://bucket[/prefix]`, leaving the other settings at their defaults.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| Error::invalid(Code::BadStore, format!("not an s3:// URL: {url}")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::invalid(
                Code::BadStore,
                "the s3:// URL has no bucket",
            ));
        }
        Ok(S3Settings {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: None,
            region: "us-east-1".to_owned(),
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            multipart_threshold: 16 * 1024 * 1024,
        })
    }
}

/// Blobs in an S3-compatible bucket.
pub struct S3BlobStore {
    store: AmazonS3,
    prefix: String,
    multipart_threshold: u64,
}

/// A store error as the domain sees it: the store not answering is `unavailable` (503), so a
/// client can retry and `/readyz` says why.
fn store_error(e: object_store::Error) -> Error {
    Error::Unavailable(format!("object store: {e}"))
}

impl S3BlobStore {
    /// Builds the client; nothing is contacted until the first request.
    pub fn new(settings: &S3Settings) -> Result<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_timeout(Duration::from_secs(60))
                    .with_allow_http(true),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(id) = &settings.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| Error::invalid(Code::BadStore, e.to_string()))?;
        Ok(S3BlobStore {
            store,
            prefix: settings.prefix.clone(),
            multipart_threshold: settings.multipart_threshold,
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(self.raw_key(key))
    }

    /// `key` under the store's prefix, as the bucket spells it.
    fn raw_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// A bucket key back as a store key (`None` outside the prefix).
    fn store_key<'a>(&self, raw: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            Some(raw)
        } else {
            raw.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
        }
    }

    /// Where the marker of upload `id` lives (hashed: S3 upload ids are long and opaque).
    fn marker(&self, id: &str) -> ObjectPath {
        let name = &blake3::hash(id.as_bytes()).to_hex()[..32];
        self.path(&format!("{MARKERS}/{name}"))
    }

    /// Reads a marker back; `None` if it is gone or not one of ours.
    async fn read_marker(&self, location: &ObjectPath) -> Result<Option<MultipartUpload>> {
        let bytes = match self.store.get(location).await {
            Ok(result) => result.bytes().await.map_err(store_error)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error(e)),
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        let upload = match (lines.next().and_then(BlobKey::parse), lines.next()) {
            (Some(key), Some(id)) if !id.is_empty() => Some(MultipartUpload {
                key,
                id: id.to_owned(),
            }),
            _ => None,
        };
        Ok(upload.filter(|u| self.marker(&u.id) == *location))
    }

    async fn delete_marker(&self, id: &str) -> Result<()> {
        match self.store.delete(&self.marker(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Writes `payload` unless the key exists.
    async fn put_if_absent(&self, key: &BlobKey, payload: PutPayload) -> Result<()> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&self.path(key.as_str()), payload, options)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Uploads a large file in parts, reading it a part at a time.
    async fn put_multipart(&self, key: &BlobKey, staged: &Path) -> Result<()> {
        let upload = self
            .store
            .put_multipart(&self.path(key.as_str()))
            .await
            .map_err(store_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut file = tokio::fs::File::open(staged).await?;
        let mut buffer = vec![0u8; PART_BYTES];
        loop {
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            // Bounds memory to a couple of parts in flight.
            writer.wait_for_capacity(2).await.map_err(store_error)?;
            writer.write(&buffer[..n]);
        }
        writer.finish().await.map_err(store_error)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn put_file(&self, key: &BlobKey, staged: &Path) -> Result<()> {
        let len = tokio::fs::metadata(staged).await?.len();
        if len <= self.multipart_threshold {
            let bytes = tokio::fs::read(staged).await?;
            self.put_if_absent(key, PutPayload::from(bytes)).await?;
        } else if self.stat(key).await?.is_none() {
            self.put_multipart(key, staged).await?;
        }
        tokio::fs::remove_file(staged).await?;
        Ok(())
    }

    async fn put_bytes(&self, key: &BlobKey, bytes: Bytes) -> Result<()> {
        self.put_if_absent(key, PutPayload::from(bytes)).await
    }

    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<Option<BlobRead>> {
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end + 1)),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&self.path(key.as_str()), options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error(e)),
        };
        let len = result.range.end - result.range.start;
        let body = result
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed();
        Ok(Some(BlobRead { len, body }))
    }

    async fn read_all(&self, key: &BlobKey) -> Result<Option<Bytes>> {
        match self.store.get(&self.path(key.as_str())).await {
            Ok(result) => Ok(Some(result.bytes().await.map_err(store_error)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn stat(&self, key: &BlobKey) -> Result<Option<BlobStat>> {
        match self.store.head(&self.path(key.as_str())).await {
            Ok(meta) => Ok(Some(stat_of(&meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<BlobPage> {
        let limit = page_size(limit);
        let options = PaginatedListOptions {
            offset: after.map(|a| self.raw_key(a)),
            max_keys: Some(limit),
            ..PaginatedListOptions::default()
        };
        let raw_prefix = self.raw_key(&folder(prefix));
        let page = self
            .store
            .list_paginated(Some(&raw_prefix), options)
            .await
            .map_err(store_error)?;
        let mut entries: Vec<BlobEntry> = page
            .result
            .objects
            .iter()
            .filter_map(|meta| {
                let key = self.store_key(meta.location.as_ref())?;
                (Some(key) > after).then(|| BlobEntry {
                    key: key.to_owned(),
                    stat: stat_of(meta),
                })
            })
            .collect();
        // S3 lists in key order; a server that did not is put right here.
        entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        entries.truncate(limit);
        let next = (entries.len() == limit).then(|| entries[limit - 1].key.clone());
        Ok(BlobPage { entries, next })
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        match self.store.delete(&self.path(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let prefix = self.path(prefix);
        let locations = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        let deleted: Vec<ObjectPath> = self
            .store
            .delete_stream(locations)
            .try_collect()
            .await
            .map_err(store_error)?;
        Ok(deleted.len() as u64)
    }

    async fn check(&self) -> Result<()> {
        // A HEAD proves reachability and credentials without writing (a write per probe costs
        // money on AWS); "not found" is the expected answer.
        match self.store.head(&self.path("health/probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn leftovers(&self, _older_than: SystemTime, _remove: bool) -> Result<Vec<String>> {
        // Writes are single requests or multipart uploads (found by `pending_multipart`).
        Ok(Vec::new())
    }

    fn min_part_bytes(&self) -> u64 {
        MIN_PART_BYTES
    }

    async fn create_multipart(&self, key: &BlobKey) -> Result<MultipartUpload> {
        let id = self
            .store
            .create_multipart(&self.path(key.as_str()))
            .await
            .map_err(store_error)?;
        let marker = format!("{}\n{id}\n", key.as_str());
        self.store
            .put(&self.marker(&id), PutPayload::from(marker.into_bytes()))
            .await
            .map_err(store_error)?;
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
        let part = self
            .store
            .put_part(
                &self.path(upload.key.as_str()),
                &upload.id,
                number as usize - 1,
                PutPayload::from(bytes),
            )
            .await
            .map_err(upload_error)?;
        Ok(PartTag {
            number,
            tag: part.content_id,
        })
    }

    async fn complete_multipart(&self, upload: &MultipartUpload, parts: &[PartTag]) -> Result<()> {
        check_part_order(parts)?;
        let ids = parts
            .iter()
            .map(|p| PartId {
                content_id: p.tag.clone(),
            })
            .collect();
        self.store
            .complete_multipart(&self.path(upload.key.as_str()), &upload.id, ids)
            .await
            .map_err(upload_error)?;
        self.delete_marker(&upload.id).await
    }

    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()> {
        let aborted = self
            .store
            .abort_multipart(&self.path(upload.key.as_str()), &upload.id)
            .await
            .map_err(upload_error);
        match aborted {
            Ok(()) | Err(Error::NotFound(_)) => self.delete_marker(&upload.id).await,
            // Servers differ on an upload that is already gone (AWS: NoSuchUpload, s3s: access
            // denied); with its marker gone too it was completed or aborted before.
            Err(e) => match self.read_marker(&self.marker(&upload.id)).await? {
                None => Ok(()),
                Some(_) => Err(e),
            },
        }
    }

    async fn pending_multipart(&self) -> Result<Vec<PendingUpload>> {
        let markers: Vec<ObjectMeta> = self
            .store
            .list(Some(&self.path(MARKERS)))
            .try_collect()
            .await
            .map_err(store_error)?;
        let mut pending = Vec::with_capacity(markers.len());
        for meta in markers {
            if let Some(upload) = self.read_marker(&meta.location).await? {
                pending.push(PendingUpload {
                    upload,
                    started: SystemTime::from(meta.last_modified),
                });
            }
        }
        Ok(pending)
    }
}

fn stat_of(meta: &ObjectMeta) -> BlobStat {
    BlobStat {
        size: meta.size,
        modified: SystemTime::from(meta.last_modified),
    }
}

/// A multipart call's error: an upload the server no longer knows is not found (it was
/// completed or aborted by another process), anything else is the store's.
fn upload_error(e: object_store::Error) -> Error {
    let text = e.to_string();
    if matches!(e, object_store::Error::NotFound { .. }) || text.contains("NoSuchUpload") {
        Error::NotFound("multipart upload")
    } else {
        store_error(e)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Runs the blob contract against the S3-compatible server at `IMGD_TEST_S3_ENDPOINT`
    /// (`.ci/run` starts one). Without it the test says SKIPPED, unless `CI` is set: CI must
    /// never skip the real-store run silently.
    #[tokio::test]
    async fn s3_store_passes_the_contract() {
        let Some(settings) = test_settings() else {
            return;
        };
        let open = || -> Arc<dyn BlobStore> { Arc::new(S3BlobStore::new(&settings).unwrap()) };
        let dir = tempfile::tempdir().unwrap();
        crate::contract::run([open(), open()], dir.path()).await;
    }

    #[tokio::test]
    async fn a_store_that_is_down_is_unavailable_quickly() {
        let mut settings = S3Settings::from_url("s3://nothing").unwrap();
        // A port nobody listens on.
        settings.endpoint = Some("http://127.0.0.1:9".to_owned());
        settings.path_style = true;
        settings.access_key_id = Some("x".into());
        settings.secret_access_key = Some("y".into());
        let store = S3BlobStore::new(&settings).unwrap();
        let started = std::time::Instant::now();
        let err = store.check().await.unwrap_err();
        assert_eq!(err.code(), "unavailable");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn store_urls_parse() {
        let s = S3Settings::from_url("s3://images/tenant-a/").unwrap();
        assert_eq!(
            (s.bucket.as_str(), s.prefix.as_str()),
            ("images", "tenant-a")
        );
        assert!(S3Settings::from_url("s3://").is_err());
        assert!(S3Settings::from_url("file:///tmp").is_err());
    }

    fn test_settings() -> Option<S3Settings> {
        let Ok(endpoint) = std::env::var("IMGD_TEST_S3_ENDPOINT") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set IMGD_TEST_S3_ENDPOINT"
            );
            eprintln!("SKIPPED: IMGD_TEST_S3_ENDPOINT is not set");
            return None;
        };
        let bucket = std::env::var("IMGD_TEST_S3_BUCKET").unwrap_or_else(|_| "imgd-test".into());
        let mut settings = S3Settings::from_url(&format!("s3://{bucket}/contract")).unwrap();
        settings.endpoint = Some(endpoint);
        settings.path_style = true;
        settings.access_key_id = std::env::var("AWS_ACCESS_KEY_ID").ok();
        settings.secret_access_key = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
        // Small, so the contract's larger blob exercises multipart.
        settings.multipart_threshold = 1024 * 1024;
        Some(settings)
    }
}
