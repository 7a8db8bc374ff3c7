//! Decoding to 8-bit RGB or RGBA, with limits, and scaled while decoding where the codec allows.
//!
//! JPEG is decoded at 1/2, 1/4 or 1/8 of its size straight from the DCT coefficients, so a 20 MP
//! photo bound for a 400 px thumbnail is never materialised at full size (DESIGN.md, "Scale while
//! decoding"): by libjpeg-turbo ([`jpeg`], built from C by `cc` in every build; its SIMD code with
//! the `jpeg-simd` feature), and CMYK files, which libjpeg does not convert, by the pure-Rust
//! jpeg-decoder ([`jpeg_rust`]). A still WebP is decoded by libwebp, scaled the same way while it decodes
//! ([`webp`]). PNG goes through the `png` crate with its own limits ([`png`]); GIF and animated
//! WebP through the `image` crate with an allocation cap, yielding their first frame. AVIF and
//! HEIC go to libheif in a child process with capped memory, in builds with the `heif` feature
//! ([`heif`]).
//!
//! Colour profiles larger than [`MAX_ICC_BYTES`] are dropped (and counted): a real profile is a
//! few KiB, and one copied raw into every output made a 16x16 PNG's WebP variant 268 MB.
//! [`peak_bytes`] estimates what a decode holds at its peak, for the memory budget.

#[cfg_attr(not(feature = "heif"), path = "heif_disabled.rs")]
mod heif;
mod jpeg;
mod jpeg_rust;
mod png;
mod webp;

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::codecs::{gif::GifDecoder, webp::WebPDecoder};
use image::{DynamicImage, ImageDecoder};
use imgd_core::format::ImageFormat;
use imgd_core::port::JobControl;
use imgd_core::{Error, Result};

pub use heif::HEIF_SUPPORTED;
#[cfg(feature = "heif")]
pub use heif::set_helper as set_heif_helper;

use crate::probe::Probe;

/// Decoded pixels: always `ImageRgb8` or `ImageRgba8`.
pub struct Decoded {
    pub image: DynamicImage,
    /// The embedded ICC colour profile, kept for the output.
    pub icc: Option<Vec<u8>>,
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::CorruptImage(e.to_string())
}

/// Largest colour profile kept; larger ones are dropped with a metric.
pub const MAX_ICC_BYTES: usize = 1 << 20;

/// Bytes held at the peak of decoding `probe` (a file of `file_bytes`) at the scale [`decode`]
/// picks for `at_least`.
pub fn peak_bytes(probe: &Probe, at_least: Option<(u32, u32)>, file_bytes: u64) -> u64 {
    let (w, h) = (u64::from(probe.width), u64::from(probe.height));
    match probe.format {
        ImageFormat::Jpeg => {
            let d =
                u64::from(at_least.map_or(1, |a| scale_denominator(probe.width, probe.height, a)));
            let scaled = w.div_ceil(d) * h.div_ceil(d);
            // Progressive files keep every DCT coefficient (2 bytes a sample, up to 3 samples a
            // pixel) at full size until the last scan, whatever the output scale.
            let coefficients = if probe.progressive { w * h * 6 } else { 0 };
            coefficients + scaled * 3 * 2
        }
        ImageFormat::Png => png::peak_bytes(probe.width, probe.height),
        ImageFormat::Webp if probe.frames <= 1 => {
            let d =
                u64::from(at_least.map_or(1, |a| scale_denominator(probe.width, probe.height, a)));
            webp::peak_bytes(w.div_ceil(d), h.div_ceil(d), w)
        }
        ImageFormat::Avif | ImageFormat::Heic => {
            heif::peak_bytes(probe.width, probe.height, file_bytes)
        }
        // The `image` crate composes RGBA, then we convert: two buffers.
        _ => w * h * 4 * 2,
    }
}

fn cap_icc(icc: Option<Vec<u8>>) -> Option<Vec<u8>> {
    match icc {
        Some(profile) if profile.len() > MAX_ICC_BYTES => {
            metrics::counter!("imgd_icc_profiles_dropped_total").increment(1);
            None
        }
        other => other,
    }
}

