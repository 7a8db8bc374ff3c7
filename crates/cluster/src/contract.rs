//! Contracts of the coordination ports, as async suites each implementation's tests run (the
//! Redis ones against a real server): [`run`] and [`run_across`] for `LockManager`,
//! [`run_limiter`] for `RateLimiter`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use imgd_core::port::{LockManager, Rate, RateDecision, RateLimiter};

const TTL: Duration = Duration::from_secs(5);

/// Runs the whole contract. Keys are unique per call, so runs can share a backend.
pub async fn run(locks: Arc<dyn LockManager>) {
    let prefix = format!("contract-{}", imgd_core::id::ImageId::generate());

    // Mutual exclusion: 20 contenders, never two inside at once, all get in eventually.
    let key = format!("{prefix}-exclusive");
    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (locks, key) = (locks.clone(), key.clone());
            let (inside, max_inside, entered) =
                (inside.clone(), max_inside.clone(), entered.clone());
            tokio::spawn(async move {
                let _guard = locks.lock(&key, TTL).await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_inside.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                entered.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(max_inside.load(Ordering::SeqCst), 1, "never two holders");
    assert_eq!(entered.load(Ordering::SeqCst), 20, "every waiter got in");

    // Independent keys do not block each other.
    let _a = locks.lock(&format!("{prefix}-a"), TTL).await.unwrap();
    let b = tokio::time::timeout(
        Duration::from_secs(2),
        locks.lock(&format!("{prefix}-b"), TTL),
    )
    .await;
    assert!(b.is_ok(), "a different key is free");

    // Dropping the guard releases the lock.
    let held = locks.lock(&format!("{prefix}-c"), TTL).await.unwrap();
    let blocked = tokio::time::timeout(
        Duration::from_millis(100),
        locks.lock(&format!("{prefix}-c"), TTL),
    )
    .await;
    assert!(blocked.is_err(), "a held key blocks");
    drop(held);
    let released = tokio::time::timeout(
        Duration::from_secs(2),
        locks.lock(&format!("{prefix}-c"), TTL),
    )
    .await;
    assert!(released.is_ok(), "a dropped guard frees the key");
}

/// Mutual exclusion across several managers sharing one backend (several nodes): contenders
/// spread over `nodes` never overlap.
pub async fn run_across(nodes: &[Arc<dyn LockManager>]) {
    let key = format!("contract-{}-across", imgd_core::id::ImageId::generate());
    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (locks, key) = (nodes[i % nodes.len()].clone(), key.clone());
            let (inside, max_inside) = (inside.clone(), max_inside.clone());
            tokio::spawn(async move {
                let _guard = locks.lock(&key, TTL).await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_inside.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        max_inside.load(Ordering::SeqCst),
        1,
        "never two holders across nodes"
    );
}

/// The rate-limiter contract: a burst passes at once, the next request waits about one
/// interval, keys are independent, and the allowance refills.
pub async fn run_limiter(limiter: Arc<dyn RateLimiter>) {
    let prefix = format!("contract-{}", imgd_core::id::ImageId::generate());
    let rate = Rate {
        interval: Duration::from_millis(200),
        burst: 3,
    };
    let key = format!("{prefix}-a");
    for i in 0..3 {
        assert_eq!(
            limiter.check(&key, rate).await.unwrap(),
            RateDecision::Allowed { remaining: 2 - i },
            "request {i} of the burst"
        );
    }
    let RateDecision::Limited { retry_after } = limiter.check(&key, rate).await.unwrap() else {
        panic!("the request after the burst is limited");
    };
    assert!(
        retry_after > Duration::from_millis(100) && retry_after <= rate.interval,
        "retry after about one interval, not {retry_after:?}"
    );
    // A denied request does not consume allowance, and other keys are untouched.
    assert_eq!(
        limiter.check(&format!("{prefix}-b"), rate).await.unwrap(),
        RateDecision::Allowed { remaining: 2 }
    );
    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    assert!(matches!(
        limiter.check(&key, rate).await.unwrap(),
        RateDecision::Allowed { .. }
    ));
    assert!(matches!(
        limiter.check(&key, rate).await.unwrap(),
        RateDecision::Limited { .. }
    ));
}
