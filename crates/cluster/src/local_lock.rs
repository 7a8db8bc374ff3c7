//! In-process keyed locks: one tokio mutex per key in use, removed when the last holder or
//! waiter is gone, so a million distinct variants do not leave a million idle entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgd_core::Result;
use imgd_core::port::{LockGuard, LockManager};

type Slots = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// Keyed locks for one process. The TTL is ignored: a holder cannot outlive the process.
#[derive(Default, Clone)]
pub struct LocalLocks {
    slots: Slots,
}

/// Releases the key's mutex, then drops the slot if nobody else holds or awaits it.
struct Release {
    slots: Slots,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Release {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = self.slots.lock().expect("lock table");
        // Our Arc is gone with the guard; only the table's own reference left means idle.
        if slots
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            slots.remove(&self.key);
        }
    }
}

impl LocalLocks {
    /// Keys currently held or awaited (for tests and metrics).
    pub fn active(&self) -> usize {
        self.slots.lock().expect("lock table").len()
    }
}

#[async_trait::async_trait]
impl LockManager for LocalLocks {
    async fn lock(&self, key: &str, _ttl: Duration) -> Result<LockGuard> {
        let mutex = self
            .slots
            .lock()
            .expect("lock table")
            .entry(key.to_owned())
            .or_default()
            .clone();
        let guard = mutex.lock_owned().await;
        Ok(LockGuard::new(Release {
            slots: self.slots.clone(),
            key: key.to_owned(),
            guard: Some(guard),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_locks_meet_the_contract() {
        let locks = LocalLocks::default();
        crate::contract::run(Arc::new(locks.clone())).await;
        assert_eq!(locks.active(), 0, "no idle keys are kept");
    }
}
