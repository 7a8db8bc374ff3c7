//! `imgd gc`: one whole collection run over the same database and store the servers use (safe
//! while they run: the protocol rests on database claims, not locks): the store scan for bytes
//! without a record, the orphan rule, this machine's stray temp files and multipart uploads older
//! than `gc.upload_ttl_secs`. Prints one JSON object (a dry run's lists what it would remove);
//! on a terminal a progress line on stderr shows the stage and the count. The server runs the
//! same stages as its `gc` and `sweep` jobs (`crate::jobs`).

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use imgd_core::service::gc::{GcOptions, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::GcArgs;
use crate::config::Config;

/// Runs `imgd gc`.
pub async fn run(args: &GcArgs) -> Result<()> {
    let config = Config::load(&args.store.overrides(), std::env::vars())?;
    crate::telemetry::init_logs(&config.log);
    let gc = crate::app::open_gc(&config).await?;
    let configured = config.gc_options();
    let options = GcOptions {
        grace: args
            .grace_secs
            .map_or(configured.grace, Duration::from_secs),
        dry_run: args.dry_run,
        ..configured
    };
    let bar = Bar::new();
    let report = gc.run(&options, &bar, &AtomicBool::new(false)).await;
    bar.0.finish_and_clear();
    println!("{}", serde_json::to_string(&report?)?);
    Ok(())
}

/// A spinner with the stage and its count, drawn only when stderr is a terminal (indicatif
/// hides it otherwise, so scripts and CI see only the JSON).
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} gc {prefix}: {human_pos} [{elapsed}]")
                .expect("a valid progress template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar(bar)
    }
}

impl Progress for Bar {
    fn stage(&self, name: &'static str) {
        // The count first: a draw between the two would show the last stage's count.
        self.0.set_position(0);
        self.0.set_prefix(name);
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}
