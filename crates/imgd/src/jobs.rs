//! The server's background jobs, each a [`Job`] for the supervisor (`imgd_core::service::jobs`):
//!
//! - `gc`: a collection pass every `gc.interval_secs` over blobs unreferenced for
//!   `gc.grace_secs`, aborting multipart uploads older than `gc.upload_ttl_secs` and, every
//!   `gc.scan_interval_secs`, listing the whole store for bytes without a record (a pass in
//!   progress stops between blobs on drain); one node at a time, under a lease;
//! - `sweep`: this node's stray temp and staging files, every `gc.interval_secs`, on every node
//!   (they are local to it);
//! - `id_filter`: keeps the image-id filter current, every second;
//! - `heartbeats`: cluster membership, continuous while a Redis URL is set; the node leaves the
//!   ring as soon as draining starts, so peers stop forwarding to it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use imgd_cluster::Membership;
use imgd_core::Result;
use imgd_core::port::MetadataRepo;
use imgd_core::service::gc::{GcOptions, GcService, Quiet};
use imgd_core::service::id_filter::IdFilter;
use imgd_core::service::jobs::{Job, Stop};

/// One collection pass; the store scan only when one is due.
pub struct Collect {
    pub service: Arc<GcService>,
    /// The configured run; its `scan_store` is decided per pass.
    pub options: GcOptions,
    /// `None`: never scan.
    pub scan_every: Option<Duration>,
    pub last_scan: Mutex<Option<Instant>>,
}

#[async_trait::async_trait]
impl Job for Collect {
    async fn pass(&self, stop: &Stop) -> Result<()> {
        let last = *self.last_scan.lock().expect("scan time lock");
        let due = match (self.scan_every, last) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(every), Some(last)) => last.elapsed() >= every,
        };
        let options = GcOptions {
            scan_store: due,
            sweep_files: false,
            ..self.options.clone()
        };
        let report = self.service.run(&options, &Quiet, stop.flag()).await?;
        if due && !report.stopped {
            *self.last_scan.lock().expect("scan time lock") = Some(Instant::now());
        }
        Ok(())
    }
}

/// One sweep of this node's stray files.
pub struct Sweep {
    pub service: Arc<GcService>,
    pub options: GcOptions,
}

#[async_trait::async_trait]
impl Job for Sweep {
    async fn pass(&self, stop: &Stop) -> Result<()> {
        let options = GcOptions {
            scan_store: false,
            collect: false,
            sweep_files: true,
            upload_ttl: None,
            ..self.options.clone()
        };
        self.service.run(&options, &Quiet, stop.flag()).await?;
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
