//! `RedisLocks`: a lock per key across every node.
//!
//! Take: `SET key token NX PX ttl` with a random token, polling with capped backoff while someone
//! else holds it. Hold: a task renews the TTL every third of it, but only while the key still
//! holds our token (Lua), so a slow render keeps its lock and a dead node's lock expires within
//! one TTL. Release: compare-and-delete (Lua), so a holder whose lock expired never deletes its
//! successor's. Waiters on one node queue on a local lock first, so each node polls Redis once
//! per key, not once per request.
//!
//! While Redis is down, locks fall back to the local ones: a variant may then render once per
//! node instead of once per cluster (still correct, since renders are idempotent), which
//! `imgd_lock_fallbacks_total` and `/readyz` report.

use std::sync::Arc;
use std::time::Duration;

use imgd_core::Result;
use imgd_core::port::{LockGuard, LockManager};

use super::RedisConn;
use crate::LocalLocks;

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Backoff between attempts on a held lock.
const FIRST_RETRY: Duration = Duration::from_millis(5);
const MAX_RETRY: Duration = Duration::from_millis(100);

/// Cluster-wide keyed locks in Redis.
pub struct RedisLocks {
    redis: RedisConn,
    local: LocalLocks,
    renew: Arc<redis::Script>,
    release: Arc<redis::Script>,
    fallbacks: metrics::Counter,
}

impl RedisLocks {
    /// Locks over `redis`.
    pub fn new(redis: RedisConn) -> Self {
        RedisLocks {
            redis,
            local: LocalLocks::default(),
            renew: Arc::new(redis::Script::new(RENEW)),
            release: Arc::new(redis::Script::new(RELEASE)),
            fallbacks: metrics::counter!("imgd_lock_fallbacks_total"),
        }
    }

    /// Tries `SET NX PX` until it succeeds; `Err` only when Redis cannot be reached.
    async fn acquire(&self, key: &str, token: &str, ttl: Duration) -> Result<()> {
        let mut delay = FIRST_RETRY;
        loop {
            let set: Option<String> = self
                .redis
                .query(
                    redis::cmd("SET")
                        .arg(key)
                        .arg(token)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl.as_millis() as u64),
                )
                .await?;
            if set.is_some() {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY);
        }
    }
}

/// Held by a `LockGuard`: stops renewal and releases on drop.
struct Held {
    redis: RedisConn,
    release: Arc<redis::Script>,
    key: String,
    token: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
        let (redis, release) = (self.redis.clone(), self.release.clone());
        let (key, token) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut invocation = release.key(&key);
                invocation.arg(&token);
                if let Err(e) = redis.invoke::<i64>(&invocation).await {
                    // The TTL frees it soon anyway.
                    tracing::warn!(%key, error = %e, "could not release a redis lock");
                }
            });
        }
    }
}

#[async_trait::async_trait]
impl LockManager for RedisLocks {
    async fn lock(&self, key: &str, ttl: Duration) -> Result<LockGuard> {
        // One waiter per node goes to Redis; the rest queue here.
        let local = self.local.lock(key, ttl).await?;
        let redis_key = self.redis.key(&format!("lock:{key}"));
        let token = hex::encode(imgd_core::id::random_bytes::<16>());
        if let Err(e) = self.acquire(&redis_key, &token, ttl).await {
            self.fallbacks.increment(1);
            tracing::warn!(%key, error = %e, "redis is unavailable; locking on this node only");
            return Ok(local);
        }
        let renewal = tokio::spawn({
            let (redis, renew) = (self.redis.clone(), self.renew.clone());
            let (key, token) = (redis_key.clone(), token.clone());
            async move {
                let mut tick = tokio::time::interval(ttl / 3);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let mut invocation = renew.key(&key);
                    invocation.arg(&token).arg(ttl.as_millis() as u64);
                    match redis.invoke::<i64>(&invocation).await {
                        Ok(1) => {}
                        Ok(_) => {
                            tracing::warn!(%key, "a redis lock expired while held");
                            return;
                        }
                        Err(e) => tracing::warn!(%key, error = %e, "could not renew a redis lock"),
                    }
                }
            }
        });
        let held = Held {
            redis: self.redis.clone(),
            release: self.release.clone(),
            key: redis_key,
            token,
            renewal,
        };
        // Field order: the Redis lock is released before the local one.
        Ok(LockGuard::new((held, local)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::test_conn;

    #[tokio::test]
    async fn redis_locks_meet_the_contract_within_and_across_nodes() {
        let Some(conn) = test_conn() else { return };
        crate::contract::run(Arc::new(RedisLocks::new(conn.clone()))).await;
        // Two "nodes": separate lock managers (separate local queues) over one Redis.
        let nodes: Vec<Arc<dyn LockManager>> = vec![
            Arc::new(RedisLocks::new(conn.clone())),
            Arc::new(RedisLocks::new(conn)),
        ];
        crate::contract::run_across(&nodes).await;
    }

    #[tokio::test]
    async fn a_dead_holders_lock_expires_and_a_live_one_is_renewed() {
        let Some(conn) = test_conn() else { return };
        let locks = RedisLocks::new(conn.clone());
        let ttl = Duration::from_millis(300);

        // A holder that died: its key carries a foreign token and a TTL, and nobody renews it.
        let key = conn.key("lock:dead");
        let _: () = conn
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg("dead-node")
                    .arg("PX")
                    .arg(300),
            )
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let guard = locks.lock("dead", ttl).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "waited for the TTL"
        );
        drop(guard);

        // A live holder keeps its lock for several TTLs.
        let other = RedisLocks::new(conn);
        let held = locks.lock("live", ttl).await.unwrap();
        let stolen =
            tokio::time::timeout(Duration::from_millis(1200), other.lock("live", ttl)).await;
        assert!(stolen.is_err(), "renewal kept the lock past its TTL");
        drop(held);
        let after = tokio::time::timeout(Duration::from_secs(2), other.lock("live", ttl)).await;
        assert!(after.is_ok(), "released on drop");
    }

    #[tokio::test]
    async fn with_redis_down_locks_fall_back_to_this_node() {
        let conn =
            RedisConn::new("redis://127.0.0.1:9/", "down", Duration::from_millis(300)).unwrap();
        let locks = Arc::new(RedisLocks::new(conn.clone()));
        crate::contract::run(locks).await;
        assert!(!conn.is_healthy());
    }
}
