//! Orientation: EXIF auto-orient (always) followed by the user's clockwise rotation.

use image::DynamicImage;
use image::metadata::Orientation;
use imgd_core::transform::Rotation;

/// True when orientation plus rotation swaps width and height.
pub fn swaps_axes(exif_orientation: u8, rotate: Rotation) -> bool {
    (exif_orientation >= 5) ^ matches!(rotate, Rotation::R90 | Rotation::R270)
}

/// Applies the EXIF orientation, then the rotation.
pub fn apply(image: &mut DynamicImage, exif_orientation: u8, rotate: Rotation) {
    if let Some(orientation) = Orientation::from_exif(exif_orientation) {
        image.apply_orientation(orientation);
    }
    let rotation = match rotate {
        Rotation::R0 => return,
        Rotation::R90 => Orientation::Rotate90,
        Rotation::R180 => Orientation::Rotate180,
        Rotation::R270 => Orientation::Rotate270,
    };
    image.apply_orientation(rotation);
}
