//! [`Pipeline`]: the `Imaging` port. Checks the deadline between stages so a runaway render
//! gives its worker back.

use std::time::Instant;

use image::DynamicImage;
use imgd_core::format::ImageFormat;
use imgd_core::port::{Imaging, IngestLimits, Inspection, Rendered};
use imgd_core::transform::{Fit, RenderSpec};
use imgd_core::{Error, Result};

use crate::decode::decode;
use crate::encode::{EncodeOptions, encode};
use crate::ops::{blur, crop, layout, orient, pad, resize};
use crate::probe::{Probe, probe};

/// Pipeline settings that are not part of a variant spec.
#[derive(Clone, Copy, Debug)]
pub struct PipelineSettings {
    /// Keep the source's ICC profile in outputs (true), or drop it.
    pub keep_icc: bool,
    pub encode: EncodeOptions,
    /// Pixel cap applied again at render time (stored images passed it at ingest).
    pub max_pixels: u64,
}

/// The image pipeline.
pub struct Pipeline {
    settings: PipelineSettings,
}

/// Side of the thumbnail a BlurHash is computed from.
const BLURHASH_SOURCE_SIDE: u32 = 32;

fn check(deadline: Instant) -> Result<()> {
    if Instant::now() > deadline {
        Err(Error::RenderTimeout)
    } else {
        Ok(())
    }
}

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

impl Pipeline {
    /// A pipeline with these settings.
    pub fn new(settings: PipelineSettings) -> Self {
        Pipeline { settings }
    }

    fn blurhash(image: &DynamicImage) -> Option<String> {
        let (w, h) = (image.width(), image.height());
        let scale = f64::from(BLURHASH_SOURCE_SIDE) / f64::from(w.max(h));
        let size = (
            ((f64::from(w) * scale).round() as u32).max(1),
            ((f64::from(h) * scale).round() as u32).max(1),
        );
        let small = resize::resize(image.clone(), size).ok()?.to_rgba8();
        let (cx, cy) = if w >= h { (4, 3) } else { (3, 4) };
        blurhash::encode(cx, cy, small.width(), small.height(), small.as_raw()).ok()
    }
}

impl Imaging for Pipeline {
    fn inspect(&self, bytes: &[u8], limits: &IngestLimits) -> Result<Inspection> {
        let probe = probe(bytes)?;
        check_limits(&probe, limits.max_pixels, limits.max_frames)?;
        // Decoding proves the file is whole (a truncated JPEG fails here, not at first render);
        // the JPEG path decodes at 1/8 scale, so this costs a fraction of a full decode.
        let mut decoded = decode(
            bytes,
            &probe,
            Some((BLURHASH_SOURCE_SIDE, BLURHASH_SOURCE_SIDE)),
            limits.max_pixels,
        )?;
        orient::apply(&mut decoded.image, probe.orientation, Default::default());
        let (width, height) = probe.oriented_size();
        Ok(Inspection {
            format: probe.format,
            width,
            height,
            frames: probe.frames,
            blurhash: Self::blurhash(&decoded.image),
        })
    }

    fn render(&self, bytes: &[u8], spec: &RenderSpec, deadline: Instant) -> Result<Rendered> {
        let probe = probe(bytes)?;
        check_limits(&probe, self.settings.max_pixels, u64::MAX)?;
        let swaps = orient::swaps_axes(probe.orientation, spec.rotate);
        let source = if swaps {
            (probe.height, probe.width)
        } else {
            (probe.width, probe.height)
        };
        let plan = layout::plan(source, spec);
        let (out_w, out_h) = plan.crop.or(plan.pad).unwrap_or(plan.resize);
        let out_pixels = u64::from(out_w) * u64::from(out_h);
        if out_pixels > self.settings.max_pixels {
            // A tiny source blown up to 8192x8192 is a cheap request for a costly render.
            return Err(Error::invalid(
                "option_out_of_range",
                format!(
                    "the output would have {out_pixels} pixels, the limit is {}",
                    self.settings.max_pixels
                ),
            ));
        }
        let at_least = if swaps {
            (plan.resize.1, plan.resize.0)
        } else {
            plan.resize
        };

        let decoded = decode(bytes, &probe, Some(at_least), self.settings.max_pixels)?;
        check(deadline)?;
        let mut image = decoded.image;
        orient::apply(&mut image, probe.orientation, spec.rotate);
        let mut image = resize::resize(image, plan.resize)?;
        check(deadline)?;
        if let Some(size) = plan.crop {
            image = crop::crop(&image, size, spec.gravity);
        }
        if let Some(size) = plan.pad {
            let transparent = !matches!(spec.format, ImageFormat::Jpeg);
            image = pad::pad(&image, size, transparent);
        }
        if let Some(sigma) = spec.blur_tenths {
            image = blur::blur(&image, sigma);
            check(deadline)?;
        }
        let icc = decoded.icc.as_deref().filter(|_| self.settings.keep_icc);
        let bytes = encode(&image, spec.format, spec.quality, icc, self.settings.encode)?;
        debug_assert!(
            spec.fit != Fit::Cover
                || plan.crop.is_some()
                || spec.width.is_none()
                || spec.height.is_none()
        );
        Ok(Rendered {
            bytes,
            format: spec.format,
            width: image.width(),
            height: image.height(),
        })
    }
}
