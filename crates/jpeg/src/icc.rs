//! The ICC profile of a JPEG, reassembled from its `APP2 "ICC_PROFILE"` chunks in Rust rather than
//! by libjpeg, which would keep every saved marker in its own allocation, appended to a list by
//! walking it (`csrc/shim.c` says why that was an attack). The walk ([`crate::segments`]) is
//! linear in the header; only the profile is allocated, and it is smaller than the file.

use crate::segments::{SOS, segments};

const ICC_TAG: &[u8] = b"ICC_PROFILE\0";
const APP2: u8 = 0xE2;

/// The profile split over the APP2 chunks before the first scan, when they form a complete one
/// (every sequence number from 1 to the count exactly once, as libjpeg's own reader requires).
pub(crate) fn icc_profile(data: &[u8]) -> Option<Vec<u8>> {
    let mut chunks: Vec<Option<&[u8]>> = Vec::new();
    for segment in segments(data).take_while(|s| s.marker != SOS) {
        let rest = match segment.payload.strip_prefix(ICC_TAG) {
            Some(rest) if segment.marker == APP2 && rest.len() >= 2 => rest,
            _ => continue,
        };
        if !segment.complete {
            return None;
        }
        let (seq, count) = (usize::from(rest[0]), usize::from(rest[1]));
        if chunks.is_empty() {
            chunks.resize(count, None);
        }
        if count != chunks.len() || seq == 0 || seq > count {
            return None;
        }
        if chunks[seq - 1].replace(&rest[2..]).is_some() {
            return None; // the same chunk twice
        }
    }
    if chunks.is_empty() {
        return None;
    }
    let mut profile = Vec::with_capacity(chunks.iter().flatten().map(|c| c.len()).sum());
    for chunk in chunks {
        profile.extend_from_slice(chunk?);
    }
    (!profile.is_empty()).then_some(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app2(seq: u8, count: u8, body: &[u8]) -> Vec<u8> {
        let mut payload = ICC_TAG.to_vec();
        payload.extend_from_slice(&[seq, count]);
        payload.extend_from_slice(body);
        let mut segment = vec![0xFF, 0xE2];
        segment.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        segment.extend_from_slice(&payload);
        segment
    }

    fn jpeg(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        for s in segments {
            b.extend_from_slice(s);
        }
        b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xE2, 0x00, 0x02, 0xFF, 0xD9]);
        b
    }

    #[test]
    fn chunks_are_joined_in_sequence_order_whatever_their_file_order() {
        let b = jpeg(&[app2(2, 2, b"world"), app2(1, 2, b"hello ")]);
        assert_eq!(icc_profile(&b).as_deref(), Some(&b"hello world"[..]));
    }

    #[test]
    fn incomplete_duplicated_or_inconsistent_chunks_give_no_profile() {
        assert_eq!(icc_profile(&jpeg(&[app2(1, 2, b"a")])), None);
        assert_eq!(
            icc_profile(&jpeg(&[app2(1, 1, b"a"), app2(1, 1, b"a")])),
            None
        );
        assert_eq!(
            icc_profile(&jpeg(&[app2(1, 2, b"a"), app2(2, 3, b"b")])),
            None
        );
        assert_eq!(icc_profile(&jpeg(&[app2(0, 1, b"a")])), None);
        assert_eq!(icc_profile(&jpeg(&[])), None);
        // Cut inside a segment.
        let b = jpeg(&[app2(1, 1, b"abc")]);
        assert_eq!(icc_profile(&b[..10]), None);
    }

    #[test]
    fn a_million_empty_markers_are_walked_in_linear_time() {
        let mut segments = vec![app2(1, 1, b"profile")];
        segments.extend(std::iter::repeat_n(vec![0xFF, 0xE2, 0x00, 0x02], 1_000_000));
        let b = jpeg(&segments);
        let started = std::time::Instant::now();
        assert_eq!(icc_profile(&b).as_deref(), Some(&b"profile"[..]));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
