//! Pixel operations, one file each, plus the geometry that plans them.
//!
//! - [`layout`]: from source size and spec to resize, crop and pad sizes (pure arithmetic).
//! - [`orient`]: EXIF orientation and the user's rotation.
//! - [`resize`]: SIMD convolution resize (fast_image_resize, Lanczos3).
//! - [`crop`]: crop to a window placed by gravity, or by [`smartcrop`].
//! - [`smartcrop`]: the window with the most luminance entropy.
//! - [`pad`]: letterbox to an exact box (`fit=contain`).
//! - [`blur`]: Gaussian blur.

pub mod blur;
pub mod crop;
pub mod layout;
pub mod orient;
pub mod pad;
pub mod resize;
pub mod smartcrop;
