//! `imgd gc`: one collection pass over the same database and store the servers use (safe while
//! they run: the protocol rests on database claims, not locks), printed as one JSON object. The
//! server runs the same pass as its `gc` job (`crate::jobs`).

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;

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
