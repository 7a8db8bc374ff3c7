//! imgd-webp: libwebp behind a safe API: lossy encoding that can be stopped while it runs,
//! animations encoded a frame at a time ([`AnimationEncoder`]), and decoding scaled while
//! decoding ([`decode`]).
//!
//! The `webp` crate runs `WebPEncode` to its end. A 50-megapixel encode takes seconds, and imgd
//! must stop a render nobody waits for (its client left, its deadline passed) inside such a
//! stage, not after it. libwebp calls a progress hook between macroblock rows and stops when it
//! answers 0; [`encode_lossy`] wires that hook to a caller's `keep_going` check.
//!
//! This is the workspace's one crate with `unsafe` (the workspace forbids it elsewhere). Each
//! block says why it is sound; the owned libwebp objects are freed by `Drop` on every path.

#![allow(unsafe_code)]

mod anim;
mod decode;

pub use anim::{AnimationEncoder, CANVASES as ANIMATION_CANVASES, LoopCount};
pub use decode::{DecodeError, Features, decode, features};

use std::ffi::{c_int, c_void};

use libwebp_sys as sys;

/// Pixels to encode, tightly packed rows (no stride padding).
#[derive(Clone, Copy, Debug)]
pub enum Pixels<'a> {
    Rgb(&'a [u8]),
    Rgba(&'a [u8]),
}

/// Why an encode produced nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// `keep_going` answered false: the encode stopped part-way.
    #[error("stopped by its caller")]
    Stopped,
    /// Dimensions or buffer length that libwebp cannot take.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// libwebp's own error (out of memory, a bad configuration).
    #[error("libwebp error {0:?}")]
    Failed(sys::WebPEncodingError),
}

/// WebP's largest side (the VP8 bitstream stores 14 bits).
pub const MAX_SIDE: u32 = 16383;

/// A picture whose buffers libwebp allocated; freed on drop.
struct Picture(sys::WebPPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture was initialised by `WebPPictureInit` (in `WebPPicture::new`), and
        // `WebPPictureFree` accepts a picture with or without buffers, once.
        unsafe { sys::WebPPictureFree(&mut self.0) }
    }
}

/// libwebp's growable output buffer; freed on drop.
struct MemoryWriter(sys::WebPMemoryWriter);

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        // SAFETY: initialised by `WebPMemoryWriterInit` before any use; clearing frees `mem`.
        unsafe { sys::WebPMemoryWriterClear(&mut self.0) }
    }
}

/// The check libwebp's progress hook calls; `user_data` points at one for the whole encode.
type KeepGoing<'a> = &'a dyn Fn() -> bool;

