//! HEIF and AVIF headers: the primary image's size as displayed, read from the ISO-BMFF boxes
//! (`meta` → `pitm`, `iprp` → `ipco` + `ipma`) without any codec, so the pixel limit is applied
//! before libheif sees the file.
//!
//! The size is the primary item's `ispe`, then its transformative properties in the order the
//! file lists them: `irot` by 90° or 270° swaps the sides, `clap` crops. A file can lie here
//! (the coded stream may be larger than its `ispe`; libheif 1.15 decodes it anyway), so this is
//! the size the limits are checked against, and the decoder's own process is bounded in memory
//! and checked against it afterwards (`decode/heif.rs`).

/// One box: its four-character type and its body.
type Bmff<'a> = ([u8; 4], &'a [u8]);

/// The boxes laid end to end in `bytes`; stops at the first that does not fit.
fn boxes(mut bytes: &[u8]) -> impl Iterator<Item = Bmff<'_>> {
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?) as u64;
        let kind: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
        let (header, size) = match size {
            // To the end of the enclosing box.
            0 => (8, bytes.len() as u64),
            1 => (16, u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?)),
            n => (8, n),
        };
        let size = usize::try_from(size).ok()?;
        if size < header || size > bytes.len() {
            bytes = &[];
            return None;
        }
        let body = &bytes[header..size];
        bytes = &bytes[size..];
        Some((kind, body))
    })
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(body).find(|(k, _)| k == kind).map(|(_, b)| b)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The primary image's displayed width and height, or `None` when the boxes do not say.
pub(super) fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    // `meta` is a full box: version and flags come before its children.
    let meta = child(bytes, b"meta")?.get(4..)?;
    let pitm = child(meta, b"pitm")?;
    let primary = match pitm.first()? {
        0 => u32::from(be16(pitm, 4)?),
        _ => be32(pitm, 4)?,
    };
    let iprp = child(meta, b"iprp")?;
    let properties: Vec<Bmff<'_>> = boxes(child(iprp, b"ipco")?).collect();
    let mut size = None;
    for index in boxes(iprp)
        .filter(|(kind, _)| kind == b"ipma")
        .flat_map(|(_, ipma)| associations(ipma, primary))
    {
        let Some(&(kind, body)) = index.checked_sub(1).and_then(|i| properties.get(i)) else {
            continue;
        };
        match &kind {
            b"ispe" => size = Some((be32(body, 4)?, be32(body, 8)?)),
            b"irot" if body.first()? & 1 == 1 => size = size.map(|(w, h)| (h, w)),
            b"clap" => size = Some((ratio(body, 0)?, ratio(body, 8)?)),
            _ => {}
        }
    }
    size
}

/// A `clap` field: a numerator and a denominator, rounded to whole pixels as libheif does.
fn ratio(body: &[u8], at: usize) -> Option<u32> {
    let (n, d) = (be32(body, at)?, be32(body, at + 4)?);
    (d != 0).then(|| ((u64::from(n) + u64::from(d) / 2) / u64::from(d)) as u32)
}

