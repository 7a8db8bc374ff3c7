//! Resize with fast_image_resize: SIMD convolution, Lanczos3, alpha premultiplied internally so
//! transparent edges do not bleed dark fringes. A cover window is cut while resizing, so no
//! buffer larger than the output is allocated.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage, RgbaImage};
use imgd_core::{Error, Result};

use super::crop::Window;

/// Pixels of the temporary image each pass order needs for a `window` of a source with
/// `source_rows` rows: (vertical first, horizontal first). A render's cost counts the smaller.
pub fn temporary_pixels(window_width: f64, source_rows: u32, size: (u32, u32)) -> (u64, u64) {
    (
        (window_width.ceil() as u64) * u64::from(size.1),
        u64::from(size.0) * u64::from(source_rows),
    )
}

/// `Some(source rows)` when the horizontal pass should run first.
fn horizontal_first(window: Window, source_rows: u32, size: (u32, u32)) -> Option<u32> {
    let (vertical_first, horizontal_first) = temporary_pixels(window.width, source_rows, size);
    // Only worth a second pass when the library's order would need a large temporary.
    (vertical_first > 4 * horizontal_first && vertical_first > 1 << 20).then_some(source_rows)
}

/// Resizes an RGB8 or RGBA8 image to exactly `size`.
pub fn resize(image: DynamicImage, size: (u32, u32)) -> Result<DynamicImage> {
    resize_window(image, None, size)
}

/// Resizes `window` of an RGB8 or RGBA8 image (the whole image when `None`) to exactly `size`.
pub fn resize_window(
    image: DynamicImage,
    window: Option<Window>,
    size: (u32, u32),
) -> Result<DynamicImage> {
    let whole = Window {
        left: 0.0,
        top: 0.0,
        width: f64::from(image.width()),
        height: f64::from(image.height()),
    };
    let window = window.unwrap_or(whole);
    if window == whole && (image.width(), image.height()) == size {
        return Ok(image);
    }
    let (w, h) = (image.width(), image.height());
    let (pixel_type, alpha) = match &image {
        DynamicImage::ImageRgb8(_) => (PixelType::U8x3, false),
        DynamicImage::ImageRgba8(_) => (PixelType::U8x4, true),
        _ => return Err(Error::internal("resize expects RGB8 or RGBA8")),
    };
    let src = Image::from_vec_u8(w, h, image.into_bytes(), pixel_type).map_err(Error::internal)?;
    let mut dst = Image::new(size.0, size.1, pixel_type);
    let options = |w: Window| {
        ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .crop(w.left, w.top, w.width, w.height)
    };
    let mut resizer = Resizer::new();
    match horizontal_first(window, h, size) {
        // fast_image_resize runs the vertical pass first for 8-bit pixels, into a temporary
        // image of (window width x output height): 10000 x 8192 for a 10000x1 strip asked for
        // 1x8192. Where that is the larger order, run the two passes ourselves, horizontal
        // first; each is the same separable Lanczos pass, so the pixels do not change.
        // The first pass keeps every source row, so the vertical pass sees the same
        // neighbours (filter support beyond the window) as the library's single call.
        Some(rows) => {
            let mut narrow = Image::new(size.0, rows, pixel_type);
            let horizontal = Window {
                top: 0.0,
                height: f64::from(rows),
                ..window
            };
            resizer
                .resize(&src, &mut narrow, &options(horizontal))
                .map_err(Error::internal)?;
            drop(src);
            let vertical = Window {
                left: 0.0,
                width: f64::from(size.0),
                ..window
            };
            resizer
                .resize(&narrow, &mut dst, &options(vertical))
                .map_err(Error::internal)?;
        }
        None => resizer
            .resize(&src, &mut dst, &options(window))
            .map_err(Error::internal)?,
    }
    let buffer = dst.into_vec();
    let out = if alpha {
        RgbaImage::from_raw(size.0, size.1, buffer).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(size.0, size.1, buffer).map(DynamicImage::ImageRgb8)
    };
    out.ok_or_else(|| Error::internal("resize produced a buffer of the wrong size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The explicit horizontal-first order gives the same pixels as the library's own order.
    #[test]
    fn both_pass_orders_agree() {
        let image = RgbImage::from_fn(3000, 40, |x, y| {
            image::Rgb([(x % 256) as u8, (y * 6) as u8, ((x * y) % 256) as u8])
        });
        let window = Window {
            left: 10.5,
            top: 3.25,
            width: 2000.0,
            height: 30.0,
        };
        let size = (7, 2000);
        assert!(horizontal_first(window, 40, size).is_some());
        let ours = resize_window(DynamicImage::ImageRgb8(image.clone()), Some(window), size)
            .unwrap()
            .to_rgb8();
        let src = Image::from_vec_u8(3000, 40, image.into_raw(), PixelType::U8x3).unwrap();
        let mut library = Image::new(size.0, size.1, PixelType::U8x3);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .crop(window.left, window.top, window.width, window.height);
        Resizer::new().resize(&src, &mut library, &options).unwrap();
        let max_diff = ours
            .as_raw()
            .iter()
            .zip(library.buffer())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        // Rounding between passes differs by the order, by a level or two at most.
        assert!(max_diff <= 2, "orders differ by {max_diff}");
    }

    #[test]
    fn a_strip_to_a_column_needs_no_large_temporary() {
        let strip = DynamicImage::ImageRgb8(RgbImage::new(10_000, 1));
        let window = Window {
            left: 0.0,
            top: 0.0,
            width: 10_000.0,
            height: 1.0,
        };
        assert!(horizontal_first(window, 1, (1, 8192)).is_some());
        let out = resize(strip, (1, 8192)).unwrap();
        assert_eq!((out.width(), out.height()), (1, 8192));
    }
}
