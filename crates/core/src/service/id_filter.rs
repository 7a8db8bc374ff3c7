//! The image-id filter: answers "certainly absent" for ids that do not exist without asking the
//! database, so a flood of made-up `/i/{id}` URLs (cache penetration) costs a few hash probes,
//! not a query each.
//!
//! A Bloom filter over every image id, keyed with a per-process random SipHash key (an outsider
//! cannot aim at its set bits), rebuilt from the database at start and grown by rebuilding when
//! it fills past its capacity. Inserts on this node are added as they commit; deletes are not
//! removed (a Bloom filter cannot), so a deleted id is a "maybe" that the database answers.
//!
//! Two modes:
//! - **authoritative** (the embedded default: this process is the only writer): "not in the
//!   filter" means absent.
//! - **shared database** (a cluster): other nodes insert ids this one has not seen yet. The
//!   filter then learns new ids by polling the database ([`IdFilter::sync`]), and trusts a miss
//!   only for ids whose embedded creation time ([`ImageId::created_millis`]) lies before what it
//!   has synced, or in the future. An id created moments ago on another node is always looked
//!   up, so a fresh upload is never reported missing.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::Result;
use crate::id::ImageId;
use crate::model::{Cursor, Millis, now_millis};
use crate::port::MetadataRepo;

/// Target false-positive rate at capacity.
const FALSE_POSITIVE_RATE: f64 = 0.01;
/// Smallest capacity a filter is built for.
const MIN_CAPACITY: u64 = 1 << 20;
/// Clock difference between nodes tolerated when judging an id's creation time.
pub const CLOCK_SKEW_MS: Millis = 5_000;

/// The answer for one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Certainly not an image: answer "not found" without a query.
    Absent,
    /// Perhaps an image: ask the cache or the database.
    Maybe,
}

struct Bloom {
    bits: Vec<AtomicU64>,
    /// Number of bits (`bits.len() * 64`).
    m: u64,
    /// Probes per id.
    k: u32,
    capacity: u64,
    items: AtomicU64,
    keys: RandomState,
}

impl Bloom {
    fn with_capacity(capacity: u64) -> Self {
        let capacity = capacity.max(MIN_CAPACITY);
        let ln2 = std::f64::consts::LN_2;
        let m = (-(capacity as f64) * FALSE_POSITIVE_RATE.ln() / (ln2 * ln2)).ceil() as u64;
        let words = m.div_ceil(64);
        let k = ((words * 64) as f64 / capacity as f64 * ln2)
            .round()
            .max(1.0) as u32;
        Bloom {
            bits: (0..words).map(|_| AtomicU64::new(0)).collect(),
            m: words * 64,
            k,
            capacity,
            items: AtomicU64::new(0),
            keys: RandomState::new(),
        }
    }

    /// Kirsch-Mitzenmacher double hashing: k probes from two keyed hashes.
    fn probes(&self, id: &ImageId) -> impl Iterator<Item = u64> + '_ {
        let h1 = self.keys.hash_one((0u8, id.as_str()));
        let h2 = self.keys.hash_one((1u8, id.as_str())) | 1;
        (0..u64::from(self.k)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % self.m)
    }

    fn insert(&self, id: &ImageId) {
        for bit in self.probes(id) {
            self.bits[(bit / 64) as usize].fetch_or(1 << (bit % 64), Ordering::Relaxed);
        }
        self.items.fetch_add(1, Ordering::Relaxed);
    }

    fn contains(&self, id: &ImageId) -> bool {
        self.probes(id).all(|bit| {
            self.bits[(bit / 64) as usize].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0
        })
    }

    /// The false-positive rate now, from the share of bits set: (set / m) ^ k.
    fn false_positive_rate(&self) -> f64 {
        let set: u64 = self
            .bits
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum();
        (set as f64 / self.m as f64).powi(self.k as i32)
    }
}

