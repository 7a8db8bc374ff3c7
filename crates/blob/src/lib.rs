//! imgd-blob: implementations of the `BlobStore` port.
//!
//! - [`local`]: the embedded default, files under the data dir, written atomically.
//! - [`memory`]: a map in memory, for tests and as the contract's reference.
//! - [`contract`]: the behaviour every store must show, run against each implementation.

pub mod contract;
pub mod local;
pub mod memory;

pub use local::LocalBlobStore;
pub use memory::MemoryBlobStore;
