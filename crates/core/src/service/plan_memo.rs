//! Variant plans memoized by what a request says: the image id and option text as sent, and
//! what its `Accept` allows ([`Accepts`]). A repeated request skips parsing its options, the
//! image and preset lookups, resolving, and deriving the variant key (a BLAKE3 of the canonical
//! spec): together about 8% of a cached variant's CPU time (perf on `bench/load.sh`'s
//! request).
//!
//! A plan is only as fresh as the image record and presets it was made from, which other nodes
//! may change: each memo expires when the older of the two would have left its own cache
//! (`record_cache_ttl` after it was loaded), so a change made elsewhere is noticed within the
//! same time as before. A change made here (a delete, a preset edit) bumps the epoch, which
//! every older memo fails at once.
//!
//! Memory is bounded by weight, whatever the requests are: each memo is charged its text plus
//! [`ENTRY_OVERHEAD_BYTES`] for the plan, the entry and the image record it may keep alive after
//! the record cache let it go. Only requests that planned are kept (malformed options and
//! unknown ids never are), but a plan is made before the tenant's policy is checked: anyone who
//! knows an image id can churn the memo with distinct options. That costs hits, not memory, and
//! moka's admission policy keeps frequently used plans over one-off ones.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::transform::Accepts;

/// What a memo is charged besides its text: the plan, the entry, moka's bookkeeping, and an
/// image record the memo may be the last to hold (tags and metadata included).
pub(crate) const ENTRY_OVERHEAD_BYTES: usize = 1024;

/// The memo of `P`s (variant plans). Keys are a keyed hash of the request (unpredictable to
/// clients); a hit is used only if the request it was made for is exactly this one.
pub(crate) struct PlanMemo<P> {
    memos: Cache<u64, Arc<Memo<P>>>,
    hasher: RandomState,
    epoch: AtomicU64,
}

struct Memo<P> {
    id: Box<str>,
    options: Box<str>,
    accepts: Accepts,
    epoch: u64,
    expires: Instant,
    plan: Arc<P>,
}

/// Each memo lives until its own `expires`.
struct UntilStale;

impl<P> Expiry<u64, Arc<Memo<P>>> for UntilStale {
    fn expire_after_create(
        &self,
        _key: &u64,
        memo: &Arc<Memo<P>>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(memo.expires.saturating_duration_since(created_at))
    }
}

impl<P: Send + Sync + 'static> PlanMemo<P> {
    /// A memo holding at most about `capacity_bytes`.
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let memos = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_, memo: &Arc<Memo<P>>| {
                let weight = ENTRY_OVERHEAD_BYTES + memo.id.len() + memo.options.len();
                u32::try_from(weight).unwrap_or(u32::MAX)
            })
            .expire_after(UntilStale)
            .build();
        PlanMemo {
            memos,
            hasher: RandomState::new(),
            epoch: AtomicU64::new(0),
        }
    }

    fn key(&self, id: &str, options: &str, accepts: Accepts) -> u64 {
        self.hasher.hash_one((id, options, accepts))
    }

    /// The plan made for exactly this request, if it is still fresh.
    pub(crate) fn get(&self, id: &str, options: &str, accepts: Accepts) -> Option<Arc<P>> {
        let memo = self.memos.get(&self.key(id, options, accepts))?;
        // moka answers nothing past a memo's `expires`; the epoch is checked here.
        let same = *memo.id == *id && *memo.options == *options && memo.accepts == accepts;
        let current = memo.epoch == self.epoch.load(Ordering::Acquire);
        (same && current).then(|| memo.plan.clone())
    }

    /// Remembers `plan` for this request until `expires` (or the next [`Self::forget_all`]).
    /// `epoch` is [`Self::epoch`] read before the plan's inputs were: a change that lands while
    /// the plan is made leaves it stale, not remembered.
    pub(crate) fn insert(
        &self,
        request: (&str, &str, Accepts),
        epoch: u64,
        expires: Instant,
        plan: Arc<P>,
    ) {
        let (id, options, accepts) = request;
        let memo = Memo {
            id: id.into(),
            options: options.into(),
            accepts,
            epoch,
            expires,
            plan,
        };
        self.memos
            .insert(self.key(id, options, accepts), Arc::new(memo));
    }

    /// The current epoch, to pass back to [`Self::insert`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Makes every memo stale (after a delete or a preset change on this node).
    pub(crate) fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.memos.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: Accepts = Accepts {
        avif: true,
        webp: true,
    };

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn a_memo_answers_exactly_the_request_it_was_made_for() {
        let memo = PlanMemo::new(1 << 20);
        memo.insert(
            ("abc", "w=10", CHROME),
            memo.epoch(),
            later(60_000),
            Arc::new(1),
        );
        assert_eq!(memo.get("abc", "w=10", CHROME).as_deref(), Some(&1));
        assert!(memo.get("abc", "w=10", Accepts::default()).is_none());
        assert!(memo.get("abc", "w=11", CHROME).is_none());
        assert!(memo.get("abd", "w=10", CHROME).is_none());
    }

    #[test]
    fn a_change_here_makes_every_memo_stale_even_one_being_made() {
        let memo = PlanMemo::new(1 << 20);
        memo.insert(
            ("a", "w=1", CHROME),
            memo.epoch(),
            later(60_000),
            Arc::new(1),
        );
        // A plan made from inputs read before a delete, remembered after it.
        let read_before = memo.epoch();
        memo.forget_all();
        memo.insert(
            ("b", "w=1", CHROME),
            read_before,
            later(60_000),
            Arc::new(2),
        );
        assert!(memo.get("a", "w=1", CHROME).is_none());
        assert!(memo.get("b", "w=1", CHROME).is_none());
        memo.insert(
            ("b", "w=1", CHROME),
            memo.epoch(),
            later(60_000),
            Arc::new(3),
        );
        assert_eq!(memo.get("b", "w=1", CHROME).as_deref(), Some(&3));
    }

    #[test]
    fn a_memo_expires_with_the_inputs_it_was_made_from() {
        let memo = PlanMemo::new(1 << 20);
        memo.insert(("a", "w=1", CHROME), memo.epoch(), later(50), Arc::new(1));
        memo.insert(
            ("b", "w=1", CHROME),
            memo.epoch(),
            later(60_000),
            Arc::new(2),
        );
        assert!(memo.get("a", "w=1", CHROME).is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert!(memo.get("a", "w=1", CHROME).is_none());
        assert!(memo.get("b", "w=1", CHROME).is_some());
    }

    #[test]
    fn memory_is_bounded_by_the_text_kept() {
        let memo = PlanMemo::new(64 << 10);
        let long = "x".repeat(4000);
        for i in 0..1000 {
            let id = format!("{i}");
            memo.insert(
                (&id, &long, CHROME),
                memo.epoch(),
                later(60_000),
                Arc::new(i),
            );
        }
        memo.memos.run_pending_tasks();
        let weight = memo.memos.weighted_size();
        assert!(weight <= 64 << 10, "{weight} bytes kept");
        assert!(memo.memos.entry_count() < 20);
    }
}
