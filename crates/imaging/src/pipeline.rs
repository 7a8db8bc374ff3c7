//! [`Pipeline`]: the `Imaging` port.
//!
//! Every buffer a render allocates is known before it starts: [`Imaging::render_cost`] checks
//! the output against the pixel cap and estimates the peak bytes (decode, resize output, pad or
//! blur copy, encoder copy, encoded bytes) from the stored record alone, so the caller reserves
//! memory before reading the source. Between stages the pipeline checks in with its
//! [`JobControl`], so a render past its deadline or abandoned by its client stops there.

use image::DynamicImage;
use imgd_core::Code;
use imgd_core::format::ImageFormat;
use imgd_core::port::{Imaging, IngestLimits, Inspection, JobControl, Rendered, SourceFacts};
use imgd_core::transform::{Fit, RenderSpec, Rotation};
use imgd_core::{Error, Result};

use crate::animation;
use crate::decode::{self, decode};
use crate::encode::{EncodeOptions, encode};
use crate::ops::{blur, crop, layout, orient, pad, resize};
use crate::probe::{Probe, probe};

/// Pipeline settings that are not part of a variant spec.
#[derive(Clone, Copy, Debug)]
pub struct PipelineSettings {
    /// Keep the source's ICC profile in outputs (true), or drop it.
    pub keep_icc: bool,
    pub encode: EncodeOptions,
    /// Pixel cap applied again at render time (stored images passed it at ingest), and the cap
    /// on every intermediate and the output.
    pub max_pixels: u64,
    /// Largest AVIF output. rav1e offers no progress hook, so an encode cannot stop at a
    /// checkpoint: its cost is bounded by refusing large ones (`avif_too_large`) instead.
    pub max_avif_pixels: u64,
    /// Largest GIF output, for the same reason (NeuQuant's palette search: 15 s for 49 MP); for
    /// an animation, across all its frames.
    pub max_gif_pixels: u64,
    /// Most work an animated variant may take: frames x the larger of source and output pixels.
    pub max_animation_pixels: u64,
}

/// The image pipeline.
pub struct Pipeline {
    settings: PipelineSettings,
}

/// Side of the thumbnail a BlurHash is computed from.
const BLURHASH_SOURCE_SIDE: u32 = 32;

/// Buffers of the output's size a render may hold at once, beyond the decode: the resized
/// image, the pad canvas or blur copy, the encoder's own copy, the encoded bytes.
const OUTPUT_SIZED_BUFFERS: u64 = 4;

fn check_limits(probe: &Probe, max_pixels: u64, max_frames: u64) -> Result<()> {
    let pixels = u64::from(probe.width) * u64::from(probe.height);
    if pixels > max_pixels {
        return Err(Error::TooManyPixels {
            pixels,
            limit: max_pixels,
        });
    }
    if u64::from(probe.frames) > max_frames {
        return Err(Error::TooManyFrames {
            frames: u64::from(probe.frames),
            limit: max_frames,
        });
    }
    Ok(())
}

/// The layout of `spec` over a source displayed at `oriented` size, refused when the output
/// (the largest buffer after the decode) would pass the pixel cap.
fn checked_plan(
    oriented: (u32, u32),
    spec: &RenderSpec,
    settings: &PipelineSettings,
) -> Result<layout::Layout> {
    let max_pixels = settings.max_pixels;
    let rotated = matches!(spec.rotate, Rotation::R90 | Rotation::R270);
    let source = if rotated {
        (oriented.1, oriented.0)
    } else {
        oriented
    };
    let plan = layout::plan(source, spec);
    let (w, h) = plan.output();
    let pixels = u64::from(w) * u64::from(h);
    let resized = u64::from(plan.resize.0) * u64::from(plan.resize.1);
    if pixels.max(resized) > max_pixels {
        // A tiny source blown up to 8192x8192 is a cheap request for a costly render.
        return Err(Error::invalid(
            Code::OptionOutOfRange,
            format!("the output would have {pixels} pixels, the limit is {max_pixels}"),
        ));
    }
    // Encoders with no progress hook cannot stop at a checkpoint: their cost is bounded by
    // refusing outputs past their cap instead.
    let unstoppable = match spec.format {
        ImageFormat::Avif => Some((Code::AvifTooLarge, "AVIF", settings.max_avif_pixels)),
        ImageFormat::Gif => Some((Code::GifTooLarge, "GIF", settings.max_gif_pixels)),
        _ => None,
    };
    if let Some((code, name, cap)) = unstoppable.filter(|&(_, _, cap)| pixels > cap) {
        return Err(Error::invalid(
            code,
            format!(
                "{name} output is limited to {cap} pixels (this one has {pixels}); ask for f=webp"
            ),
        ));
    }
    Ok(plan)
}

