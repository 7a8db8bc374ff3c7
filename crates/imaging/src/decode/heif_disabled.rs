//! Stand-in for the HEIF decoder in builds without the `heif` feature: probing refuses AVIF and
//! HEIC input with `unsupported_format` (naming the feature), so nothing reaches [`decode`].

use imgd_core::port::JobControl;
use imgd_core::{Error, Result};

use super::Decoded;
use crate::probe::Probe;

/// This build does not decode AVIF or HEIC.
pub const HEIF_SUPPORTED: bool = false;

pub(super) fn peak_bytes(width: u32, height: u32, file_bytes: u64) -> u64 {
    u64::from(width) * u64::from(height) * 4 + file_bytes
}

pub(super) fn decode(_bytes: &[u8], probe: &Probe, _job: &JobControl) -> Result<Decoded> {
    Err(Error::UnsupportedFormat(format!(
        "{} input needs a build with the `heif` feature",
        probe.format.name()
    )))
}
