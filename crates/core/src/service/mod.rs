//! Use cases. Each service owns one concern and talks to the world only through [`crate::port`].
//!
//! - [`render_pool`]: bounded blocking workers with a time budget and panic isolation.
//! - [`auth`]: API-key hashing, authentication and the bootstrap admin key.
//! - [`ingest`]: streaming upload, hashing, validation, durable store-then-record.
//! - [`catalog`]: get, list, tag and delete images.
//! - [`delivery`]: originals and variants, rendered once and cached.
//! - [`signing`]: signed delivery URLs (HMAC-SHA256, expiry, key rotation).
//! - [`tenancy`]: tenants, their policy, quota, usage and signing keys; delivery admission.
//! - [`staging`]: temp files for uploads that vanish unless committed.

pub mod auth;
pub mod catalog;
pub mod delivery;
pub mod ingest;
pub mod render_pool;
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

/// The lock that serialises "store bytes then take a reference" against "drop the last
/// reference then delete bytes" for one blob, so a delete never removes bytes an upload is
/// about to refer to.
pub(crate) fn blob_lock_key(hash: &crate::id::ContentHash) -> String {
    format!("blob:{hash}")
}
