//! Redis-backed coordination: the cluster's locks, membership and rate limits share one
//! connection and one key namespace.
//!
//! - [`RedisConn`]: a lazily (re)connected `ConnectionManager` whose every command has a
//!   deadline, so a Redis that is down costs a bounded wait and an error, never a hang.
//! - [`lock`]: `RedisLocks`, `SET NX PX` with a random token, renewal, compare-and-delete
//!   release, and a local fallback while Redis is down.
//! - [`membership`]: TTL heartbeats in a sorted set and the live ring built from them.
//! - [`limiter`]: GCRA as one Lua script, shared by every node.

pub mod limiter;
pub mod lock;
pub mod membership;

use imgd_core::Code;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use imgd_core::{Error, Result};
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// A shared, self-healing connection with per-command deadlines.
#[derive(Clone)]
pub struct RedisConn {
    client: redis::Client,
    manager: Arc<OnceCell<ConnectionManager>>,
    namespace: Arc<str>,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
}

impl RedisConn {
    /// A connection to `url` whose keys all start with `namespace:`. Connects on first use, so a
    /// node starts (and serves what it has) even while Redis is down.
    pub fn new(url: &str, namespace: &str, timeout: Duration) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::invalid(Code::BadRedisUrl, format!("{url}: {e}")))?;
        Ok(RedisConn {
            client,
            manager: Arc::new(OnceCell::new()),
            namespace: namespace.into(),
            timeout,
            healthy: Arc::new(AtomicBool::new(false)),
        })
    }

    /// `namespace:suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.namespace)
    }

    /// Whether the last command reached Redis.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        let connect = self
            .manager
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()));
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(manager)) => Ok(manager.clone()),
            Ok(Err(e)) => Err(self.failed(e.to_string())),
            Err(_) => Err(self.failed("connect timed out".into())),
        }
    }

    fn failed(&self, why: String) -> Error {
        self.healthy.store(false, Ordering::Relaxed);
        Error::Unavailable(format!("redis: {why}"))
    }

    /// Runs one command (or script invocation) with the deadline.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.connection().await?;
        self.finish(tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await)
    }

    /// Invokes a Lua script (EVALSHA, loading it on first use) with the deadline.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.connection().await?;
        self.finish(tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn)).await)
    }

    fn finish<T>(
        &self,
        outcome: std::result::Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T> {
        match outcome {
            Ok(Ok(value)) => {
                self.healthy.store(true, Ordering::Relaxed);
                Ok(value)
            }
            Ok(Err(e)) => Err(self.failed(e.to_string())),
            Err(_) => Err(self.failed("command timed out".into())),
        }
    }
}

/// Test support: a connection to `IMGD_TEST_REDIS_URL` under a fresh namespace, or `None` (and
/// SKIPPED) outside CI. CI must never skip the real-Redis tests silently.
#[cfg(test)]
pub(crate) fn test_conn() -> Option<RedisConn> {
    let Ok(url) = std::env::var("IMGD_TEST_REDIS_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set IMGD_TEST_REDIS_URL"
        );
        eprintln!("SKIPPED: IMGD_TEST_REDIS_URL is not set");
        return None;
    };
    let namespace = format!("imgd-test-{}", imgd_core::id::ImageId::generate());
    Some(RedisConn::new(&url, &namespace, Duration::from_secs(2)).unwrap())
}
