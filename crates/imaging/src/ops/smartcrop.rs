//! Smart crop: slide the window along the free axis and keep the position whose luminance
//! histogram has the highest Shannon entropy, the same criterion as sharp's `entropy` strategy.
//! Flat sky and empty walls score low; faces, text and texture score high.

use image::DynamicImage;

/// How many window positions are tried along the free axis.
const POSITIONS: u32 = 24;
/// Samples per window side are capped so the cost does not grow with the image.
const MAX_SAMPLES_PER_SIDE: u32 = 96;

/// The top-left corner of the `window` with the most entropy.
pub fn best_offset(image: &DynamicImage, window: (u32, u32)) -> (u32, u32) {
    let luma = image.to_luma8();
    let (free_x, free_y) = (luma.width() - window.0, luma.height() - window.1);
    if free_x == 0 && free_y == 0 {
        return (0, 0);
    }
    let step_x = (window.0 / MAX_SAMPLES_PER_SIDE).max(1);
    let step_y = (window.1 / MAX_SAMPLES_PER_SIDE).max(1);
    let mut best = (0, 0);
    let mut best_entropy = f64::MIN;
    for i in 0..=POSITIONS {
        let x = free_x * i / POSITIONS;
        let y = free_y * i / POSITIONS;
        let mut histogram = [0u32; 256];
        let mut total = 0u32;
        for yy in (y..y + window.1).step_by(step_y as usize) {
            for xx in (x..x + window.0).step_by(step_x as usize) {
                histogram[luma.get_pixel(xx, yy)[0] as usize] += 1;
                total += 1;
            }
        }
        let entropy = entropy(&histogram, total);
        // Strictly greater: among equals the earlier (centre-most is not guaranteed) wins, which
        // keeps the choice deterministic.
        if entropy > best_entropy {
            best_entropy = entropy;
            best = (x, y);
        }
    }
    best
}

fn entropy(histogram: &[u32; 256], total: u32) -> f64 {
    let total = f64::from(total.max(1));
    histogram
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = f64::from(n) / total;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn finds_the_detailed_region() {
        // A flat grey image with a noisy square near the right edge.
        let mut img = RgbImage::from_pixel(400, 100, Rgb([128, 128, 128]));
        for y in 0..100 {
            for x in 300..400 {
                let v = ((x * 31 + y * 17) % 256) as u8;
                img.put_pixel(x, y, Rgb([v, v, v]));
            }
        }
        let (x, y) = best_offset(&DynamicImage::ImageRgb8(img), (100, 100));
        assert_eq!(y, 0);
        assert!(
            x >= 280,
            "window at {x} should cover the detail at 300..400"
        );
    }
}