/// The 1-based `ipco` indices `ipma` associates with `item`, in the file's order.
fn associations(ipma: &[u8], item: u32) -> Vec<usize> {
    let mut found = Vec::new();
    let (Some(&version), Some(&flags)) = (ipma.first(), ipma.get(3)) else {
        return found;
    };
    let wide_ids = version >= 1;
    let wide_indices = flags & 1 == 1;
    let Some(entries) = be32(ipma, 4) else {
        return found;
    };
    let mut at = 8;
    for _ in 0..entries {
        let id = if wide_ids {
            be32(ipma, at).inspect(|_| at += 4)
        } else {
            be16(ipma, at).map(u32::from).inspect(|_| at += 2)
        };
        let (Some(id), Some(&count)) = (id, ipma.get(at)) else {
            break;
        };
        at += 1;
        for _ in 0..count {
            let index = if wide_indices {
                be16(ipma, at).map(|v| usize::from(v & 0x7fff))
            } else {
                ipma.get(at).map(|&v| usize::from(v & 0x7f))
            };
            at += if wide_indices { 2 } else { 1 };
            match index {
                Some(index) if id == item => found.push(index),
                Some(_) => {}
                None => return found,
            }
        }
    }
    found
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn bmff(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    /// A HEIF header whose primary item 1 has `ispe` `w` x `h`, then `transforms` (already
    /// boxed), associated in that order; item 2 (a thumbnail, say) has another `ispe`.
    pub(crate) fn header(w: u32, h: u32, transforms: &[Vec<u8>]) -> Vec<u8> {
        let ispe = |w: u32, h: u32| {
            let mut body = vec![0; 4];
            body.extend_from_slice(&w.to_be_bytes());
            body.extend_from_slice(&h.to_be_bytes());
            bmff(b"ispe", &body)
        };
        let mut ipco = ispe(64, 48);
        ipco.extend(ispe(w, h));
        for t in transforms {
            ipco.extend_from_slice(t);
        }
        // Version 0, no flags: 16-bit item ids, 8-bit indices.
        let mut ipma = vec![0, 0, 0, 0, 0, 0, 0, 2];
        ipma.extend_from_slice(&[0, 2, 1, 1]);
        ipma.extend_from_slice(&[0, 1, 1 + transforms.len() as u8, 0x80 | 2]);
        ipma.extend((0..transforms.len()).map(|i| 3 + i as u8));
        let mut iprp = bmff(b"ipco", &ipco);
        iprp.extend(bmff(b"ipma", &ipma));
        let mut meta = vec![0; 4];
        meta.extend(bmff(b"hdlr", &[0; 24]));
        meta.extend(bmff(b"pitm", &[0, 0, 0, 0, 0, 1]));
        meta.extend(bmff(b"iprp", &iprp));
        let mut file = bmff(b"ftyp", b"heic\0\0\0\0mif1heic");
        file.extend(bmff(b"meta", &meta));
        file.extend(bmff(b"mdat", &[0; 16]));
        file
    }

    #[test]
    fn reads_the_primary_items_size() {
        assert_eq!(dimensions(&header(4032, 3024, &[])), Some((4032, 3024)));
    }

    #[test]
    fn rotation_by_a_quarter_swaps_the_sides() {
        let quarter = bmff(b"irot", &[1]);
        let half = bmff(b"irot", &[2]);
        assert_eq!(
            dimensions(&header(4032, 3024, &[quarter])),
            Some((3024, 4032))
        );
        assert_eq!(dimensions(&header(4032, 3024, &[half])), Some((4032, 3024)));
    }

    #[test]
    fn a_clean_aperture_crops_then_rotation_applies_in_order() {
        let mut clap = Vec::new();
        for v in [4000u32, 1, 3001, 2, 0, 1, 0, 1] {
            clap.extend_from_slice(&v.to_be_bytes());
        }
        let clap = bmff(b"clap", &clap);
        assert_eq!(
            dimensions(&header(4032, 3024, std::slice::from_ref(&clap))),
            Some((4000, 1501))
        );
        assert_eq!(
            dimensions(&header(4032, 3024, &[clap, bmff(b"irot", &[3])])),
            Some((1501, 4000))
        );
    }

    #[test]
    fn truncated_or_garbled_headers_say_nothing() {
        let whole = header(640, 480, &[]);
        for cut in 0..whole.len() - 16 {
            // Any prefix either names the size or nothing; it never panics or loops.
            let got = dimensions(&whole[..cut]);
            assert!(got.is_none() || got == Some((640, 480)), "{cut}: {got:?}");
        }
        let mut huge = whole.clone();
        // A box claiming more bytes than the file has.
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(dimensions(&huge), None);
        assert_eq!(dimensions(b""), None);
    }
}