/// The size a render needs decoded, in stored orientation: the resize target. For a cover
/// window that is enough too: a source scaled by 1/d keeps a window of at least the output's
/// size exactly when both sides stay at least the output's (d <= min(sw/w, sh/h)).
fn decode_target(plan: &layout::Layout, swaps: bool) -> (u32, u32) {
    let (w, h) = plan.resize;
    if swaps { (h, w) } else { (w, h) }
}

/// Every step between the decode and the encode, for a still or for one frame of an animation:
/// orientation and rotation, the cover window, the resize, padding, blur.
pub(crate) fn transform(
    image: DynamicImage,
    orientation: u8,
    spec: &RenderSpec,
    plan: &layout::Layout,
    job: &JobControl,
) -> Result<DynamicImage> {
    let mut image = image;
    orient::apply(&mut image, orientation, spec.rotate);
    job.checkpoint()?;
    let window = plan.window.then(|| {
        let size = layout::cover_window((image.width(), image.height()), plan.resize);
        crop::place(&image, size, spec.gravity)
    });
    let mut image = resize::resize_window(image, window, plan.resize, job)?;
    job.checkpoint()?;
    if let Some(size) = plan.pad {
        let transparent = !matches!(spec.format, ImageFormat::Jpeg);
        image = pad::pad(&image, size, transparent);
    }
    if let Some(sigma) = spec.blur_tenths {
        image = blur::blur(&image, sigma, job)?;
    }
    job.checkpoint()?;
    Ok(image)
}

impl Pipeline {
    /// A pipeline with these settings.
    pub fn new(settings: PipelineSettings) -> Self {
        Pipeline { settings }
    }

    /// Consumes the decoded image (a clone of a full-size PNG decode doubled an upload's peak)
    /// and orients only the small copy.
    fn blurhash(image: DynamicImage, orientation: u8, job: &JobControl) -> Option<String> {
        let (w, h) = (image.width(), image.height());
        let scale = f64::from(BLURHASH_SOURCE_SIDE) / f64::from(w.max(h));
        let size = (
            ((f64::from(w) * scale).round() as u32).max(1),
            ((f64::from(h) * scale).round() as u32).max(1),
        );
        let mut small = resize::resize(image, size, job).ok()?;
        orient::apply(&mut small, orientation, Default::default());
        let small = small.to_rgba8();
        let (cx, cy) = if small.width() >= small.height() {
            (4, 3)
        } else {
            (3, 4)
        };
        blurhash::encode(cx, cy, small.width(), small.height(), small.as_raw()).ok()
    }
}

impl Imaging for Pipeline {
    fn inspect(&self, bytes: &[u8], limits: &IngestLimits, job: &JobControl) -> Result<Inspection> {
        let probe = probe(bytes)?;
        check_limits(&probe, limits.max_pixels, limits.max_frames)?;
        let at_least = Some((BLURHASH_SOURCE_SIDE, BLURHASH_SOURCE_SIDE));
        let _memory = job.reserve(decode::peak_bytes(&probe, at_least, bytes.len() as u64))?;
        job.checkpoint()?;
        // Decoding proves the file is whole (a truncated JPEG fails here, not at first render);
        // the JPEG path decodes at 1/8 scale, so this costs a fraction of a full decode.
        let decoded = decode(bytes, &probe, at_least, limits.max_pixels, job)?;
        job.checkpoint()?;
        // A resize stopped by the job leaves no hash; the checkpoint then fails the ingest
        // rather than storing an image without one.
        let blurhash = Self::blurhash(decoded.image, probe.orientation, job);
        job.checkpoint()?;
        let (width, height) = probe.oriented_size();
        Ok(Inspection {
            format: probe.format,
            width,
            height,
            frames: probe.frames,
            blurhash,
        })
    }

    fn render_cost(&self, source: &SourceFacts, spec: &RenderSpec) -> Result<u64> {
        let plan = checked_plan((source.width, source.height), spec, &self.settings)?;
        let (w, h) = plan.output();
        let output = u64::from(w) * u64::from(h) * 4;
        // The record is oriented; the decode scale does not care which side is which.
        let probe = Probe {
            format: source.format,
            width: source.width,
            height: source.height,
            orientation: 1,
            // An animated WebP is decoded whole by the `image` crate, not scaled by libwebp.
            frames: source.frames,
            // Unknown before the bytes are read: assume the costlier case.
            progressive: true,
        };
        let at_least = decode_target(&plan, false);
        let decoded = decode::peak_bytes(&probe, Some(at_least), source.bytes);
        // Rotation copies the decoded image once.
        let rotation = if spec.rotate == Rotation::R0 {
            0
        } else {
            u64::from(source.width) * u64::from(source.height) * 4
        };
        // The resize's temporary image, in whichever pass order needs the smaller one.
        let window_width = if plan.window {
            layout::cover_window((source.width, source.height), plan.resize).0
        } else {
            f64::from(source.width)
        };
        let (vertical, horizontal) =
            resize::temporary_pixels(window_width, source.height, plan.resize);
        let temporary = vertical.min(horizontal) * 4;
        let still = source.bytes + decoded + rotation + temporary + OUTPUT_SIZED_BUFFERS * output;
        if !spec.animated {
            return Ok(still);
        }
        if !animation::fits(source, plan.output(), spec.format, &self.settings) {
            return Err(Error::invalid(
                Code::OptionOutOfRange,
                "this animation is past render.max_animation_pixels",
            ));
        }
        Ok(still + animation::extra_bytes(source, plan.output(), spec.format))
    }

