//! Geometry: what size to resize to, whether to take a window of the source (cover) and what to
//! pad, from the displayed source size and the spec. Pure arithmetic, tested exhaustively for
//! the invariants that matter (exact boxes for cover/contain/fill, no enlargement for
//! inside/outside, never a zero side, no intermediate larger than the output).
//!
//! `fit=cover` used to resize the whole source to cover the box and crop afterwards: a 1x10000
//! strip asked for `w=8192,h=1` became an 8192x81,920,000 intermediate before the crop. Now the
//! window with the box's aspect is cut from the source *during* the resize, so the largest
//! buffer a render allocates is the output itself ([`cover_window`]).

use imgd_core::transform::{Fit, RenderSpec};

/// The plan for one render, all sizes in output orientation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Size to resize the (oriented) source, or its window, to.
    pub resize: (u32, u32),
    /// Resize only the window of the source that has `resize`'s aspect, placed by gravity
    /// (`fit=cover`), instead of the whole source.
    pub window: bool,
    /// Pad the resized image to this size (`fit=contain`).
    pub pad: Option<(u32, u32)>,
}

fn scaled(n: u32, scale: f64) -> u32 {
    ((f64::from(n) * scale).round() as u32).max(1)
}

/// Plans a render of a `source`-sized image.
pub fn plan(source: (u32, u32), spec: &RenderSpec) -> Layout {
    let (sw, sh) = source;
    let keep = Layout {
        resize: source,
        window: false,
        pad: None,
    };
    let never_enlarge = matches!(spec.fit, Fit::Inside | Fit::Outside);
    let limit = |scale: f64| if never_enlarge { scale.min(1.0) } else { scale };
    match (spec.width, spec.height) {
        (None, None) => keep,
        (Some(w), None) => {
            let s = limit(f64::from(w) / f64::from(sw));
            Layout {
                resize: (scaled(sw, s), scaled(sh, s)),
                window: false,
                pad: None,
            }
        }
        (None, Some(h)) => {
            let s = limit(f64::from(h) / f64::from(sh));
            Layout {
                resize: (scaled(sw, s), scaled(sh, s)),
                window: false,
                pad: None,
            }
        }
        (Some(w), Some(h)) => {
            let (sx, sy) = (f64::from(w) / f64::from(sw), f64::from(h) / f64::from(sh));
            match spec.fit {
                Fit::Fill => Layout {
                    resize: (w, h),
                    window: false,
                    pad: None,
                },
                Fit::Inside => {
                    let s = limit(sx.min(sy));
                    Layout {
                        resize: (scaled(sw, s).min(w), scaled(sh, s).min(h)),
                        window: false,
                        pad: None,
                    }
                }
                Fit::Outside => {
                    let s = limit(sx.max(sy));
                    Layout {
                        resize: (scaled(sw, s), scaled(sh, s)),
                        window: false,
                        pad: None,
                    }
                }
                Fit::Cover => Layout {
                    resize: (w, h),
                    window: true,
                    pad: None,
                },
                Fit::Contain => {
                    let s = sx.min(sy);
                    let resize = (scaled(sw, s).min(w), scaled(sh, s).min(h));
                    Layout {
                        resize,
                        window: false,
                        pad: Some((w, h)),
                    }
                }
            }
        }
    }
}

impl Layout {
    /// The output size.
    pub fn output(&self) -> (u32, u32) {
        self.pad.unwrap_or(self.resize)
    }
}

