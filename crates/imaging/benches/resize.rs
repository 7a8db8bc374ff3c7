//! The resize stage alone, banded (what the pipeline runs: a checkpoint between bands) against
//! one whole fast_image_resize call over the same pixels, in the same run.
//!
//! `cargo bench -p imgd-imaging --bench resize`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbaImage};
use imgd_core::port::JobControl;
use imgd_imaging::ops::resize::resize;

/// A 48 MP source with texture everywhere (flat images would flatter no one here).
fn source(alpha: bool) -> DynamicImage {
    let rgba = RgbaImage::from_fn(8000, 6000, |x, y| {
        image::Rgba([
            (x % 251) as u8,
            (y % 241) as u8,
            ((x * 7 + y * 3) % 256) as u8,
            if alpha {
                ((x / 3 + y / 5) % 256) as u8
            } else {
                255
            },
        ])
    });
    if alpha {
        DynamicImage::ImageRgba8(rgba)
    } else {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).to_rgb8())
    }
}

fn whole_call(image: &DynamicImage, size: (u32, u32)) -> Image<'static> {
    let pixel_type = if image.color().has_alpha() {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    };
    let src = Image::from_vec_u8(
        image.width(),
        image.height(),
        image.as_bytes().to_vec(),
        pixel_type,
    )
    .unwrap();
    let mut out = Image::new(size.0, size.1, pixel_type);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new().resize(&src, &mut out, &options).unwrap();
    out
}

fn resize_stage(c: &mut Criterion) {
    let far = || JobControl::new(Instant::now() + Duration::from_secs(600), None);
    let mut group = c.benchmark_group("resize_48mp");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    for (name, alpha) in [("rgb", false), ("rgba", true)] {
        let image = source(alpha);
        for size in [(4000, 3000), (400, 300)] {
            let label = format!("{name}_to_{}x{}", size.0, size.1);
            // Both sides pay for the copy of the source they consume.
            group.bench_function(format!("{label}_banded"), |b| {
                b.iter(|| resize(image.clone(), size, &far()).unwrap())
            });
            group.bench_function(format!("{label}_one_call"), |b| {
                b.iter(|| whole_call(&image, size))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, resize_stage);
criterion_main!(benches);
