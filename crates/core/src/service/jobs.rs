//! Background jobs under one small supervisor: each job is a [`Job`] whose `pass` the supervisor
//! runs on a [`Schedule`], from server start until drain.
//!
//! - **Stop on drain**: [`Supervisor::stop`] sets a [`Stop`] every pass can look at (a long pass
//!   returns between items) and ends every schedule; [`Supervisor::join`] waits for them.
//! - **Failures**: a pass that errs or panics is counted, logged and tried again after a backoff
//!   that doubles per consecutive failure (1 s to 30 s), never sooner than the schedule. A panic
//!   is caught by the task it runs in; it never takes the supervisor or the server down.
//! - **Metrics** per job: `imgd_job_runs_total`, `imgd_job_errors_total`,
//!   `imgd_job_panics_total`, `imgd_job_skipped_total` (lease held elsewhere) and
//!   `imgd_job_duration_seconds`, each labelled `job`.
//! - **Cluster lease**: a job that must run on one node at a time names a [`Lease`]; each pass
//!   first takes the lock `job:{name}` (Redis in a cluster, in-process alone) and skips its turn
//!   when another node holds it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::Result;
use crate::port::LockManager;

/// The first wait after a failed pass; it doubles per consecutive failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a pass waits for its lease before skipping its turn.
const LEASE_WAIT: Duration = Duration::from_millis(200);

/// Set once, when the server drains: passes return early, schedules end.
#[derive(Clone, Default)]
pub struct Stop {
    set: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Stop {
    /// True once the supervisor is stopping.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// The flag itself, for code that polls one (the collector checks it between blobs).
    pub fn flag(&self) -> &AtomicBool {
        &self.set
    }

    /// Resolves once the supervisor is stopping.
    pub async fn wait(&self) {
        loop {
            let woken = self.wake.notified();
            if self.is_set() {
                return;
            }
            woken.await;
        }
    }

    /// Sleeps `duration`, or less if the supervisor stops first; true if it stopped.
    async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => self.is_set(),
            _ = self.wait() => true,
        }
    }

    fn trigger(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }
}

/// Work the supervisor runs.
#[async_trait::async_trait]
pub trait Job: Send + Sync + 'static {
    /// One pass. A long pass looks at `stop` and returns early once it is set.
    async fn pass(&self, stop: &Stop) -> Result<()>;
}

/// When passes run.
#[derive(Clone, Copy, Debug)]
pub enum Schedule {
    /// A pass every `interval`, the first one `interval` after start unless `at_start`.
    Every { interval: Duration, at_start: bool },
    /// One pass that runs until stop (a loop of its own); started again if it ends early.
    Continuous,
}

/// A lock held for the length of each pass, so one node at a time runs the job.
#[derive(Clone)]
pub struct Lease {
    pub locks: Arc<dyn LockManager>,
    /// How long the lock outlives a node that dies holding it.
    pub ttl: Duration,
}

/// Starts jobs and stops them together.
#[derive(Default)]
pub struct Supervisor {
    stop: Stop,
    tasks: Vec<JoinHandle<()>>,
}

impl Supervisor {
    /// A supervisor with no jobs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `job` as `name` on `schedule` until [`Supervisor::stop`].
    pub fn spawn(
        &mut self,
        name: &'static str,
        schedule: Schedule,
        lease: Option<Lease>,
        job: Arc<dyn Job>,
    ) {
        let runner = Runner {
            name,
            job,
            lease,
            stop: self.stop.clone(),
        };
        self.tasks.push(tokio::spawn(runner.run(schedule)));
    }

    /// Tells every job to stop: passes see [`Stop::is_set`], no new pass starts.
    pub fn stop(&self) {
        self.stop.trigger();
    }

    /// [`Supervisor::stop`] as a function to hand to whoever decides when (a drain signal).
    pub fn stopper(&self) -> impl FnOnce() + Send + 'static {
        let stop = self.stop.clone();
        move || stop.trigger()
    }

    /// Stops every job and waits up to `within` for the passes in progress to return.
    pub async fn join(self, within: Duration) {
        self.stop();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("background jobs still running at shutdown were abandoned");
        }
    }
}

/// One job's schedule loop.
struct Runner {
    name: &'static str,
    job: Arc<dyn Job>,
    lease: Option<Lease>,
    stop: Stop,
}

/// How one pass ended.
enum Outcome {
    Done,
    Failed,
    /// Another node holds the lease.
    Skipped,
}

impl Runner {
    async fn run(self, schedule: Schedule) {
        let mut failures = 0u32;
        let (interval, mut wait) = match schedule {
            Schedule::Every { interval, at_start } => {
                (interval, if at_start { Duration::ZERO } else { interval })
            }
            Schedule::Continuous => (Duration::ZERO, Duration::ZERO),
        };
        let continuous = matches!(schedule, Schedule::Continuous);
        loop {
            if self.stop.sleep(wait).await {
                return;
            }
            let outcome = self.pass().await;
            // A continuous pass that returns before the stop ended early: that is a failure
            // too, or a job that returns at once would spin.
            let ended_early = continuous && !self.stop.is_set();
            wait = match outcome {
                Outcome::Done | Outcome::Skipped if !ended_early => {
                    failures = 0;
                    interval
                }
                _ => {
                    failures += 1;
                    interval.max(backoff(failures))
                }
            };
        }
    }

