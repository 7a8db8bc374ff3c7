//! imgd-cluster: coordination ports, in process for a node alone and in Redis for a cluster.
//!
//! - [`local_lock`]: `LocalLocks`, keyed async mutexes with no leak of idle keys.
//! - [`local_limit`]: `LocalLimiter`, in-process GCRA.
//! - [`placement`]: `SingleNode` and weighted `Rendezvous` hashing.
//! - [`redis`]: `RedisLocks`, `Membership` (heartbeats + live placement), `RedisLimiter`.
//! - [`contract`]: the behaviour every lock manager and limiter must show.

pub mod contract;
pub mod local_limit;
pub mod local_lock;
pub mod placement;
pub mod redis;

pub use local_limit::LocalLimiter;
pub use local_lock::LocalLocks;
pub use placement::{Rendezvous, SingleNode};
pub use redis::RedisConn;
pub use redis::limiter::RedisLimiter;
pub use redis::lock::RedisLocks;
pub use redis::membership::Membership;
