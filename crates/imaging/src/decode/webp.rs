//! Still WebP through libwebp, scaled while decoding like JPEG: to the smallest power-of-two
//! fraction of each side that still covers the output, so the resize that follows starts from
//! a few hundred thousand pixels instead of the photo's millions. The colour profile comes from
//! the file's `ICCP` chunk (read by the `image` crate's header parser, which decodes nothing).

use std::io::Cursor;

use image::codecs::webp::WebPDecoder;
use image::{DynamicImage, ImageDecoder, RgbImage, RgbaImage};
use imgd_core::{Error, Result};
use imgd_webp::DecodeError;

use super::{Decoded, corrupt, scale_denominator};
use crate::probe::Probe;

/// Rows of the source libwebp keeps while it scales (its rescaler holds a few source rows of
/// YUV and RGB at a time): a generous bound on its working memory beyond the output.
const WORKING_ROWS: u64 = 16;

/// Bytes held at the peak: the output (RGBA at worst) and libwebp's rows.
pub(super) fn peak_bytes(out_width: u64, out_height: u64, source_width: u64) -> u64 {
    out_width * out_height * 4 + source_width * WORKING_ROWS * 4
}

pub(super) fn decode(
    bytes: &[u8],
    probe: &Probe,
    at_least: Option<(u32, u32)>,
    max_pixels: u64,
) -> Result<Decoded> {
    let features = imgd_webp::features(bytes).map_err(failed)?;
    if features.has_animation {
        // The probe counted one frame but libwebp sees an animation: take the first frame.
        return super::decode_with_image(bytes, probe, max_pixels);
    }
    let d = at_least.map_or(1, |a| scale_denominator(features.width, features.height, a));
    let (width, height) = (features.width.div_ceil(d), features.height.div_ceil(d));
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(Error::TooManyPixels {
            pixels,
            limit: max_pixels,
        });
    }
    let pixels = imgd_webp::decode(bytes, width, height, features.has_alpha).map_err(failed)?;
    let image = if features.has_alpha {
        RgbaImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
    }
    .ok_or_else(|| Error::internal("libwebp's output is not the size asked for"))?;
    let icc = WebPDecoder::new(Cursor::new(bytes))
        .ok()
        .and_then(|mut d| d.icc_profile().ok().flatten());
    Ok(Decoded { image, icc })
}

fn failed(e: DecodeError) -> Error {
    corrupt(format!("WebP: {e}"))
}
