//! The render pool: at most `workers` CPU jobs at once, at most `queue` waiting, each with a time
//! budget. A full queue answers [`Error::Overloaded`] at once instead of growing memory without
//! bound; a panicking job fails only its own request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::{Error, Result};

/// Bounded blocking workers.
pub struct RenderPool {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    budget: Duration,
}

impl RenderPool {
    /// A pool of `workers` concurrent jobs with room for `queue` waiting ones.
    pub fn new(workers: usize, queue: usize, budget: Duration) -> Self {
        RenderPool {
            running: Arc::new(Semaphore::new(workers.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting: queue,
            budget,
        }
    }

    /// Runs `job` on a blocking thread. The job receives its deadline so it can stop early; if it
    /// does not, the caller still gets [`Error::RenderTimeout`] at the deadline, and the worker slot
    /// stays taken until the job really ends, so the bound on CPU work holds.
    pub async fn run<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Instant) -> Result<T> + Send + 'static,
    {
        let permit = match self.running.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    metrics::counter!("imgd_render_rejected_total").increment(1);
                    return Err(Error::Overloaded {
                        retry_after: Duration::from_secs(1),
                    });
                }
                let permit = self.running.clone().acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                permit.map_err(Error::internal)?
            }
        };
        let deadline = Instant::now() + self.budget;
        let handle = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            job(deadline)
        });
        match tokio::time::timeout(self.budget, handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => {
                tracing::error!(error = %join, "render job panicked");
                Err(Error::RenderFailed)
            }
            Ok(Err(join)) => Err(Error::internal(join)),
            Err(_) => Err(Error::RenderTimeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let pool = RenderPool::new(1, 4, Duration::from_secs(5));
        let err = pool
            .run(|_| -> Result<()> { panic!("boom") })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RenderFailed));
        assert_eq!(
            pool.run(|_| Ok(7)).await.unwrap(),
            7,
            "the pool still works after a panic"
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_rejected_not_buffered() {
        let pool = Arc::new(RenderPool::new(1, 1, Duration::from_secs(5)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move |_| Ok(hold.recv().is_ok())).await }
        });
        while pool.running.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|_| Ok(true)).await }
        });
        while pool.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let rejected = pool.run(|_| Ok(true)).await.unwrap_err();
        assert!(matches!(rejected, Error::Overloaded { .. }));
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        assert!(queued.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn a_slow_job_times_out() {
        let pool = RenderPool::new(1, 1, Duration::from_millis(50));
        let err = pool
            .run(|_| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RenderTimeout));
    }
}
