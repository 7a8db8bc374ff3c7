//! Collection of blobs no image refers to. Deleting an image only drops a reference; the bytes
//! go here, by a protocol whose correctness rests on the database alone, never on locks (which
//! fall back to node-local ones when Redis is down):
//!
//! 1. An upload pins the blob row before writing bytes ([`MetadataRepo::pin_blob`]) and takes
//!    its reference through that pin ([`MetadataRepo::insert_image`]), which refuses if the row
//!    was claimed, or collected and created again, in between: then nothing is acknowledged.
//! 2. A collector claims a row in one statement ([`MetadataRepo::claim_orphan`]): no reference,
//!    no live pin, orphaned for the grace period. The row turns `deleting` and uploads of those
//!    bytes wait until it is gone.
//! 3. The collector removes the variants and the original from the store, then the row and its
//!    variant rows ([`MetadataRepo::finish_collect`]).
//!
//! A row left `deleting` by a crashed collector is taken over once its claim is older than
//! `claim_ttl`. A collector spends at most half of that on one blob's store deletes, so no one
//! takes its claim over (and lets a new upload of the bytes in) while it may still delete.
//!
//! Around the protocol, the leftovers it cannot see:
//!
//! - [`scan`]: bytes in the store without a row (a restored database, a render that wrote a
//!   variant while its source was being collected) are adopted as unreferenced rows, so the
//!   rule above removes them after the grace period, and never races an upload.
//! - [`leftovers`]: temp and staging files a crash left, and multipart uploads nobody finished.
//!
//! Not here: variant rows of live blobs (they go with their source).

pub mod leftovers;
mod scan;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::Ports;
use crate::id::{ContentHash, random_bytes};
use crate::model::{ClaimRule, now_millis};
use crate::port::{BlobKey, BlobStore, MetadataRepo};
use crate::{Error, Result};

/// Blobs listed per query.
const BATCH: u32 = 256;

/// Timings of the protocol, shared by uploads (pins) and collectors (claims).
#[derive(Clone, Copy, Debug)]
pub struct CollectTimings {
    /// How long an upload's pin keeps collectors off the blob between pinning and committing.
    /// An upload slower than this is not lost: its commit is refused if a collector got in.
    pub pin_ttl: Duration,
    /// How long an upload waits for a collector removing the same bytes before answering 503.
    pub pin_wait: Duration,
    /// A `deleting` row claimed longer ago than this is taken over by the next collector.
    pub claim_ttl: Duration,
}

/// A random positive token: a pin's row generation, a collector's claim.
pub(crate) fn random_token() -> i64 {
    (i64::from_le_bytes(random_bytes::<8>()) & i64::MAX) | 1
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What one collection run found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub grace_secs: u64,
    /// Store keys the scan listed (0 when the run did not scan the store).
    pub scanned: u64,
    /// Blobs found in the store without a row, now recorded as unreferenced so that the rule
    /// below collects them (for a dry run: found, and older than the grace period).
    pub unrecorded: u64,
    /// Blobs the rule allowed when listed (for a dry run, what a run would try to remove).
    pub candidates: u64,
    /// Their bytes.
    pub candidate_bytes: u64,
    /// Blobs whose bytes, variants and rows this run removed.
    pub removed: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Candidates an upload (or another collector) took first.
    pub skipped: u64,
    /// Temp and staging files (and unfinished upload folders) that a crash left, untouched for
    /// the grace period and at least [`leftovers::MIN_STRAY_AGE`]; removed unless a dry run.
    pub stray_files: u64,
    /// Multipart uploads started longer than the upload lifetime ago; aborted unless a dry run.
    pub stale_uploads: u64,
    /// Blobs that failed; a later run finishes them.
    pub errors: u64,
    /// True when the run stopped early because the server is draining.
    pub stopped: bool,
    /// For a dry run, what a run would remove (the first [`MAX_LISTED`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_remove: Vec<GcItem>,
    /// True when `would_remove` was cut at [`MAX_LISTED`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub would_remove_truncated: bool,
}

/// How many items a dry run lists.
pub const MAX_LISTED: usize = 10_000;

