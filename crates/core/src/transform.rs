//! The variant language: `w=400,h=300,fit=cover,g=smart,f=webp,q=80,dpr=2,blur=3,rotate=90`,
//! optionally mixed with preset names (`thumb,f=webp`).
//!
//! Two halves:
//!
//! - this module, the spec: [`TransformSpec`] is what the client asked for, whatever grammar it
//!   spoke; [`TransformSpec::resolve`] turns it into a [`RenderSpec`]: every choice concrete
//!   (output format negotiated, quality defaulted, `dpr` folded into pixels), written once in
//!   [`RenderSpec::canonical`], which keys the stored variant. So `h=300,w=400` and
//!   `w=200,h=150,dpr=2` name the same variant;
//! - [`grammar`], how `/i/{id}/{options}` spells a request: [`VariantRequest`] (preset names and
//!   explicit options, parsed before anything is looked up), applied to a tenant's presets.
//!   Another URL grammar produces a `VariantRequest` or a `TransformSpec` of its own, and so the
//!   same variant.

mod grammar;

pub use grammar::VariantRequest;

use crate::Code;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::format::ImageFormat;
use crate::id::{ContentHash, TenantId, VariantKey};
use crate::{Error, Result};

/// Bumped whenever the renderer's output for a given spec changes, so stored variants of the old
/// pipeline are not served as the new one.
pub const PIPELINE_VERSION: &str = "2";

/// How the image fits the `w` x `h` box (the same names and meanings as sharp).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Fill the box, cropping the overflow by gravity.
    Cover,
    /// Fit inside the box and pad to exactly its size.
    Contain,
    /// Stretch to the box, ignoring the aspect ratio.
    Fill,
    /// Fit inside the box; never enlarge.
    #[default]
    Inside,
    /// Cover the box without cropping; never enlarge.
    Outside,
}

/// Which part of the image survives a `fit=cover` crop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Gravity {
    #[default]
    Center,
    North,
    South,
    East,
    West,
    NorthEast,
    NorthWest,
    SouthEast,
    SouthWest,
    /// The window with the most detail (luminance entropy).
    Smart,
}

/// A clockwise rotation applied after EXIF auto-orientation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rotation {
    #[default]
    R0,
    R90,
    R180,
    R270,
}

/// The output format the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FormatChoice {
    /// A fixed output format.
    Fixed(ImageFormat),
    /// AVIF, WebP or JPEG by the request's `Accept` header.
    Auto,
}

/// Limits that bound what a spec may ask for.
#[derive(Clone, Copy, Debug)]
pub struct TransformLimits {
    /// Largest output width or height in pixels, after `dpr`.
    pub max_dimension: u32,
}

/// Default quality per lossy format when `q` is absent.
#[derive(Clone, Copy, Debug)]
pub struct QualityDefaults {
    pub jpeg: u8,
    pub webp: u8,
    pub avif: u8,
}

/// A parsed but unresolved request, each option present only if asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransformSpec {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Option<Fit>,
    pub gravity: Option<Gravity>,
    pub format: Option<FormatChoice>,
    pub quality: Option<u8>,
    /// Device pixel ratio in tenths (10..=40), multiplied into `w` and `h` on resolve.
    pub dpr_tenths: Option<u8>,
    /// Gaussian blur sigma in tenths (3..=1000).
    pub blur_tenths: Option<u16>,
    pub rotate: Option<Rotation>,
}

/// Named specs from configuration (and later, per tenant).
#[derive(Clone, Debug, Default)]
pub struct Presets(pub(crate) BTreeMap<String, TransformSpec>);

impl Presets {
    /// These presets with `overrides` replacing any of the same name.
    pub fn overridden_by(&self, overrides: Presets) -> Self {
        let mut merged = self.0.clone();
        merged.extend(overrides.0);
        Presets(merged)
    }

    /// True for a name a preset may have: `[A-Za-z0-9_-]+`, at most 64 bytes.
    pub fn is_valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// The preset called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&TransformSpec> {
        self.0.get(name)
    }
}

/// A value outside its range: 400 `option_out_of_range`.
pub(crate) fn out_of_range(message: impl Into<String>) -> Error {
    Error::invalid(Code::OptionOutOfRange, message)
}

