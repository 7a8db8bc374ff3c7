//! imgd-cluster: coordination ports. Today the in-process implementations that a single node
//! needs; the Redis and hash-ring versions sit beside them when the cluster arrives.
//!
//! - [`local_lock`]: `LocalLocks`, keyed async mutexes with no leak of idle keys.
//! - [`contract`]: the behaviour every `LockManager` must show.
//! - [`placement`]: `SingleNode` and weighted `Rendezvous` hashing.

pub mod contract;
pub mod local_lock;
pub mod placement;

pub use local_lock::LocalLocks;
pub use placement::{Rendezvous, SingleNode};
