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
//! Not here: bytes in the store without any row (none are made by this protocol) and variant
//! rows of live blobs.

use std::future::Future;
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
    /// Blobs that failed; a later run finishes them.
    pub errors: u64,
    /// True when the run stopped early because the server is draining.
    pub stopped: bool,
}

/// Removes unreferenced blobs.
pub struct GcService {
    repo: Arc<dyn MetadataRepo>,
    blobs: Arc<dyn BlobStore>,
    timings: CollectTimings,
}

impl GcService {
    /// A collector over the records and the store.
    pub fn new(
        repo: Arc<dyn MetadataRepo>,
        blobs: Arc<dyn BlobStore>,
        timings: CollectTimings,
    ) -> Self {
        GcService {
            repo,
            blobs,
            timings,
        }
    }

    /// One pass over the blobs unreferenced for at least `grace`: each is claimed, removed and
    /// forgotten (or, for a dry run, only counted). Stops between blobs once `stop` is set.
    pub async fn run(&self, grace: Duration, dry_run: bool, stop: &AtomicBool) -> Result<GcReport> {
        metrics::counter!("imgd_gc_runs_total").increment(1);
        let now = now_millis();
        let rule = ClaimRule {
            now,
            orphaned_before: now.saturating_sub(millis(grace)),
            never_referenced: false,
            stale_claim_before: now.saturating_sub(millis(self.timings.claim_ttl)),
        };
        let mut report = GcReport {
            dry_run,
            grace_secs: grace.as_secs(),
            ..GcReport::default()
        };
        let mut after: Option<ContentHash> = None;
        loop {
            let page = self
                .repo
                .orphans(&rule, after.as_ref(), BATCH)
                .await
                .inspect_err(|_| metrics::counter!("imgd_gc_errors_total").increment(1))?;
            let full = page.len() == BATCH as usize;
            after = page.last().map(|o| o.hash.clone());
            for orphan in page {
                if stop.load(Ordering::SeqCst) {
                    report.stopped = true;
                    return Ok(report);
                }
                report.candidates += 1;
                report.candidate_bytes += orphan.size;
                if dry_run {
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
                break;
            }
        }
        if report.removed > 0 || report.errors > 0 {
            tracing::info!(
                removed = report.removed,
                bytes = report.removed_bytes,
                errors = report.errors,
                "collected unreferenced blobs"
            );
        }
        Ok(report)
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
