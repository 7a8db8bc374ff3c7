//! The render pool: at most `workers` CPU jobs at once, at most `queue` waiting, each with a time
//! budget and a memory reservation. A full queue or an exhausted memory budget answers
//! [`Error::Overloaded`] at once instead of growing memory without bound; a panicking job fails
//! only its own request.
//!
//! Work stops when nobody waits: a caller that goes away (its future is dropped, as when an
//! HTTP client disconnects) gives back its queue place at once, and a running job is told to
//! stop through its [`JobControl`], so the worker is freed at the job's next checkpoint. The
//! deadline works the same way.
//!
//! Two steps, so a caller can read the source only once it is admitted:
//! [`RenderPool::admit`] (a worker and the memory), then [`Slot::run`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::memory::{MemoryBudget, Reservation};
use crate::port::JobControl;
use crate::{Error, Result};

/// Bounded blocking workers.
pub struct RenderPool {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    budget: Duration,
    memory: Arc<MemoryBudget>,
}

/// An admitted job: a worker and its memory, held until the job really ends.
pub struct Slot {
    permit: OwnedSemaphorePermit,
    reservation: Reservation,
    budget: Duration,
    memory: Arc<MemoryBudget>,
}

/// Gives back a queue place on every path, including a caller that stops waiting.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Tells the job to stop when the caller stops waiting for it.
struct CancelOnDrop(JobControl);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn overloaded() -> Error {
    metrics::counter!("imgd_render_rejected_total").increment(1);
    Error::Overloaded {
        retry_after: Duration::from_secs(1),
    }
}

impl RenderPool {
    /// A pool of `workers` concurrent jobs with room for `queue` waiting ones, each job ending
    /// by `budget`, all of them sharing `memory`.
    pub fn new(workers: usize, queue: usize, budget: Duration, memory: Arc<MemoryBudget>) -> Self {
        RenderPool {
            running: Arc::new(Semaphore::new(workers.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting: queue,
            budget,
            memory,
        }
    }

    /// Jobs waiting for a worker right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Waits for a worker (or refuses when the queue is full), then reserves `bytes` of memory
    /// (or refuses). Dropping the returned future while it waits gives the queue place back.
    pub async fn admit(&self, bytes: u64) -> Result<Slot> {
        // A job that can never fit is refused before it queues.
        if bytes > self.memory.limit() {
            return Err(self.memory.try_reserve(bytes).unwrap_err());
        }
        let permit = match self.running.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(overloaded());
                }
                let _place = QueuePlace(&self.waiting);
                self.running
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(Error::internal)?
            }
        };
        let reservation = self.memory.try_reserve(bytes)?;
        Ok(Slot {
            permit,
            reservation,
            budget: self.budget,
            memory: self.memory.clone(),
        })
    }

    /// [`RenderPool::admit`] then [`Slot::run`], for jobs whose input is already in memory.
    pub async fn run<T, F>(&self, bytes: u64, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&JobControl) -> Result<T> + Send + 'static,
    {
        self.admit(bytes).await?.run(job).await
    }
}