/// Decodes `bytes`. With `at_least = Some((w, h))` (in stored orientation) a JPEG or a still WebP
/// is decoded at the smallest power-of-two scale that is still at least that large on both axes.
///
/// A panic inside a codec (malformed input that slipped past its checks) becomes
/// [`Error::CorruptImage`]: bad input is the client's problem, never a crash.
pub fn decode(
    bytes: &[u8],
    probe: &Probe,
    at_least: Option<(u32, u32)>,
    max_pixels: u64,
    job: &JobControl,
) -> Result<Decoded> {
    let decoded = catch_unwind(AssertUnwindSafe(|| match probe.format {
        ImageFormat::Jpeg => jpeg::decode(bytes, probe, at_least, max_pixels, job),
        ImageFormat::Png => png::decode(bytes),
        ImageFormat::Webp if probe.frames <= 1 => webp::decode(bytes, probe, at_least, max_pixels),
        ImageFormat::Avif | ImageFormat::Heic => heif::decode(bytes, probe, job),
        _ => decode_with_image(bytes, probe, max_pixels),
    }))
    .unwrap_or_else(|_| Err(Error::CorruptImage("the decoder rejected this file".into())))?;
    Ok(Decoded {
        icc: cap_icc(decoded.icc),
        ..decoded
    })
}

/// The largest power-of-two divisor (up to 8) that keeps both sides at least `at_least`.
pub(crate) fn scale_denominator(width: u32, height: u32, at_least: (u32, u32)) -> u32 {
    let mut denominator = 8;
    while denominator > 1
        && (width.div_ceil(denominator) < at_least.0 || height.div_ceil(denominator) < at_least.1)
    {
        denominator /= 2;
    }
    denominator
}

pub(crate) fn decode_with_image(bytes: &[u8], probe: &Probe, max_pixels: u64) -> Result<Decoded> {
    let format = probe.format;
    let limits = frame_limits(probe, max_pixels);
    let cursor = Cursor::new(bytes);
    let (image, icc) = match format {
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

/// The `image` crate's allocation cap for a GIF or WebP of `probe`'s size: its 8-bit RGBA canvas
/// and one frame buffer of the same size, what the memory budget counted. A frame larger than
/// its screen (legal in GIF's syntax, and a way to make a 1x1 image allocate hundreds of MB) is
/// refused by the decoder instead of allocated.
pub(crate) fn frame_limits(probe: &Probe, max_pixels: u64) -> image::Limits {
    let screen = (u64::from(probe.width) * u64::from(probe.height)).min(max_pixels);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(screen * 4 * 2);
    limits
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
        assert_eq!(scale_denominator(5472, 3648, (400, 267)), 8);
        assert_eq!(scale_denominator(5472, 3648, (800, 534)), 4);
        assert_eq!(scale_denominator(1000, 1000, (1000, 1)), 1);
        // A tall crop of a wide image needs the height, not the width.
        assert_eq!(scale_denominator(4000, 1000, (100, 400)), 2);
    }

    /// A lossy WebP of a diagonal gradient, `w` x `h`.
    fn webp(w: u32, h: u32) -> Vec<u8> {
        let mut pixels = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                pixels.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 90]);
            }
        }
        imgd_webp::encode_lossy(imgd_webp::Pixels::Rgb(&pixels), w, h, 90.0, &|| true).unwrap()
    }

    fn mean(image: &DynamicImage) -> [f64; 3] {
        let rgb = image.to_rgb8();
        let mut sum = [0f64; 3];
        for p in rgb.pixels() {
            for (s, v) in sum.iter_mut().zip(p.0) {
                *s += f64::from(v);
            }
        }
        sum.map(|s| s / f64::from(rgb.width() * rgb.height()))
    }

    #[test]
    fn a_still_webp_is_decoded_scaled_and_looks_the_same() {
        let bytes = webp(1600, 800);
        let probe = crate::probe::probe(&bytes).unwrap();
        let job = JobControl::new(
            std::time::Instant::now() + std::time::Duration::from_secs(60),
            None,
        );
        let full = decode(&bytes, &probe, None, 1 << 24, &job).unwrap().image;
        let scaled = decode(&bytes, &probe, Some((200, 100)), 1 << 24, &job)
            .unwrap()
            .image;
        assert_eq!((full.width(), full.height()), (1600, 800));
        assert_eq!(
            (scaled.width(), scaled.height()),
            (200, 100),
            "an eighth of each side"
        );
        let (a, b) = (mean(&full), mean(&scaled));
        for c in 0..3 {
            assert!((a[c] - b[c]).abs() < 2.0, "channel {c}: {a:?} vs {b:?}");
        }
        // The budget counts the scaled output, not the full picture.
        assert!(peak_bytes(&probe, Some((200, 100)), 0) * 10 < peak_bytes(&probe, None, 0));
        // A pixel limit below the full size still lets the scaled decode through.
        assert!(decode(&bytes, &probe, Some((200, 100)), 100_000, &job).is_ok());
        assert!(decode(&bytes, &probe, None, 100_000, &job).is_err());
    }
}
