//! Letterboxing for `fit=contain`: centre the image on a canvas of the exact box size.

use image::{DynamicImage, Rgb, RgbImage, Rgba, RgbaImage};

/// Centres `image` on a `size` canvas: transparent when `transparent`, else white.
pub fn pad(image: &DynamicImage, size: (u32, u32), transparent: bool) -> DynamicImage {
    if (image.width(), image.height()) == size {
        return image.clone();
    }
    let x = i64::from((size.0 - image.width().min(size.0)) / 2);
    let y = i64::from((size.1 - image.height().min(size.1)) / 2);
    if transparent {
        let mut canvas = RgbaImage::from_pixel(size.0, size.1, Rgba([0, 0, 0, 0]));
        image::imageops::overlay(&mut canvas, &image.to_rgba8(), x, y);
        DynamicImage::ImageRgba8(canvas)
    } else {
        let mut canvas = RgbImage::from_pixel(size.0, size.1, Rgb([255, 255, 255]));
        image::imageops::overlay(&mut canvas, &image.to_rgb8(), x, y);
        DynamicImage::ImageRgb8(canvas)
    }
}
