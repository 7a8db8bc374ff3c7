//! The `/i/` grammar: `w=400,h=300,fit=cover,g=smart,f=webp,q=80,dpr=2,blur=3,rotate=90`,
//! optionally mixed with preset names (`thumb,f=webp`). Parsing checks syntax, ranges and
//! duplicates without knowing the tenant; [`VariantRequest::apply`] then looks the presets up.

use std::collections::BTreeMap;

use super::{
    Fit, FormatChoice, Gravity, Presets, Rotation, TransformLimits, TransformSpec, out_of_range,
};
use crate::format::ImageFormat;
use crate::{Code, Error, Result};

/// A variant request as the URL spelled it: preset names in order, then explicit options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VariantRequest {
    /// Preset names, applied first, in order.
    pub presets: Vec<String>,
    /// Options given explicitly; they override the presets'.
    pub explicit: TransformSpec,
}

impl VariantRequest {
    /// Parses a comma-separated option list. An option given twice is an error, not a silent
    /// last-wins; a token without `=` names a preset.
    pub fn parse(options: &str, limits: &TransformLimits) -> Result<Self> {
        let mut request = VariantRequest::default();
        let mut seen: Vec<&str> = Vec::new();
        if options.is_empty() {
            return Err(invalid_option("empty option list"));
        }
        for token in options.split(',') {
            let Some((key, value)) = token.split_once('=') else {
                if !Presets::is_valid_name(token) {
                    return Err(Error::invalid(
                        Code::UnknownPreset,
                        format!("no option or preset named {token:?}"),
                    ));
                }
                request.presets.push(token.to_owned());
                continue;
            };
            let key = canonical_key(key)?;
            if seen.contains(&key) {
                return Err(Error::invalid(
                    Code::DuplicateOption,
                    format!("option {key} given twice"),
                ));
            }
            seen.push(key);
            request.explicit.set(key, value, limits)?;
        }
        Ok(request)
    }

    /// The spec this request names with `presets`: each preset in order, then the explicit
    /// options; an unknown preset is 400 `unknown_preset`.
    pub fn apply(&self, presets: &Presets, limits: &TransformLimits) -> Result<TransformSpec> {
        let mut spec = TransformSpec::default();
        for name in &self.presets {
            let preset = presets.get(name).ok_or_else(|| {
                Error::invalid(
                    Code::UnknownPreset,
                    format!("no option or preset named {name:?}"),
                )
            })?;
            spec = spec.overlaid_with(preset);
        }
        let spec = spec.overlaid_with(&self.explicit);
        spec.check_dimensions(limits)?;
        Ok(spec)
    }

    /// True when the request names a preset.
    pub fn uses_preset(&self) -> bool {
        !self.presets.is_empty()
    }

    /// True when the request names presets and nothing else (every explicit option sets a
    /// field, so none were given when none is set).
    pub fn presets_only(&self) -> bool {
        self.uses_preset() && self.explicit == TransformSpec::default()
    }

    /// The request in this grammar, to forward it to the node that owns the variant: the same
    /// presets, then the explicit options written back, so the owner derives the same spec and
    /// key. Built only when forwarding, never on the serving path.
    pub fn to_options(&self) -> String {
        let mut tokens = self.presets.clone();
        let e = &self.explicit;
        let tenths = |t: u16| format!("{}.{}", t / 10, t % 10);
        let options = [
            e.width.map(|w| format!("w={w}")),
            e.height.map(|h| format!("h={h}")),
            e.fit.map(|f| format!("fit={}", super::fit_name(f))),
            e.gravity.map(|g| format!("g={}", super::gravity_name(g))),
            e.format.map(|f| match f {
                FormatChoice::Auto => "f=auto".to_owned(),
                FormatChoice::Fixed(f) => format!("f={}", f.name()),
            }),
            e.quality.map(|q| format!("q={q}")),
            e.dpr_tenths
                .map(|d| format!("dpr={}", tenths(u16::from(d)))),
            e.blur_tenths.map(|b| format!("blur={}", tenths(b))),
            e.rotate
                .map(|r| format!("rotate={}", super::rotation_degrees(r))),
        ];
        tokens.extend(options.into_iter().flatten());
        tokens.join(",")
    }
}

