//! The imaging port. Synchronous and CPU-bound on purpose: callers run it on the render pool.

use std::time::Instant;

use crate::Result;
use crate::format::ImageFormat;
use crate::transform::RenderSpec;

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
    fn inspect(&self, bytes: &[u8], limits: &IngestLimits) -> Result<Inspection>;

    /// Renders `spec` from the original `bytes`, giving up with `RenderTimeout` past `deadline`.
    fn render(&self, bytes: &[u8], spec: &RenderSpec, deadline: Instant) -> Result<Rendered>;
}