/// libwebp's progress hook: 1 goes on, 0 stops the encode with `VP8_ENC_ERROR_USER_ABORT`.
unsafe extern "C" fn progress_hook(_percent: c_int, picture: *const sys::WebPPicture) -> c_int {
    // SAFETY: libwebp passes the picture given to `WebPEncode`, whose `user_data` was set to a
    // `KeepGoing` on `encode_lossy`'s stack that outlives the `WebPEncode` call.
    let keep_going = unsafe { &*((*picture).user_data as *const KeepGoing<'_>) };
    // An unwinding panic cannot cross this `extern "C"` frame (it aborts), so the check
    // callers pass must not panic: imgd's reads an atomic and the clock.
    c_int::from(keep_going())
}

/// Encodes `pixels` (`width` x `height`) as lossy WebP at `quality` (0 to 100), alpha kept when
/// present. `keep_going` is asked as the encode progresses (each percent step, between
/// macroblock rows); when it answers false the encode stops and [`EncodeError::Stopped`] is
/// returned.
pub fn encode_lossy(
    pixels: Pixels<'_>,
    width: u32,
    height: u32,
    quality: f32,
    keep_going: &dyn Fn() -> bool,
) -> Result<Vec<u8>, EncodeError> {
    let (bytes, channels) = match pixels {
        Pixels::Rgb(bytes) => (bytes, 3),
        Pixels::Rgba(bytes) => (bytes, 4),
    };
    if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
        return Err(EncodeError::Invalid(format!(
            "{width}x{height}: each side must be 1 to {MAX_SIDE}"
        )));
    }
    let expected = width as usize * height as usize * channels;
    if bytes.len() != expected {
        return Err(EncodeError::Invalid(format!(
            "{} bytes for {width}x{height}x{channels} (expected {expected})",
            bytes.len()
        )));
    }

    let mut config =
        sys::WebPConfig::new_with_preset(sys::WebPPreset::WEBP_PRESET_DEFAULT, quality)
            .map_err(|()| EncodeError::Invalid("libwebp version mismatch".into()))?;
    config.lossless = 0;
    config.alpha_compression = 1;
    // SAFETY: `config` is an initialised `WebPConfig`.
    if unsafe { sys::WebPValidateConfig(&config) } == 0 {
        return Err(EncodeError::Invalid(format!("quality {quality}")));
    }

    let mut picture = Picture(
        sys::WebPPicture::new()
            .map_err(|()| EncodeError::Invalid("libwebp version mismatch".into()))?,
    );
    // YUV input (no ARGB copy): lossy VP8 encodes YUV 4:2:0, so this is what it would convert
    // to anyway, at 1.5 bytes a pixel (plus alpha) instead of 4.
    picture.0.use_argb = 0;
    picture.0.width = width as c_int;
    picture.0.height = height as c_int;
    let stride = (width as usize * channels) as c_int;
    // SAFETY: `bytes` holds exactly `height` rows of `stride` bytes (checked above) and lives
    // through the call; libwebp copies it into the picture's own buffers.
    let imported = unsafe {
        match pixels {
            Pixels::Rgb(_) => sys::WebPPictureImportRGB(&mut picture.0, bytes.as_ptr(), stride),
            Pixels::Rgba(_) => sys::WebPPictureImportRGBA(&mut picture.0, bytes.as_ptr(), stride),
        }
    };
    if imported == 0 {
        return Err(EncodeError::Failed(picture.0.error_code));
    }

    // SAFETY: an all-zero `WebPMemoryWriter` (null buffer, zero sizes) is a valid value of the
    // plain C struct, and `WebPMemoryWriterInit` sets it up before use.
    let mut writer = Box::new(MemoryWriter(unsafe { std::mem::zeroed() }));
    // SAFETY: `writer` is a live, boxed (address-stable) struct.
    unsafe { sys::WebPMemoryWriterInit(&mut writer.0) };
    picture.0.writer = Some(sys::WebPMemoryWrite);
    picture.0.custom_ptr = (&mut writer.0 as *mut sys::WebPMemoryWriter).cast::<c_void>();
    let keep_going: KeepGoing<'_> = keep_going;
    picture.0.progress_hook = Some(progress_hook);
    picture.0.user_data = (&keep_going as *const KeepGoing<'_>)
        .cast_mut()
        .cast::<c_void>();

    // SAFETY: `config` is valid; `picture` holds imported pixels, a writer whose `custom_ptr`
    // is the boxed memory writer, and a hook whose `user_data` points at `keep_going`; all of
    // them outlive this call.
    let encoded = unsafe { sys::WebPEncode(&config, &mut picture.0) };
    if encoded == 0 {
        return Err(match picture.0.error_code {
            sys::WebPEncodingError::VP8_ENC_ERROR_USER_ABORT => EncodeError::Stopped,
            code => EncodeError::Failed(code),
        });
    }
    if writer.0.size == 0 || writer.0.mem.is_null() {
        return Err(EncodeError::Failed(picture.0.error_code));
    }
    // SAFETY: after a successful encode `mem` points at `size` initialised bytes owned by the
    // writer, which is freed only when `writer` drops, after this copy.
    let out = unsafe { std::slice::from_raw_parts(writer.0.mem, writer.0.size) }.to_vec();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn gradient(width: u32, height: u32, channels: usize) -> Vec<u8> {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * channels);
        for y in 0..height {
            for x in 0..width {
                let px = [(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8, 200];
                pixels.extend_from_slice(&px[..channels]);
            }
        }
        pixels
    }

    #[test]
    fn rgb_and_rgba_encode_to_webp_files_of_their_size() {
        for (channels, pixels) in [(3, gradient(64, 40, 3)), (4, gradient(64, 40, 4))] {
            let input = if channels == 3 {
                Pixels::Rgb(&pixels)
            } else {
                Pixels::Rgba(&pixels)
            };
            let out = encode_lossy(input, 64, 40, 80.0, &|| true).unwrap();
            assert_eq!(&out[..4], b"RIFF");
            assert_eq!(&out[8..12], b"WEBP");
            assert_eq!(
                u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize + 8,
                out.len()
            );
            // Alpha makes it an extended file with an ALPH chunk.
            let has_alpha = out.windows(4).any(|w| w == b"ALPH");
            assert_eq!(has_alpha, channels == 4);
        }
    }

    #[test]
    fn a_caller_that_says_stop_stops_the_encode_part_way() {
        let pixels = gradient(1024, 1024, 3);
        let asked = Cell::new(0u32);
        let result = encode_lossy(Pixels::Rgb(&pixels), 1024, 1024, 80.0, &|| {
            asked.set(asked.get() + 1);
            asked.get() < 5
        });
        assert_eq!(result, Err(EncodeError::Stopped));
        assert_eq!(
            asked.get(),
            5,
            "stopped at the first refusal, not at the end"
        );

        let total = Cell::new(0u32);
        encode_lossy(Pixels::Rgb(&pixels), 1024, 1024, 80.0, &|| {
            total.set(total.get() + 1);
            true
        })
        .unwrap();
        // libwebp reports each step of its percentage: dozens of chances to stop.
        assert!(
            total.get() > 20,
            "asked {} times in a whole encode",
            total.get()
        );
    }

    #[test]
    fn bad_sizes_are_refused_before_libwebp_sees_them() {
        let pixels = gradient(4, 4, 3);
        for (w, h, bytes) in [
            (0, 4, &pixels[..0]),
            (4, 4, &pixels[..47]),
            (16384, 1, &pixels[..]),
        ] {
            assert!(matches!(
                encode_lossy(Pixels::Rgb(bytes), w, h, 80.0, &|| true),
                Err(EncodeError::Invalid(_))
            ));
        }
    }
}