/// The window of an `image`-sized source that, scaled to `target`, exactly covers it: the
/// largest rectangle with `target`'s aspect that fits in the source, in source pixels.
pub fn cover_window(image: (u32, u32), target: (u32, u32)) -> (f64, f64) {
    let (iw, ih) = (f64::from(image.0), f64::from(image.1));
    let (tw, th) = (f64::from(target.0), f64::from(target.1));
    let scale = (tw / iw).max(th / ih);
    ((tw / scale).min(iw), (th / scale).min(ih))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgd_core::format::ImageFormat;
    use imgd_core::transform::{Gravity, Rotation};

    fn spec(w: Option<u32>, h: Option<u32>, fit: Fit) -> RenderSpec {
        RenderSpec {
            width: w,
            height: h,
            fit,
            gravity: Gravity::Center,
            format: ImageFormat::Jpeg,
            quality: 80,
            blur_tenths: None,
            rotate: Rotation::R0,
            animated: false,
        }
    }

    fn final_size(l: &Layout) -> (u32, u32) {
        l.output()
    }

    #[test]
    fn examples() {
        assert_eq!(
            plan((5472, 3648), &spec(Some(400), None, Fit::Inside)).resize,
            (400, 267)
        );
        assert_eq!(
            plan((100, 50), &spec(Some(400), None, Fit::Inside)).resize,
            (100, 50),
            "inside never enlarges"
        );
        let cover = plan((400, 200), &spec(Some(100), Some(100), Fit::Cover));
        assert_eq!((cover.resize, cover.window), ((100, 100), true));
        assert_eq!(cover_window((400, 200), (100, 100)), (200.0, 200.0));
        // The strip that used to need an 8192x81,920,000 intermediate.
        let strip = plan((1, 10000), &spec(Some(8192), Some(1), Fit::Cover));
        assert_eq!((strip.resize, strip.window), ((8192, 1), true));
        let (ww, wh) = cover_window((1, 10000), (8192, 1));
        assert!((ww - 1.0).abs() < 1e-9 && (wh - 1.0 / 8192.0).abs() < 1e-9);
        let contain = plan((400, 200), &spec(Some(100), Some(100), Fit::Contain));
        assert_eq!((contain.resize, contain.pad), ((100, 50), Some((100, 100))));
        assert_eq!(
            plan((400, 200), &spec(Some(100), Some(100), Fit::Outside)).resize,
            (200, 100)
        );
        assert_eq!(
            plan((400, 200), &spec(Some(10), Some(90), Fit::Fill)).resize,
            (10, 90)
        );
    }

    #[test]
    fn invariants_hold_over_many_sizes() {
        let sizes = [1u32, 2, 3, 7, 64, 99, 400, 1001, 4000];
        for &sw in &sizes {
            for &sh in &sizes {
                for &w in &sizes {
                    for &h in &sizes {
                        for fit in [
                            Fit::Cover,
                            Fit::Contain,
                            Fit::Fill,
                            Fit::Inside,
                            Fit::Outside,
                        ] {
                            let l = plan((sw, sh), &spec(Some(w), Some(h), fit));
                            assert!(l.resize.0 >= 1 && l.resize.1 >= 1);
                            match fit {
                                Fit::Cover => {
                                    assert_eq!(final_size(&l), (w, h));
                                    assert_eq!(l.resize, (w, h), "no intermediate beyond the box");
                                    let (ww, wh) = cover_window((sw, sh), (w, h));
                                    assert!(ww <= f64::from(sw) && wh <= f64::from(sh));
                                    let aspect = (ww / wh) / (f64::from(w) / f64::from(h));
                                    assert!((aspect - 1.0).abs() < 1e-6, "{sw}x{sh} -> {w}x{h}");
                                }
                                Fit::Contain => {
                                    assert_eq!(final_size(&l), (w, h));
                                    assert!(l.resize.0 <= w && l.resize.1 <= h);
                                }
                                Fit::Fill => assert_eq!(final_size(&l), (w, h)),
                                Fit::Inside => {
                                    assert!(l.resize.0 <= w.max(1) && l.resize.1 <= h.max(1));
                                    assert!(l.resize.0 <= sw && l.resize.1 <= sh);
                                }
                                Fit::Outside => assert!(l.resize.0 <= sw && l.resize.1 <= sh),
                            }
                        }
                    }
                }
            }
        }
    }
}
