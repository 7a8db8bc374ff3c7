//! The HEIF/AVIF decoder's own process: `imgd __heif-decode WIDTH HEIGHT LENGTH MEMORY`.
//!
//! libheif (with libde265 for HEVC and dav1d or libaom for AV1) is C and C++ that takes the
//! coded stream's own idea of the picture size: a file whose header says 64x64 and whose stream
//! says 16384x16384 is decoded at the latter (seen with libheif 1.15: 129 MB for a file that
//! claims 4 KPixels). So it runs here, in a child of the server, with its data segment capped by
//! `setrlimit` before the first byte is read, and a CPU-time backstop: a lie ends this process,
//! never the server, and so does a crash in the codec. The parent (`decode/heif.rs`) kills it
//! when the render is cancelled or late.
//!
//! Protocol: the file's `LENGTH` bytes on stdin. On success, exit 0 and on stdout: width and
//! height (u32 little-endian), channels (u8, 3 or 4), the ICC profile's length (u32) and bytes,
//! then the pixel rows, tightly packed. On a bad file, exit 2 with the reason on stderr.

use std::io::{Read, Write};
use std::process::ExitCode;

use image::{DynamicImage, RgbImage, RgbaImage};
use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};

/// The hidden subcommand that runs [`main`].
pub const SUBCOMMAND: &str = "__heif-decode";

/// Exit status for a file libheif refused (the reason on stderr).
pub const EXIT_BAD_FILE: u8 = 2;

/// CPU seconds the child may use, whatever the parent's deadline: a backstop if the parent dies.
const CPU_SECONDS: u64 = 120;

/// Decoded pixels and the colour profile, in this process.
pub struct HeifPixels {
    pub image: DynamicImage,
    pub icc: Option<Vec<u8>>,
}

/// Runs the child. `args` are the ones after [`SUBCOMMAND`].
pub fn main(args: &[String]) -> ExitCode {
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let &[width, height, length, memory] = numbers.as_slice() else {
        eprintln!("usage: imgd {SUBCOMMAND} WIDTH HEIGHT LENGTH MEMORY_BYTES");
        return ExitCode::from(3);
    };
    // Before anything is read or allocated: the cap is what makes a lying file harmless.
    // No core file either: an abort here is an expected way for a hostile file to end.
    if let Err(e) = rlimit::Resource::DATA
        .set(memory, memory)
        .and_then(|()| rlimit::Resource::CPU.set(CPU_SECONDS, CPU_SECONDS))
        .and_then(|()| rlimit::Resource::CORE.set(0, 0))
    {
        eprintln!("cannot limit the decoder: {e}");
        return ExitCode::from(3);
    }
    let (Ok(width), Ok(height), Ok(length)) = (
        u32::try_from(width),
        u32::try_from(height),
        usize::try_from(length),
    ) else {
        return ExitCode::from(3);
    };
    let mut bytes = vec![0; length];
    if let Err(e) = std::io::stdin().lock().read_exact(&mut bytes) {
        eprintln!("cannot read the file: {e}");
        return ExitCode::from(3);
    }
    let decoded = match decode(&bytes, (width, height)) {
        Ok(decoded) => decoded,
        Err(reason) => {
            eprintln!("{reason}");
            return ExitCode::from(EXIT_BAD_FILE);
        }
    };
    drop(bytes);
    match write(&decoded, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        // The parent stopped listening (cancelled): nothing to report to anyone.
        Err(_) => ExitCode::from(3),
    }
}

fn write(decoded: &HeifPixels, out: &mut impl Write) -> std::io::Result<()> {
    let image = &decoded.image;
    let icc = decoded.icc.as_deref().unwrap_or_default();
    out.write_all(&image.width().to_le_bytes())?;
    out.write_all(&image.height().to_le_bytes())?;
    out.write_all(&[image.color().channel_count()])?;
    out.write_all(&(icc.len() as u32).to_le_bytes())?;
    out.write_all(icc)?;
    out.write_all(image.as_bytes())?;
    out.flush()
}

