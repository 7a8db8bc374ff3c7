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
    let source = probe.facts(bytes.len() as u64);
    if !fits(&source, plan.output(), spec.format, settings) {
        // Planned with the same rule from the same facts: reaching here is a bug, not input.
        return Err(Error::internal(
            "an animation past its budget reached the renderer",
        ));
    }
    let mut frames = frames::Frames::open(bytes, probe, settings.max_pixels)?;
    let mut sink = sink::Sink::new(spec.format, spec.quality, frames.plays())?;
    // The probe counted the frames the budget was computed for: no more are rendered.
    for index in 0..probe.frames {
        job.checkpoint()?;
        let frame = match frames.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            // A damaged frame ends the animation where it is, as browsers show such a file;
            // only a first frame that cannot be read fails the render (the still would too).
            Err(_) if index > 0 => {
                metrics::counter!("imgd_animation_truncated_total").increment(1);
                break;
            }
            Err(e) => return Err(e),
        };
        let image = transform(frame.image, probe.orientation, spec, plan, job)?;
        sink.add(image, frame.delay_ms, job)?;
    }
    job.checkpoint()?;
    let (bytes, (width, height)) = sink.finish(job)?;
    Ok(Rendered {
        bytes,
        format: spec.format,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
    use image::{AnimationDecoder, Delay, Frame, Rgba, RgbaImage};
    use imgd_core::transform::{Fit, Gravity, Rotation};

    use super::*;
    use crate::ops::layout;

    fn settings() -> PipelineSettings {
        crate::pipeline::test_settings()
    }

    fn gif(frames: u32) -> Vec<u8> {
        gif_playing(frames, Some(Repeat::Finite(3)))
    }

    /// A GIF of `frames` 40x20 frames, with a loop extension saying `repeat` (none: plays once).
    fn gif_playing(frames: u32, repeat: Option<Repeat>) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut out);
            if let Some(repeat) = repeat {
                encoder.set_repeat(repeat).unwrap();
            }
            for i in 0..frames {
                let image = RgbaImage::from_pixel(40, 20, Rgba([(i * 50) as u8, 9, 9, 255]));
                let delay = Delay::from_numer_denom_ms(30 + 10 * i, 1);
                encoder
                    .encode_frame(Frame::from_parts(image, 0, 0, delay))
                    .unwrap();
            }
        }
        out
    }

    fn spec(format: ImageFormat) -> RenderSpec {
        RenderSpec {
            width: Some(20),
            height: None,
            fit: Fit::Inside,
            gravity: Gravity::Center,
            format,
            quality: 80,
            blur_tenths: None,
            rotate: Rotation::R0,
            animated: true,
        }
    }

    fn render_gif(bytes: &[u8]) -> Result<Rendered> {
        let probe = crate::probe::probe(bytes)?;
        let spec = spec(ImageFormat::Gif);
        let plan = layout::plan(probe.oriented_size(), &spec);
        let job = JobControl::new(Instant::now() + Duration::from_secs(30), None);
        render(bytes, &probe, &spec, &plan, &settings(), &job)
    }

    #[test]
    fn frames_keep_their_delays_and_the_loop_count() {
        let out = render_gif(&gif(3)).unwrap();
        assert_eq!((out.width, out.height), (20, 10));
        let decoder = GifDecoder::new(std::io::Cursor::new(&out.bytes)).unwrap();
        let frames: Vec<_> = decoder.into_frames().collect::<Result<_, _>>().unwrap();
        let delays: Vec<_> = frames.iter().map(|f| f.delay().numer_denom_ms()).collect();
        assert_eq!(delays, [(30, 1), (40, 1), (50, 1)]);
        // NETSCAPE2.0's loop count: 3, little-endian, after the sub-block's id byte.
        let at = out
            .bytes
            .windows(11)
            .position(|w| w == b"NETSCAPE2.0")
            .unwrap();
        assert_eq!(&out.bytes[at + 13..at + 15], &[3, 0]);
    }

    #[test]
    fn a_damaged_frame_ends_the_animation_there() {
        let whole = gif(4);
        let whole_frames = render_gif(&whole).unwrap();
        // Cut inside the last frame's image data (the trailer and part of the data gone).
        let cut = &whole[..whole.len() - 12];
        let out = render_gif(cut).unwrap();
        let decoder = GifDecoder::new(std::io::Cursor::new(&out.bytes)).unwrap();
        let frames = decoder.into_frames().count();
        assert!((1..4).contains(&frames), "{frames} frames kept");
        assert!(out.bytes.len() < whole_frames.bytes.len());
        // Cut inside the first frame: nothing to show, a corrupt file.
        let err = render_gif(&whole[..40]).unwrap_err();
        assert_eq!(err.code(), "corrupt_image");
    }

    #[test]
    fn the_budget_counts_frames_times_the_larger_picture() {
        let source = SourceFacts {
            format: ImageFormat::Gif,
            width: 1000,
            height: 1000,
            bytes: 1,
            frames: 100,
        };
        let tight = PipelineSettings {
            max_animation_pixels: 99_999_999,
            ..settings()
        };
        assert!(fits(&source, (100, 100), ImageFormat::Webp, &settings()));
        assert!(!fits(&source, (100, 100), ImageFormat::Webp, &tight));
        // Upscaled output counts at its own size.
        assert!(!fits(&source, (2000, 1000), ImageFormat::Webp, &settings()));
        // GIF output: frames x output pixels within max_gif_pixels as well.
        assert!(fits(&source, (200, 200), ImageFormat::Gif, &settings()));
        assert!(!fits(&source, (300, 300), ImageFormat::Gif, &settings()));
        assert!(!fits(&source, (100, 100), ImageFormat::Jpeg, &settings()));
    }
}