    fn keeps_animation(&self, source: &SourceFacts, spec: &RenderSpec) -> bool {
        checked_plan((source.width, source.height), spec, &self.settings)
            .is_ok_and(|plan| animation::fits(source, plan.output(), spec.format, &self.settings))
    }

    fn render(&self, bytes: &[u8], spec: &RenderSpec, job: &JobControl) -> Result<Rendered> {
        let probe = probe(bytes)?;
        check_limits(&probe, self.settings.max_pixels, u64::MAX)?;
        let swaps = orient::swaps_axes(probe.orientation, spec.rotate);
        let plan = checked_plan(probe.oriented_size(), spec, &self.settings)?;
        if spec.animated && probe.frames > 1 {
            return animation::render(bytes, &probe, spec, &plan, &self.settings, job);
        }
        let at_least = decode_target(&plan, swaps);
        job.checkpoint()?;
        let decoded = decode(bytes, &probe, Some(at_least), self.settings.max_pixels, job)?;
        job.checkpoint()?;
        let image = transform(decoded.image, probe.orientation, spec, &plan, job)?;
        let icc = decoded.icc.as_deref().filter(|_| self.settings.keep_icc);
        let bytes = encode(
            &image,
            spec.format,
            spec.quality,
            icc,
            self.settings.encode,
            job,
        )?;
        debug_assert!(spec.fit != Fit::Cover || (image.width(), image.height()) == plan.output());
        Ok(Rendered {
            bytes,
            format: spec.format,
            width: image.width(),
            height: image.height(),
        })
    }
}

