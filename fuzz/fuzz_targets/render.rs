//! Fuzz target: arbitrary bytes through ingest's inspection and, when accepted, a render that
//! exercises decode, orientation, resize, smart crop, pad, blur and encode. Any panic or abort
//! is a finding: bad input must come back as an error.

#![no_main]

use std::time::{Duration, Instant};

use imgd_core::format::ImageFormat;
use imgd_core::port::{Imaging, IngestLimits, JobControl};
use imgd_core::transform::{Fit, Gravity, RenderSpec, Rotation};
use imgd_imaging::encode::EncodeOptions;
use imgd_imaging::{Pipeline, PipelineSettings};
use libfuzzer_sys::fuzz_target;

const MAX_PIXELS: u64 = 4_000_000;

fuzz_target!(|data: &[u8]| {
    let pipeline = Pipeline::new(PipelineSettings { keep_icc: true, encode: EncodeOptions { avif_speed: 10 }, max_pixels: MAX_PIXELS, max_avif_pixels: MAX_PIXELS, max_gif_pixels: MAX_PIXELS, max_animation_pixels: 4 * MAX_PIXELS });
    let limits = IngestLimits { max_pixels: MAX_PIXELS, max_frames: 100 };
    let job = JobControl::new(Instant::now() + Duration::from_secs(10), None);
    if pipeline.inspect(data, &limits, &job).is_err() {
        return;
    }
    // The last byte picks the variant, so the fuzzer explores the ops too.
    let selector = data.last().copied().unwrap_or(0);
    let fits = [Fit::Cover, Fit::Contain, Fit::Fill, Fit::Inside, Fit::Outside];
    let formats = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp, ImageFormat::Gif];
    let spec = RenderSpec {
        width: Some(17 + u32::from(selector % 40)),
        height: Some(9 + u32::from(selector % 23)),
        fit: fits[usize::from(selector) % fits.len()],
        gravity: if selector & 1 == 0 { Gravity::Smart } else { Gravity::SouthEast },
        format: formats[usize::from(selector / 5) % formats.len()],
        quality: 1 + selector % 100,
        blur_tenths: (selector & 2 == 0).then_some(15),
        rotate: [Rotation::R0, Rotation::R90, Rotation::R180, Rotation::R270][usize::from(selector / 3) % 4],
        // Every frame of an animated GIF or WebP, when the budget allows.
        animated: selector & 4 == 0,
    };
    let _ = pipeline.render(data, &spec, &job);
});