impl TransformSpec {
    /// `self` with every option that `top` sets replaced by `top`'s value.
    pub(crate) fn overlaid_with(&self, top: &TransformSpec) -> TransformSpec {
        TransformSpec {
            width: top.width.or(self.width),
            height: top.height.or(self.height),
            fit: top.fit.or(self.fit),
            gravity: top.gravity.or(self.gravity),
            format: top.format.or(self.format),
            quality: top.quality.or(self.quality),
            dpr_tenths: top.dpr_tenths.or(self.dpr_tenths),
            blur_tenths: top.blur_tenths.or(self.blur_tenths),
            rotate: top.rotate.or(self.rotate),
        }
    }

    fn scaled(&self, n: Option<u32>) -> Option<u32> {
        let dpr = u64::from(self.dpr_tenths.unwrap_or(10));
        n.map(|n| ((u64::from(n) * dpr + 5) / 10).min(u64::from(u32::MAX)) as u32)
    }

    pub(crate) fn check_dimensions(&self, limits: &TransformLimits) -> Result<()> {
        for n in [self.scaled(self.width), self.scaled(self.height)]
            .into_iter()
            .flatten()
        {
            if n > limits.max_dimension {
                return Err(out_of_range(format!(
                    "output of {n} px (after dpr) exceeds the limit of {} px",
                    limits.max_dimension
                )));
            }
        }
        Ok(())
    }

    /// Makes every choice concrete for one source and one request. An animated source asks for
    /// its frames to be kept ([`RenderSpec::animated`]) when the output format can carry them;
    /// whether the render's budget allows it is the caller's to settle
    /// (`service::render_plan`).
    pub fn resolve(
        &self,
        source: impl Into<SourceKind>,
        accept: impl Into<Accepts>,
        quality: &QualityDefaults,
    ) -> Resolved {
        let source = source.into();
        let (format, vary_accept) = match self.format {
            Some(FormatChoice::Fixed(f)) => (f, false),
            Some(FormatChoice::Auto) => (negotiate(source, accept.into()), true),
            // A variant keeps its source's format (GIF stays GIF), but HEIC is never an output:
            // JPEG is what every browser shows.
            None if source.format.is_output() => (source.format, false),
            None => (ImageFormat::Jpeg, false),
        };
        let default_quality = match format {
            ImageFormat::Jpeg => quality.jpeg,
            ImageFormat::Webp => quality.webp,
            ImageFormat::Avif => quality.avif,
            // HEIC is never the output (chosen above); listed for the match.
            ImageFormat::Png | ImageFormat::Gif | ImageFormat::Heic => 100,
        };
        let lossless = matches!(format, ImageFormat::Png | ImageFormat::Gif);
        let width = self.scaled(self.width);
        let height = self.scaled(self.height);
        let fit = self.fit.unwrap_or_default();
        let crops = fit == Fit::Cover && width.is_some() && height.is_some();
        Resolved {
            spec: RenderSpec {
                width,
                height,
                fit,
                gravity: if crops {
                    self.gravity.unwrap_or_default()
                } else {
                    Gravity::Center
                },
                format,
                quality: if lossless {
                    100
                } else {
                    self.quality.unwrap_or(default_quality)
                },
                blur_tenths: self.blur_tenths,
                rotate: self.rotate.unwrap_or_default(),
                animated: source.animated && format.animates(),
            },
            vary_accept,
        }
    }
}

/// What [`TransformSpec::resolve`] needs to know of a source: its format and whether it moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceKind {
    pub format: ImageFormat,
    /// More than one frame.
    pub animated: bool,
}

impl From<ImageFormat> for SourceKind {
    /// A still of this format.
    fn from(format: ImageFormat) -> Self {
        SourceKind {
            format,
            animated: false,
        }
    }
}

/// What an `Accept` header says about the formats negotiation picks between: all a negotiated
/// format depends on, so plans can be memoized by it (`service::plan_memo`) instead of by the
/// header's text. Only an explicit, nonzero mention counts: `image/*` promises nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Accepts {
    pub avif: bool,
    pub webp: bool,
}

