//! Encoders. Metadata (EXIF, XMP) is never written, so it is stripped by construction; the ICC
//! colour profile is kept when asked, so wide-gamut photos keep their colours.
//!
//! AVIF output carries no ICC profile (ravif cannot write one); such sources are tagged sRGB.

use image::codecs::gif::GifEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use imgd_core::format::ImageFormat;
use imgd_core::port::JobControl;
use imgd_core::{Error, Result};
use imgd_webp::{EncodeError, Pixels};

/// Encoder settings that are not part of the variant spec.
#[derive(Clone, Copy, Debug)]
pub struct EncodeOptions {
    /// rav1e speed 1 (slowest, smallest) to 10.
    pub avif_speed: u8,
}

/// An encoder's failure, as an internal error naming the format.
pub(crate) fn failed(format: ImageFormat) -> impl Fn(String) -> Error {
    move |e| Error::internal(format!("{} encoder: {e}", format.name()))
}

/// Encodes `image` (RGB8 or RGBA8) as `format` at `quality` (ignored by lossless formats).
/// Encoders that offer a progress hook stop when `job` says so.
pub fn encode(
    image: &DynamicImage,
    format: ImageFormat,
    quality: u8,
    icc: Option<&[u8]>,
    options: EncodeOptions,
    job: &JobControl,
) -> Result<Vec<u8>> {
    let fail = failed(format);
    let (w, h) = (image.width(), image.height());
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            let rgb = flatten(image);
            let (w16, h16) = (
                u16::try_from(w).map_err(|e| fail(e.to_string()))?,
                u16::try_from(h).map_err(|e| fail(e.to_string()))?,
            );
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
            encoder.set_optimized_huffman_tables(true);
            if let Some(icc) = icc {
                encoder
                    .add_icc_profile(icc)
                    .map_err(|e| fail(e.to_string()))?;
            }
            encoder
                .encode(rgb.as_raw(), w16, h16, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| fail(e.to_string()))?;
        }
        ImageFormat::Png => {
            let mut encoder =
                PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive);
            if let Some(icc) = icc {
                encoder
                    .set_icc_profile(icc.to_vec())
                    .map_err(|e| fail(e.to_string()))?;
            }
            let color = if image.color().has_alpha() {
                ExtendedColorType::Rgba8
            } else {
                ExtendedColorType::Rgb8
            };
            encoder
                .write_image(image.as_bytes(), w, h, color)
                .map_err(|e| fail(e.to_string()))?;
        }
        ImageFormat::Webp => {
            let pixels = match image {
                DynamicImage::ImageRgba8(rgba) => Pixels::Rgba(rgba.as_raw()),
                other => Pixels::Rgb(other.as_bytes()),
            };
            // The slowest encoder per pixel (seconds for tens of megapixels): libwebp asks
            // `job` between macroblock rows, so a render nobody waits for stops inside it.
            let keep_going = || job.checkpoint().is_ok();
            let encoded = libwebp_outcome(
                imgd_webp::encode_lossy(pixels, w, h, f32::from(quality), &keep_going),
                job,
                &fail,
            )?;
            out = match icc {
                Some(icc) => webp_with_icc(&encoded, icc, (w, h), image.color().has_alpha()),
                None => encoded,
            };
        }
        ImageFormat::Avif => {
            let encoder = ravif::Encoder::new()
                .with_quality(f32::from(quality))
                .with_speed(options.avif_speed.clamp(1, 10))
                // One thread per render, so `render.workers` bounds the cores AVIF takes too.
                .with_num_threads(Some(1));
            let encoded = match image {
                DynamicImage::ImageRgba8(rgba) => {
                    let pixels: Vec<ravif::RGBA8> = rgba
                        .pixels()
                        .map(|p| ravif::RGBA8::new(p[0], p[1], p[2], p[3]))
                        .collect();
                    encoder.encode_rgba(ravif::Img::new(&pixels[..], w as usize, h as usize))
                }
                other => {
                    let pixels: Vec<ravif::RGB8> = other
                        .as_bytes()
                        .chunks_exact(3)
                        .map(|p| ravif::RGB8::new(p[0], p[1], p[2]))
                        .collect();
                    encoder.encode_rgb(ravif::Img::new(&pixels[..], w as usize, h as usize))
                }
            };
            out = encoded.map_err(|e| fail(e.to_string()))?.avif_file;
        }
        ImageFormat::Gif => {
            let rgba = image.to_rgba8();
            // Speed 10 (of 1..=30) bounds NeuQuant's palette search; 1 is several times slower.
            GifEncoder::new_with_speed(&mut out, 10)
                .encode(rgba.as_raw(), w, h, ExtendedColorType::Rgba8)
                .map_err(|e| fail(e.to_string()))?;
        }
        ImageFormat::Heic => {
            return Err(Error::UnsupportedFormat(
                "HEIC is an input format; ask for jpeg, webp or avif".into(),
            ));
        }
    }
    Ok(out)
}