/// Decodes the primary image to 8-bit RGB or RGBA, refusing it unless libheif's size is
/// `expected` (the size the limits were checked against).
pub fn decode(bytes: &[u8], expected: (u32, u32)) -> Result<HeifPixels, String> {
    let lib = LibHeif::new();
    let mut context = HeifContext::read_from_bytes(bytes).map_err(|e| e.message)?;
    // Tiles one at a time: the memory cap was sized for one decoding thread.
    context.set_max_decoding_threads(1);
    let handle = context.primary_image_handle().map_err(|e| e.message)?;
    let size = (handle.width(), handle.height());
    if size != expected {
        return Err(format!(
            "the HEIF header says {}x{} but its primary image is {}x{}",
            expected.0, expected.1, size.0, size.1
        ));
    }
    let alpha = handle.has_alpha_channel();
    let chroma = if alpha {
        RgbChroma::Rgba
    } else {
        RgbChroma::Rgb
    };
    let icc = handle
        .color_profile_raw()
        .map(|profile| profile.data)
        .filter(|data| !data.is_empty());
    let decoded = lib
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(|e| e.message)?;
    let plane = decoded
        .planes()
        .interleaved
        .ok_or("libheif gave no interleaved plane")?;
    // The coded stream may disagree with the header; only the header's size was budgeted.
    if (plane.width, plane.height) != expected || plane.bits_per_pixel > 8 {
        return Err(format!(
            "the coded image is {}x{} at {} bits, the header says {}x{}",
            plane.width, plane.height, plane.bits_per_pixel, expected.0, expected.1
        ));
    }
    let channels = if alpha { 4 } else { 3 };
    let row = plane.width as usize * channels;
    let mut pixels = Vec::with_capacity(row * plane.height as usize);
    for line in plane.data.chunks(plane.stride).take(plane.height as usize) {
        pixels.extend_from_slice(line.get(..row).ok_or("a short row")?);
    }
    let (w, h) = expected;
    let image = if alpha {
        RgbaImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    }
    .ok_or("libheif gave fewer rows than it said")?;
    Ok(HeifPixels { image, icc })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use image::{Rgb, Rgba};
    use imgd_core::format::ImageFormat;
    use imgd_core::port::JobControl;

    use super::*;
    use crate::encode::{EncodeOptions, encode};

    /// An AVIF (rav1e, as imgd writes them: 10-bit) of a left-to-right red ramp.
    fn avif(w: u32, h: u32, alpha: bool) -> Vec<u8> {
        let image = if alpha {
            DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, _| {
                Rgba([(x * 255 / w) as u8, 60, 90, if x < w / 2 { 0 } else { 255 }])
            }))
        } else {
            DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, _| {
                Rgb([(x * 255 / w) as u8, 60, 90])
            }))
        };
        let job = JobControl::new(Instant::now() + Duration::from_secs(60), None);
        let options = EncodeOptions { avif_speed: 10 };
        encode(&image, ImageFormat::Avif, 90, None, options, &job).unwrap()
    }

    #[test]
    fn decodes_imgds_own_avif_at_the_size_its_header_gives() {
        let bytes = avif(96, 40, false);
        let probe = crate::probe::probe(&bytes).unwrap();
        assert_eq!(
            (probe.format, probe.width, probe.height),
            (ImageFormat::Avif, 96, 40)
        );
        let decoded = decode(&bytes, (96, 40)).unwrap().image.to_rgb8();
        assert_eq!(decoded.dimensions(), (96, 40));
        let (left, right) = (decoded.get_pixel(2, 20)[0], decoded.get_pixel(93, 20)[0]);
        assert!(left < 30 && right > 220, "red ramp: {left} .. {right}");
        let blue = decoded.get_pixel(48, 20)[2];
        assert!(blue.abs_diff(90) < 12, "blue {blue}");
    }

    #[test]
    fn keeps_alpha() {
        let bytes = avif(64, 16, true);
        let decoded = decode(&bytes, (64, 16)).unwrap().image;
        let rgba = decoded
            .as_rgba8()
            .expect("RGBA out for an image with alpha");
        assert!(rgba.get_pixel(4, 8)[3] < 10 && rgba.get_pixel(60, 8)[3] > 245);
    }

    #[test]
    fn refuses_a_size_other_than_the_one_budgeted() {
        let bytes = avif(96, 40, false);
        let err = decode(&bytes, (48, 20)).err().unwrap();
        assert!(err.contains("96x40"), "{err}");
        assert!(decode(b"not a heif file", (1, 1)).is_err());
    }

    #[test]
    fn the_answer_is_the_header_then_the_rows() {
        let decoded = decode(&avif(8, 2, false), (8, 2)).unwrap();
        let mut out = Vec::new();
        write(&decoded, &mut out).unwrap();
        assert_eq!(&out[..9], &[8, 0, 0, 0, 2, 0, 0, 0, 3]);
        assert_eq!(out.len(), 13 + 8 * 2 * 3);
    }
}
