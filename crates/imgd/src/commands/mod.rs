//! Subcommands, one file each.
//!
//! - [`serve`]: run the server until SIGTERM/SIGINT, then drain.

pub mod serve;

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
        Command::Config(args) => {
            let config = Config::load(&args.overrides(), std::env::vars())?;
            println!("{config:#?}");
            Ok(())
        }
    }
}
