//! JPEG through libjpeg-turbo ([`imgd_jpeg`]), scaled by 1/2, 1/4 or 1/8 while decoding as
//! libvips' shrink-on-load does, stoppable between rows. CMYK and YCCK files, which libjpeg does
//! not convert to RGB, go to jpeg-decoder ([`super::jpeg_rust`]).

use image::{DynamicImage, RgbImage};
use imgd_core::port::JobControl;
use imgd_core::{Error, Result};
use imgd_jpeg::{DecodeError, Limits};

use super::{Decoded, corrupt, jpeg_rust, scale_denominator};
use crate::probe::Probe;

/// Decodes at the smallest DCT scale that keeps both sides at least `at_least`.
pub(super) fn decode(
    bytes: &[u8],
    probe: &Probe,
    at_least: Option<(u32, u32)>,
    max_pixels: u64,
    job: &JobControl,
) -> Result<Decoded> {
    let denominator = at_least.map_or(1, |a| scale_denominator(probe.width, probe.height, a));
    let limits = Limits {
        max_pixels,
        // What the memory budget counted for a progressive file's coefficients
        // (`super::peak_bytes`), plus libjpeg's working tables.
        max_memory: u64::from(probe.width) * u64::from(probe.height) * 6 + (16 << 20),
        // The probe refused more at ingest; this holds for files stored before it did.
        max_scans: crate::probe::MAX_JPEG_SCANS,
    };
    match imgd_jpeg::decode_rgb(bytes, denominator, limits, &|| job.checkpoint().is_ok()) {
        Ok(rgb) => {
            let image = RgbImage::from_raw(rgb.width, rgb.height, rgb.pixels)
                .ok_or_else(|| corrupt("pixel buffer does not match the frame size"))?;
            Ok(Decoded {
                image: DynamicImage::ImageRgb8(image),
                icc: rgb.icc,
            })
        }
        Err(DecodeError::Cmyk) => jpeg_rust::decode(bytes, probe, at_least, max_pixels),
        Err(DecodeError::TooManyPixels { pixels, limit }) => {
            Err(Error::TooManyPixels { pixels, limit })
        }
        Err(DecodeError::Stopped) => {
            job.checkpoint()?;
            Err(corrupt("the decode stopped without a reason"))
        }
        Err(DecodeError::Corrupt(why)) => Err(corrupt(why)),
    }
}
