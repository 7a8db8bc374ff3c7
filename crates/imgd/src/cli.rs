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
    /// Render local files with a variant spec, without a server (for checking presets and for
    /// benchmarks against other tools).
    Render(RenderArgs),
    /// Print the resolved configuration (defaults < file < environment < flags) as TOML.
    Config(ServeArgs),
    /// Manage tenants and keys directly in the metadata store (the server need not run).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Sign a delivery URL with a tenant's signing secret, offline.
    Sign(SignArgs),
    /// Remove what nothing refers to, in one run, and print a JSON summary: blobs no image has
    /// referred to for the grace period (with their variants), store bytes without a record,
    /// stray temp files, and multipart uploads older than gc.upload_ttl_secs. Safe while servers
    /// run.
    Gc(GcArgs),
}

/// Flags of `gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// List and count what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds a blob must have been unreferenced (a stray file untouched) to go
    /// [default: gc.grace_secs].
    #[arg(long, value_name = "N")]
    pub grace_secs: Option<u64>,
    #[command(flatten)]
    pub store: ServeArgs,
}

/// `imgd admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// `imgd admin tenant ...`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints it as JSON, with its first signing key's secret.
    Create {
        /// 1 to 64 of A-Z a-z 0-9 . _ -
        name: String,
        #[command(flatten)]
        store: ServeArgs,
    },
    /// List tenants as JSON lines.
    List {
        #[command(flatten)]
        store: ServeArgs,
    },
}

/// `imgd admin key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; prints it as JSON, with the secret (shown this once).
    Create {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// admin, owner, writer or reader.
        #[arg(long)]
        role: String,
        /// A label for people.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: ServeArgs,
    },
    /// Revoke a key by id.
    Revoke {
        id: String,
        #[command(flatten)]
        store: ServeArgs,
    },
}

/// Flags of `sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The path to sign: `/i/{id}` or `/i/{id}/{options}`.
    #[arg(long)]
    pub path: String,
    /// The tenant's signing secret (64 hex digits).
    #[arg(long, env = "IMGD_SIGNING_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Seconds the URL stays valid.
    #[arg(long, default_value_t = 3600)]
    pub expires_in: u64,
    /// Prefix for the printed URL, e.g. https://img.example.com.
    #[arg(long, default_value = "")]
    pub base_url: String,
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

/// Flags of `render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Variant options, as in `/i/{id}/{options}`: `w=400,f=webp`, or a preset name.
    #[arg(long, short = 'p', value_name = "OPTIONS")]
    pub options: String,
    /// Folder for the outputs, named after the inputs with the output format's extension.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// A TOML file with options (presets, quality defaults, limits).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Files rendered at once [default: render.workers, one per core].
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Input image files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}