/// The filter in front of image lookups.
pub struct IdFilter {
    bloom: RwLock<Arc<Bloom>>,
    authoritative: bool,
    /// Every id created before this time (ms) is in the filter; `i64::MIN` until the first
    /// build completes, so nothing is trusted before then.
    synced_until: AtomicU64,
    ready: std::sync::atomic::AtomicBool,
}

fn as_stored(millis: Millis) -> u64 {
    millis.max(0) as u64
}

impl IdFilter {
    /// An empty filter that answers "maybe" until [`IdFilter::rebuild`] has run.
    /// `authoritative`: this process is the only one that creates images.
    pub fn new(authoritative: bool) -> Self {
        IdFilter {
            bloom: RwLock::new(Arc::new(Bloom::with_capacity(MIN_CAPACITY))),
            authoritative,
            synced_until: AtomicU64::new(0),
            ready: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn current(&self) -> Arc<Bloom> {
        self.bloom.read().expect("id filter lock").clone()
    }

    /// Whether `id` may exist.
    pub fn check(&self, id: &ImageId) -> Presence {
        if !self.ready.load(Ordering::Acquire) || self.current().contains(id) {
            return Presence::Maybe;
        }
        if self.authoritative {
            metrics::counter!("imgd_id_filter_absent_total").increment(1);
            return Presence::Absent;
        }
        let created = id.created_millis();
        let synced = self.synced_until.load(Ordering::Acquire);
        let now = as_stored(now_millis());
        let trusted = created.saturating_add(CLOCK_SKEW_MS as u64) < synced
            || created > now.saturating_add(CLOCK_SKEW_MS as u64);
        if trusted {
            metrics::counter!("imgd_id_filter_absent_total").increment(1);
            Presence::Absent
        } else {
            Presence::Maybe
        }
    }

    /// Adds an id that has just been committed.
    pub fn insert(&self, id: &ImageId) {
        let bloom = self.current();
        bloom.insert(id);
        if bloom.items.load(Ordering::Relaxed) > bloom.capacity {
            // Past capacity the false-positive rate climbs; the next sync rebuilds it larger.
            metrics::counter!("imgd_id_filter_overfull_total").increment(1);
        }
    }

    /// True when the filter holds more ids than it was sized for.
    pub fn overfull(&self) -> bool {
        let bloom = self.current();
        bloom.items.load(Ordering::Relaxed) > bloom.capacity
    }

    /// Replaces the filter with one built from `ids` (every id, read from the database since
    /// `started`, the time the read began), sized for twice their number.
    pub fn rebuild(&self, ids: &[ImageId], started: Millis) {
        let bloom = Bloom::with_capacity(ids.len() as u64 * 2);
        for id in ids {
            bloom.insert(id);
        }
        // Ids committed on this node while the database was read went into the old filter:
        // they are in `ids` too unless they committed after the read, within the skew margin
        // that `synced_until` leaves.
        *self.bloom.write().expect("id filter lock") = Arc::new(bloom);
        self.synced_until
            .store(as_stored(started - CLOCK_SKEW_MS), Ordering::Release);
        self.ready.store(true, Ordering::Release);
        metrics::counter!("imgd_id_filter_rebuilds_total").increment(1);
        self.report();
    }

    /// Adds ids created on other nodes, read from the database since `started`.
    pub fn sync(&self, ids: &[ImageId], started: Millis) {
        let bloom = self.current();
        for id in ids {
            bloom.insert(id);
        }
        self.synced_until
            .fetch_max(as_stored(started - CLOCK_SKEW_MS), Ordering::AcqRel);
    }

    /// The time from which [`IdFilter::sync`] should read new ids.
    pub fn synced_until(&self) -> Millis {
        self.synced_until.load(Ordering::Acquire) as Millis
    }

    /// Publishes size and estimated false-positive rate.
    pub fn report(&self) {
        let bloom = self.current();
        metrics::gauge!("imgd_id_filter_items").set(bloom.items.load(Ordering::Relaxed) as f64);
        metrics::gauge!("imgd_id_filter_bits").set(bloom.m as f64);
        metrics::gauge!("imgd_id_filter_false_positive_rate").set(bloom.false_positive_rate());
    }

    /// The estimated false-positive rate right now.
    pub fn false_positive_rate(&self) -> f64 {
        self.current().false_positive_rate()
    }

    /// True when the filter is ready and answers misses without a query.
    pub fn is_authoritative(&self) -> bool {
        self.authoritative
    }
}

/// Ids read from the database per query.
const PAGE: u32 = 10_000;

/// Reads every id created at or after `since`.
async fn read_ids(repo: &dyn MetadataRepo, since: Millis) -> Result<Vec<ImageId>> {
    let mut ids = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = repo.image_ids_since(since, after.as_ref(), PAGE).await?;
        let full = page.len() == PAGE as usize;
        after = page.last().cloned();
        ids.extend(page.into_iter().map(|c| c.id));
        if !full {
            return Ok(ids);
        }
    }
}

impl IdFilter {
    /// Builds the filter from every id in the database.
    pub async fn load(&self, repo: &dyn MetadataRepo) -> Result<()> {
        let started = now_millis();
        let ids = read_ids(repo, Millis::MIN).await?;
        self.rebuild(&ids, started);
        Ok(())
    }

