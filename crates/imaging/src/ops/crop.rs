//! Crop to a window placed by gravity.

use image::DynamicImage;
use imgd_core::transform::Gravity;

use super::smartcrop;

/// Crops `image` to `size`, keeping the part `gravity` names.
pub fn crop(image: &DynamicImage, size: (u32, u32), gravity: Gravity) -> DynamicImage {
    let (w, h) = (size.0.min(image.width()), size.1.min(image.height()));
    let (free_x, free_y) = (image.width() - w, image.height() - h);
    let (x, y) = match gravity {
        Gravity::Center => (free_x / 2, free_y / 2),
        Gravity::North => (free_x / 2, 0),
        Gravity::South => (free_x / 2, free_y),
        Gravity::East => (free_x, free_y / 2),
        Gravity::West => (0, free_y / 2),
        Gravity::NorthEast => (free_x, 0),
        Gravity::NorthWest => (0, 0),
        Gravity::SouthEast => (free_x, free_y),
        Gravity::SouthWest => (0, free_y),
        Gravity::Smart => smartcrop::best_offset(image, (w, h)),
    };
    image.crop_imm(x, y, w, h)
}
