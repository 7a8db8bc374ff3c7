//! Decoding to 8-bit RGB or RGBA, with limits, and scaled while decoding where the codec allows.
//!
//! JPEG goes through jpeg-decoder, whose IDCT can output 1/2, 1/4 or 1/8 of the size directly: a
//! 20 MP photo bound for a 400 px thumbnail is never materialised at full size (DESIGN.md,
//! "Scale while decoding"). PNG, GIF and WebP go through the `image` crate with an allocation cap.
//! GIF and WebP animations yield their first frame.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::codecs::{gif::GifDecoder, png::PngDecoder, webp::WebPDecoder};
use image::{DynamicImage, ImageDecoder};
use imgd_core::format::ImageFormat;
use imgd_core::{Error, Result};

use crate::probe::Probe;

/// Decoded pixels: always `ImageRgb8` or `ImageRgba8`.
pub struct Decoded {
    pub image: DynamicImage,
    /// The embedded ICC colour profile, kept for the output.
    pub icc: Option<Vec<u8>>,
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::CorruptImage(e.to_string())
}

/// Decodes `bytes`. With `at_least = Some((w, h))` (in stored orientation) a JPEG is decoded at
/// the smallest DCT scale that is still at least that large on both axes.
///
/// A panic inside a codec (malformed input that slipped past its checks) becomes
/// [`Error::CorruptImage`]: bad input is the client's problem, never a crash.
pub fn decode(
    bytes: &[u8],
    probe: &Probe,
    at_least: Option<(u32, u32)>,
    max_pixels: u64,
) -> Result<Decoded> {
    catch_unwind(AssertUnwindSafe(|| match probe.format {
        ImageFormat::Jpeg => decode_jpeg(bytes, probe, at_least, max_pixels),
        _ => decode_with_image(bytes, probe.format, max_pixels),
    }))
    .unwrap_or_else(|_| Err(Error::CorruptImage("the decoder rejected this file".into())))
}

/// The largest power-of-two divisor (up to 8) that keeps both sides at least `at_least`.
fn jpeg_scale_denominator(width: u32, height: u32, at_least: (u32, u32)) -> u32 {
    let mut denominator = 8;
    while denominator > 1
        && (width.div_ceil(denominator) < at_least.0 || height.div_ceil(denominator) < at_least.1)
    {
        denominator /= 2;
    }
    denominator
}

fn decode_jpeg(
    bytes: &[u8],
    probe: &Probe,
    at_least: Option<(u32, u32)>,
    max_pixels: u64,
) -> Result<Decoded> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size(
        usize::try_from(max_pixels.saturating_mul(4)).unwrap_or(usize::MAX),
    );
    decoder.read_info().map_err(corrupt)?;
    if let Some(at_least) = at_least {
        let d = jpeg_scale_denominator(probe.width, probe.height, at_least);
        if d > 1 {
            decoder
                .scale(
                    probe.width.div_ceil(d) as u16,
                    probe.height.div_ceil(d) as u16,
                )
                .map_err(corrupt)?;
        }
    }
    let pixels = decoder.decode().map_err(corrupt)?;
    let info = decoder.info().ok_or_else(|| corrupt("no frame header"))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
        // Big-endian 16-bit samples: the high byte is the 8-bit value.
        jpeg_decoder::PixelFormat::L16 => pixels
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let k = 255 - u32::from(p[3]);
                [p[0], p[1], p[2]].map(|c| ((255 - u32::from(c)) * k / 255) as u8)
            })
            .collect(),
    };
    let image = image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| corrupt("pixel buffer does not match the frame size"))?;
    Ok(Decoded {
        image: DynamicImage::ImageRgb8(image),
        icc: decoder.icc_profile(),
    })
}

fn decode_with_image(bytes: &[u8], format: ImageFormat, max_pixels: u64) -> Result<Decoded> {
    let mut limits = image::Limits::default();
    // Enough for 16-bit RGBA at the pixel cap, and no more.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    let cursor = Cursor::new(bytes);
    let (image, icc) = match format {
        ImageFormat::Png => with_decoder(PngDecoder::new(cursor).map_err(corrupt)?, limits)?,
        ImageFormat::Gif => with_decoder(GifDecoder::new(cursor).map_err(corrupt)?, limits)?,
        ImageFormat::Webp => with_decoder(WebPDecoder::new(cursor).map_err(corrupt)?, limits)?,
        other => {
            return Err(Error::UnsupportedFormat(format!(
                "cannot decode {}",
                other.name()
            )));
        }
    };
    let image = if image.color().has_alpha() {
        DynamicImage::ImageRgba8(image.into_rgba8())
    } else {
        DynamicImage::ImageRgb8(image.into_rgb8())
    };
    Ok(Decoded { image, icc })
}

fn with_decoder(
    mut decoder: impl ImageDecoder,
    limits: image::Limits,
) -> Result<(DynamicImage, Option<Vec<u8>>)> {
    decoder.set_limits(limits).map_err(corrupt)?;
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    Ok((image, icc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_scale_keeps_both_sides_large_enough() {
        assert_eq!(jpeg_scale_denominator(5472, 3648, (400, 267)), 8);
        assert_eq!(jpeg_scale_denominator(5472, 3648, (800, 534)), 4);
        assert_eq!(jpeg_scale_denominator(1000, 1000, (1000, 1)), 1);
        // A tall crop of a wide image needs the height, not the width.
        assert_eq!(jpeg_scale_denominator(4000, 1000, (100, 400)), 2);
    }
}
