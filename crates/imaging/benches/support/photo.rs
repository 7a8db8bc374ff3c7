//! Deterministic photo-like test images: smooth colour fields, soft shapes and sensor-like
//! noise, so entropy decoding costs what a real photo's would (a flat image would flatter every
//! decoder; pure noise would punish them). With +-8 levels of noise a 20 MP file at quality 90
//! weighs 4.8 MB, in the range of real 20 MP photos (4-10 MB); +-16 gave 11.7 MB, above it.

/// RGB8 pixels of a `w` x `h` synthetic photo; `seed` varies the content.
pub fn photo_pixels(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 60) as i32) - 8
    };
    let circles: Vec<(f32, f32, f32)> = (0..12)
        .map(|i| ((i * 7919 + seed as u32 * 31) % w) as f32)
        .zip((0..12).map(|i| ((i * 104_729 + seed as u32 * 17) % h) as f32))
        .map(|(x, y)| (x, y, (h / 6) as f32))
        .collect();
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let mut rgb = [
                90.0 + 120.0 * fx,
                60.0 + 150.0 * fy,
                140.0 + 80.0 * (fx * 6.0 + fy * 3.0).sin(),
            ];
            for &(cx, cy, r) in &circles {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                if d < r {
                    let t = 1.0 - d / r;
                    rgb = [
                        rgb[0] * (1.0 - t) + 230.0 * t,
                        rgb[1] * (1.0 - t) + 40.0 * t,
                        rgb[2] * (1.0 - t) + 60.0 * t,
                    ];
                }
            }
            for c in rgb {
                pixels.push((c as i32 + noise()).clamp(0, 255) as u8);
            }
        }
    }
    pixels
}

/// The synthetic photo as a JPEG at quality 90, 4:2:0, like a camera's output.
pub fn photo_jpeg(w: u16, h: u16, seed: u64) -> Vec<u8> {
    let pixels = photo_pixels(u32::from(w), u32::from(h), seed);
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
    out
}

/// The synthetic photo as an RGB PNG.
pub fn photo_png(w: u32, h: u32, seed: u64) -> Vec<u8> {
    use image::ImageEncoder;
    let pixels = photo_pixels(w, h, seed);
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
        .expect("encode");
    out
}
