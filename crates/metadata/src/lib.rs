//! imgd-metadata: implementations of the `MetadataRepo` port.
//!
//! - [`sqlite`]: the embedded default, one file in the data dir, migrations in
//!   `migrations/sqlite` applied at open.
//! - [`contract`]: the behaviour every repo must show, run against each implementation.

pub mod contract;
pub mod sqlite;

pub use sqlite::SqliteRepo;
