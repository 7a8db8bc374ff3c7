//! Resize with fast_image_resize: SIMD convolution, Lanczos3, alpha premultiplied so transparent
//! edges do not bleed dark fringes. A cover window is cut while resizing, so no buffer larger
//! than the output is allocated.
//!
//! The output is produced in bands of rows, one library call each, and the job is asked between
//! bands: a 50 MP resize stops within a band when its client leaves. A band's crop is the part
//! of the window that maps onto its rows; the library takes filter support beyond a crop from
//! the whole source, so band edges see the same neighbours as one whole call (a test compares).
//! Alpha is premultiplied here, in place and once, rather than by the library, which copies the
//! whole source into a premultiplied temporary on every call.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, MulDiv, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage, RgbaImage};
use imgd_core::port::JobControl;
use imgd_core::{Error, Result};

use super::crop::Window;

/// Source pixels one band reads, about: tens of milliseconds of convolution.
const BAND_SOURCE_PIXELS: f64 = 8_388_608.0;

/// Output rows a band holds at least. Each band computes its horizontal filter weights anew
/// (about 2 ms for a 400 px row downscaled 20x), so a strong downscale, whose output rows each
/// read many source rows, needs bands of more rows to keep that under a few percent.
const MIN_BAND_ROWS: u32 = 64;

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
pub fn resize(image: DynamicImage, size: (u32, u32), job: &JobControl) -> Result<DynamicImage> {
    resize_window(image, None, size, job)
}

/// Resizes `window` of an RGB8 or RGBA8 image (the whole image when `None`) to exactly `size`,
/// stopping between bands when `job` says so.
pub fn resize_window(
    image: DynamicImage,
    window: Option<Window>,
    size: (u32, u32),
    job: &JobControl,
) -> Result<DynamicImage> {
    resize_in_bands(
        image,
        window,
        size,
        job,
        (BAND_SOURCE_PIXELS, MIN_BAND_ROWS),
    )
}

/// [`resize_window`] with bands that read about `band_pixels` source pixels each, and hold at
/// least `min_rows` output rows.
fn resize_in_bands(
    image: DynamicImage,
    window: Option<Window>,
    size: (u32, u32),
    job: &JobControl,
    (band_pixels, min_rows): (f64, u32),
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
    let mut source = image.into_bytes();
    if alpha {
        alpha_in_bands(&mut source, w, Alpha::Multiply, job)?;
    }
    let src = Image::from_vec_u8(w, h, source, pixel_type).map_err(Error::internal)?;
    let mut resizer = Resizer::new();
    let mut out = vec![0u8; buffer_len(size, pixel_type)];
    match horizontal_first(window, h, size) {
        // fast_image_resize runs the vertical pass first for 8-bit pixels, into a temporary
        // image of (window width x output height): 10000 x 8192 for a 10000x1 strip asked for
        // 1x8192. Where that is the larger order, run the two passes ourselves, horizontal
        // first; each is the same separable Lanczos pass, so the pixels do not change.
        // The first pass keeps every source row, so the vertical pass sees the same
        // neighbours (filter support beyond the window) as the library's single call.
        Some(rows) => {
            let mut narrow = vec![0u8; buffer_len((size.0, rows), pixel_type)];
            let horizontal = Window {
                top: 0.0,
                height: f64::from(rows),
                ..window
            };
            let passes = Bands {
                job,
                band_pixels,
                min_rows,
            };
            passes.resize(&mut resizer, &src, &mut narrow, (size.0, rows), horizontal)?;
            drop(src);
            let narrow =
                Image::from_vec_u8(size.0, rows, narrow, pixel_type).map_err(Error::internal)?;
            let vertical = Window {
                left: 0.0,
                width: f64::from(size.0),
                ..window
            };
            passes.resize(&mut resizer, &narrow, &mut out, size, vertical)?;
        }
        None => {
            let passes = Bands {
                job,
                band_pixels,
                min_rows,
            };
            passes.resize(&mut resizer, &src, &mut out, size, window)?
        }
    }
    if alpha {
        alpha_in_bands(&mut out, size.0, Alpha::Divide, job)?;
    }
    let out = if alpha {
        RgbaImage::from_raw(size.0, size.1, out).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(size.0, size.1, out).map(DynamicImage::ImageRgb8)
    };
    out.ok_or_else(|| Error::internal("resize produced a buffer of the wrong size"))
}

fn buffer_len(size: (u32, u32), pixel_type: PixelType) -> usize {
    size.0 as usize * size.1 as usize * pixel_type.size()
}

/// How a pass is cut into bands: the job asked between them, and the source pixels each reads.
struct Bands<'a> {
    job: &'a JobControl,
    band_pixels: f64,
    min_rows: u32,
}

