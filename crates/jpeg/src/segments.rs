//! The one walk over a JPEG's marker segments, shared by the probe (scan count, progressive,
//! where the header ends) and the ICC reader ([`crate::icc`]), so both read a file the same way.
//!
//! Marker segments are skipped by their length fields; the entropy-coded data after a
//! start-of-scan is skipped with `memchr` to its first 0xFF that is neither stuffing (0xFF00) nor
//! a restart marker (about one byte in 200 of a photo is 0xFF, so this costs a small part of a
//! decode; a byte-at-a-time walk had cost a tenth of a 20 MP thumbnail). Linear in the file size
//! whatever it holds; a truncated file yields what it has.

/// Start of scan: entropy-coded data follows its header.
pub const SOS: u8 = 0xDA;
/// End of image.
const EOI: u8 = 0xD9;

/// One marker segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The byte after 0xFF (0xE2 for APP2, [`SOS`], ...).
    pub marker: u8,
    /// Where the segment's 0xFF is in the file.
    pub offset: usize,
    /// The bytes after the length field, cut short where the file ends.
    pub payload: &'a [u8],
    /// False when the file ends before the length field says the segment does.
    pub complete: bool,
}

impl Segment<'_> {
    /// SOF2, SOF6, SOF10, SOF14: a progressive frame.
    pub fn is_progressive_frame(&self) -> bool {
        matches!(self.marker, 0xC2 | 0xC6 | 0xCA | 0xCE)
    }
}

/// The marker segments of `data` (a JPEG, past its SOI) in file order, up to EOI or the end.
pub fn segments(data: &[u8]) -> Segments<'_> {
    Segments { data, at: 2 }
}

/// Iterator returned by [`segments`].
pub struct Segments<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let b = self.data;
        loop {
            let i = self.at;
            let marker = *b.get(i + 1)?;
            if b[i] != 0xFF {
                // Not a marker where one should be: resynchronise at the next 0xFF, as
                // libjpeg does (it warns, and a warning fails our decode anyway).
                self.at = memchr::memchr(0xFF, &b[i..]).map_or(b.len(), |at| i + at);
                continue;
            }
            match marker {
                0xFF => self.at += 1, // fill byte
                EOI => {
                    self.at = b.len();
                    return None;
                }
                // Markers without a segment: TEM, restart markers.
                0x01 | 0xD0..=0xD7 => self.at += 2,
                _ => {
                    let len = b.get(i + 2..i + 4)?;
                    let len = usize::from(u16::from_be_bytes([len[0], len[1]])).max(2);
                    let end = i + 2 + len;
                    self.at = if marker == SOS {
                        entropy_coded_end(b, end)
                    } else {
                        end
                    };
                    return Some(Segment {
                        marker,
                        offset: i,
                        payload: &b[i + 4..end.min(b.len())],
                        complete: end <= b.len(),
                    });
                }
            }
        }
    }
}

/// Where the entropy-coded data starting at `from` ends: its first 0xFF that is neither stuffing
/// nor a restart marker, or the end of `b`.
fn entropy_coded_end(b: &[u8], mut from: usize) -> usize {
    while let Some(at) = b.get(from..).and_then(|rest| memchr::memchr(0xFF, rest)) {
        let marker = from + at;
        match b.get(marker + 1) {
            Some(&next) if next != 0 && !(0xD0..=0xD7).contains(&next) => return marker,
            Some(_) => from = marker + 1,
            None => break,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(b: &[u8]) -> Vec<(u8, usize, bool)> {
        segments(b)
            .map(|s| (s.marker, s.offset, s.complete))
            .collect()
    }

    #[test]
    fn entropy_coded_data_is_skipped_past_stuffing_and_restart_markers() {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xC2, 0x00, 0x03, 0x08];
        b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02]);
        b.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56]);
        let second = b.len();
        b.extend_from_slice(&[
            0xFF, 0xDA, 0x00, 0x02, 0x78, 0xFF, 0xD9, 0xFF, 0xE1, 0x00, 0x02,
        ]);
        assert_eq!(
            markers(&b),
            vec![(0xC2, 2, true), (SOS, 7, true), (SOS, second, true)]
        );
        assert!(segments(&b).next().unwrap().is_progressive_frame());
    }

    #[test]
    fn a_scan_ends_at_its_first_real_marker_or_at_the_end_of_the_file() {
        // Stuffed 0xFF00 and restart markers inside a scan do not end it; a scan cut short
        // ends at the end of the file.
        assert_eq!(
            entropy_coded_end(&[0x12, 0xFF, 0x00, 0xFF, 0xD0, 0xFF, 0xC4], 0),
            5
        );
        assert_eq!(entropy_coded_end(&[0x12, 0xFF, 0x00, 0xFF], 0), 4);
        assert_eq!(entropy_coded_end(&[0x12, 0x34], 0), 2);
    }

    #[test]
    fn a_truncated_segment_is_yielded_incomplete_and_ends_the_walk() {
        let b = [0xFF, 0xD8, 0xFF, 0xE2, 0x00, 0x10, b'I', b'C'];
        let all: Vec<_> = segments(&b).collect();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].payload, all[0].complete), (&b"IC"[..], false));
        // Cut inside the length field: nothing to yield.
        assert_eq!(markers(&b[..5]), vec![]);
    }

    #[test]
    fn garbage_between_segments_is_skipped_and_zero_lengths_still_advance() {
        let b = [
            0xFF, 0xD8, 0x00, 0x11, 0xFF, 0xE0, 0x00, 0x00, 0xFF, 0xFF, 0xE1, 0x00, 0x02,
        ];
        assert_eq!(markers(&b), vec![(0xE0, 4, true), (0xE1, 9, true)]);
    }

    #[test]
    fn a_million_empty_segments_are_walked_in_linear_time() {
        let mut b = vec![0xFF, 0xD8];
        for _ in 0..1_000_000 {
            b.extend_from_slice(&[0xFF, 0xE2, 0x00, 0x02]);
        }
        let started = std::time::Instant::now();
        assert_eq!(segments(&b).count(), 1_000_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
