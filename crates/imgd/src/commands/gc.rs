//! `imgd gc`: one collection pass over the same database and store the servers use (safe while
//! they run: the protocol rests on database claims, not locks), printed as one JSON object; and
//! the same pass as the server's periodic task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use imgd_core::service::gc::GcService;
use tokio::time::Instant;

use crate::cli::GcArgs;
use crate::config::Config;

/// Runs `imgd gc`.
pub async fn run(args: &GcArgs) -> Result<()> {
    let config = Config::load(&args.store.overrides(), std::env::vars())?;
    crate::telemetry::init_logs(&config.log);
    let gc = crate::app::open_gc(&config).await?;
    let grace = Duration::from_secs(args.grace_secs.unwrap_or(config.gc.grace_secs));
    let report = gc.run(grace, args.dry_run, &AtomicBool::new(false)).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Collects every `interval` until `draining` is set; a pass in progress stops between blobs.
pub async fn periodic(
    gc: Arc<GcService>,
    interval: Duration,
    grace: Duration,
    draining: Arc<AtomicBool>,
) {
    loop {
        let next = Instant::now() + interval;
        while Instant::now() < next {
            if draining.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(
                Duration::from_millis(100).min(next.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        if let Err(e) = gc.run(grace, false, &draining).await {
            tracing::warn!(error = %e, "blob collection failed; the next pass retries");
        }
    }
}