impl Presets {
    /// Parses every preset; a preset may not refer to another preset.
    pub fn parse(raw: &BTreeMap<String, String>, limits: &TransformLimits) -> Result<Self> {
        let mut presets = BTreeMap::new();
        for (name, options) in raw {
            if !Self::is_valid_name(name) {
                return Err(Error::invalid(
                    Code::InvalidPreset,
                    format!("preset name {name:?} must be [A-Za-z0-9_-]+"),
                ));
            }
            let spec = TransformSpec::parse(options, &Presets::default(), limits).map_err(|e| {
                Error::invalid(Code::InvalidPreset, format!("preset {name:?}: {e}"))
            })?;
            presets.insert(name.clone(), spec);
        }
        Ok(Presets(presets))
    }

    /// Parses what it can, skipping (and logging) presets that no longer parse: stored tenant
    /// presets were valid when saved, but limits may have tightened since.
    pub fn parse_lenient(raw: &BTreeMap<String, String>, limits: &TransformLimits) -> Self {
        let mut presets = BTreeMap::new();
        for (name, options) in raw {
            match TransformSpec::parse(options, &Presets::default(), limits) {
                Ok(spec) => {
                    presets.insert(name.clone(), spec);
                }
                Err(e) => tracing::warn!(preset = %name, error = %e, "skipping a stored preset"),
            }
        }
        Presets(presets)
    }
}

impl TransformSpec {
    /// Parses a comma-separated option list and applies its presets: [`VariantRequest::parse`]
    /// then [`VariantRequest::apply`].
    pub fn parse(options: &str, presets: &Presets, limits: &TransformLimits) -> Result<Self> {
        VariantRequest::parse(options, limits)?.apply(presets, limits)
    }

    fn set(&mut self, key: &'static str, value: &str, limits: &TransformLimits) -> Result<()> {
        match key {
            "w" | "h" => {
                let n: u32 = parse_number(key, value)?;
                if n == 0 || n > limits.max_dimension {
                    return Err(out_of_range(format!(
                        "{key} must be 1..={}",
                        limits.max_dimension
                    )));
                }
                if key == "w" {
                    self.width = Some(n)
                } else {
                    self.height = Some(n)
                }
            }
            "fit" => {
                self.fit = Some(match value {
                    "cover" => Fit::Cover,
                    "contain" => Fit::Contain,
                    "fill" => Fit::Fill,
                    "inside" => Fit::Inside,
                    "outside" => Fit::Outside,
                    _ => {
                        return Err(invalid_option(format!(
                            "fit={value:?}: use cover, contain, fill, inside or outside"
                        )));
                    }
                })
            }
            "g" => {
                self.gravity = Some(match value {
                    "center" | "centre" | "c" => Gravity::Center,
                    "n" | "north" => Gravity::North,
                    "s" | "south" => Gravity::South,
                    "e" | "east" => Gravity::East,
                    "w" | "west" => Gravity::West,
                    "ne" => Gravity::NorthEast,
                    "nw" => Gravity::NorthWest,
                    "se" => Gravity::SouthEast,
                    "sw" => Gravity::SouthWest,
                    "smart" | "entropy" | "attention" => Gravity::Smart,
                    _ => {
                        return Err(invalid_option(format!(
                            "g={value:?}: use center, n, s, e, w, ne, nw, se, sw or smart"
                        )));
                    }
                })
            }
            "f" => {
                self.format = Some(match value {
                    "auto" => FormatChoice::Auto,
                    other => FormatChoice::Fixed(
                        ImageFormat::from_name(other)
                            .filter(|f| f.is_output())
                            .ok_or_else(|| {
                                invalid_option(format!(
                                    "f={value:?}: use jpeg, png, webp, avif, gif or auto"
                                ))
                            })?,
                    ),
                })
            }
            "q" => {
                let q: u8 =
                    parse_number(key, value).map_err(|_| out_of_range("q must be 1..=100"))?;
                if !(1..=100).contains(&q) {
                    return Err(out_of_range("q must be 1..=100"));
                }
                self.quality = Some(q);
            }
            "dpr" => {
                let tenths = parse_tenths(key, value)?;
                if !(10..=40).contains(&tenths) {
                    return Err(out_of_range("dpr must be 1..=4"));
                }
                self.dpr_tenths = Some(tenths as u8);
            }
            "blur" => {
                let tenths = parse_tenths(key, value)?;
                if !(3..=1000).contains(&tenths) {
                    return Err(out_of_range("blur must be 0.3..=100"));
                }
                self.blur_tenths = Some(tenths as u16);
            }
            "rotate" => {
                self.rotate = Some(match value {
                    "0" => Rotation::R0,
                    "90" => Rotation::R90,
                    "180" => Rotation::R180,
                    "270" => Rotation::R270,
                    _ => return Err(out_of_range("rotate must be 0, 90, 180 or 270")),
                })
            }
            _ => unreachable!("canonical_key only returns known keys"),
        }
        Ok(())
    }
}

