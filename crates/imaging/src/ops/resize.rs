//! Resize with fast_image_resize: SIMD convolution, Lanczos3, alpha premultiplied internally so
//! transparent edges do not bleed dark fringes.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage, RgbaImage};
use imgd_core::{Error, Result};

/// Resizes an RGB8 or RGBA8 image to exactly `size`.
pub fn resize(image: DynamicImage, size: (u32, u32)) -> Result<DynamicImage> {
    if (image.width(), image.height()) == size {
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
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
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
