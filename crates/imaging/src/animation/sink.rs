//! Streaming encoders for animations: a frame goes in as soon as it is rendered and only the
//! encoded bytes stay. GIF through the `gif` crate (a NeuQuant palette per frame at speed 10,
//! as for a still GIF; each frame whole, replacing the last), WebP through libwebp's animation
//! encoder ([`imgd_webp::AnimationEncoder`], lossy, stoppable inside a frame).

use image::DynamicImage;
use imgd_core::format::ImageFormat;
use imgd_core::port::JobControl;
use imgd_core::{Error, Result};
use imgd_webp::AnimationEncoder;

use crate::encode::{failed, libwebp_outcome};

/// NeuQuant's sampling factor: the same as a still GIF's (1 is several times slower).
const GIF_SPEED: i32 = 10;

enum Encoder {
    Gif(gif::Encoder<Vec<u8>>),
    Webp(AnimationEncoder),
}

/// An animation being encoded; the encoder opens with the first frame's size.
pub(super) struct Sink {
    format: ImageFormat,
    quality: u8,
    /// How many times the animation plays; 0 is forever.
    plays: u16,
    encoder: Option<(Encoder, (u32, u32))>,
}

impl Sink {
    /// A sink for `format` (GIF or WebP) at `quality` (WebP only), playing `plays` times (0:
    /// forever).
    pub fn new(format: ImageFormat, quality: u8, plays: u16) -> Result<Self> {
        if !format.animates() {
            return Err(Error::internal(format!(
                "{} cannot hold an animation",
                format.name()
            )));
        }
        Ok(Sink {
            format,
            quality,
            plays,
            encoder: None,
        })
    }

    fn open(&self, (w, h): (u32, u32)) -> Result<Encoder> {
        let format = self.format;
        let fail = failed(format);
        Ok(match format {
            ImageFormat::Gif => {
                let side = |n: u32| u16::try_from(n).map_err(|e| fail(e.to_string()));
                let mut encoder = gif::Encoder::new(Vec::new(), side(w)?, side(h)?, &[])
                    .map_err(|e| fail(e.to_string()))?;
                // GIF counts repeats after the first play, and plays once without the extension.
                let repeat = match self.plays {
                    0 => Some(gif::Repeat::Infinite),
                    1 => None,
                    n => Some(gif::Repeat::Finite(n - 1)),
                };
                if let Some(repeat) = repeat {
                    encoder
                        .set_repeat(repeat)
                        .map_err(|e| fail(e.to_string()))?;
                }
                Encoder::Gif(encoder)
            }
            _ => Encoder::Webp(
                AnimationEncoder::new(w, h, f32::from(self.quality), self.plays)
                    .map_err(|e| fail(e.to_string()))?,
            ),
        })
    }

    /// Encodes `image` (every frame the same size) shown for `delay_ms`.
    pub fn add(&mut self, image: DynamicImage, delay_ms: u32, job: &JobControl) -> Result<()> {
        let size = (image.width(), image.height());
        if self.encoder.is_none() {
            self.encoder = Some((self.open(size)?, size));
        }
        let format = self.format;
        let fail = failed(format);
        let Some((encoder, first)) = self.encoder.as_mut() else {
            unreachable!("opened above");
        };
        if size != *first {
            return Err(fail(format!("frame {size:?} after {first:?}")));
        }
        let mut rgba = image.into_rgba8();
        match encoder {
            Encoder::Gif(gif) => {
                let (w, h) = (size.0 as u16, size.1 as u16);
                let mut frame = gif::Frame::from_rgba_speed(w, h, &mut rgba, GIF_SPEED);
                // Centiseconds, GIF's unit, to the nearest (a WebP's 33 ms frame becomes 30 ms).
                frame.delay = u16::try_from(delay_ms.saturating_add(5) / 10).unwrap_or(u16::MAX);
                // Every frame is whole: it replaces the last.
                frame.dispose = gif::DisposalMethod::Background;
                gif.write_frame(&frame).map_err(|e| fail(e.to_string()))?;
            }
            Encoder::Webp(webp) => {
                let keep_going = || job.checkpoint().is_ok();
                libwebp_outcome(webp.add_frame(&rgba, delay_ms, &keep_going), job, &fail)?;
            }
        }
        Ok(())
    }

    /// The encoded file and its size; a WebP assembly that encodes once more stops when `job`
    /// says so.
    pub fn finish(self, job: &JobControl) -> Result<(Vec<u8>, (u32, u32))> {
        let format = self.format;
        let fail = failed(format);
        let (encoder, size) = self
            .encoder
            .ok_or_else(|| Error::CorruptImage("the animation has no frames".into()))?;
        let bytes = match encoder {
            Encoder::Gif(gif) => gif.into_inner().map_err(|e| fail(e.to_string()))?,
            Encoder::Webp(webp) => {
                libwebp_outcome(webp.finish(&|| job.checkpoint().is_ok()), job, &fail)?
            }
        };
        Ok((bytes, size))
    }
}
