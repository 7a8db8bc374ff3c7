//! Stand-in for the libjpeg-turbo decoder in builds without the `turbojpeg` feature: it never
//! decodes, so every JPEG goes to jpeg-decoder.

use imgd_core::Result;

use super::Decoded;
use crate::probe::Probe;

/// Always `None`: built without libjpeg-turbo.
pub(super) fn decode(
    _bytes: &[u8],
    _probe: &Probe,
    _at_least: Option<(u32, u32)>,
    _max_pixels: u64,
) -> Option<Result<Decoded>> {
    None
}
