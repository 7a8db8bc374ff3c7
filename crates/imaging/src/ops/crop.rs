//! Where a cover window sits in the source: placed by gravity, or by [`smartcrop`]. The pixels
//! are cut during the resize ([`super::resize`]), never copied out first.

use image::DynamicImage;
use imgd_core::transform::Gravity;

use super::smartcrop;

/// A window of the source, in source pixels (fractional: the resize samples sub-pixel).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// Places a `size` window in `image`, keeping the part `gravity` names.
pub fn place(image: &DynamicImage, size: (f64, f64), gravity: Gravity) -> Window {
    let (width, height) = (
        size.0.min(f64::from(image.width())),
        size.1.min(f64::from(image.height())),
    );
    let free_x = f64::from(image.width()) - width;
    let free_y = f64::from(image.height()) - height;
    let (left, top) = match gravity {
        Gravity::Center => (free_x / 2.0, free_y / 2.0),
        Gravity::North => (free_x / 2.0, 0.0),
        Gravity::South => (free_x / 2.0, free_y),
        Gravity::East => (free_x, free_y / 2.0),
        Gravity::West => (0.0, free_y / 2.0),
        Gravity::NorthEast => (free_x, 0.0),
        Gravity::NorthWest => (0.0, 0.0),
        Gravity::SouthEast => (free_x, free_y),
        Gravity::SouthWest => (0.0, free_y),
        Gravity::Smart => {
            let whole = (
                (width.round() as u32).clamp(1, image.width()),
                (height.round() as u32).clamp(1, image.height()),
            );
            let (x, y) = smartcrop::best_offset(image, whole);
            (f64::from(x).min(free_x), f64::from(y).min(free_y))
        }
    };
    Window {
        left,
        top,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    #[test]
    fn gravity_places_the_window_inside_the_image() {
        let image = DynamicImage::ImageRgb8(RgbImage::new(400, 100));
        let w = place(&image, (100.0, 100.0), Gravity::Center);
        assert_eq!(
            (w.left, w.top, w.width, w.height),
            (150.0, 0.0, 100.0, 100.0)
        );
        assert_eq!(place(&image, (100.0, 100.0), Gravity::East).left, 300.0);
        assert_eq!(place(&image, (100.0, 100.0), Gravity::West).left, 0.0);
        let clamped = place(&image, (900.0, 900.0), Gravity::SouthEast);
        assert_eq!(
            (clamped.width, clamped.height, clamped.left),
            (400.0, 100.0, 0.0)
        );
    }
}
