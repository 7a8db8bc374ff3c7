//! The safe API over libjpeg-turbo: scales, bounds, stopping, damaged and hostile input.

use std::cell::Cell;

use imgd_jpeg::{DecodeError, Limits, decode_rgb};
use jpeg_encoder::{ColorType, Encoder};

const OPEN: Limits = Limits {
    max_pixels: 1 << 26,
    max_memory: 1 << 28,
    max_scans: 100,
};

/// A JPEG of a smooth gradient, `w` x `h`.
fn gradient(w: u16, h: u16, progressive: bool, icc: Option<&[u8]>) -> Vec<u8> {
    let mut pixels = Vec::new();
    for y in 0..u32::from(h) {
        for x in 0..u32::from(w) {
            pixels.extend_from_slice(&[
                (x * 255 / u32::from(w)) as u8,
                (y * 255 / u32::from(h)) as u8,
                120,
            ]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = Encoder::new(&mut out, 90);
    encoder.set_progressive(progressive);
    if let Some(icc) = icc {
        encoder.add_icc_profile(icc).unwrap();
    }
    encoder.encode(&pixels, w, h, ColorType::Rgb).unwrap();
    out
}

fn pixel(rgb: &imgd_jpeg::Rgb, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * rgb.width + x) * 3) as usize;
    [rgb.pixels[i], rgb.pixels[i + 1], rgb.pixels[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(&a, b)| a.abs_diff(b) <= 6)
}

#[test]
fn every_scale_gives_its_fraction_and_the_same_picture() {
    for progressive in [false, true] {
        let bytes = gradient(640, 480, progressive, None);
        let full = decode_rgb(&bytes, 1, OPEN, &|| true).unwrap();
        assert_eq!((full.width, full.height), (640, 480));
        assert_eq!(full.pixels.len(), 640 * 480 * 3);
        for d in [2, 4, 8] {
            let scaled = decode_rgb(&bytes, d, OPEN, &|| true).unwrap();
            assert_eq!((scaled.width, scaled.height), (640 / d, 480 / d));
            // The same place in the picture has the same colour at every scale.
            let (x, y) = (scaled.width / 3, scaled.height / 2);
            let at_full = pixel(&full, x * d + d / 2, y * d + d / 2);
            assert!(close(pixel(&scaled, x, y), at_full), "1/{d}: {progressive}");
        }
    }
}

#[test]
fn the_colour_profile_comes_back_whole() {
    // Larger than one APP2 marker holds, so it is split and reassembled.
    let profile: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let bytes = gradient(32, 32, false, Some(&profile));
    let decoded = decode_rgb(&bytes, 1, OPEN, &|| true).unwrap();
    assert_eq!(decoded.icc.as_deref(), Some(&profile[..]));
    assert_eq!(
        decode_rgb(&gradient(32, 32, false, None), 1, OPEN, &|| true)
            .unwrap()
            .icc,
        None
    );
}

#[test]
fn over_the_pixel_limit_is_refused_before_decoding() {
    let bytes = gradient(400, 300, false, None);
    let limits = Limits {
        max_pixels: 400 * 300 - 1,
        ..OPEN
    };
    assert_eq!(
        decode_rgb(&bytes, 8, limits, &|| true).unwrap_err(),
        DecodeError::TooManyPixels {
            pixels: 120_000,
            limit: 119_999
        }
    );
}

#[test]
fn keep_going_stops_a_decode_part_way() {
    let bytes = gradient(512, 512, false, None);
    let asked = Cell::new(0);
    let stop_on_third = || {
        asked.set(asked.get() + 1);
        asked.get() < 3
    };
    assert_eq!(
        decode_rgb(&bytes, 1, OPEN, &stop_on_third).unwrap_err(),
        DecodeError::Stopped
    );
    assert_eq!(asked.get(), 3, "asked until it said no, then not again");
    // A panicking check stops the decode instead of unwinding through C.
    let result = decode_rgb(&bytes, 1, OPEN, &|| panic!("the caller's check failed"));
    assert_eq!(result.unwrap_err(), DecodeError::Stopped);
}

#[test]
fn a_progressive_file_whose_coefficients_exceed_the_memory_cap_is_refused() {
    let bytes = gradient(1024, 1024, true, None);
    let tight = Limits {
        max_memory: 1 << 20,
        ..OPEN
    };
    assert!(matches!(
        decode_rgb(&bytes, 8, tight, &|| true),
        Err(DecodeError::Corrupt(_))
    ));
    assert!(decode_rgb(&bytes, 8, OPEN, &|| true).is_ok());
}

#[test]
fn damaged_and_foreign_bytes_are_errors_not_crashes() {
    let bytes = gradient(256, 256, false, None);
    for cut in [0, 2, 20, 200, bytes.len() / 2, bytes.len() - 2] {
        // libjpeg would fill a truncated scan with grey and warn; a warning is an error here.
        assert!(
            matches!(
                decode_rgb(&bytes[..cut], 1, OPEN, &|| true),
                Err(DecodeError::Corrupt(_))
            ),
            "cut at {cut}"
        );
    }
    assert!(matches!(
        decode_rgb(b"not a jpeg at all", 1, OPEN, &|| true),
        Err(DecodeError::Corrupt(_))
    ));
    let mut flipped = bytes.clone();
    for i in (600..flipped.len() - 2).step_by(97) {
        flipped[i] ^= 0x5a;
    }
    let _ = decode_rgb(&flipped, 2, OPEN, &|| true);
    assert!(matches!(
        decode_rgb(&bytes, 3, OPEN, &|| true),
        Err(DecodeError::Corrupt(_))
    ));
}

#[test]
fn cmyk_is_left_to_the_caller() {
    let cmyk = vec![30u8; 16 * 16 * 4];
    let mut bytes = Vec::new();
    Encoder::new(&mut bytes, 90)
        .encode(&cmyk, 16, 16, ColorType::Cmyk)
        .unwrap();
    assert_eq!(
        decode_rgb(&bytes, 1, OPEN, &|| true).unwrap_err(),
        DecodeError::Cmyk
    );
}

#[test]
fn a_progressive_file_with_too_many_scans_is_refused() {
    // libjpeg only warns about a repeated scan and decodes it again: an attacker's way to make
    // a small file cost thousands of passes over every coefficient.
    let bytes = gradient(128, 128, true, None);
    let last_scan = bytes
        .windows(2)
        .rposition(|w| w == [0xff, 0xda])
        .expect("a scan");
    let body = &bytes[..bytes.len() - 2];
    let mut hostile = body.to_vec();
    for _ in 0..OPEN.max_scans + 10 {
        hostile.extend_from_slice(&body[last_scan..]);
    }
    hostile.extend_from_slice(&[0xff, 0xd9]);
    match decode_rgb(&hostile, 1, OPEN, &|| true) {
        Err(DecodeError::Corrupt(why)) => assert!(why.contains("scans"), "{why}"),
        other => panic!("decoded {} scans: {other:?}", OPEN.max_scans + 10),
    }
    // The same file with its scans as encoded decodes.
    assert!(decode_rgb(&bytes, 1, OPEN, &|| true).is_ok());
}

#[test]
fn a_million_empty_app2_markers_cost_a_linear_walk_not_a_list_each() {
    // libjpeg, asked to save APP2 markers, allocated each one outside the memory cap and
    // appended it by walking the list: gigabytes and quadratic time, with no hook asked.
    let profile: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8).collect();
    let bytes = gradient(64, 64, false, Some(&profile));
    let mut hostile = bytes[..2].to_vec();
    for _ in 0..1_000_000 {
        hostile.extend_from_slice(&[0xFF, 0xE2, 0x00, 0x02]);
    }
    hostile.extend_from_slice(&bytes[2..]);
    let started = std::time::Instant::now();
    let decoded = decode_rgb(&hostile, 1, OPEN, &|| true).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(decoded.icc.as_deref(), Some(&profile[..]));
}
