//! Resize with fast_image_resize: SIMD convolution, Lanczos3, alpha premultiplied internally so
//! transparent edges do not bleed dark fringes. A cover window is cut while resizing, so no
//! buffer larger than the output is allocated.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage, RgbaImage};
use imgd_core::{Error, Result};

use super::crop::Window;

/// Resizes an RGB8 or RGBA8 image to exactly `size`.
pub fn resize(image: DynamicImage, size: (u32, u32)) -> Result<DynamicImage> {
    resize_window(image, None, size)
}

/// Resizes `window` of an RGB8 or RGBA8 image (the whole image when `None`) to exactly `size`.
pub fn resize_window(
    image: DynamicImage,
    window: Option<Window>,
    size: (u32, u32),
) -> Result<DynamicImage> {
    let whole = Window {
        left: 0.0,
        top: 0.0,
        width: f64::from(image.width()),
        height: f64::from(image.height()),
    };
    let window = window.unwrap_or(whole);
    if window == whole && (image.width(), image.height()) == size {
        return Ok(image);
    }
    let (w, h) = (image.width(), image.height());
    let (pixel_type, alpha) = match &image {
        DynamicImage::ImageRgb8(_) => (PixelType::U8x3, false),
        DynamicImage::ImageRgba8(_) => (PixelType::U8x4, true),
        _ => return Err(Error::internal("resize expects RGB8 or RGBA8")),
    };
    let src = Image::from_vec_u8(w, h, image.into_bytes(), pixel_type).map_err(Error::internal)?;
    let mut dst = Image::new(size.0, size.1, pixel_type);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(window.left, window.top, window.width, window.height);
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(Error::internal)?;
    let buffer = dst.into_vec();
    let out = if alpha {
        RgbaImage::from_raw(size.0, size.1, buffer).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(size.0, size.1, buffer).map(DynamicImage::ImageRgb8)
    };
    out.ok_or_else(|| Error::internal("resize produced a buffer of the wrong size"))
}
