//! The rate-limit port: GCRA (the generic cell rate algorithm) per key, so a limit holds across
//! every node when the state lives in a shared store.

use std::time::Duration;

use crate::Result;

/// A limit: `burst` requests at once, refilled at one request per `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub interval: Duration,
    pub burst: u32,
}

impl Rate {
    /// `per_minute` requests a minute with bursts of `burst`.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Rate {
            interval: Duration::from_micros(60_000_000 / u64::from(per_minute.max(1))),
            burst: burst.max(1),
        }
    }
}

/// The answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Passed; `remaining` more requests would pass right now.
    Allowed { remaining: u32 },
    /// Denied; the earliest moment another request would pass.
    Limited { retry_after: Duration },
}

/// Keyed GCRA limiters.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request against `key` at `rate` and says whether it may proceed.
    async fn check(&self, key: &str, rate: Rate) -> Result<RateDecision>;
}
