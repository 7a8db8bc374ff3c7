//! Rules every store applies to multipart uploads and listings the same way, so the stores
//! differ only in where bytes go.

use imgd_core::port::{MAX_LIST_PAGE, MAX_PARTS, PartTag};
use imgd_core::{Error, Result};

/// Refuses a part number outside 1 to [`MAX_PARTS`].
pub(crate) fn check_part_number(number: u32) -> Result<()> {
    if (1..=MAX_PARTS).contains(&number) {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "part number {number} is outside 1..={MAX_PARTS}"
        )))
    }
}

/// Refuses a part list that is not numbered 1, 2, 3, ... (S3 numbers a completion's parts by
/// position, so a gap would join the wrong bytes).
pub(crate) fn check_part_order(parts: &[PartTag]) -> Result<()> {
    if parts.is_empty() || parts.len() > MAX_PARTS as usize {
        return Err(Error::internal(format!(
            "a multipart upload needs 1 to {MAX_PARTS} parts"
        )));
    }
    match parts.iter().zip(1..).find(|(part, n)| part.number != *n) {
        Some((part, n)) => Err(Error::internal(format!(
            "multipart parts must be numbered from 1 without gaps: found {} where {n} belongs",
            part.number
        ))),
        None => Ok(()),
    }
}

/// The tag of a part in stores that make their own: the start of its BLAKE3 hash, so a
/// completion naming a part that was since replaced is refused.
pub(crate) fn part_tag(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..32].to_owned()
}

/// Refuses a part but the last shorter than the store's minimum (`sizes` in part order).
pub(crate) fn check_part_sizes(sizes: &[u64], min: u64) -> Result<()> {
    let Some((_, all_but_last)) = sizes.split_last() else {
        return Ok(());
    };
    match all_but_last.iter().position(|&size| size < min) {
        Some(i) => Err(Error::internal(format!(
            "part {} has {} bytes, under the store's minimum of {min}",
            i + 1,
            all_but_last[i]
        ))),
        None => Ok(()),
    }
}

/// A listing's page size: at least one key, at most [`MAX_LIST_PAGE`].
pub(crate) fn page_size(limit: usize) -> usize {
    limit.clamp(1, MAX_LIST_PAGE)
}

/// The folder a listing under `prefix` covers: `prefix/`, or everything for an empty prefix.
pub(crate) fn folder(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}
