//! imgd-metadata: implementations of the `MetadataRepo` port.
//!
//! - [`sqlite`]: the embedded default, one file in the data dir, migrations in
//!   `migrations/sqlite` applied at open.
//! - [`postgres`]: PostgreSQL for clusters, migrations in `migrations/postgres`.
//! - [`contract`]: the behaviour every repo must show, run against each implementation.

pub mod contract;
pub mod postgres;
mod rows;
pub mod sqlite;

pub use postgres::PostgresRepo;
pub use sqlite::SqliteRepo;