impl Accepts {
    /// Reads an `Accept` header (none accepts neither).
    pub fn of(accept: Option<&str>) -> Accepts {
        let mut accepts = Accepts::default();
        for part in accept.unwrap_or("").split(',') {
            let mut fields = part.split(';').map(str::trim);
            let flag = match fields.next() {
                Some(mime) if mime.eq_ignore_ascii_case("image/avif") => &mut accepts.avif,
                Some(mime) if mime.eq_ignore_ascii_case("image/webp") => &mut accepts.webp,
                _ => continue,
            };
            // `q=0` (or `q=0.000`) refuses the type; a malformed weight does not.
            let refused = fields.any(|param| {
                param.split_once('=').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("q")
                        && value.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
                })
            });
            *flag |= !refused;
        }
        accepts
    }
}

impl From<Option<&str>> for Accepts {
    fn from(accept: Option<&str>) -> Accepts {
        Accepts::of(accept)
    }
}

/// Picks the best format the client accepts: AVIF, then WebP, then JPEG (PNG for sources that
/// may carry transparency). An animation gets WebP if accepted, else GIF: the formats that keep
/// its frames.
fn negotiate(source: SourceKind, accepts: Accepts) -> ImageFormat {
    if source.animated {
        if accepts.webp {
            ImageFormat::Webp
        } else {
            ImageFormat::Gif
        }
    } else if accepts.avif {
        ImageFormat::Avif
    } else if accepts.webp {
        ImageFormat::Webp
    } else if matches!(
        source.format,
        ImageFormat::Png | ImageFormat::Gif | ImageFormat::Webp | ImageFormat::Avif
    ) {
        ImageFormat::Png
    } else {
        ImageFormat::Jpeg
    }
}

/// A resolved spec plus whether the response depends on `Accept`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub spec: RenderSpec,
    /// True when `f=auto` chose the format, so responses must carry `Vary: Accept`.
    pub vary_accept: bool,
}

/// Everything the renderer needs, with no choice left open.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RenderSpec {
    /// Target width in pixels (dpr applied).
    pub width: Option<u32>,
    /// Target height in pixels (dpr applied).
    pub height: Option<u32>,
    pub fit: Fit,
    /// Only meaningful for `fit=cover` with both sides; [`Gravity::Center`] otherwise.
    pub gravity: Gravity,
    pub format: ImageFormat,
    /// 1..=100; 100 for lossless formats, where it is ignored.
    pub quality: u8,
    pub blur_tenths: Option<u16>,
    pub rotate: Rotation,
    /// Every frame of an animated source is rendered (GIF and WebP outputs only); false renders
    /// the first frame. Part of the key: the two are different variants.
    pub animated: bool,
}

impl RenderSpec {
    /// One string per distinct output: fixed key order, defaults left out.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        if let Some(w) = self.width {
            let _ = write!(out, "w={w},");
        }
        if let Some(h) = self.height {
            let _ = write!(out, "h={h},");
        }
        if self.fit != Fit::Inside {
            let _ = write!(out, "fit={},", fit_name(self.fit));
        }
        if self.gravity != Gravity::Center {
            let _ = write!(out, "g={},", gravity_name(self.gravity));
        }
        let _ = write!(out, "f={},q={}", self.format.name(), self.quality);
        if let Some(b) = self.blur_tenths {
            let _ = write!(out, ",blur={}.{}", b / 10, b % 10);
        }
        if self.rotate != Rotation::R0 {
            let _ = write!(out, ",rotate={}", rotation_degrees(self.rotate));
        }
        if self.animated {
            out.push_str(",animated");
        }
        out
    }

    /// The stored variant's key for this spec applied to `source` for `tenant`.
    ///
    /// The tenant is part of the key although the bytes would be the same: two tenants that
    /// upload the same image share the blob, but never a variant, so one tenant cannot learn
    /// from `x-imgd-cache`, `Last-Modified` or the time of a first request that another
    /// tenant holds (or has requested) the same picture.
    pub fn variant_key(&self, tenant: &TenantId, source: &ContentHash) -> VariantKey {
        VariantKey::derive(&[
            PIPELINE_VERSION,
            tenant.as_str(),
            source.as_str(),
            &self.canonical(),
        ])
    }
}

fn fit_name(fit: Fit) -> &'static str {
    match fit {
        Fit::Cover => "cover",
        Fit::Contain => "contain",
        Fit::Fill => "fill",
        Fit::Inside => "inside",
        Fit::Outside => "outside",
    }
}

