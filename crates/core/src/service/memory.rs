//! The process-wide memory budget: every render and every upload inspection reserves its
//! estimated peak bytes (source, decoded pixels, intermediates, output) before it starts, and
//! gives them back when it ends. Past the budget a request is refused at once with
//! [`Error::Overloaded`] (503 with Retry-After) instead of pushing the process into the OOM
//! killer; a single job larger than the whole budget can never run and is refused with
//! `image_too_large`.
//!
//! The budget lends bytes, and the allocator must give them back for the bound to hold: a job's
//! freed pages are returned to the OS when it ends ([`MemoryBudget::return_freed_pages`]), or
//! idle render threads would each keep their last job's pages resident, outside the budget.
//!
//! The budget counts what we allocate on purpose. It is an estimate (codecs keep small
//! buffers of their own), so the configured figure leaves headroom below the real limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Error, Result};

/// How long a refused client is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Bytes available to renders and uploads together.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    gauge: metrics::Gauge,
    /// The allocator's "return this thread's freed pages to the OS now".
    return_freed: fn(),
}

/// Bytes held from a [`MemoryBudget`]; returned on drop, on every path (error, panic, cancel).
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes, for an allocator that returns freed pages by itself.
    pub fn new(limit: u64) -> Arc<Self> {
        Self::with_page_return(limit, || {})
    }

    /// A budget of `limit` bytes whose jobs call `return_freed` on their thread when they end.
    pub fn with_page_return(limit: u64, return_freed: fn()) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
            gauge: metrics::gauge!("imgd_memory_reserved_bytes"),
            return_freed,
        })
    }

    /// Returns the pages the calling thread freed to the OS (at the end of a job, on its thread).
    pub fn return_freed_pages(&self) {
        (self.return_freed)()
    }

    /// The whole budget.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved right now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Reserves `bytes`, or refuses without waiting.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation> {
        if bytes > self.limit {
            metrics::counter!("imgd_memory_refused_total", "reason" => "too_large").increment(1);
            return Err(Error::TooLargeToProcess {
                needed_mib: bytes.div_ceil(1 << 20),
                budget_mib: self.limit >> 20,
            });
        }
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            });
        match reserved {
            Ok(before) => {
                self.gauge.set((before + bytes) as f64);
                Ok(Reservation {
                    budget: self.clone(),
                    bytes,
                })
            }
            Err(_) => {
                metrics::counter!("imgd_memory_refused_total", "reason" => "busy").increment(1);
                Err(Error::Overloaded {
                    retry_after: RETRY_AFTER,
                })
            }
        }
    }
}

impl Reservation {
    /// Bytes this reservation holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let before = self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget.gauge.set((before - self.bytes) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_and_come_back() {
        let budget = MemoryBudget::new(100);
        let a = budget.try_reserve(60).unwrap();
        let b = budget.try_reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        assert_eq!(
            budget.try_reserve(1).unwrap_err().code(),
            "overloaded",
            "a full budget refuses at once"
        );
        drop(a);
        assert_eq!(budget.used(), 40);
        let c = budget.try_reserve(60).unwrap();
        drop((b, c));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_job_larger_than_the_whole_budget_is_refused_for_good() {
        let budget = MemoryBudget::new(100);
        assert_eq!(
            budget.try_reserve(101).unwrap_err().code(),
            "image_too_large"
        );
        assert_eq!(budget.used(), 0);
    }
}