/// One thing a dry run would remove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GcItem {
    /// `orphan` (a blob no image refers to), `unrecorded` (store bytes without a row),
    /// `stray_file` or `stale_upload`.
    pub kind: &'static str,
    /// A content hash, a store key, a path, or an upload's key.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl GcReport {
    fn would_remove(&mut self, kind: &'static str, name: String, bytes: Option<u64>) {
        if self.would_remove.len() < MAX_LISTED {
            self.would_remove.push(GcItem { kind, name, bytes });
        } else {
            self.would_remove_truncated = true;
        }
    }
}

/// What a run does besides collecting orphan rows.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// How long a blob must have been unreferenced (and a stray file untouched) to go.
    pub grace: Duration,
    /// Count and list; remove nothing.
    pub dry_run: bool,
    /// Walk the whole store for bytes without rows (a listing of every key: daily, not every
    /// pass, on a large bucket).
    pub scan_store: bool,
    /// Collect the rows the orphan rule allows (and so the bytes the scan adopted).
    pub collect: bool,
    /// Sweep stray temp files (the store's and the node's staging folders).
    pub sweep_files: bool,
    /// Abort multipart uploads older than this; `None` leaves them.
    pub upload_ttl: Option<Duration>,
}

impl GcOptions {
    /// The orphan rule alone, nothing listed or swept: what an upload's retry or a test racing
    /// uploads against collectors runs.
    pub fn collect_only(grace: Duration) -> Self {
        GcOptions {
            grace,
            dry_run: false,
            scan_store: false,
            collect: true,
            sweep_files: false,
            upload_ttl: None,
        }
    }
}

/// Told how a run advances, for a progress bar on a terminal.
pub trait Progress: Send + Sync {
    /// A stage begins (`scan`, `collect`, `sweep`, `uploads`).
    fn stage(&self, name: &'static str);
    /// `n` more items of the current stage are done.
    fn advance(&self, n: u64);
}

/// No progress shown (the server's job).
pub struct Quiet;

impl Progress for Quiet {
    fn stage(&self, _name: &'static str) {}
    fn advance(&self, _n: u64) {}
}

/// Removes unreferenced blobs, and the leftovers of crashes.
pub struct GcService {
    repo: Arc<dyn MetadataRepo>,
    blobs: Arc<dyn BlobStore>,
    timings: CollectTimings,
    /// Node-local folders of staging files (the ingest's), swept by age.
    scratch: Vec<PathBuf>,
}

impl GcService {
    /// A collector over the records and the store; `scratch` are this node's staging folders.
    pub fn new(
        repo: Arc<dyn MetadataRepo>,
        blobs: Arc<dyn BlobStore>,
        timings: CollectTimings,
        scratch: Vec<PathBuf>,
    ) -> Self {
        GcService {
            repo,
            blobs,
            timings,
            scratch,
        }
    }

    /// One run: the store scan (if asked), the collection of orphans, stray files and stale
    /// uploads (if asked). Stops between items once `stop` is set.
    pub async fn run(
        &self,
        options: &GcOptions,
        progress: &dyn Progress,
        stop: &AtomicBool,
    ) -> Result<GcReport> {
        metrics::counter!("imgd_gc_runs_total").increment(1);
        let mut report = GcReport {
            dry_run: options.dry_run,
            grace_secs: options.grace.as_secs(),
            ..GcReport::default()
        };
        let result = self.stages(options, progress, stop, &mut report).await;
        if result.is_err() {
            metrics::counter!("imgd_gc_errors_total").increment(1);
        }
        result?;
        if report.removed > 0 || report.errors > 0 || report.stray_files > 0 {
            tracing::info!(
                removed = report.removed,
                bytes = report.removed_bytes,
                unrecorded = report.unrecorded,
                stray_files = report.stray_files,
                stale_uploads = report.stale_uploads,
                errors = report.errors,
                dry_run = report.dry_run,
                "collection run"
            );
        }
        Ok(report)
    }

    async fn stages(
        &self,
        options: &GcOptions,
        progress: &dyn Progress,
        stop: &AtomicBool,
        report: &mut GcReport,
    ) -> Result<()> {
        let now = now_millis();
        if options.scan_store {
            progress.stage("scan");
            scan::adopt_unrecorded(self, options, now, progress, stop, report).await?;
        }
        if options.collect && !report.stopped {
            progress.stage("collect");
            self.collect_orphans(options, now, progress, stop, report)
                .await?;
        }
        if options.sweep_files && !report.stopped {
            progress.stage("sweep");
            leftovers::sweep_files(self, options, report).await?;
        }
        if let Some(ttl) = options.upload_ttl.filter(|_| !report.stopped) {
            progress.stage("uploads");
            leftovers::abort_stale_uploads(self, ttl, options.dry_run, report).await?;
        }
        Ok(())
    }

