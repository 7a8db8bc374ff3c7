//! The command line. Flags are the top layer of configuration (see [`crate::config`]).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// imgd: store images and serve them, original or transformed.
#[derive(Debug, Parser)]
#[command(name = "imgd", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Print the resolved configuration (defaults < file < environment < flags) as TOML.
    Config(ServeArgs),
}

/// Flags of `serve` (and `config`).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080; env IMGD_LISTEN].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory [default: ./imgd-data; env IMGD_DATA_DIR].
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// A TOML file with options (see config/default.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ServeArgs {
    /// The flags as configuration overrides.
    pub fn overrides(&self) -> crate::config::Overrides {
        crate::config::Overrides {
            config_file: self.config.clone(),
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
        }
    }
}
