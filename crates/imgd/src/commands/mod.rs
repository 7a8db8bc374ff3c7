//! Subcommands, one file each.
//!
//! - [`serve`]: run the server until SIGTERM/SIGINT, then drain.
//! - [`render`]: render local files with a variant spec.
//! - [`admin`]: tenants and keys, straight in the metadata store.
//! - [`gc`]: one collection of unreferenced blobs; also the server's periodic task.
//! - [`sign`]: sign a delivery URL offline.

pub mod admin;
pub mod gc;
pub mod render;
pub mod serve;
pub mod sign;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::Config;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args.overrides(), std::env::vars())?;
            crate::telemetry::init_logs(&config.log);
            serve::run(config).await
        }
        Command::Render(args) => {
            let overrides = crate::config::Overrides {
                config_file: args.config.clone(),
                ..Default::default()
            };
            let config = Config::load(&overrides, std::env::vars())?;
            tokio::task::spawn_blocking(move || render::run(&config, &args)).await?
        }
        Command::Admin(command) => admin::run(command).await,
        Command::Sign(args) => sign::run(&args),
        Command::Gc(args) => gc::run(&args).await,
        Command::Config(args) => {
            let mut config = Config::load(&args.overrides(), std::env::vars())?;
            config.hide_secrets();
            print!("{}", config.to_toml()?);
            Ok(())
        }
    }
}