    /// Takes the lease if there is one, runs the pass in a task of its own (so a panic is
    /// caught there) and records what happened.
    async fn pass(&self) -> Outcome {
        let name = self.name;
        let _lease = match &self.lease {
            None => None,
            Some(lease) => {
                let key = format!("job:{name}");
                match tokio::time::timeout(LEASE_WAIT, lease.locks.lock(&key, lease.ttl)).await {
                    Ok(Ok(guard)) => Some(guard),
                    Ok(Err(e)) => {
                        tracing::warn!(job = name, error = %e, "job lease unavailable");
                        metrics::counter!("imgd_job_errors_total", "job" => name).increment(1);
                        return Outcome::Failed;
                    }
                    Err(_) => {
                        metrics::counter!("imgd_job_skipped_total", "job" => name).increment(1);
                        return Outcome::Skipped;
                    }
                }
            }
        };
        let started = Instant::now();
        let (job, stop) = (self.job.clone(), self.stop.clone());
        let result = tokio::spawn(async move { job.pass(&stop).await }).await;
        metrics::counter!("imgd_job_runs_total", "job" => name).increment(1);
        metrics::histogram!("imgd_job_duration_seconds", "job" => name)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(())) => Outcome::Done,
            Ok(Err(e)) => {
                metrics::counter!("imgd_job_errors_total", "job" => name).increment(1);
                tracing::warn!(job = name, error = %e, "background job failed; it will retry");
                Outcome::Failed
            }
            Err(e) => {
                metrics::counter!("imgd_job_panics_total", "job" => name).increment(1);
                tracing::error!(job = name, error = %e, "background job panicked; restarting it");
                Outcome::Failed
            }
        }
    }
}

/// The wait after `failures` consecutive failed passes.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::Error;
    use crate::port::LockGuard;

    /// Counts passes; panics on the passes listed, errs on the others listed.
    #[derive(Default)]
    struct Scripted {
        passes: AtomicU32,
        panic_on: Vec<u32>,
        fail_on: Vec<u32>,
        running: AtomicU32,
        most_at_once: AtomicU32,
        hold: Duration,
    }

    #[async_trait::async_trait]
    impl Job for Scripted {
        async fn pass(&self, _stop: &Stop) -> Result<()> {
            let n = self.passes.fetch_add(1, Ordering::SeqCst) + 1;
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.hold).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            assert!(!self.panic_on.contains(&n), "pass {n} panics, as scripted");
            if self.fail_on.contains(&n) {
                return Err(Error::Unavailable("scripted".into()));
            }
            Ok(())
        }
    }

    fn every(ms: u64) -> Schedule {
        Schedule::Every {
            interval: Duration::from_millis(ms),
            at_start: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_or_failing_pass_is_retried_after_a_growing_backoff() {
        let job = Arc::new(Scripted {
            panic_on: vec![1],
            fail_on: vec![2],
            ..Scripted::default()
        });
        let mut supervisor = Supervisor::new();
        supervisor.spawn("scripted", every(10), None, job.clone());
        // Pass 1 panics at once; pass 2 comes 1 s later and fails; pass 3 waits 2 s more.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 2, "backoff doubled");
        tokio::time::sleep(Duration::from_millis(505)).await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 3);
        // Success: back to the schedule's 10 ms.
        tokio::time::sleep(Duration::from_millis(105)).await;
        assert!(job.passes.load(Ordering::SeqCst) >= 12);
        supervisor.join(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_every_schedule_and_no_pass_starts_after_it() {
        let job = Arc::new(Scripted::default());
        let mut supervisor = Supervisor::new();
        supervisor.spawn("a", every(10), None, job.clone());
        supervisor.spawn("b", Schedule::Continuous, None, job.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
        supervisor.join(Duration::from_secs(1)).await;
        let after_stop = job.passes.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(job.passes.load(Ordering::SeqCst), after_stop);
    }

    #[tokio::test]
    async fn a_continuous_pass_sees_the_stop_and_returns() {
        struct UntilStop(AtomicBool);
        #[async_trait::async_trait]
        impl Job for UntilStop {
            async fn pass(&self, stop: &Stop) -> Result<()> {
                stop.wait().await;
                self.0.store(true, Ordering::SeqCst);
                Ok(())
            }
        }
        let job = Arc::new(UntilStop(AtomicBool::new(false)));
        let mut supervisor = Supervisor::new();
        supervisor.spawn("loop", Schedule::Continuous, None, job.clone());
        tokio::time::sleep(Duration::from_millis(50)).await;
        supervisor.join(Duration::from_secs(5)).await;
        assert!(job.0.load(Ordering::SeqCst), "the pass returned on stop");
    }

    /// One lock for every key, held by whoever took it last: enough for one job name.
    #[derive(Default)]
    struct OneLock(Arc<tokio::sync::Mutex<()>>, Mutex<u32>);

    #[async_trait::async_trait]
    impl LockManager for OneLock {
        async fn lock(&self, _key: &str, _ttl: Duration) -> Result<LockGuard> {
            let guard = self.0.clone().lock_owned().await;
            *self.1.lock().unwrap() += 1;
            Ok(LockGuard::new(guard))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_lease_two_nodes_never_run_the_job_at_once() {
        let job = Arc::new(Scripted {
            hold: Duration::from_millis(300),
            ..Scripted::default()
        });
        let locks = Arc::new(OneLock::default());
        let lease = Lease {
            locks: locks.clone(),
            ttl: Duration::from_secs(5),
        };
        let (mut node_a, mut node_b) = (Supervisor::new(), Supervisor::new());
        node_a.spawn("leased", every(50), Some(lease.clone()), job.clone());
        node_b.spawn("leased", every(50), Some(lease), job.clone());
        tokio::time::sleep(Duration::from_secs(3)).await;
        node_a.join(Duration::from_secs(1)).await;
        node_b.join(Duration::from_secs(1)).await;
        assert_eq!(job.most_at_once.load(Ordering::SeqCst), 1);
        assert!(job.passes.load(Ordering::SeqCst) >= 5, "the job still ran");
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    }
}
