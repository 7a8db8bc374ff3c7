//! Decoding a still WebP into memory the caller sized, scaled by libwebp while it decodes: a
//! 16 MP photo bound for 400 px is decoded at an eighth of each side and never expanded to
//! 16 MP (libwebp's rescaler works row by row on the decoded YUV). Animations are not decoded
//! here; the caller takes their first frame another way.

use std::ffi::c_int;

use libwebp_sys as sys;

/// What the bitstream says before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    pub has_animation: bool,
}

/// Why a decode produced nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// An animated WebP: this API decodes stills only.
    #[error("animated WebP")]
    Animated,
    /// Dimensions that libwebp cannot produce.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// libwebp refused the bitstream (truncated, corrupt, unsupported).
    #[error("libwebp could not decode it ({0:?})")]
    Failed(sys::VP8StatusCode),
}

/// Reads the header: size, alpha, animation.
pub fn features(data: &[u8]) -> Result<Features, DecodeError> {
    // SAFETY: all-zero is a valid value of this plain C struct; libwebp fills it.
    let mut features: sys::WebPBitstreamFeatures = unsafe { std::mem::zeroed() };
    // SAFETY: `data` is a live slice for the call's duration and its length is passed with it;
    // `features` is a valid, writable struct of the type libwebp expects.
    let status = unsafe { sys::WebPGetFeatures(data.as_ptr(), data.len(), &mut features) };
    if status != sys::VP8StatusCode::VP8_STATUS_OK {
        return Err(DecodeError::Failed(status));
    }
    let side =
        |v: c_int| u32::try_from(v).map_err(|_| DecodeError::Invalid("negative size".into()));
    Ok(Features {
        width: side(features.width)?,
        height: side(features.height)?,
        has_alpha: features.has_alpha != 0,
        has_animation: features.has_animation != 0,
    })
}

/// Decodes a still WebP to `width` x `height` (smaller than the picture: libwebp scales while
/// decoding), as tightly packed RGB, or RGBA (not premultiplied) when `alpha`. The output is one
/// allocation of exactly `width * height * channels` bytes, made before libwebp starts.
pub fn decode(data: &[u8], width: u32, height: u32, alpha: bool) -> Result<Vec<u8>, DecodeError> {
    let source = features(data)?;
    if source.has_animation {
        return Err(DecodeError::Animated);
    }
    if width == 0 || height == 0 || width > source.width || height > source.height {
        return Err(DecodeError::Invalid(format!(
            "{width}x{height} from a {}x{} picture",
            source.width, source.height
        )));
    }
    let channels: usize = if alpha { 4 } else { 3 };
    let stride = width as usize * channels;
    let mut pixels = vec![0u8; stride * height as usize];
    let to_int =
        |v: usize| c_int::try_from(v).map_err(|_| DecodeError::Invalid("too large".into()));

    // SAFETY: all-zero is a valid value of this plain C struct; `WebPInitDecoderConfig` then
    // sets its defaults and checks the ABI version.
    let mut config: sys::WebPDecoderConfig = unsafe { std::mem::zeroed() };
    // SAFETY: `config` is a valid, writable `WebPDecoderConfig`.
    if !unsafe { sys::WebPInitDecoderConfig(&mut config) } {
        return Err(DecodeError::Invalid("libwebp ABI mismatch".into()));
    }
    if (width, height) != (source.width, source.height) {
        config.options.use_scaling = 1;
        config.options.scaled_width = to_int(width as usize)?;
        config.options.scaled_height = to_int(height as usize)?;
    }
    config.output.colorspace = if alpha {
        sys::WEBP_CSP_MODE::MODE_RGBA
    } else {
        sys::WEBP_CSP_MODE::MODE_RGB
    };
    // Our buffer, not libwebp's: its size is decided here, and nothing needs freeing after.
    config.output.is_external_memory = 1;
    config.output.u.RGBA = sys::WebPRGBABuffer {
        rgba: pixels.as_mut_ptr(),
        stride: to_int(stride)?,
        size: pixels.len(),
    };
    // SAFETY: `data` is a live slice passed with its length; `config` was initialised above and
    // points libwebp at `pixels`, which outlives the call and holds `stride * height` bytes,
    // exactly what a `width` x `height` output of `channels` bytes a pixel needs (libwebp checks
    // the buffer against the output size before writing).
    let status = unsafe { sys::WebPDecode(data.as_ptr(), data.len(), &mut config) };
    if status != sys::VP8StatusCode::VP8_STATUS_OK {
        return Err(DecodeError::Failed(status));
    }
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pixels, encode_lossy};

    /// A lossy WebP of a horizontal gradient, `w` x `h`.
    fn gradient(w: u32, h: u32, alpha: bool) -> Vec<u8> {
        let channels = if alpha { 4 } else { 3 };
        let mut pixels = Vec::with_capacity((w * h) as usize * channels);
        for _ in 0..h {
            for x in 0..w {
                let v = (x * 255 / (w - 1)) as u8;
                pixels.extend_from_slice(&[v, 128, 255 - v]);
                if alpha {
                    pixels.push(200);
                }
            }
        }
        let input = if alpha {
            Pixels::Rgba(&pixels)
        } else {
            Pixels::Rgb(&pixels)
        };
        encode_lossy(input, w, h, 90.0, &|| true).unwrap()
    }

    #[test]
    fn a_scaled_decode_keeps_the_picture() {
        let data = gradient(800, 400, false);
        assert_eq!(
            features(&data).unwrap(),
            Features {
                width: 800,
                height: 400,
                has_alpha: false,
                has_animation: false
            }
        );
        let full = decode(&data, 800, 400, false).unwrap();
        let small = decode(&data, 100, 50, false).unwrap();
        assert_eq!((full.len(), small.len()), (800 * 400 * 3, 100 * 50 * 3));
        // The gradient's ends survive the scaling: dark red at the left, dark blue at the right.
        let at = |x: usize, y: usize| &small[(y * 100 + x) * 3..(y * 100 + x) * 3 + 3];
        assert!(at(0, 25)[0] < 30 && at(0, 25)[2] > 225, "{:?}", at(0, 25));
        assert!(
            at(99, 25)[0] > 225 && at(99, 25)[2] < 30,
            "{:?}",
            at(99, 25)
        );
    }

    #[test]
    fn alpha_comes_out_unpremultiplied() {
        let data = gradient(64, 64, true);
        assert!(features(&data).unwrap().has_alpha);
        let rgba = decode(&data, 32, 32, true).unwrap();
        assert_eq!(rgba.len(), 32 * 32 * 4);
        assert!(rgba.chunks(4).all(|p| (195..=205).contains(&p[3])));
    }

    #[test]
    fn bad_requests_and_bad_bytes_are_errors() {
        let data = gradient(64, 32, false);
        assert!(matches!(
            decode(&data, 65, 32, false),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            decode(&data, 0, 1, false),
            Err(DecodeError::Invalid(_))
        ));
        assert!(decode(&data[..data.len() / 2], 32, 16, false).is_err());
        assert!(features(b"RIFF....WEBPVP8 garbage").is_err());
    }
}