    /// One step of keeping the filter current (the server's `id_filter` job, every second): in
    /// a shared database, reads the ids other nodes created since the last sync; in any mode,
    /// rebuilds larger once overfull. An error leaves the filter answering "maybe" for ids it
    /// has not seen, which are then looked up.
    pub async fn sync_once(&self, repo: &dyn MetadataRepo) -> Result<()> {
        let outcome = if self.overfull() || !self.ready.load(Ordering::Acquire) {
            self.load(repo).await
        } else if self.authoritative {
            Ok(())
        } else {
            let started = now_millis();
            // Read from before the last sync by the skew, so a row committed late by a slow
            // clock is not missed.
            read_ids(repo, self.synced_until() - CLOCK_SKEW_MS)
                .await
                .map(|ids| self.sync(&ids, started))
        };
        if outcome.is_err() {
            metrics::counter!("imgd_id_filter_sync_errors_total").increment(1);
        }
        self.report();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_absent_before_the_first_build() {
        let filter = IdFilter::new(true);
        assert_eq!(filter.check(&ImageId::generate()), Presence::Maybe);
    }

    #[test]
    fn inserted_ids_are_never_absent_and_random_ones_almost_always_are() {
        let filter = IdFilter::new(true);
        let present: Vec<ImageId> = (0..10_000).map(|_| ImageId::generate()).collect();
        filter.rebuild(&present[..5_000], now_millis());
        for id in &present[5_000..] {
            filter.insert(id);
        }
        assert!(present.iter().all(|id| filter.check(id) == Presence::Maybe));
        let absent = (0..100_000)
            .filter(|_| filter.check(&ImageId::generate()) == Presence::Absent)
            .count();
        assert!(
            absent > 99_000,
            "{absent} of 100000 random ids answered without a query"
        );
        let rate = filter.false_positive_rate();
        assert!(rate < 0.001, "nearly empty filter: {rate}");
    }

    #[test]
    fn a_shared_database_trusts_misses_only_for_ids_older_than_the_sync() {
        let filter = IdFilter::new(false);
        filter.rebuild(&[], now_millis());
        // Made now, on another node: not synced yet, so it must be looked up.
        let fresh = ImageId::generate();
        assert_eq!(filter.check(&fresh), Presence::Maybe);
        // Made long before the sync: certainly absent.
        let old = ImageId::with_time(now_millis() - 3_600_000);
        assert_eq!(filter.check(&old), Presence::Absent);
        // From the future: no node made it.
        let future = ImageId::with_time(now_millis() + 3_600_000);
        assert_eq!(filter.check(&future), Presence::Absent);
        // After a later sync that did not list it, an id from before the sync is absent.
        filter.sync(&[], now_millis() + 3 * CLOCK_SKEW_MS);
        assert_eq!(filter.check(&fresh), Presence::Absent);
    }
}
