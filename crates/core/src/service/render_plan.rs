//! From a parsed request and its source to the exact render, the same for the server and for
//! `imgd render`: the output format (the request, `Accept`, AVIF's size cap) and whether an
//! animation keeps its frames (the output format can carry them and the animation budget
//! allows it). Every input is known before the source's bytes are read, so the outcome, and the
//! variant key derived from it, is the same on every request: a cached hit says what a fresh
//! render said ([`StillReason`]).

use crate::Code;
use crate::format::ImageFormat;
use crate::port::{Imaging, SourceFacts};
use crate::transform::{Accepts, QualityDefaults, RenderSpec, Resolved, SourceKind, TransformSpec};

/// Makes `spec` concrete for `source` and a client whose `Accept` said `accepts`.
pub fn resolve_render(
    imaging: &dyn Imaging,
    source: &SourceFacts,
    spec: &TransformSpec,
    accepts: Accepts,
    quality: &QualityDefaults,
) -> Resolved {
    let mut kind = SourceKind {
        format: source.format,
        animated: source.frames > 1,
    };
    let mut resolved = spec.resolve(kind, accepts, quality);
    if resolved.spec.animated && !imaging.keeps_animation(source, &resolved.spec) {
        if resolved.vary_accept {
            // `f=auto` picked GIF or WebP for the frames, which cannot be kept: pick as for
            // a still instead (a PNG first frame over a 256-colour GIF one, or a GIF too large
            // to encode at all).
            kind.animated = false;
            resolved = spec.resolve(kind, accepts, quality);
        } else {
            resolved.spec.animated = false;
        }
    }
    if resolved.vary_accept
        && resolved.spec.format == ImageFormat::Avif
        && imaging
            .render_cost(source, &resolved.spec)
            .is_err_and(|e| e.code() == Code::AvifTooLarge)
    {
        // `f=auto` must always answer: an AVIF too large to encode within bounds becomes WebP
        // (what every AVIF-capable browser also takes).
        let webp_only = Accepts {
            avif: false,
            webp: true,
        };
        resolved = spec.resolve(kind, webp_only, quality);
        resolved.vary_accept = true;
    }
    resolved
}

/// Why a render of an animated source is a still; `None` for stills and kept animations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StillReason {
    /// The output format has no frames (JPEG, PNG, AVIF here).
    Format,
    /// Every frame would pass `render.max_animation_pixels`.
    Budget,
}

impl StillReason {
    /// Of a render of `spec` from a source of `frames` frames; `negotiated` when `f=auto` chose
    /// the format (it picks one that animates unless the budget ruled the frames out).
    pub fn of(frames: u32, spec: &RenderSpec, negotiated: bool) -> Option<StillReason> {
        if frames <= 1 || spec.animated {
            None
        } else if spec.format.animates() || negotiated {
            Some(StillReason::Budget)
        } else {
            Some(StillReason::Format)
        }
    }

    /// The `x-imgd-animation` header's value.
    pub fn header(self) -> &'static str {
        match self {
            StillReason::Format => "first-frame; reason=format",
            StillReason::Budget => "first-frame; reason=budget",
        }
    }
}