impl Slot {
    /// Runs `job` on a blocking thread. The job receives its [`JobControl`] and stops at its
    /// next checkpoint once the deadline passes or the caller stops waiting; the caller gets
    /// [`Error::RenderTimeout`] at the deadline whatever the job does. The worker and the
    /// memory stay taken until the job really ends, so both bounds hold.
    pub async fn run<T, F>(self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&JobControl) -> Result<T> + Send + 'static,
    {
        let memory = self.memory.clone();
        let control = JobControl::new(Instant::now() + self.budget, Some(self.memory));
        let _cancel = CancelOnDrop(control.clone());
        let job_control = control.clone();
        let (permit, reservation) = (self.permit, self.reservation);
        let handle = tokio::task::spawn_blocking(move || {
            let _held = (permit, reservation);
            let outcome = job(&job_control);
            // What the job freed leaves the process before its bytes are lent out again.
            memory.return_freed_pages();
            if matches!(outcome, Err(Error::Cancelled)) {
                metrics::counter!("imgd_renders_cancelled_total").increment(1);
            }
            outcome
        });
        match tokio::time::timeout(self.budget, handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => {
                tracing::error!(error = %join, "render job panicked");
                Err(Error::RenderFailed)
            }
            Ok(Err(join)) => Err(Error::internal(join)),
            Err(_) => {
                control.cancel();
                Err(Error::RenderTimeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(workers: usize, queue: usize, budget: Duration) -> Arc<RenderPool> {
        Arc::new(RenderPool::new(
            workers,
            queue,
            budget,
            MemoryBudget::new(1 << 20),
        ))
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let pool = pool(1, 4, Duration::from_secs(5));
        let err = pool
            .run(0, |_| -> Result<()> { panic!("boom") })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RenderFailed));
        assert_eq!(
            pool.run(0, |_| Ok(7)).await.unwrap(),
            7,
            "the pool still works after a panic"
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_rejected_not_buffered() {
        let pool = pool(1, 1, Duration::from_secs(5));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(0, move |_| Ok(hold.recv().is_ok())).await }
        });
        while pool.running.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(0, |_| Ok(true)).await }
        });
        while pool.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let rejected = pool.run(0, |_| Ok(true)).await.unwrap_err();
        assert!(matches!(rejected, Error::Overloaded { .. }));
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        assert!(queued.await.unwrap().unwrap());
    }

    /// A job that ignores its checkpoints still cannot hold the caller past the deadline.
    #[tokio::test]
    async fn a_slow_job_times_out() {
        let pool = pool(1, 1, Duration::from_millis(50));
        let err = pool
            .run(0, |_| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RenderTimeout));
    }

    /// A job that checks in is stopped at the deadline, and its worker comes back.
    #[tokio::test]
    async fn the_deadline_stops_a_job_that_checks_in() {
        let pool = pool(1, 1, Duration::from_millis(50));
        let (done_tx, done) = std::sync::mpsc::channel();
        let err = pool
            .run(0, move |job| {
                let outcome = loop {
                    if let Err(e) = job.checkpoint() {
                        break e;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                done_tx.send(outcome.code()).unwrap();
                Err::<(), _>(outcome)
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RenderTimeout));
        let stopped = done.recv_timeout(Duration::from_secs(2)).unwrap();
        assert!(stopped == "cancelled" || stopped == "render_timeout");
        // The slot is free again: another job runs at once.
        assert_eq!(pool.run(0, |_| Ok(1)).await.unwrap(), 1);
    }

    /// Callers that give up while queued leave no queue place behind (it used to be given back
    /// only after acquiring a worker), and a running job whose caller left is told to stop.
    #[tokio::test]
    async fn abandoned_callers_leak_nothing_and_cancel_their_job() {
        let pool = pool(1, 8, Duration::from_secs(30));
        let (started_tx, started) = std::sync::mpsc::channel();
        let (stopped_tx, stopped) = std::sync::mpsc::channel();
        let running = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(0, move |job| {
                    started_tx.send(()).unwrap();
                    while job.checkpoint().is_ok() {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    stopped_tx.send(job.is_cancelled()).unwrap();
                    Ok(())
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        for _ in 0..100 {
            let waiter = tokio::spawn({
                let pool = pool.clone();
                async move { pool.run(0, |_| Ok(())).await }
            });
            while pool.waiting() == 0 {
                tokio::task::yield_now().await;
            }
            waiter.abort();
            let _ = waiter.await;
        }
        assert_eq!(
            pool.waiting(),
            0,
            "abandoned waiters gave their places back"
        );
        running.abort();
        let cancelled = tokio::task::spawn_blocking(move || {
            stopped.recv_timeout(Duration::from_secs(2)).unwrap()
        })
        .await
        .unwrap();
        assert!(cancelled, "the running job saw its caller leave");
        assert_eq!(
            pool.run(0, |_| Ok(2)).await.unwrap(),
            2,
            "the worker is free"
        );
    }

    #[tokio::test]
    async fn memory_is_reserved_for_the_whole_job_and_refused_past_the_budget() {
        let pool = pool(2, 4, Duration::from_secs(5));
        let slot = pool.admit(800 << 10).await.unwrap();
        assert_eq!(pool.memory.used(), 800 << 10);
        let busy = pool.admit(400 << 10).await.err().unwrap();
        assert!(matches!(busy, Error::Overloaded { .. }), "{busy:?}");
        let never = pool.admit(2 << 20).await.err().unwrap();
        assert_eq!(never.code(), "image_too_large");
        slot.run(|_| Ok(())).await.unwrap();
        assert_eq!(pool.memory.used(), 0, "given back when the job ended");
    }
}
