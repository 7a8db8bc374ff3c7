//! Animated WebP encoding through libwebp's `WebPAnimEncoder`, a frame at a time.
//!
//! A caller adds frames as it produces them (no animation is ever held whole as pixels), each
//! with its duration, and asks for the file at the end. A progress hook is set on every frame,
//! so a long frame stops part-way when the caller's `keep_going` says so. libwebp copies the
//! hook and its `user_data` into its own canvas and may call it again later (assembling a file
//! whose frames collapsed into one re-encodes that canvas), so `user_data` is a [`HookSlot`] the
//! encoder owns, which names the caller's check only while a call that takes one is running.
//!
//! libwebp keeps three canvases of the animation's size (previous, previous disposed, current)
//! and the encoded candidates of the frames it has not yet placed: about [`CANVASES`] ARGB
//! canvases in all, plus the encoded bytes.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

use libwebp_sys as sys;

use crate::{EncodeError, KeepGoing, MAX_SIDE, Picture};

/// What the progress hook asks: the check of the call in progress, or none (keep going).
struct HookSlot {
    current: Cell<Option<NonNull<KeepGoing<'static>>>>,
}

impl HookSlot {
    /// Runs `call` with `keep_going` reachable from the hook, and unreachable again after.
    fn with<T>(&self, keep_going: &dyn Fn() -> bool, call: impl FnOnce() -> T) -> T {
        let keep_going: KeepGoing<'_> = keep_going;
        // The lifetime is erased for storage only: the slot is cleared below, before
        // `keep_going` goes out of scope, and the hook reads it only during `call`.
        let erased = NonNull::from(&keep_going).cast::<KeepGoing<'static>>();
        self.current.set(Some(erased));
        let out = call();
        self.current.set(None);
        out
    }
}

/// libwebp's progress hook for animation frames: 1 goes on, 0 stops the encode.
unsafe extern "C" fn slot_progress_hook(
    _percent: c_int,
    picture: *const sys::WebPPicture,
) -> c_int {
    // SAFETY: every picture that carries this hook (ours, and the canvas copies libwebp makes of
    // it) has `user_data` pointing at the boxed `HookSlot` of the encoder that is running it,
    // which lives until that encoder is deleted.
    let slot = unsafe { &*((*picture).user_data as *const HookSlot) };
    match slot.current.get() {
        // SAFETY: set by `HookSlot::with`, which clears it before the check it names is gone.
        // The check must not panic (an unwind cannot cross this frame): imgd's reads an atomic
        // and the clock.
        Some(keep_going) => c_int::from(unsafe { keep_going.as_ref() }()),
        None => 1,
    }
}

/// ARGB canvases of the animation's size libwebp holds at once while encoding, rounded up
/// (three of its own, the frame handed to it, the sub-frame candidates).
pub const CANVASES: u64 = 6;

/// An animated WebP being encoded; frames go in with [`AnimationEncoder::add_frame`], the file
/// comes out of [`AnimationEncoder::finish`]. The encoder is freed on drop, finished or not.
pub struct AnimationEncoder {
    encoder: NonNull<sys::WebPAnimEncoder>,
    /// The hook's `user_data`; boxed so its address is stable, and dropped after the encoder
    /// (`Drop::drop` deletes the encoder before the fields are dropped).
    hook: Box<HookSlot>,
    config: sys::WebPConfig,
    width: u32,
    height: u32,
    /// Where the next frame starts, in milliseconds from the first.
    timestamp_ms: c_int,
}

// SAFETY: the encoder is owned by this value alone (no aliasing handle exists), and libwebp's
// encoder keeps no thread-local state, so moving it to another thread between calls is sound.
unsafe impl Send for AnimationEncoder {}

impl Drop for AnimationEncoder {
    fn drop(&mut self) {
        // SAFETY: `encoder` came from `WebPAnimEncoderNewInternal` and is deleted only here.
        unsafe { sys::WebPAnimEncoderDelete(self.encoder.as_ptr()) }
    }
}

/// How many times an animation plays; 0 is forever.
pub type LoopCount = u16;

