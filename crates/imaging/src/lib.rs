//! imgd-imaging: the pure CPU pipeline, bytes in, bytes out.
//!
//! `probe -> decode (scaled, with limits) -> orient -> resize -> crop/pad -> blur -> encode`
//!
//! - [`probe`]: format, dimensions, orientation and frame count from headers alone.
//! - [`decode`]: pixels, scaled while decoding where the codec allows (JPEG DCT scaling);
//!   AVIF and HEIC in a memory-capped child process (`heif_child`, feature `heif`).
//! - [`ops`]: geometry ([`ops::layout`]) and one file per pixel operation.
//! - [`encode`]: JPEG, PNG, WebP, AVIF and GIF writers, colour profile kept.
//! - [`pipeline`]: [`Pipeline`], the `Imaging` port implementation tying them together.
//! - `animation`: GIF and WebP variants that keep every frame, decoded and encoded a frame at
//!   a time through the same steps.
//!
//! Nothing here does I/O or async; callers run it on the render pool.

mod animation;
pub mod decode;
pub mod encode;
#[cfg(feature = "heif")]
pub mod heif_child;
pub mod ops;
pub mod pipeline;
pub mod probe;

pub use pipeline::{Pipeline, PipelineSettings};
