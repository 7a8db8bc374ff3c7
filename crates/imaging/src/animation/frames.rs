//! The frames of a GIF or animated WebP, one at a time, through the `image` crate: each is
//! composited onto the canvas (disposal and blending applied), so it is a whole picture of the
//! animation's size. Allocations are capped like a still decode's; a panic inside the codec is
//! a corrupt file, not a crash.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::codecs::{gif::GifDecoder, webp::WebPDecoder};
use image::metadata::LoopCount;
use image::{AnimationDecoder, DynamicImage, ImageDecoder};
use imgd_core::format::ImageFormat;
use imgd_core::{Error, Result};

use crate::decode::{corrupt, frame_limits};
use crate::probe::Probe;

/// One composited frame and how long it shows.
pub(super) struct Frame {
    /// RGBA, the animation's size.
    pub image: DynamicImage,
    pub delay_ms: u32,
}

/// A decoder positioned before the next frame.
pub(super) struct Frames<'a> {
    frames: image::Frames<'a>,
    /// How many times the animation plays; 0 is forever (WebP's convention).
    plays: u16,
}

/// How many times an animation plays (0: forever) from what its decoder read. A GIF's count
/// (NETSCAPE2.0 or ANIMEXTS1.0 extension) is of repeats after the first play, and a GIF without
/// one plays once, which the `image` crate reports as forever; a WebP's is of plays.
fn plays(format: ImageFormat, bytes: &[u8], loops: LoopCount) -> u16 {
    let times = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
    match (format, loops) {
        (ImageFormat::Gif, LoopCount::Infinite) if !has_loop_extension(bytes) => 1,
        (_, LoopCount::Infinite) => 0,
        (ImageFormat::Gif, LoopCount::Finite(repeats)) => times(repeats.get().saturating_add(1)),
        (_, LoopCount::Finite(plays)) => times(plays.get()),
    }
}

/// Whether a GIF names a loop count at all.
fn has_loop_extension(bytes: &[u8]) -> bool {
    bytes
        .windows(11)
        .any(|w| w == b"NETSCAPE2.0" || w == b"ANIMEXTS1.0")
}

fn rejected() -> Error {
    Error::CorruptImage("the decoder rejected this file".into())
}

impl<'a> Frames<'a> {
    /// Opens `bytes` (a GIF or WebP per `probe`) with allocations capped at what the budget
    /// counted for its size (at most `max_pixels`).
    pub fn open(bytes: &'a [u8], probe: &Probe, max_pixels: u64) -> Result<Self> {
        // The canvas kept between frames and the frame being composited: a frame larger than
        // the screen fails here (and, after the first, ends the animation).
        let limits = frame_limits(probe, max_pixels);
        let opened = catch_unwind(AssertUnwindSafe(
            || -> Result<(image::Frames<'a>, LoopCount)> {
                let cursor = Cursor::new(bytes);
                match probe.format {
                    ImageFormat::Gif => {
                        let mut decoder = GifDecoder::new(cursor).map_err(corrupt)?;
                        decoder.set_limits(limits).map_err(corrupt)?;
                        let loops = decoder.loop_count();
                        Ok((decoder.into_frames(), loops))
                    }
                    ImageFormat::Webp => {
                        let mut decoder = WebPDecoder::new(cursor).map_err(corrupt)?;
                        decoder.set_limits(limits).map_err(corrupt)?;
                        let loops = decoder.loop_count();
                        Ok((decoder.into_frames(), loops))
                    }
                    other => Err(Error::UnsupportedFormat(format!(
                        "{} has no frames to keep",
                        other.name()
                    ))),
                }
            },
        ))
        .unwrap_or_else(|_| Err(rejected()))?;
        let (frames, loops) = opened;
        let plays = plays(probe.format, bytes, loops);
        Ok(Frames { frames, plays })
    }

    /// How many times the animation plays; 0 is forever.
    pub fn plays(&self) -> u16 {
        self.plays
    }

    /// The next frame, or `None` after the last.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let next = catch_unwind(AssertUnwindSafe(|| self.frames.next())).map_err(|_| rejected())?;
        let Some(frame) = next.transpose().map_err(corrupt)? else {
            return Ok(None);
        };
        let (numerator, denominator) = frame.delay().numer_denom_ms();
        let delay_ms = numerator.checked_div(denominator).unwrap_or(0);
        Ok(Some(Frame {
            image: DynamicImage::ImageRgba8(frame.into_buffer()),
            delay_ms,
        }))
    }
}
