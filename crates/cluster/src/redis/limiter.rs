//! `RedisLimiter`: GCRA in one Lua script, so every node draws on the same allowance.
//!
//! The key stores the theoretical arrival time (TAT) in microseconds of Redis' clock; a request
//! passes when `TAT - burst * interval <= now`, and then moves TAT one interval on. Same
//! arithmetic as [`crate::LocalLimiter`], which the shared contract checks.
//!
//! While Redis is down, each node limits on its own with a `LocalLimiter`: a client can then get
//! up to N times its allowance across N nodes, which beats refusing every request or none.

use std::time::Duration;

use imgd_core::Result;
use imgd_core::port::{Rate, RateDecision, RateLimiter};

use super::RedisConn;
use crate::LocalLimiter;

const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - burst * interval
if now < allow_at then
  return {math.ceil(allow_at - now), 0}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {0, new_tat - now}";

/// Cluster-wide GCRA limits in Redis.
pub struct RedisLimiter {
    redis: RedisConn,
    script: redis::Script,
    local: LocalLimiter,
    fallbacks: metrics::Counter,
}

impl RedisLimiter {
    /// Limits over `redis`.
    pub fn new(redis: RedisConn) -> Self {
        RedisLimiter {
            redis,
            script: redis::Script::new(GCRA),
            local: LocalLimiter::default(),
            fallbacks: metrics::counter!("imgd_rate_limit_fallbacks_total"),
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, rate: Rate) -> Result<RateDecision> {
        let mut invocation = self.script.key(self.redis.key(&format!("rate:{key}")));
        invocation
            .arg(rate.interval.as_micros() as u64)
            .arg(rate.burst);
        let (wait_micros, ahead_micros): (u64, u64) = match self.redis.invoke(&invocation).await {
            Ok(answer) => answer,
            Err(e) => {
                self.fallbacks.increment(1);
                tracing::warn!(error = %e, "redis is unavailable; rate limiting on this node only");
                return self.local.check(key, rate).await;
            }
        };
        Ok(if wait_micros == 0 {
            RateDecision::Allowed {
                remaining: crate::local_limit::remaining(rate, Duration::from_micros(ahead_micros)),
            }
        } else {
            RateDecision::Limited {
                retry_after: Duration::from_micros(wait_micros),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::redis::test_conn;

    #[tokio::test]
    async fn redis_limiter_meets_the_contract_and_is_shared_by_nodes() {
        let Some(conn) = test_conn() else { return };
        crate::contract::run_limiter(Arc::new(RedisLimiter::new(conn.clone()))).await;
        // Two nodes draw on one allowance.
        let a = RedisLimiter::new(conn.clone());
        let b = RedisLimiter::new(conn);
        let rate = Rate::per_minute(60, 4);
        let mut allowed = 0;
        for i in 0..8 {
            let node = if i % 2 == 0 { &a } else { &b };
            if matches!(
                node.check("shared", rate).await.unwrap(),
                RateDecision::Allowed { .. }
            ) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 4, "the burst is shared, not per node");
    }

    #[tokio::test]
    async fn with_redis_down_limits_hold_per_node() {
        let conn =
            RedisConn::new("redis://127.0.0.1:9/", "down", Duration::from_millis(300)).unwrap();
        let limiter = RedisLimiter::new(conn);
        let rate = Rate::per_minute(1, 2);
        let mut decisions = Vec::new();
        for _ in 0..3 {
            decisions.push(matches!(
                limiter.check("k", rate).await.unwrap(),
                RateDecision::Allowed { .. }
            ));
        }
        assert_eq!(decisions, [true, true, false]);
    }
}
