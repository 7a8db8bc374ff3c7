//! The imgd binary's library half, so integration tests can start a real server in-process.
//!
//! - [`cli`]: the command line (`imgd serve ...`).
//! - [`config`]: layered configuration, resolved once.
//! - [`app`]: the composition root: opens the store and the database, builds services, serves.
//! - [`jobs`]: the server's background jobs (collection, id filter, heartbeats) for the supervisor.
//! - [`telemetry`]: logs and the Prometheus recorder.
//! - [`commands`]: one file per subcommand.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod jobs;
pub mod telemetry;