fn invalid_option(message: impl Into<String>) -> Error {
    Error::invalid(Code::InvalidOption, message)
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| invalid_option(format!("{key}={value:?} is not a number")))
}

/// Parses `1`, `1.5`, `2.25` into tenths, rounding to the nearest tenth.
fn parse_tenths(key: &str, value: &str) -> Result<u32> {
    let number: f64 = parse_number(key, value)?;
    if !number.is_finite() || number < 0.0 {
        return Err(out_of_range(format!(
            "{key}={value} must be a positive number"
        )));
    }
    Ok((number * 10.0).round().min(u32::MAX as f64) as u32)
}

fn canonical_key(key: &str) -> Result<&'static str> {
    Ok(match key {
        "w" | "width" => "w",
        "h" | "height" => "h",
        "fit" => "fit",
        "g" | "gravity" => "g",
        "f" | "format" => "f",
        "q" | "quality" => "q",
        "dpr" => "dpr",
        "blur" => "blur",
        "rotate" | "r" => "rotate",
        _ => return Err(invalid_option(format!("unknown option {key:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TransformLimits = TransformLimits {
        max_dimension: 8192,
    };

    fn presets() -> Presets {
        let raw = BTreeMap::from([("thumb".to_owned(), "w=200,h=200,fit=cover".to_owned())]);
        Presets::parse(&raw, &LIMITS).unwrap()
    }

    #[test]
    fn a_request_parses_without_knowing_the_tenant_and_applies_its_presets_later() {
        let request = VariantRequest::parse("thumb,f=webp,width=120", &LIMITS).unwrap();
        assert_eq!(request.presets, ["thumb"]);
        assert!(request.uses_preset() && !request.presets_only());
        let spec = request.apply(&presets(), &LIMITS).unwrap();
        assert_eq!((spec.width, spec.height), (Some(120), Some(200)));
        assert_eq!(spec.fit, Some(Fit::Cover));
        let missing = request.apply(&Presets::default(), &LIMITS).unwrap_err();
        assert_eq!(missing.code(), Code::UnknownPreset);
    }

    #[test]
    fn the_forwarded_form_names_the_same_spec() {
        for options in [
            "thumb",
            "thumb,f=webp,width=120",
            "h=300,w=400,dpr=2",
            "q=70,thumb",
            "thumb,g=ne,fit=contain,f=auto,dpr=1.5,blur=2.5,rotate=270",
        ] {
            let request = VariantRequest::parse(options, &LIMITS).unwrap();
            let forwarded = VariantRequest::parse(&request.to_options(), &LIMITS).unwrap();
            assert_eq!(
                forwarded.apply(&presets(), &LIMITS).unwrap(),
                request.apply(&presets(), &LIMITS).unwrap(),
                "{options} -> {}",
                request.to_options()
            );
            assert_eq!(forwarded.presets_only(), request.presets_only());
        }
        assert!(
            VariantRequest::parse("thumb", &LIMITS)
                .unwrap()
                .presets_only()
        );
    }

    #[test]
    fn syntax_is_refused_before_any_lookup() {
        for (options, code) in [
            ("", Code::InvalidOption),
            ("w=1,w=2", Code::DuplicateOption),
            ("w=0", Code::OptionOutOfRange),
            ("colour=red", Code::InvalidOption),
            ("../etc", Code::UnknownPreset),
        ] {
            let error = VariantRequest::parse(options, &LIMITS).unwrap_err();
            assert_eq!(error.code(), code, "{options:?}");
        }
    }
}
