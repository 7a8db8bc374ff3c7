//! Animated variants: every frame of a GIF or animated WebP kept, in GIF or WebP.
//!
//! Frames are decoded one at a time ([`frames`]: the `image` crate composites each onto the
//! canvas, so every frame is a whole picture), transformed exactly like a still
//! ([`crate::pipeline::transform`]) and handed to a streaming encoder ([`sink`]: a palette per
//! frame for GIF, libwebp's animation encoder for WebP). An animation is never held whole as
//! pixels: the peak is the decoder's canvases, one output frame and the encoder's state, plus
//! the encoded bytes so far. The job is checked between frames (and inside a WebP frame).
//!
//! Whether a variant keeps its frames is decided before the source is read ([`fits`]): the
//! work, frames x the larger of source and output pixels, within
//! `render.max_animation_pixels`; for GIF output also frames x output pixels within
//! `render.max_gif_pixels`, since its palette search is the slowest step per pixel.

mod frames;
mod sink;

use imgd_core::format::ImageFormat;
use imgd_core::port::{JobControl, Rendered, SourceFacts};
use imgd_core::transform::RenderSpec;
use imgd_core::{Error, Result};

use crate::ops::layout::Layout;
use crate::pipeline::{PipelineSettings, transform};
use crate::probe::Probe;

/// Source-sized RGBA buffers the frame decoders hold at once: the canvas kept between frames,
/// the frame being composited, and the copy handed out.
const DECODER_CANVASES: u64 = 3;

fn pixels((w, h): (u32, u32)) -> u64 {
    u64::from(w) * u64::from(h)
}

/// Whether every frame of `source` rendered at `output` as `format` stays within the budget.
pub(crate) fn fits(
    source: &SourceFacts,
    output: (u32, u32),
    format: ImageFormat,
    settings: &PipelineSettings,
) -> bool {
    let frames = u64::from(source.frames);
    let per_frame = pixels((source.width, source.height)).max(pixels(output));
    let work_fits = frames.saturating_mul(per_frame) <= settings.max_animation_pixels;
    let palette_fits = format != ImageFormat::Gif
        || frames.saturating_mul(pixels(output)) <= settings.max_gif_pixels;
    format.animates() && work_fits && palette_fits
}

/// Bytes an animated render holds beyond a still render of the same spec: the decoder's extra
/// canvases, the encoder's state, and the encoded frames (at most 1.5 bytes a pixel for GIF's
/// LZW codes of 8-bit indices; lossy WebP stays well under 1).
pub(crate) fn extra_bytes(source: &SourceFacts, output: (u32, u32), format: ImageFormat) -> u64 {
    let canvases = DECODER_CANVASES * pixels((source.width, source.height)) * 4;
    let out = pixels(output);
    let encoder = match format {
        ImageFormat::Webp => imgd_webp::ANIMATION_CANVASES * out * 4,
        // The RGBA frame, its palette indices.
        _ => out * 5,
    };
    let encoded = u64::from(source.frames).saturating_mul(out * 3 / 2);
    canvases + encoder + encoded
}

/// Renders every frame of an animated `bytes` as `spec`, laid out by `plan`.
pub(crate) fn render(
    bytes: &[u8],
    probe: &Probe,
    spec: &RenderSpec,
    plan: &Layout,
    settings: &PipelineSettings,
    job: &JobControl,
) -> Result<Rendered> {
    let (width, height) = probe.oriented_size();
    let source = SourceFacts {
        format: probe.format,
        width,
        height,
        bytes: bytes.len() as u64,
        frames: probe.frames,
    };
    if !fits(&source, plan.output(), spec.format, settings) {
        // Planned with the same rule from the same facts: reaching here is a bug, not input.
        return Err(Error::internal(
            "an animation past its budget reached the renderer",
        ));
    }
    let mut frames = frames::Frames::open(bytes, probe, settings.max_pixels)?;
    let mut sink = sink::Sink::new(spec.format, spec.quality, frames.loop_count())?;
    // The probe counted the frames the budget was computed for: no more are rendered.
    for _ in 0..probe.frames {
        job.checkpoint()?;
        let Some(frame) = frames.next_frame()? else {
            break;
        };
        let image = transform(frame.image, probe.orientation, spec, plan, job)?;
        sink.add(image, frame.delay_ms, job)?;
    }
    job.checkpoint()?;
    let (bytes, (width, height)) = sink.finish()?;
    Ok(Rendered {
        bytes,
        format: spec.format,
        width,
        height,
    })
}