fn gravity_name(g: Gravity) -> &'static str {
    match g {
        Gravity::Center => "center",
        Gravity::North => "n",
        Gravity::South => "s",
        Gravity::East => "e",
        Gravity::West => "w",
        Gravity::NorthEast => "ne",
        Gravity::NorthWest => "nw",
        Gravity::SouthEast => "se",
        Gravity::SouthWest => "sw",
        Gravity::Smart => "smart",
    }
}

/// Degrees clockwise.
pub fn rotation_degrees(r: Rotation) -> u16 {
    match r {
        Rotation::R0 => 0,
        Rotation::R90 => 90,
        Rotation::R180 => 180,
        Rotation::R270 => 270,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TransformLimits = TransformLimits {
        max_dimension: 4000,
    };
    const QUALITY: QualityDefaults = QualityDefaults {
        jpeg: 80,
        webp: 80,
        avif: 60,
    };

    fn parse(s: &str) -> Result<TransformSpec> {
        TransformSpec::parse(s, &Presets::default(), &LIMITS)
    }

    fn canonical(s: &str) -> String {
        parse(s)
            .unwrap()
            .resolve(ImageFormat::Jpeg, None, &QUALITY)
            .spec
            .canonical()
    }

    #[test]
    fn order_and_aliases_do_not_change_the_key() {
        assert_eq!(
            canonical("w=400,h=300,fit=cover,f=webp,q=80"),
            canonical("q=80,f=webp,fit=cover,h=300,w=400")
        );
        assert_eq!(
            canonical("width=400,format=webp"),
            canonical("w=400,f=webp")
        );
        assert_eq!(canonical("w=200,dpr=2"), canonical("w=400"));
        assert_eq!(
            canonical("w=400"),
            canonical("w=400,fit=inside,q=80,rotate=0")
        );
        assert_eq!(
            canonical("w=400,g=smart"),
            canonical("w=400"),
            "gravity only matters for cover"
        );
        assert_ne!(
            canonical("w=400,h=300,fit=cover,g=smart"),
            canonical("w=400,h=300,fit=cover")
        );
        assert_eq!(
            canonical("w=400,h=300,fit=cover,g=smart,blur=2.5"),
            "w=400,h=300,fit=cover,g=smart,f=jpeg,q=80,blur=2.5"
        );
    }

    #[test]
    fn bad_options_have_stable_codes() {
        let code = |s: &str| parse(s).unwrap_err().code();
        assert_eq!(code("w=abc"), "invalid_option");
        assert_eq!(code("w=0"), "option_out_of_range");
        assert_eq!(code("w=4001"), "option_out_of_range");
        assert_eq!(code("w=3000,dpr=2"), "option_out_of_range");
        assert_eq!(code("q=0"), "option_out_of_range");
        assert_eq!(code("q=101"), "option_out_of_range");
        assert_eq!(code("dpr=5"), "option_out_of_range");
        assert_eq!(code("rotate=45"), "option_out_of_range");
        assert_eq!(code("blur=0"), "option_out_of_range");
        assert_eq!(code("fit=squash"), "invalid_option");
        assert_eq!(code("f=bmp"), "invalid_option");
        assert_eq!(code("zoom=2"), "invalid_option");
        assert_eq!(code("w=1,w=2"), "duplicate_option");
        assert_eq!(code("nosuchpreset"), "unknown_preset");
        assert_eq!(code(""), "invalid_option");
        assert_eq!(code("w=1,"), "unknown_preset");
    }

    #[test]
    fn presets_expand_and_explicit_options_override() {
        let raw = BTreeMap::from([(
            "thumb".to_owned(),
            "w=200,h=200,fit=cover,f=jpeg".to_owned(),
        )]);
        let presets = Presets::parse(&raw, &LIMITS).unwrap();
        let spec = TransformSpec::parse("thumb,f=webp", &presets, &LIMITS).unwrap();
        assert_eq!(spec.width, Some(200));
        assert_eq!(spec.format, Some(FormatChoice::Fixed(ImageFormat::Webp)));
        let bad = BTreeMap::from([("x".to_owned(), "thumb".to_owned())]);
        assert_eq!(
            Presets::parse(&bad, &LIMITS).unwrap_err().code(),
            "invalid_preset"
        );
    }

    #[test]
    fn an_animation_keeps_moving_in_the_formats_that_can() {
        let gif = SourceKind {
            format: ImageFormat::Gif,
            animated: true,
        };
        let auto = parse("w=10,f=auto").unwrap();
        let chrome = "image/avif,image/webp,*/*;q=0.8";
        let picked = auto.resolve(gif, Some(chrome), &QUALITY).spec;
        assert_eq!(
            picked.format,
            ImageFormat::Webp,
            "not AVIF: no animated encoder"
        );
        assert!(picked.animated);
        assert!(picked.canonical().ends_with(",animated"));
        let old = auto.resolve(gif, Some("image/png,*/*"), &QUALITY).spec;
        assert_eq!((old.format, old.animated), (ImageFormat::Gif, true));
        // A still format asked for by name renders the first frame.
        let jpeg = parse("w=10,f=jpeg")
            .unwrap()
            .resolve(gif, None, &QUALITY)
            .spec;
        assert!(!jpeg.animated);
        // The same request on a still GIF is the variant it always was.
        let still = parse("w=10")
            .unwrap()
            .resolve(ImageFormat::Gif, None, &QUALITY)
            .spec;
        assert_eq!(still.canonical(), "w=10,f=gif,q=100");
    }

    #[test]
    fn auto_negotiates_from_accept() {
        let spec = parse("w=10,f=auto").unwrap();
        let pick = |src, accept| spec.resolve(src, Some(accept), &QUALITY);
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(
            pick(ImageFormat::Jpeg, chrome).spec.format,
            ImageFormat::Avif
        );
        assert_eq!(
            pick(ImageFormat::Jpeg, "image/webp,*/*").spec.format,
            ImageFormat::Webp
        );
        assert_eq!(
            pick(ImageFormat::Jpeg, "image/avif;q=0,image/webp")
                .spec
                .format,
            ImageFormat::Webp
        );
        assert_eq!(
            pick(ImageFormat::Jpeg, "*/*").spec.format,
            ImageFormat::Jpeg
        );
        assert_eq!(pick(ImageFormat::Png, "*/*").spec.format, ImageFormat::Png);
        assert!(pick(ImageFormat::Jpeg, "*/*").vary_accept);
        assert_eq!(pick(ImageFormat::Jpeg, "*/*").spec.quality, 80);
        assert_eq!(pick(ImageFormat::Jpeg, chrome).spec.quality, 60);
        assert!(
            !parse("w=10")
                .unwrap()
                .resolve(ImageFormat::Png, None, &QUALITY)
                .vary_accept
        );
    }

    #[test]
    fn accept_headers_are_read_for_what_negotiation_needs() {
        let of = |accept| Accepts::of(Some(accept));
        let both = Accepts {
            avif: true,
            webp: true,
        };
        let webp = Accepts {
            avif: false,
            webp: true,
        };
        assert_eq!(of("image/avif,image/webp,image/*,*/*;q=0.8"), both);
        assert_eq!(of("IMAGE/AVIF ; q=0.5 , image/webp"), both);
        assert_eq!(of("image/avif;q=0,image/webp"), webp);
        assert_eq!(of("image/avif; q = 0.000, image/webp;q=1"), webp);
        assert_eq!(
            of("image/avif;q=zero,image/webp"),
            both,
            "a bad weight refuses nothing"
        );
        assert_eq!(of("image/*,*/*"), Accepts::default());
        assert_eq!(Accepts::of(None), Accepts::default());
        assert_eq!(of(""), Accepts::default());
    }

    #[test]
    fn variant_keys_depend_on_source_and_spec() {
        let a = ContentHash::of(b"a");
        let b = ContentHash::of(b"b");
        let spec = parse("w=10")
            .unwrap()
            .resolve(ImageFormat::Jpeg, None, &QUALITY)
            .spec;
        let other = parse("w=11")
            .unwrap()
            .resolve(ImageFormat::Jpeg, None, &QUALITY)
            .spec;
        let (t, u) = (TenantId::default_tenant(), TenantId::generate());
        assert_ne!(spec.variant_key(&t, &a), spec.variant_key(&t, &b));
        assert_ne!(spec.variant_key(&t, &a), other.variant_key(&t, &a));
        assert_ne!(
            spec.variant_key(&t, &a),
            spec.variant_key(&u, &a),
            "tenants never share"
        );
        assert_eq!(spec.variant_key(&t, &a), spec.clone().variant_key(&t, &a));
    }
}
