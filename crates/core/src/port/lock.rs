//! The lock port: mutual exclusion per key, so one variant renders once and a blob is never
//! deleted while an upload of the same bytes is being recorded.

use std::time::Duration;

use crate::Result;

/// Held until dropped; dropping releases the lock.
pub struct LockGuard {
    _release: Box<dyn Send + Sync>,
}

impl LockGuard {
    /// Wraps whatever releases the lock on drop.
    pub fn new(release: impl Send + Sync + 'static) -> Self {
        LockGuard {
            _release: Box::new(release),
        }
    }
}

/// Keyed locks. Waiters queue; `ttl` bounds how long a crashed holder can block others where the
/// implementation spans processes.
#[async_trait::async_trait]
pub trait LockManager: Send + Sync + 'static {
    /// Waits for and takes the lock on `key`.
    async fn lock(&self, key: &str, ttl: Duration) -> Result<LockGuard>;
}
