//! Fuzz target: the variant language. Arbitrary text through `TransformSpec::parse` (with a few
//! presets and arbitrary limits), then `resolve` with an arbitrary `Accept`. Besides "no panic",
//! it checks what the cache key relies on:
//! - a parsed spec never resolves to a side above `max_dimension` (after `dpr`);
//! - the canonical form is a fixed point: parsing and resolving it again gives the same spec;
//! - the order of explicit options does not change the spec.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use imgd_core::format::ImageFormat;
use imgd_core::transform::{Presets, QualityDefaults, TransformLimits, TransformSpec};
use libfuzzer_sys::fuzz_target;

const QUALITY: QualityDefaults = QualityDefaults { jpeg: 80, webp: 80, avif: 60 };
const SOURCES: [ImageFormat; 4] = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Gif, ImageFormat::Webp];

fn presets(limits: &TransformLimits) -> Presets {
    let raw = BTreeMap::from([
        ("thumb".to_owned(), "w=200,h=200,fit=cover,f=jpeg".to_owned()),
        ("hd".to_owned(), "w=1920,dpr=2,q=90".to_owned()),
        ("blurry".to_owned(), "blur=50,rotate=90,g=smart".to_owned()),
        ("a".to_owned(), "f=auto".to_owned()),
    ]);
    // Limits below a preset's sizes make it invalid; the lenient parser then skips it.
    Presets::parse_lenient(&raw, limits)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // Byte 0: limits; byte 1: source format; the rest: options, then NUL, then Accept.
    let max_dimension = match data[0] % 6 {
        0 => 1,
        1 => 100,
        2 => 4000,
        3 => 8192,
        4 => 65_535,
        _ => u32::MAX,
    };
    let limits = TransformLimits { max_dimension };
    static CACHE: OnceLock<Vec<(u32, Presets)>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        [1, 100, 4000, 8192, 65_535, u32::MAX]
            .into_iter()
            .map(|m| (m, presets(&TransformLimits { max_dimension: m })))
            .collect()
    });
    let presets = &all.iter().find(|(m, _)| *m == max_dimension).expect("cached").1;
    let source = SOURCES[usize::from(data[1]) % SOURCES.len()];
    let text = String::from_utf8_lossy(&data[2..]);
    let (options, accept) = text.split_once('\0').unwrap_or((&text, "image/avif,image/webp,*/*"));

    let Ok(spec) = TransformSpec::parse(options, presets, &limits) else {
        return;
    };
    let resolved = spec.resolve(source, Some(accept), &QUALITY).spec;
    for side in [resolved.width, resolved.height].into_iter().flatten() {
        assert!(side >= 1 && side <= max_dimension, "{options:?} resolved to a side of {side} (limit {max_dimension})");
    }
    assert!((1..=100).contains(&resolved.quality), "{options:?}: quality {}", resolved.quality);

    // The canonical form names the same variant when requested again.
    let canonical = resolved.canonical();
    let again = TransformSpec::parse(&canonical, &Presets::default(), &limits)
        .unwrap_or_else(|e| panic!("canonical {canonical:?} of {options:?} does not parse: {e}"));
    let again = again.resolve(source, Some(accept), &QUALITY).spec;
    assert_eq!(again, resolved, "canonical {canonical:?} of {options:?} is not a fixed point");

    // Explicit options in reverse order (presets keep theirs, first) give the same spec.
    let (named, explicit): (Vec<&str>, Vec<&str>) = options.split(',').partition(|t| !t.contains('='));
    let reordered: Vec<&str> = named.into_iter().chain(explicit.into_iter().rev()).collect();
    let reordered = reordered.join(",");
    let other = TransformSpec::parse(&reordered, presets, &limits)
        .unwrap_or_else(|e| panic!("{options:?} parses but its reordering {reordered:?} does not: {e}"));
    assert_eq!(other, spec, "{options:?} and {reordered:?} differ");
});
