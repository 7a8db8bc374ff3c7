//! imgd-metadata: implementations of the `MetadataRepo` port.
//!
//! - [`sqlite`]: the embedded default, one file in the data dir, migrations in
//!   `migrations/sqlite` applied at open.
//! - [`postgres`]: PostgreSQL for clusters, migrations in `migrations/postgres`.
//! - `repo`: the `MetadataRepo` port, one set of queries expanded into both repos.
//! - `blobs`: blob references, upload pins and collector claims, one set of queries for both.
//! - `tenancy`: tenants, key listings and presets, one set of queries for both engines.
//! - [`engine`]: which of the two a configuration names, decided once, and opening it.
//! - [`contract`]: the behaviour every repo must show, run against each implementation.

mod blobs;
pub mod contract;
mod contract_tenancy;
pub mod engine;
pub mod postgres;
mod repo;
mod rows;
pub mod sqlite;
mod tenancy;

pub use engine::Engine;
pub use postgres::PostgresRepo;
pub use sqlite::SqliteRepo;