/// The defaults of `config/default.toml`, fast AVIF: for the crate's tests.
#[cfg(test)]
pub(crate) fn test_settings() -> PipelineSettings {
    PipelineSettings {
        keep_icc: true,
        encode: EncodeOptions { avif_speed: 10 },
        max_pixels: 50_000_000,
        max_avif_pixels: 2_000_000,
        max_gif_pixels: 8_000_000,
        max_animation_pixels: 100_000_000,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use imgd_core::transform::Gravity;

    use super::*;

    fn pipeline() -> Pipeline {
        Pipeline::new(test_settings())
    }

    fn job() -> JobControl {
        JobControl::new(Instant::now() + Duration::from_secs(30), None)
    }

    fn spec(w: u32, h: u32, fit: Fit, format: ImageFormat) -> RenderSpec {
        RenderSpec {
            width: Some(w),
            height: Some(h),
            fit,
            gravity: Gravity::Center,
            format,
            quality: 80,
            blur_tenths: None,
            rotate: Rotation::R0,
            animated: false,
        }
    }

    /// A PNG of `width` x `height` RGB pixels with an optional colour profile.
    fn png(width: u32, height: u32, icc: Option<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut info = png::Info::with_size(width, height);
        info.color_type = png::ColorType::Rgb;
        info.bit_depth = png::BitDepth::Eight;
        info.icc_profile = icc.map(Into::into);
        let mut writer = png::Encoder::with_info(&mut out, info)
            .unwrap()
            .write_header()
            .unwrap();
        let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        writer.write_image_data(&pixels).unwrap();
        writer.finish().unwrap();
        out
    }

    /// The strip that used to make an 8192 x 81,920,000 intermediate (and kill the process)
    /// renders at its output size, and so does the panorama asked for the other way.
    #[test]
    fn cover_of_extreme_strips_allocates_only_the_output() {
        let strip = png(1, 10_000, None);
        let out = pipeline()
            .render(&strip, &spec(8192, 1, Fit::Cover, ImageFormat::Png), &job())
            .unwrap();
        assert_eq!((out.width, out.height), (8192, 1));
        let panorama = png(6000, 1000, None);
        let out = pipeline()
            .render(
                &panorama,
                &spec(1, 8192, Fit::Cover, ImageFormat::Png),
                &job(),
            )
            .unwrap();
        assert_eq!((out.width, out.height), (1, 8192));
    }

    #[test]
    fn cover_keeps_the_window_gravity_names() {
        // Left half black, right half white; a square cover window at the east edge is white.
        let mut image = image::RgbImage::new(200, 100);
        for (x, _, p) in image.enumerate_pixels_mut() {
            *p = image::Rgb(if x < 100 { [0; 3] } else { [255; 3] });
        }
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(image)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        let mut east = spec(20, 20, Fit::Cover, ImageFormat::Png);
        east.gravity = Gravity::East;
        let out = pipeline().render(&bytes, &east, &job()).unwrap();
        let decoded = image::load_from_memory(&out.bytes).unwrap().to_rgb8();
        assert_eq!((decoded.width(), decoded.height()), (20, 20));
        assert!(
            decoded.pixels().all(|p| p[0] > 200),
            "east window is the white half"
        );
    }

    #[test]
    fn the_cost_is_known_before_the_source_is_read() {
        let source = SourceFacts {
            format: ImageFormat::Png,
            width: 1,
            height: 10_000,
            bytes: 20_000,
            frames: 1,
        };
        let small = pipeline()
            .render_cost(&source, &spec(8192, 1, Fit::Cover, ImageFormat::Webp))
            .unwrap();
        assert!(small < 64 << 20, "the strip costs {small} bytes");
        let avif = pipeline()
            .render_cost(&source, &spec(2000, 2000, Fit::Fill, ImageFormat::Avif))
            .unwrap_err();
        assert_eq!(avif.code(), "avif_too_large");
        let gif = pipeline()
            .render_cost(&source, &spec(3000, 3000, Fit::Fill, ImageFormat::Gif))
            .unwrap_err();
        assert_eq!(gif.code(), "gif_too_large");
        let huge = pipeline()
            .render_cost(&source, &spec(8192, 8192, Fit::Fill, ImageFormat::Webp))
            .unwrap_err();
        assert_eq!(huge.code(), "option_out_of_range");
        let width_only = pipeline()
            .render_cost(
                &source,
                &RenderSpec {
                    height: None,
                    ..spec(8192, 1, Fit::Cover, ImageFormat::Webp)
                },
            )
            .unwrap_err();
        assert_eq!(
            width_only.code(),
            "option_out_of_range",
            "8192 x 81,920,000"
        );
    }

    /// A 16x16 PNG whose profile inflates to 64 MiB decodes with the profile dropped by the
    /// decoder's own limit; one of 2 MiB passes the decoder and is dropped by the cap. Neither
    /// reaches the output.
    #[test]
    fn oversized_colour_profiles_are_dropped() {
        for size in [64 << 20, 2 << 20] {
            let bomb = png(16, 16, Some(vec![0u8; size]));
            assert!(bomb.len() < 1 << 20, "the file itself is small");
            let out = pipeline()
                .render(&bomb, &spec(10, 10, Fit::Inside, ImageFormat::Webp), &job())
                .unwrap();
            assert!(out.bytes.len() < 10_000, "{} byte variant", out.bytes.len());
        }
        let kept = png(16, 16, Some(b"small-profile".to_vec()));
        let decoded = decode(&kept, &probe(&kept).unwrap(), None, 1 << 20, &job()).unwrap();
        assert_eq!(decoded.icc.as_deref(), Some(&b"small-profile"[..]));
    }

    #[test]
    fn a_cancelled_job_stops_at_its_first_checkpoint() {
        let bytes = png(64, 64, None);
        let job = job();
        job.cancel();
        let err = pipeline()
            .render(&bytes, &spec(32, 32, Fit::Cover, ImageFormat::Jpeg), &job)
            .unwrap_err();
        assert_eq!(err.code(), "cancelled");
        let late = JobControl::new(Instant::now() - Duration::from_millis(1), None);
        let err = pipeline()
            .render(&bytes, &spec(32, 32, Fit::Cover, ImageFormat::Jpeg), &late)
            .unwrap_err();
        assert_eq!(err.code(), "render_timeout");
    }

    #[test]
    fn inspection_reserves_its_decode_from_the_budget() {
        let bytes = png(1000, 1000, None);
        let limits = IngestLimits {
            max_pixels: 50_000_000,
            max_frames: 10,
        };
        let tight = imgd_core::service::memory::MemoryBudget::new(1 << 20);
        let job = JobControl::new(Instant::now() + Duration::from_secs(5), Some(tight.clone()));
        let err = pipeline().inspect(&bytes, &limits, &job).unwrap_err();
        assert_eq!(err.code(), "image_too_large");
        let roomy = imgd_core::service::memory::MemoryBudget::new(64 << 20);
        let job = JobControl::new(Instant::now() + Duration::from_secs(5), Some(roomy.clone()));
        pipeline().inspect(&bytes, &limits, &job).unwrap();
        assert_eq!(roomy.used(), 0, "given back after the inspection");
    }
}