impl AnimationEncoder {
    /// An encoder for frames of `width` x `height` RGBA, lossy at `quality` (0 to 100).
    pub fn new(
        width: u32,
        height: u32,
        quality: f32,
        loop_count: LoopCount,
    ) -> Result<Self, EncodeError> {
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            return Err(EncodeError::Invalid(format!(
                "{width}x{height}: each side must be 1 to {MAX_SIDE}"
            )));
        }
        let mismatch = || EncodeError::Invalid("libwebp version mismatch".into());
        let mut config =
            sys::WebPConfig::new_with_preset(sys::WebPPreset::WEBP_PRESET_DEFAULT, quality)
                .map_err(|()| mismatch())?;
        config.lossless = 0;
        config.alpha_compression = 1;
        // SAFETY: `config` is an initialised `WebPConfig`.
        if unsafe { sys::WebPValidateConfig(&config) } == 0 {
            return Err(EncodeError::Invalid(format!("quality {quality}")));
        }
        // Zeroed: the init function sets every option but leaves the struct's padding words.
        let mut options = std::mem::MaybeUninit::<sys::WebPAnimEncoderOptions>::zeroed();
        // SAFETY: `options` is a valid (zeroed) struct the init function writes into.
        let initialised = unsafe {
            sys::WebPAnimEncoderOptionsInitInternal(
                options.as_mut_ptr(),
                sys::WEBP_MUX_ABI_VERSION as c_int,
            )
        };
        if initialised == 0 {
            return Err(mismatch());
        }
        // SAFETY: all-zero is a valid value of this plain C struct, and the init filled it.
        let mut options = unsafe { options.assume_init() };
        options.anim_params.loop_count = c_int::from(loop_count);
        // Lossy frames only: trying lossless too doubles the work for a rarely smaller file.
        options.allow_mixed = 0;
        // SAFETY: sizes checked above; `options` is initialised and only read during the call.
        let encoder = unsafe {
            sys::WebPAnimEncoderNewInternal(
                width as c_int,
                height as c_int,
                &options,
                sys::WEBP_MUX_ABI_VERSION as c_int,
            )
        };
        let encoder = NonNull::new(encoder).ok_or(EncodeError::Failed(
            sys::WebPEncodingError::VP8_ENC_ERROR_OUT_OF_MEMORY,
        ))?;
        Ok(AnimationEncoder {
            encoder,
            hook: Box::new(HookSlot {
                current: Cell::new(None),
            }),
            config,
            width,
            height,
            timestamp_ms: 0,
        })
    }

    /// Adds a frame of tightly packed RGBA shown for `duration_ms`. `keep_going` is asked as the
    /// frame encodes; when it answers false the frame stops and [`EncodeError::Stopped`] is
    /// returned (the encoder is then spent: drop it).
    pub fn add_frame(
        &mut self,
        rgba: &[u8],
        duration_ms: u32,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<(), EncodeError> {
        let expected = self.width as usize * self.height as usize * 4;
        if rgba.len() != expected {
            return Err(EncodeError::Invalid(format!(
                "{} bytes for a {}x{} RGBA frame (expected {expected})",
                rgba.len(),
                self.width,
                self.height
            )));
        }
        let mut picture = Picture(
            sys::WebPPicture::new()
                .map_err(|()| EncodeError::Invalid("libwebp version mismatch".into()))?,
        );
        // The animation encoder works on ARGB canvases; importing as ARGB avoids its YUV round trip.
        picture.0.use_argb = 1;
        picture.0.width = self.width as c_int;
        picture.0.height = self.height as c_int;
        // SAFETY: `rgba` holds exactly `height` rows of `width * 4` bytes (checked above) and
        // lives through the call; libwebp copies it into the picture's own buffer.
        let imported = unsafe {
            sys::WebPPictureImportRGBA(&mut picture.0, rgba.as_ptr(), (self.width * 4) as c_int)
        };
        if imported == 0 {
            return Err(EncodeError::Failed(picture.0.error_code));
        }
        picture.0.progress_hook = Some(slot_progress_hook);
        picture.0.user_data = (&*self.hook as *const HookSlot).cast_mut().cast::<c_void>();
        // SAFETY: the encoder is live; `picture` holds imported ARGB of the encoder's size and a
        // hook whose `user_data` is the encoder's own slot (see `slot_progress_hook`); `config`
        // was validated in `new`. libwebp copies the picture and keeps no reference to it.
        let added = self.hook.with(keep_going, || unsafe {
            sys::WebPAnimEncoderAdd(
                self.encoder.as_ptr(),
                &mut picture.0,
                self.timestamp_ms,
                &self.config,
            )
        });
        if added == 0 {
            return Err(if keep_going() {
                EncodeError::Failed(picture.0.error_code)
            } else {
                EncodeError::Stopped
            });
        }
        // libwebp reads each frame's duration as the difference of two timestamps, wrapping
        // included, so a total past 2^31 ms still gives every frame its own.
        let duration = c_int::try_from(duration_ms).unwrap_or(c_int::MAX);
        self.timestamp_ms = self.timestamp_ms.wrapping_add(duration);
        Ok(())
    }

    /// The animated WebP file: the last frame lasts until the time the durations add up to.
    /// Assembling may encode once more (a file whose frames collapsed into one), asking
    /// `keep_going` as it does.
    pub fn finish(self, keep_going: &dyn Fn() -> bool) -> Result<Vec<u8>, EncodeError> {
        // SAFETY: a null frame tells the encoder the animation ends at this timestamp.
        let flushed = unsafe {
            sys::WebPAnimEncoderAdd(
                self.encoder.as_ptr(),
                std::ptr::null_mut(),
                self.timestamp_ms,
                std::ptr::null(),
            )
        };
        if flushed == 0 {
            return Err(EncodeError::Failed(
                sys::WebPEncodingError::VP8_ENC_ERROR_BAD_WRITE,
            ));
        }
        let mut data = sys::WebPData {
            bytes: std::ptr::null(),
            size: 0,
        };
        // SAFETY: the encoder is live and `data` is an empty `WebPData` it fills.
        let assembled = self.hook.with(keep_going, || unsafe {
            sys::WebPAnimEncoderAssemble(self.encoder.as_ptr(), &mut data)
        });
        if data.bytes.is_null() {
            return Err(EncodeError::Failed(
                sys::WebPEncodingError::VP8_ENC_ERROR_BAD_WRITE,
            ));
        }
        // SAFETY: a non-null `bytes` points at `size` bytes libwebp allocated for the caller
        // (even when a late step of the assembly failed), copied here only on success.
        let out = (assembled != 0)
            .then(|| unsafe { std::slice::from_raw_parts(data.bytes, data.size) }.to_vec());
        // SAFETY: as above; freed once, and nothing reads `data` after this.
        unsafe { sys::WebPFree(data.bytes.cast_mut().cast::<c_void>()) };
        match out {
            Some(out) => Ok(out),
            None if !keep_going() => Err(EncodeError::Stopped),
            None => Err(EncodeError::Failed(
                sys::WebPEncodingError::VP8_ENC_ERROR_BAD_WRITE,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn frame(width: u32, height: u32, shade: u8) -> Vec<u8> {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 4);
        for y in 0..height {
            for x in 0..width {
                pixels.extend_from_slice(&[shade, (x * 3) as u8, (y * 5) as u8, 255]);
            }
        }
        pixels
    }

    #[test]
    fn frames_and_their_durations_make_an_animated_file() {
        let mut encoder = AnimationEncoder::new(48, 32, 80.0, 0).unwrap();
        for shade in [0, 120, 250] {
            encoder
                .add_frame(&frame(48, 32, shade), 70, &|| true)
                .unwrap();
        }
        let out = encoder.finish(&|| true).unwrap();
        assert_eq!(&out[..4], b"RIFF");
        assert_eq!(&out[8..12], b"WEBP");
        let chunks = |name: &[u8]| out.windows(4).filter(|w| *w == name).count();
        assert_eq!(chunks(b"ANIM"), 1);
        assert_eq!(chunks(b"ANMF"), 3, "one frame chunk per distinct frame");
        let info = crate::features(&out).unwrap();
        assert!(info.has_animation);
        assert_eq!((info.width, info.height), (48, 32));
    }

    /// Identical frames collapse into one; when that one covers less than the canvas (here a
    /// transparent border), libwebp encodes it again as a whole canvas while assembling, through
    /// the hook it copied from the first frame: the check asked then must be `finish`'s own.
    #[test]
    fn frames_that_collapse_into_one_are_encoded_again_under_finish_s_check() {
        let (w, h) = (256u32, 256u32);
        let mut pixels = vec![0u8; (w * h * 4) as usize];
        for y in 96..160 {
            for x in 96..160 {
                let at = ((y * w + x) * 4) as usize;
                pixels[at..at + 4].copy_from_slice(&[200, x as u8, y as u8, 255]);
            }
        }
        let mut encoder = AnimationEncoder::new(w, h, 80.0, 0).unwrap();
        for _ in 0..3 {
            encoder.add_frame(&pixels, 50, &|| true).unwrap();
        }
        let asked = Cell::new(0u32);
        let out = encoder
            .finish(&|| {
                asked.set(asked.get() + 1);
                true
            })
            .unwrap();
        assert_eq!(&out[8..12], b"WEBP");
        assert!(
            asked.get() > 0,
            "the whole-canvas re-encode asked finish's check"
        );
    }

    #[test]
    fn a_caller_that_says_stop_stops_inside_a_frame() {
        let mut encoder = AnimationEncoder::new(1024, 1024, 80.0, 0).unwrap();
        let asked = Cell::new(0u32);
        let result = encoder.add_frame(&frame(1024, 1024, 9), 100, &|| {
            asked.set(asked.get() + 1);
            asked.get() < 3
        });
        assert_eq!(result, Err(EncodeError::Stopped));
        assert!(asked.get() >= 3, "asked {} times", asked.get());
    }

    #[test]
    fn frames_of_another_size_are_refused() {
        let mut encoder = AnimationEncoder::new(8, 8, 80.0, 0).unwrap();
        assert!(matches!(
            encoder.add_frame(&frame(8, 7, 0), 10, &|| true),
            Err(EncodeError::Invalid(_))
        ));
        assert!(matches!(
            AnimationEncoder::new(0, 8, 80.0, 0),
            Err(EncodeError::Invalid(_))
        ));
    }
}
