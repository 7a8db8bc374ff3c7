//! Use cases. Each service owns one concern and talks to the world only through [`crate::port`].
//!
//! - [`render_pool`]: bounded blocking workers with a time budget and panic isolation.
//! - [`id_filter`]: the Bloom filter that answers unknown image ids without a query.
//! - [`memory`]: the process-wide memory budget renders and uploads reserve from.
//! - [`auth`]: API-key hashing, authentication and the bootstrap admin key.
//! - [`ingest`]: streaming upload, hashing, validation, durable store-then-record.
//! - [`catalog`]: get, list, tag and delete images.
//! - [`gc`]: collection of unreferenced blobs, safe against racing uploads without locks.
//! - [`delivery`]: originals and variants, rendered once and cached.
//! - [`render_plan`]: a request made concrete for its source: format, and frames kept or not.
//! - `plan_memo`: variant plans memoized per request, as fresh as the records they came from.
//! - [`signing`]: signed delivery URLs (HMAC-SHA256, expiry, key rotation).
//! - [`sealing`]: secrets at rest, sealed under the key-encryption key (KEK).
//! - [`tenancy`]: tenants, their policy, quota, usage and signing keys; delivery admission.
//! - [`jobs`]: the supervisor of background jobs: schedules, restarts, metrics, cluster lease.
//! - [`staging`]: temp files for uploads that vanish unless committed.

pub mod auth;
pub mod catalog;
pub mod delivery;
pub mod gc;
pub mod id_filter;
pub mod ingest;
pub mod jobs;
pub mod memory;
pub(crate) mod plan_memo;
pub mod render_plan;
pub mod render_pool;
pub mod sealing;
pub mod signing;
pub mod staging;
pub mod tenancy;

use std::sync::Arc;

use crate::port::{BlobStore, Imaging, LockManager, MetadataRepo};

/// The adapters every service shares, each behind its port.
#[derive(Clone)]
pub struct Ports {
    pub blobs: Arc<dyn BlobStore>,
    pub repo: Arc<dyn MetadataRepo>,
    pub locks: Arc<dyn LockManager>,
    pub imaging: Arc<dyn Imaging>,
}
