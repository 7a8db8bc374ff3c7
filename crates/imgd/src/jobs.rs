//! The server's background jobs, each a [`Job`] for the supervisor (`imgd_core::service::jobs`):
//!
//! - `gc`: a collection pass every `gc.interval_secs` over blobs unreferenced for
//!   `gc.grace_secs` (a pass in progress stops between blobs on drain);
//! - `id_filter`: keeps the image-id filter current, every second;
//! - `heartbeats`: cluster membership, continuous while a Redis URL is set; the node leaves the
//!   ring as soon as draining starts, so peers stop forwarding to it.

use std::sync::Arc;
use std::time::Duration;

use imgd_cluster::Membership;
use imgd_core::Result;
use imgd_core::port::MetadataRepo;
use imgd_core::service::gc::GcService;
use imgd_core::service::id_filter::IdFilter;
use imgd_core::service::jobs::{Job, Stop};

/// One collection pass.
pub struct Collect {
    pub service: Arc<GcService>,
    pub grace: Duration,
}

#[async_trait::async_trait]
impl Job for Collect {
    async fn pass(&self, stop: &Stop) -> Result<()> {
        self.service.run(self.grace, false, stop.flag()).await?;
        Ok(())
    }
}

/// One sync of the id filter with the database.
pub struct SyncIds {
    pub filter: Arc<IdFilter>,
    pub repo: Arc<dyn MetadataRepo>,
}

#[async_trait::async_trait]
impl Job for SyncIds {
    async fn pass(&self, _stop: &Stop) -> Result<()> {
        self.filter.sync_once(self.repo.as_ref()).await
    }
}

/// Heartbeats until the supervisor stops, then leaves the ring.
pub struct Heartbeats(pub Arc<Membership>);

#[async_trait::async_trait]
impl Job for Heartbeats {
    async fn pass(&self, stop: &Stop) -> Result<()> {
        self.0.clone().run(stop.wait()).await;
        Ok(())
    }
}
