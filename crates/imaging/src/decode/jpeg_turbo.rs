//! JPEG through libjpeg-turbo (the `turbojpeg` feature): SIMD Huffman decoding and IDCT, scaled
//! by 1/2, 1/4 or 1/8 while decoding, as libvips' shrink-on-load does.

use std::io::Cursor;

use image::{DynamicImage, RgbImage};
use imgd_core::{Error, Result};
use turbojpeg::{Decompressor, Image, PixelFormat, ScalingFactor};

use super::{Decoded, corrupt, scale_denominator};
use crate::probe::Probe;

/// `None` when libjpeg-turbo cannot produce RGB for this file (CMYK), so the caller falls back
/// to jpeg-decoder; otherwise the decoded image or why the file is broken.
pub(super) fn decode(
    bytes: &[u8],
    probe: &Probe,
    at_least: Option<(u32, u32)>,
    max_pixels: u64,
) -> Option<Result<Decoded>> {
    let mut decompressor = Decompressor::new().ok()?;
    let header = match decompressor.read_header(bytes) {
        Ok(header) => header,
        Err(e) => return Some(Err(corrupt(e))),
    };
    if header.colorspace == turbojpeg::Colorspace::CMYK
        || header.colorspace == turbojpeg::Colorspace::YCCK
    {
        return None;
    }
    if (header.width as u64) * (header.height as u64) > max_pixels {
        return Some(Err(Error::TooManyPixels {
            pixels: header.width as u64 * header.height as u64,
            limit: max_pixels,
        }));
    }
    let denominator =
        at_least.map_or(1, |a| scale_denominator(probe.width, probe.height, a)) as usize;
    let scale = ScalingFactor::new(1, denominator);
    let scaled = header.scaled(scale);
    if let Err(e) = decompressor.set_scaling_factor(scale) {
        return Some(Err(corrupt(e)));
    }
    let mut image = Image {
        pixels: vec![0u8; 3 * scaled.width * scaled.height],
        width: scaled.width,
        pitch: 3 * scaled.width,
        height: scaled.height,
        format: PixelFormat::RGB,
    };
    if let Err(e) = decompressor.decompress(bytes, image.as_deref_mut()) {
        return Some(Err(corrupt(e)));
    }
    let Some(rgb) = RgbImage::from_raw(scaled.width as u32, scaled.height as u32, image.pixels)
    else {
        return Some(Err(corrupt("pixel buffer does not match the frame size")));
    };
    Some(Ok(Decoded {
        image: DynamicImage::ImageRgb8(rgb),
        icc: icc_profile(bytes),
    }))
}

/// The ICC profile, read from the APP2 markers by jpeg-decoder's header parser (no pixels).
fn icc_profile(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().ok()?;
    decoder.icc_profile()
}
