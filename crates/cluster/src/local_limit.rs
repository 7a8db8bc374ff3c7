//! `LocalLimiter`: GCRA in process, for a node running alone. The same arithmetic as the Redis
//! script (theoretical arrival time per key), rather than the `governor` crate DESIGN.md names:
//! limits here vary per key (per API key or tenant), which `governor` models as one quota per
//! limiter, and twenty lines keep both implementations provably alike under one contract.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

// tokio's clock, so tests can pause and advance time instead of sleeping.
use tokio::time::Instant;

use imgd_core::Result;
use imgd_core::port::{Rate, RateDecision, RateLimiter};

/// Every this many checks, keys whose allowance is full again are forgotten.
const SWEEP_EVERY: usize = 4096;

/// In-process keyed GCRA.
pub struct LocalLimiter {
    epoch: Instant,
    state: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Theoretical arrival time per key, as an offset from `epoch`.
    tat: HashMap<String, Duration>,
    checks: usize,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        LocalLimiter {
            epoch: Instant::now(),
            state: Mutex::new(Table::default()),
        }
    }
}

/// Requests that would still pass at once when the theoretical arrival time is `ahead` of now:
/// the burst's worth of intervals not yet spent.
pub(crate) fn remaining(rate: Rate, ahead: Duration) -> u32 {
    let budget = rate.interval * rate.burst;
    (budget.saturating_sub(ahead).as_micros() / rate.interval.as_micros().max(1)) as u32
}

#[async_trait::async_trait]
impl RateLimiter for LocalLimiter {
    async fn check(&self, key: &str, rate: Rate) -> Result<RateDecision> {
        let now = self.epoch.elapsed();
        let mut table = self.state.lock().expect("limiter table");
        table.checks += 1;
        if table.checks.is_multiple_of(SWEEP_EVERY) {
            // A key whose TAT is in the past is indistinguishable from a new one.
            table.tat.retain(|_, tat| *tat > now);
        }
        let tat = table.tat.get(key).copied().unwrap_or(now).max(now);
        let allow_at = (tat + rate.interval).saturating_sub(rate.interval * rate.burst);
        if now < allow_at {
            return Ok(RateDecision::Limited {
                retry_after: allow_at - now,
            });
        }
        let new_tat = tat + rate.interval;
        table.tat.insert(key.to_owned(), new_tat);
        Ok(RateDecision::Allowed {
            remaining: remaining(rate, new_tat - now),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn local_limiter_meets_the_contract() {
        crate::contract::run_limiter(Arc::new(LocalLimiter::default())).await;
    }

    /// With tokio's clock paused, time moves only when the test says so: the refill arithmetic
    /// is checked exactly, not within a sleep's jitter.
    #[tokio::test(start_paused = true)]
    async fn a_drained_allowance_refills_one_request_per_interval() {
        let limiter = LocalLimiter::default();
        let rate = Rate::per_minute(60, 3); // one a second, bursts of three
        for expected in [2, 1, 0] {
            assert_eq!(
                limiter.check("k", rate).await.unwrap(),
                RateDecision::Allowed {
                    remaining: expected
                }
            );
        }
        let RateDecision::Limited { retry_after } = limiter.check("k", rate).await.unwrap() else {
            panic!("the fourth request in a burst of three passed");
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(matches!(
            limiter.check("k", rate).await.unwrap(),
            RateDecision::Limited { .. }
        ));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            limiter.check("k", rate).await.unwrap(),
            RateDecision::Allowed { remaining: 0 }
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            limiter.check("k", rate).await.unwrap(),
            RateDecision::Allowed { remaining: 2 },
            "a long pause refills to the burst, not beyond"
        );
        assert_eq!(
            limiter.check("other", rate).await.unwrap(),
            RateDecision::Allowed { remaining: 2 },
            "keys are independent"
        );
    }
}
