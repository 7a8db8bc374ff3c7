//! `LocalLimiter`: GCRA in process, for a node running alone. The same arithmetic as the Redis
//! script (theoretical arrival time per key), rather than the `governor` crate DESIGN.md names:
//! limits here vary per key (per API key or tenant), which `governor` models as one quota per
//! limiter, and twenty lines keep both implementations provably alike under one contract.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        table.tat.insert(key.to_owned(), tat + rate.interval);
        Ok(RateDecision::Allowed)
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
}
