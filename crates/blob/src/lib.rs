//! imgd-blob: implementations of the `BlobStore` port.
//!
//! - [`local`]: the embedded default, files under the data dir, written atomically.
//! - [`s3`]: S3-compatible object stores (the cluster's shared store), via `object_store`.
//! - [`spec`]: a store described as a value (`local`, `local:PATH`, `s3://...`), opened by one function.
//! - [`memory`]: a map in memory, for tests and as the contract's reference.
//! - `multipart`: the part and page rules every store applies the same way.
//! - [`contract`]: the behaviour every store must show, run against each implementation.

pub mod contract;
pub mod local;
pub mod memory;
mod multipart;
pub mod s3;
pub mod spec;

pub use local::LocalBlobStore;
pub use memory::MemoryBlobStore;
pub use s3::{S3BlobStore, S3Settings};
pub use spec::StoreSpec;
