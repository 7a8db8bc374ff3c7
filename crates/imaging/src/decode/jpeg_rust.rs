//! CMYK and YCCK JPEG through jpeg-decoder (pure Rust), scaled in the IDCT; every other JPEG
//! goes to libjpeg-turbo ([`super::jpeg`]).

use std::io::Cursor;

use image::DynamicImage;
use imgd_core::Result;

use super::{Decoded, corrupt, scale_denominator};
use crate::probe::Probe;

/// Decodes at the smallest DCT scale that keeps both sides at least `at_least`.
pub(super) fn decode(
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
        let d = scale_denominator(probe.width, probe.height, at_least);
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
