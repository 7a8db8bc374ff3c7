//! The store scan: every original and variant key is listed a page at a time and merged with
//! the recorded hashes (both come in ascending order, so one range query per page answers which
//! are recorded). Bytes without a row that are older than the grace period are adopted: recorded
//! as unreferenced, orphaned since they were written, so the collection that follows removes them
//! by the one rule, under a claim, never racing an upload's pin (an upload creates its row before
//! it writes a byte, so its bytes always have one).
//!
//! A variant's source is what gets adopted: collecting it removes the whole variant folder.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{BATCH, GcOptions, GcReport, GcService, Progress, millis, random_token};
use crate::Result;
use crate::id::ContentHash;
use crate::port::{BlobKey, MAX_LIST_PAGE, MetadataRepo, ORIGINALS_PREFIX, VARIANTS_PREFIX};

/// A hash found in one page of the listing: its size (0 for a source seen only through its
/// variants) and the newest write under it, in Unix ms.
struct Found {
    size: u64,
    written: i64,
    key: String,
}

/// Lists the store and adopts bytes that have no row (for a dry run, counts and lists them).
pub(super) async fn adopt_unrecorded(
    gc: &GcService,
    options: &GcOptions,
    now: i64,
    progress: &dyn Progress,
    stop: &AtomicBool,
    report: &mut GcReport,
) -> Result<()> {
    let cutoff = now.saturating_sub(millis(options.grace));
    // A source found by its original and again by its variants is one blob (a dry run adopts
    // nothing, so the second sighting would find no row either).
    let mut counted: HashSet<ContentHash> = HashSet::new();
    for prefix in [ORIGINALS_PREFIX, VARIANTS_PREFIX] {
        let mut after: Option<String> = None;
        loop {
            if stop.load(Ordering::SeqCst) {
                report.stopped = true;
                return Ok(());
            }
            let page = gc
                .blobs
                .list(prefix, after.as_deref(), MAX_LIST_PAGE)
                .await?;
            report.scanned += page.entries.len() as u64;
            progress.advance(page.entries.len() as u64);
            let mut found: BTreeMap<ContentHash, Found> = BTreeMap::new();
            for entry in &page.entries {
                // Keys that are not ours (a file a person put there) are left alone.
                let Some(key) = BlobKey::parse(&entry.key) else {
                    continue;
                };
                let Some(hash) = key.source_hash() else {
                    continue;
                };
                let written = unix_millis(entry.stat.modified);
                let original = prefix == ORIGINALS_PREFIX;
                let slot = found.entry(hash).or_insert(Found {
                    size: 0,
                    written,
                    key: entry.key.clone(),
                });
                slot.written = slot.written.max(written);
                if original {
                    slot.size = entry.stat.size;
                }
            }
            // Young bytes wait for a later scan: the grace period counts from the last write.
            found.retain(|_, f| f.written <= cutoff);
            let recorded = match (found.keys().next(), found.keys().next_back()) {
                (Some(first), Some(last)) => recorded_between(&*gc.repo, first, last).await?,
                _ => HashSet::new(),
            };
            for (hash, f) in found.into_iter().filter(|(h, _)| !recorded.contains(h)) {
                if !counted.insert(hash.clone()) {
                    continue;
                }
                report.unrecorded += 1;
                if options.dry_run {
                    report.would_remove("unrecorded", f.key, Some(f.size));
                } else if gc
                    .repo
                    .adopt_blob(&hash, f.size, f.written.min(now), random_token())
                    .await?
                {
                    tracing::info!(%hash, key = %f.key, "found bytes without a record; adopted for collection");
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok(())
}

/// The recorded hashes from `first` to `last`, read a batch at a time.
async fn recorded_between(
    repo: &dyn MetadataRepo,
    first: &ContentHash,
    last: &ContentHash,
) -> Result<HashSet<ContentHash>> {
    let mut recorded = HashSet::new();
    let mut after: Option<ContentHash> = None;
    loop {
        let page = repo.known_blobs(first, after.as_ref(), last, BATCH).await?;
        let full = page.len() == BATCH as usize;
        after = page.last().cloned();
        recorded.extend(page);
        if !full {
            return Ok(recorded);
        }
    }
}

fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