impl Bands<'_> {
    /// Output rows per band so that a band reads about `band_pixels` of the window.
    fn rows(&self, window: Window, size: (u32, u32)) -> u32 {
        let source_rows_per_output_row = window.height / f64::from(size.1);
        let source_row = window.width.max(1.0) * source_rows_per_output_row.max(1.0);
        ((self.band_pixels / source_row) as u32)
            .max(self.min_rows)
            .clamp(1, size.1.max(1))
    }

    /// Resizes `window` of `src` into `out` (`size`, premultiplied if it has alpha) one band of
    /// output rows at a time.
    fn resize(
        &self,
        resizer: &mut Resizer,
        src: &Image<'_>,
        out: &mut [u8],
        size: (u32, u32),
        window: Window,
    ) -> Result<()> {
        let pixel_type = src.pixel_type();
        let row_bytes = size.0 as usize * pixel_type.size();
        let scale = window.height / f64::from(size.1);
        let source_height = f64::from(src.height());
        let mut first_row = 0u32;
        for chunk in out.chunks_mut(self.rows(window, size) as usize * row_bytes) {
            self.job.checkpoint()?;
            let rows = (chunk.len() / row_bytes) as u32;
            let top = window.top + f64::from(first_row) * scale;
            // Rounding must not carry the last band past the source's bottom edge.
            let height = (f64::from(rows) * scale).min(source_height - top);
            let mut band =
                Image::from_slice_u8(size.0, rows, chunk, pixel_type).map_err(Error::internal)?;
            let options = ResizeOptions::new()
                .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
                .crop(window.left, top, window.width, height)
                .use_alpha(false);
            resizer
                .resize(src, &mut band, &options)
                .map_err(Error::internal)?;
            first_row += rows;
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Alpha {
    Multiply,
    Divide,
}

/// Premultiplies or un-premultiplies RGBA8 `pixels` in place, asking `job` between bands.
fn alpha_in_bands(pixels: &mut [u8], width: u32, op: Alpha, job: &JobControl) -> Result<()> {
    let row_bytes = width as usize * 4;
    if row_bytes == 0 {
        return Ok(());
    }
    let rows_per_band = (BAND_SOURCE_PIXELS as usize / width as usize).max(1);
    let mul_div = MulDiv::new();
    for chunk in pixels.chunks_mut(rows_per_band * row_bytes) {
        job.checkpoint()?;
        let rows = (chunk.len() / row_bytes) as u32;
        let mut band =
            Image::from_slice_u8(width, rows, chunk, PixelType::U8x4).map_err(Error::internal)?;
        match op {
            Alpha::Multiply => mul_div.multiply_alpha_inplace(&mut band),
            Alpha::Divide => mul_div.divide_alpha_inplace(&mut band),
        }
        .map_err(Error::internal)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use image::{Rgb, Rgba};

    use super::*;

    fn job() -> JobControl {
        JobControl::new(Instant::now() + Duration::from_secs(60), None)
    }

    /// One library call over the whole window, alpha handled by the library: the reference.
    fn library_resize(image: &DynamicImage, window: Window, size: (u32, u32)) -> Vec<u8> {
        let pixel_type = if image.color().has_alpha() {
            PixelType::U8x4
        } else {
            PixelType::U8x3
        };
        let (w, h) = (image.width(), image.height());
        let src = Image::from_vec_u8(w, h, image.as_bytes().to_vec(), pixel_type).unwrap();
        let mut out = Image::new(size.0, size.1, pixel_type);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .crop(window.left, window.top, window.width, window.height);
        Resizer::new().resize(&src, &mut out, &options).unwrap();
        out.into_vec()
    }

    /// (largest difference in levels, how many bytes differ) between two buffers.
    fn difference(ours: &[u8], library: &[u8]) -> (u8, usize) {
        assert_eq!(ours.len(), library.len());
        let diffs = ours.iter().zip(library).map(|(a, b)| a.abs_diff(*b));
        (
            diffs.clone().max().unwrap(),
            diffs.filter(|d| *d > 0).count(),
        )
    }

    fn textured_rgba(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgba8(RgbaImage::from_fn(width, height, |x, y| {
            Rgba([
                (x % 251) as u8,
                (y % 241) as u8,
                ((x * 7 + y * 3) % 256) as u8,
                ((x / 3 + y / 5) % 256) as u8,
            ])
        }))
    }

    /// The explicit horizontal-first order gives the same pixels as the library's own order.
    #[test]
    fn both_pass_orders_agree() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(3000, 40, |x, y| {
            Rgb([(x % 256) as u8, (y * 6) as u8, ((x * y) % 256) as u8])
        }));
        let window = Window {
            left: 10.5,
            top: 3.25,
            width: 2000.0,
            height: 30.0,
        };
        let size = (7, 2000);
        assert!(horizontal_first(window, 40, size).is_some());
        let ours = resize_window(image.clone(), Some(window), size, &job()).unwrap();
        let (max, _) = difference(ours.as_bytes(), &library_resize(&image, window, size));
        // Rounding between passes differs by the order, by a level or two at most.
        assert!(max <= 2, "orders differ by {max}");
    }

    /// Many bands give the bytes of one whole call: band edges see the same neighbours, and
    /// premultiplying once here matches the library's own premultiplied copy.
    #[test]
    fn bands_give_the_pixels_of_one_call() {
        for (image, window, size) in [
            (
                DynamicImage::ImageRgb8(textured_rgba(2400, 2100).to_rgb8()),
                Window {
                    left: 0.0,
                    top: 0.0,
                    width: 2400.0,
                    height: 2100.0,
                },
                (997, 873),
            ),
            (
                textured_rgba(2400, 2100),
                Window {
                    left: 101.25,
                    top: 37.5,
                    width: 1900.5,
                    height: 1999.0,
                },
                (640, 673),
            ),
        ] {
            // Bands of 64 K source pixels: dozens in an image a debug test can afford.
            let band_pixels = 65_536.0;
            let bands = Bands {
                job: &job(),
                band_pixels,
                min_rows: 1,
            };
            assert!(
                bands.rows(window, size) * 10 < size.1,
                "too few bands to test"
            );
            let ours = resize_in_bands(image.clone(), Some(window), size, &job(), (band_pixels, 1))
                .unwrap();
            let (max, count) = difference(ours.as_bytes(), &library_resize(&image, window, size));
            assert_eq!(
                count, 0,
                "bands differ from one call in {count} bytes, by up to {max}"
            );
        }
    }

    #[test]
    fn a_cancelled_job_stops_the_resize() {
        let control = job();
        control.cancel();
        let result = resize(textured_rgba(3000, 3000), (1500, 1500), &control);
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
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
        let out = resize(strip, (1, 8192), &job()).unwrap();
        assert_eq!((out.width(), out.height()), (1, 8192));
    }
}
