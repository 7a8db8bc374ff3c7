//! The imaging port. Synchronous and CPU-bound on purpose: callers run it on the render pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::format::ImageFormat;
use crate::service::memory::{MemoryBudget, Reservation};
use crate::transform::RenderSpec;
use crate::{Error, Result};

/// How a running CPU job learns that it must stop, and where it reserves memory.
///
/// The job calls [`JobControl::checkpoint`] between stages and inside long loops; it fails once
/// the deadline has passed or once nobody waits for the answer any more (the client left), so
/// the worker is freed instead of finishing work that will be thrown away.
#[derive(Clone, Debug)]
pub struct JobControl {
    deadline: Instant,
    cancelled: Arc<AtomicBool>,
    budget: Option<Arc<MemoryBudget>>,
}

impl JobControl {
    /// A job that must end by `deadline`, reserving memory from `budget` (none: unbounded, for
    /// tools and tests).
    pub fn new(deadline: Instant, budget: Option<Arc<MemoryBudget>>) -> Self {
        JobControl {
            deadline,
            cancelled: Arc::new(AtomicBool::new(false)),
            budget,
        }
    }

    /// Asks the job to stop at its next checkpoint.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// True once [`JobControl::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// `Err` when the job should stop: cancelled, or past its deadline.
    pub fn checkpoint(&self) -> Result<()> {
        if self.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if Instant::now() > self.deadline {
            return Err(Error::RenderTimeout);
        }
        Ok(())
    }

    /// Reserves `bytes` more for this job; `None` when the job runs without a budget.
    pub fn reserve(&self, bytes: u64) -> Result<Option<Reservation>> {
        self.budget
            .as_ref()
            .map(|budget| budget.try_reserve(bytes))
            .transpose()
    }
}

/// What is known about a stored source before its bytes are read: enough to estimate a
/// render's cost and refuse it before anything is allocated.
#[derive(Clone, Copy, Debug)]
pub struct SourceFacts {
    pub format: ImageFormat,
    /// After EXIF orientation, as recorded at ingest.
    pub width: u32,
    /// After EXIF orientation, as recorded at ingest.
    pub height: u32,
    /// Size of the stored original.
    pub bytes: u64,
    /// 1 for a still.
    pub frames: u32,
}

/// Limits enforced before a single pixel is decoded.
#[derive(Clone, Copy, Debug)]
pub struct IngestLimits {
    /// Width x height, after the header is read.
    pub max_pixels: u64,
    /// Frames of an animation.
    pub max_frames: u64,
}

/// What ingest learns about an upload by reading and decoding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    pub format: ImageFormat,
    /// After EXIF orientation.
    pub width: u32,
    /// After EXIF orientation.
    pub height: u32,
    pub frames: u32,
    pub blurhash: Option<String>,
}

/// A rendered variant.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// The image pipeline.
pub trait Imaging: Send + Sync + 'static {
    /// Sniffs, checks limits, decodes (scaled down) to prove the bytes are a whole image, and
    /// computes a BlurHash.
    /// Reserves its decode memory through `job` once the header tells how much.
    fn inspect(&self, bytes: &[u8], limits: &IngestLimits, job: &JobControl) -> Result<Inspection>;

    /// Checks that `spec` can be rendered from `source` within the pixel limits and returns the
    /// estimated peak memory of the render in bytes (the source's own bytes included), before
    /// the source is read. Refusals here are the client's (`option_out_of_range`).
    fn render_cost(&self, source: &SourceFacts, spec: &RenderSpec) -> Result<u64>;

    /// Whether rendering every frame of an animated `source` as `spec` stays within the
    /// animation budget; when it does not, the variant is the first frame.
    fn keeps_animation(&self, source: &SourceFacts, spec: &RenderSpec) -> bool;

    /// Renders `spec` from the original `bytes`, stopping at the next checkpoint once `job`
    /// says so (deadline passed, or cancelled).
    fn render(&self, bytes: &[u8], spec: &RenderSpec, job: &JobControl) -> Result<Rendered>;
}
