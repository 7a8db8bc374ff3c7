//! Gaussian blur, approximated by the `image` crate's repeated box blur: linear in the pixel
//! count whatever the sigma, where a true Gaussian kernel grows with it.
//!
//! Large images are blurred in bands of rows, each with a halo of context above and below, and
//! the job is asked between bands: a 50 MP blur stops within a band when its client leaves,
//! and holds two band-sized temporaries instead of two full-size ones. The halo covers the
//! filter's whole vertical reach, so the result is the same as one whole-image blur (a test
//! compares them byte for byte).

use image::{DynamicImage, ImageBuffer, Pixel};
use imgd_core::port::JobControl;
use imgd_core::{Error, Result};

/// Rows a band holds besides its halo, at least; bands grow with the halo so the halo's
/// repeated work stays under a quarter of the whole.
const MIN_BAND_ROWS: u32 = 256;

/// Blurs with standard deviation `sigma_tenths / 10`, stopping between bands when `job` says so.
pub fn blur(image: &DynamicImage, sigma_tenths: u16, job: &JobControl) -> Result<DynamicImage> {
    let sigma = f32::from(sigma_tenths) / 10.0;
    Ok(match image {
        DynamicImage::ImageRgb8(buffer) => DynamicImage::ImageRgb8(banded(buffer, sigma, job)?),
        DynamicImage::ImageRgba8(buffer) => DynamicImage::ImageRgba8(banded(buffer, sigma, job)?),
        // The pipeline hands over RGB8 or RGBA8 only; anything else is blurred whole.
        other => other.fast_blur(sigma),
    })
}

/// Rows above and below a band that can still change its pixels: the sum of the three box
/// radii `image` derives from sigma (each at most half the ideal box width plus two).
fn halo_rows(sigma: f32) -> u32 {
    const PASSES: f32 = 3.0;
    let ideal_width = (12.0 * sigma * sigma / PASSES + 1.0).sqrt();
    3 * ((ideal_width / 2.0).ceil() as u32 + 2)
}

fn banded<P>(
    source: &ImageBuffer<P, Vec<u8>>,
    sigma: f32,
    job: &JobControl,
) -> Result<ImageBuffer<P, Vec<u8>>>
where
    P: Pixel<Subpixel = u8>,
{
    let (width, height) = source.dimensions();
    let halo = halo_rows(sigma);
    let band = MIN_BAND_ROWS.max(8 * halo);
    job.checkpoint()?;
    if height <= band + 2 * halo {
        return Ok(image::imageops::fast_blur(source, sigma));
    }
    let row_bytes = width as usize * usize::from(P::CHANNEL_COUNT);
    let rows = |from: u32, to: u32| from as usize * row_bytes..to as usize * row_bytes;
    let mut out = vec![0u8; source.as_raw().len()];
    let mut top = 0;
    while top < height {
        job.checkpoint()?;
        let bottom = (top + band).min(height);
        let (from, to) = (top.saturating_sub(halo), (bottom + halo).min(height));
        let slice = source.as_raw()[rows(from, to)].to_vec();
        let context = ImageBuffer::<P, Vec<u8>>::from_raw(width, to - from, slice)
            .ok_or_else(|| Error::internal("blur band is not whole rows"))?;
        let blurred = image::imageops::fast_blur(&context, sigma);
        out[rows(top, bottom)].copy_from_slice(&blurred.as_raw()[rows(top - from, bottom - from)]);
        top = bottom;
    }
    ImageBuffer::from_raw(width, height, out).ok_or_else(|| Error::internal("blur output size"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;

    fn job() -> JobControl {
        JobControl::new(Instant::now() + Duration::from_secs(60), None)
    }

    fn noisy(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let h = x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503);
            Rgb([h as u8, (h >> 8) as u8, (x * 3 + y) as u8])
        })
    }

    #[test]
    fn banded_blur_equals_a_whole_image_blur() {
        for (height, tenths) in [(700, 3), (900, 20), (1500, 80), (3000, 400), (4000, 1000)] {
            let image = DynamicImage::ImageRgb8(noisy(37, height));
            let sigma = f32::from(tenths) / 10.0;
            assert!(
                height > MIN_BAND_ROWS.max(8 * halo_rows(sigma)) + 2 * halo_rows(sigma),
                "{height} rows at sigma {sigma} take more than one band"
            );
            let banded = blur(&image, tenths, &job()).unwrap();
            let whole = image.fast_blur(sigma);
            assert!(
                banded.as_bytes() == whole.as_bytes(),
                "{height} rows, sigma {sigma}"
            );
        }
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_fn(23, 900, |x, y| {
            Rgba([
                (x * 11) as u8,
                (y * 7) as u8,
                (x ^ y) as u8,
                (y % 256) as u8,
            ])
        }));
        assert!(blur(&rgba, 25, &job()).unwrap().as_bytes() == rgba.fast_blur(2.5).as_bytes());
    }

    #[test]
    fn a_cancelled_blur_stops_between_bands() {
        let image = DynamicImage::ImageRgb8(noisy(16, 2000));
        let cancelled = job();
        cancelled.cancel();
        assert!(matches!(
            blur(&image, 20, &cancelled),
            Err(Error::Cancelled)
        ));
    }
}