/// A libwebp call's outcome: stopped by `job` becomes the job's own error (cancelled, timed
/// out), any other failure the encoder's.
pub(crate) fn libwebp_outcome<T>(
    result: std::result::Result<T, EncodeError>,
    job: &JobControl,
    fail: &dyn Fn(String) -> Error,
) -> Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(EncodeError::Stopped) => {
            job.checkpoint()?;
            Err(fail("stopped without a reason".into()))
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Composites transparency onto white for formats without alpha.
fn flatten(image: &DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgba8(rgba) => RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            let p = rgba.get_pixel(x, y);
            let a = u16::from(p[3]);
            let over = |c: u8| ((u16::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
            Rgb([over(p[0]), over(p[1]), over(p[2])])
        }),
        other => other.to_rgb8(),
    }
}

fn riff_chunk(fourcc: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(data.len() + 9);
    chunk.extend_from_slice(fourcc);
    chunk.extend_from_slice(&(data.len() as u32).to_le_bytes());
    chunk.extend_from_slice(data);
    if data.len() % 2 == 1 {
        chunk.push(0);
    }
    chunk
}

/// Rewrites a simple WebP into the extended format with an `ICCP` chunk (WebP container spec:
/// `VP8X` first, flags bit 5 for ICC, then `ICCP`, then the image chunks).
fn webp_with_icc(webp: &[u8], icc: &[u8], (w, h): (u32, u32), alpha: bool) -> Vec<u8> {
    const ICC_FLAG: u8 = 0x20;
    const ALPHA_FLAG: u8 = 0x10;
    let body = &webp[12..];
    let mut chunks = Vec::new();
    if body.starts_with(b"VP8X") && body.len() >= 18 {
        let mut vp8x = body[..18].to_vec();
        vp8x[8] |= ICC_FLAG;
        chunks.extend_from_slice(&vp8x);
        chunks.extend_from_slice(&riff_chunk(b"ICCP", icc));
        chunks.extend_from_slice(&body[18..]);
    } else {
        let mut vp8x = vec![ICC_FLAG | if alpha { ALPHA_FLAG } else { 0 }, 0, 0, 0];
        vp8x.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
        vp8x.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
        chunks.extend_from_slice(&riff_chunk(b"VP8X", &vp8x));
        chunks.extend_from_slice(&riff_chunk(b"ICCP", icc));
        chunks.extend_from_slice(body);
    }
    let mut out = Vec::with_capacity(chunks.len() + 12);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((chunks.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&chunks);
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn job() -> JobControl {
        JobControl::new(Instant::now() + Duration::from_secs(60), None)
    }

    #[test]
    fn every_format_round_trips_through_a_decoder() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(37, 21, |x, y| {
            Rgb([x as u8 * 6, y as u8 * 12, 90])
        }));
        let options = EncodeOptions { avif_speed: 10 };
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Webp,
            ImageFormat::Gif,
        ] {
            let bytes = encode(&image, format, 80, None, options, &job()).unwrap();
            let probe = crate::probe::probe(&bytes).unwrap();
            let decoded = crate::decode::decode(&bytes, &probe, None, 1 << 20, &job())
                .unwrap()
                .image;
            assert_eq!(probe.format, format);
            assert_eq!((decoded.width(), decoded.height()), (37, 21), "{format:?}");
        }
        let avif = encode(&image, ImageFormat::Avif, 60, None, options, &job()).unwrap();
        assert_eq!(
            imgd_core::format::sniff(&avif),
            imgd_core::format::Sniffed::Image(ImageFormat::Avif)
        );
    }

    #[test]
    fn webp_keeps_the_icc_profile() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([10, 20, 30])));
        let icc = b"fake-icc-profile-bytes".to_vec();
        let bytes = encode(
            &image,
            ImageFormat::Webp,
            80,
            Some(&icc),
            EncodeOptions { avif_speed: 10 },
            &job(),
        )
        .unwrap();
        let mut decoder =
            image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(&bytes)).unwrap();
        use image::ImageDecoder;
        assert_eq!(decoder.icc_profile().unwrap(), Some(icc));
        assert_eq!(decoder.dimensions(), (8, 8));
    }

    #[test]
    fn a_cancelled_webp_encode_stops_with_the_jobs_reason() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(512, 512, |x, y| {
            Rgb([x as u8, y as u8, (x ^ y) as u8])
        }));
        let cancelled = job();
        cancelled.cancel();
        let options = EncodeOptions { avif_speed: 10 };
        let result = encode(&image, ImageFormat::Webp, 80, None, options, &cancelled);
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    }
}
