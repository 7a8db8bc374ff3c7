//! Render benchmarks: the reference cases, through the same `Pipeline` the server uses.
//!
//! `cargo bench -p imgd-imaging --bench render`
//! For ratios against libvips on the same machine and files, run `bench/compare-vips.sh`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use imgd_core::format::ImageFormat;
use imgd_core::port::{Imaging, JobControl};
use imgd_core::transform::{Fit, Gravity, RenderSpec, Rotation};
use imgd_imaging::encode::EncodeOptions;
use imgd_imaging::{Pipeline, PipelineSettings};

#[path = "support/photo.rs"]
mod photo;

fn spec(width: u32, format: ImageFormat) -> RenderSpec {
    RenderSpec {
        width: Some(width),
        height: None,
        fit: Fit::Inside,
        gravity: Gravity::Center,
        format,
        quality: 80,
        blur_tenths: None,
        rotate: Rotation::R0,
        animated: false,
    }
}

fn render(c: &mut Criterion) {
    let pipeline = Pipeline::new(PipelineSettings {
        keep_icc: true,
        encode: EncodeOptions { avif_speed: 8 },
        max_pixels: 50_000_000,
        max_avif_pixels: 2_000_000,
        max_gif_pixels: 8_000_000,
        max_animation_pixels: 100_000_000,
    });
    let jpeg_20mp = photo::photo_jpeg(5472, 3648, 1);
    let png_12mp = photo::photo_png(4000, 3000, 1);
    let far = || JobControl::new(Instant::now() + Duration::from_secs(600), None);

    let mut group = c.benchmark_group("render");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("jpeg_20mp_to_400_jpeg", |b| {
        b.iter(|| {
            pipeline
                .render(&jpeg_20mp, &spec(400, ImageFormat::Jpeg), &far())
                .unwrap()
        })
    });
    group.bench_function("jpeg_20mp_to_400_webp", |b| {
        b.iter(|| {
            pipeline
                .render(&jpeg_20mp, &spec(400, ImageFormat::Webp), &far())
                .unwrap()
        })
    });
    group.bench_function("png_12mp_to_400_webp", |b| {
        b.iter(|| {
            pipeline
                .render(&png_12mp, &spec(400, ImageFormat::Webp), &far())
                .unwrap()
        })
    });
    group.bench_function("jpeg_20mp_inspect", |b| {
        let limits = imgd_core::port::IngestLimits {
            max_pixels: 50_000_000,
            max_frames: 1000,
        };
        b.iter(|| pipeline.inspect(&jpeg_20mp, &limits, &far()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
