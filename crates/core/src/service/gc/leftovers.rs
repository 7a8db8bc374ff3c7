//! What crashes leave outside the database: temp files of interrupted writes (the store's own
//! and this node's upload staging), and multipart uploads that nobody completed or aborted.
//! Both are judged by age alone: a file untouched for the grace period, and for at least
//! [`MIN_STRAY_AGE`], belongs to no live upload, and an upload older than the upload lifetime is
//! past any client's resumption.

use std::time::{Duration, SystemTime};

use super::{GcOptions, GcReport, GcService};
use crate::service::staging;
use crate::{Error, Result};

/// The least time a temp file must be untouched to be a leftover, whatever the grace period: a
/// live upload writes its staging file at least every `server.body_timeout_secs` (30 s) or is
/// cut off, then holds it through inspection and the store write (bounded by the render and pin
/// timeouts), so ten minutes is far beyond any file still in use; a grace of 0 must not pull a
/// file from under an upload in flight.
pub const MIN_STRAY_AGE: Duration = Duration::from_secs(600);

/// Removes (for a dry run, lists) temp files untouched for the grace period (and
/// [`MIN_STRAY_AGE`]).
pub(super) async fn sweep_files(
    gc: &GcService,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<()> {
    let cutoff = SystemTime::now() - options.grace.max(MIN_STRAY_AGE);
    let remove = !options.dry_run;
    let mut found = gc.blobs.leftovers(cutoff, remove).await?;
    let scratch = gc.scratch.clone();
    let local = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
        let mut found = Vec::new();
        for dir in &scratch {
            let files = staging::leftovers(dir, cutoff, remove)?;
            found.extend(files.iter().map(|p| p.display().to_string()));
        }
        Ok(found)
    })
    .await
    .map_err(|e| Error::internal(format!("sweep task: {e}")))??;
    found.extend(local);
    report.stray_files += found.len() as u64;
    if options.dry_run {
        for name in found {
            report.would_remove("stray_file", name, None);
        }
    }
    Ok(())
}

/// Aborts (for a dry run, lists) multipart uploads started more than `ttl` ago.
pub(super) async fn abort_stale_uploads(
    gc: &GcService,
    ttl: Duration,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    let cutoff = SystemTime::now() - ttl;
    for pending in gc.blobs.pending_multipart().await? {
        if pending.started >= cutoff {
            continue;
        }
        report.stale_uploads += 1;
        if dry_run {
            report.would_remove("stale_upload", pending.upload.key.as_str().to_owned(), None);
        } else {
            gc.blobs.abort_multipart(&pending.upload).await?;
            tracing::info!(key = %pending.upload.key.as_str(), "aborted a multipart upload nobody finished");
        }
    }
    Ok(())
}