    /// Claims and removes each blob the rule allows (for a dry run, lists them).
    async fn collect_orphans(
        &self,
        options: &GcOptions,
        now: i64,
        progress: &dyn Progress,
        stop: &AtomicBool,
        report: &mut GcReport,
    ) -> Result<()> {
        let rule = ClaimRule {
            now,
            orphaned_before: now.saturating_sub(millis(options.grace)),
            never_referenced: false,
            stale_claim_before: now.saturating_sub(millis(self.timings.claim_ttl)),
        };
        let mut after: Option<ContentHash> = None;
        loop {
            let page = self.repo.orphans(&rule, after.as_ref(), BATCH).await?;
            let full = page.len() == BATCH as usize;
            after = page.last().map(|o| o.hash.clone());
            for orphan in page {
                if stop.load(Ordering::SeqCst) {
                    report.stopped = true;
                    return Ok(());
                }
                progress.advance(1);
                report.candidates += 1;
                report.candidate_bytes += orphan.size;
                if options.dry_run {
                    report.would_remove("orphan", orphan.hash.to_string(), Some(orphan.size));
                    continue;
                }
                match collect(&*self.repo, &*self.blobs, &orphan.hash, &rule, self.timings).await {
                    Ok(Some(size)) => {
                        report.removed += 1;
                        report.removed_bytes += size;
                    }
                    Ok(None) => report.skipped += 1,
                    Err(e) => {
                        metrics::counter!("imgd_gc_errors_total").increment(1);
                        tracing::warn!(error = %e, hash = %orphan.hash, "could not collect a blob; a later run will");
                        report.errors += 1;
                    }
                }
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// Removes the bytes of an upload that failed to commit, if no image ever referred to them and
/// no other upload holds a pin: the same claim as the collector's, without the grace period.
pub(crate) async fn collect_unreferenced(
    ports: &Ports,
    hash: &ContentHash,
    timings: CollectTimings,
) -> Result<bool> {
    let now = now_millis();
    let rule = ClaimRule {
        now,
        orphaned_before: now,
        never_referenced: true,
        stale_claim_before: i64::MIN,
    };
    Ok(collect(&*ports.repo, &*ports.blobs, hash, &rule, timings)
        .await?
        .is_some())
}

/// Claims, removes and forgets one blob; its size if this call removed it, `None` if the rule
/// no longer allows the claim (an upload or another collector got there first).
async fn collect(
    repo: &dyn MetadataRepo,
    blobs: &dyn BlobStore,
    hash: &ContentHash,
    rule: &ClaimRule,
    timings: CollectTimings,
) -> Result<Option<u64>> {
    let Some(claim) = repo.claim_orphan(hash, rule, random_token()).await? else {
        return Ok(None);
    };
    // Half the claim's lifetime, on this node's monotonic clock: past it another collector may
    // take the claim over and an upload may write the bytes again, so no delete may start then.
    let deadline = Instant::now() + timings.claim_ttl / 2;
    within(
        deadline,
        blobs.delete_prefix(&BlobKey::variant_prefix(hash)),
    )
    .await?;
    within(deadline, blobs.delete(&BlobKey::original(hash))).await?;
    if !repo.finish_collect(&claim).await? {
        tracing::warn!(%hash, "a collector's claim was taken over before it finished");
        return Ok(None);
    }
    metrics::counter!("imgd_gc_blobs_removed_total").increment(1);
    Ok(Some(claim.size))
}

/// Runs a store call only within the claim's budget.
async fn within<T>(deadline: Instant, op: impl Future<Output = Result<T>>) -> Result<T> {
    if Instant::now() >= deadline {
        return Err(budget_spent());
    }
    tokio::time::timeout_at(deadline, op)
        .await
        .map_err(|_| budget_spent())?
}

fn budget_spent() -> Error {
    Error::Unavailable("the claim's time budget is spent; a later run finishes it".into())
}
