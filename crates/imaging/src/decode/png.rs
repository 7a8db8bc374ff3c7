//! PNG through the `png` crate directly, with explicit limits: 16-bit samples are stripped and
//! palettes expanded *while decoding*, so the one pixel buffer is 8-bit (the `image` crate's
//! path decoded 16-bit RGBA at 8 bytes a pixel, then copied it down), and the decoder's own
//! allocations (compressed chunks, the inflated iCCP profile, text) are capped, so a 16x16 file
//! whose iCCP chunk inflates to 256 MiB costs at most the cap.

use std::io::Cursor;

use image::{DynamicImage, RgbImage, RgbaImage};
use imgd_core::Result;
use png::{BitDepth, ColorType, Limits, Transformations};

use super::{Decoded, corrupt};

/// What the decoder may allocate besides the image buffer: compressed chunks, line buffers,
/// the inflated colour profile. Profiles above [`super::MAX_ICC_BYTES`] are dropped anyway.
const DECODER_BYTES: usize = 8 << 20;

/// Bytes a decode of a `width` x `height` PNG holds at its peak, plus the decoder's own
/// allocations. Measured, not derived: a 7000x7000 16-bit RGBA file peaked at 395 MiB resident
/// for a 187 MiB 8-bit buffer (`imgd render`, /usr/bin/time), so 8 a pixel.
pub(crate) fn peak_bytes(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height) * 8 + DECODER_BYTES as u64
}

/// Decodes to RGB8 or RGBA8.
pub(super) fn decode(bytes: &[u8]) -> Result<Decoded> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        Limits {
            bytes: DECODER_BYTES,
        },
    );
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| corrupt("image too large to address"))?;
    let mut buffer = vec![0u8; size];
    let frame = reader.next_frame(&mut buffer).map_err(corrupt)?;
    buffer.truncate(frame.buffer_size());
    let icc = reader.info().icc_profile.as_ref().map(|p| p.to_vec());
    let (w, h) = (frame.width, frame.height);
    if frame.bit_depth != BitDepth::Eight {
        return Err(corrupt("unexpected bit depth after expansion"));
    }
    let image = match frame.color_type {
        ColorType::Rgb => RgbImage::from_raw(w, h, buffer).map(DynamicImage::ImageRgb8),
        ColorType::Rgba => RgbaImage::from_raw(w, h, buffer).map(DynamicImage::ImageRgba8),
        ColorType::Grayscale => {
            let rgb = buffer.iter().flat_map(|&l| [l, l, l]).collect();
            RgbImage::from_raw(w, h, rgb).map(DynamicImage::ImageRgb8)
        }
        ColorType::GrayscaleAlpha => {
            let rgba = buffer
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect();
            RgbaImage::from_raw(w, h, rgba).map(DynamicImage::ImageRgba8)
        }
        ColorType::Indexed => None,
    }
    .ok_or_else(|| corrupt("pixel buffer does not match the frame size"))?;
    Ok(Decoded { image, icc })
}
