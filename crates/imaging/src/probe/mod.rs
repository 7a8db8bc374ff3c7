//! Probing: what an image is and how big, read from headers without decoding pixels, so limits
//! are enforced before any large allocation.

mod heif;

use std::io::Cursor;

use imgd_core::format::{ImageFormat, Sniffed, sniff};
use imgd_core::port::SourceFacts;
use imgd_core::{Error, Result};

/// Header facts about an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub format: ImageFormat,
    /// Stored width, before orientation.
    pub width: u32,
    /// Stored height, before orientation.
    pub height: u32,
    /// EXIF orientation, 1..=8 (1 when absent).
    pub orientation: u8,
    pub frames: u32,
    /// A progressive JPEG (its decoder keeps every coefficient until the last scan).
    pub progressive: bool,
}

/// Most scans a JPEG may have. Each progressive scan walks every block of the image again, so
/// thousands of tiny scans turn a small file into minutes of CPU; real encoders write ~10.
pub const MAX_JPEG_SCANS: u32 = 100;

impl Probe {
    /// True when the EXIF orientation swaps width and height.
    pub fn transposed(&self) -> bool {
        self.orientation >= 5
    }

    /// Dimensions as displayed.
    pub fn oriented_size(&self) -> (u32, u32) {
        if self.transposed() {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }

    /// What a render plan needs to know of this source (a file of `file_bytes`), as the server
    /// records it at ingest: displayed size, frames.
    pub fn facts(&self, file_bytes: u64) -> SourceFacts {
        let (width, height) = self.oriented_size();
        SourceFacts {
            format: self.format,
            width,
            height,
            bytes: file_bytes,
            frames: self.frames,
        }
    }
}

/// Reads the header of `bytes`.
pub fn probe(bytes: &[u8]) -> Result<Probe> {
    let format = match sniff(bytes) {
        Sniffed::Image(format @ (ImageFormat::Avif | ImageFormat::Heic))
            if !crate::decode::HEIF_SUPPORTED =>
        {
            return Err(Error::UnsupportedFormat(format!(
                "{} input needs a build with the `heif` feature (libheif); this one has none",
                format.name().to_uppercase()
            )));
        }
        Sniffed::Image(format) => format,
        Sniffed::Svg => {
            return Err(Error::UnsupportedFormat(
                "SVG is not accepted: it can carry scripts".into(),
            ));
        }
        Sniffed::Html => return Err(Error::UnsupportedFormat("HTML is not an image".into())),
        Sniffed::Unknown => {
            return Err(Error::UnsupportedFormat(
                "not a JPEG, PNG, GIF, WebP, AVIF or HEIC image (judged by its bytes)".into(),
            ));
        }
    };
    let (width, height) = dimensions(format, bytes)?;
    if width == 0 || height == 0 {
        return Err(Error::CorruptImage("zero width or height".into()));
    }
    let frames = match format {
        ImageFormat::Gif => gif_frames(bytes),
        ImageFormat::Webp => webp_frames(bytes, (width, height))?,
        _ => 1,
    };
    let mut progressive = false;
    // Where EXIF may be: a JPEG's APP1 comes before its first scan, so the reader is not given
    // the megabytes of entropy-coded data after it (it walks them a byte at a time).
    let mut metadata = bytes;
    if format == ImageFormat::Jpeg {
        let markers = jpeg_markers(bytes);
        if markers.scans > MAX_JPEG_SCANS {
            return Err(Error::CorruptImage(format!(
                "the JPEG has more than {MAX_JPEG_SCANS} scans"
            )));
        }
        progressive = markers.progressive;
        metadata = &bytes[..markers.first_scan.unwrap_or(bytes.len())];
    }
    Ok(Probe {
        format,
        width,
        height,
        // HEIF's own `irot`/`imir` orient it (libheif applies them, and `heif::dimensions`
        // counts them); its EXIF orientation only repeats them, so applying it would turn twice.
        orientation: if is_heif(format) {
            1
        } else {
            orientation(metadata)
        },
        frames,
        progressive,
    })
}

fn is_heif(format: ImageFormat) -> bool {
    matches!(format, ImageFormat::Avif | ImageFormat::Heic)
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::CorruptImage(e.to_string())
}

fn dimensions(format: ImageFormat, bytes: &[u8]) -> Result<(u32, u32)> {
    if format == ImageFormat::Jpeg {
        let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
        decoder.read_info().map_err(corrupt)?;
        let info = decoder.info().ok_or_else(|| corrupt("no frame header"))?;
        return Ok((u32::from(info.width), u32::from(info.height)));
    }
    if format == ImageFormat::Png {
        // IHDR is the first chunk: width and height as 32-bit big-endian at bytes 16..24. Read
        // here so a legal but huge size is named by our pixel limit, not refused as corrupt.
        let size = |i: usize| {
            bytes
                .get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        if bytes.get(12..16) == Some(b"IHDR")
            && let (Some(w), Some(h)) = (size(16), size(20))
        {
            return Ok((w, h));
        }
        return Err(corrupt("no PNG header chunk"));
    }
    if is_heif(format) {
        return heif::dimensions(bytes)
            .ok_or_else(|| corrupt("no size for the primary image in the HEIF header"));
    }
    if format == ImageFormat::Webp {
        // Read from the header ourselves: the decoder's own reader refuses a legal but huge
        // canvas as "corrupt" before our pixel limit can name it.
        return webp_dimensions(bytes).ok_or_else(|| corrupt("no WebP frame header"));
    }
    let image_format = match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Gif => image::ImageFormat::Gif,
        _ => image::ImageFormat::WebP,
    };
    image::ImageReader::with_format(Cursor::new(bytes), image_format)
        .into_dimensions()
        .map_err(corrupt)
}

/// Canvas size from the first chunk: `VP8X` (24-bit sizes minus one), `VP8L` (14-bit sizes
/// minus one after the 0x2F signature) or `VP8 ` (14-bit sizes after the key-frame start code).
fn webp_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let chunk = b.get(12..16)?;
    let le24 = |i: usize| {
        Some(u32::from_le_bytes([
            *b.get(i)?,
            *b.get(i + 1)?,
            *b.get(i + 2)?,
            0,
        ]))
    };
    match chunk {
        b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
        other => bitstream_dimensions(other, b.get(20..)?),
    }
}

/// The size a `VP8L` (14-bit sizes minus one) or `VP8 ` (the key frame's 14-bit sizes) chunk's
/// `payload` decodes to.
fn bitstream_dimensions(chunk: &[u8], payload: &[u8]) -> Option<(u32, u32)> {
    match chunk {
        b"VP8L" => {
            if *payload.first()? != 0x2F {
                return None;
            }
            let bits = u32::from_le_bytes(payload.get(1..5)?.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8 " => {
            if payload.get(3..6)? != [0x9D, 0x01, 0x2A] {
                return None;
            }
            let w = u16::from_le_bytes(payload.get(6..8)?.try_into().ok()?) & 0x3FFF;
            let h = u16::from_le_bytes(payload.get(8..10)?.try_into().ok()?) & 0x3FFF;
            Some((u32::from(w), u32::from(h)))
        }
        _ => None,
    }
}

/// EXIF orientation from any container kamadak-exif understands; 1 when absent or unreadable.
fn orientation(bytes: &[u8]) -> u8 {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return 1;
    };
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .filter(|o| (1..=8).contains(o))
        .map_or(1, |o| o as u8)
}

/// Counts image descriptors by walking GIF blocks, without decompressing anything. A truncated
/// file counts what it has; the decoder reports the damage.
fn gif_frames(b: &[u8]) -> u32 {
    let table_len = |packed: u8| {
        if packed & 0x80 != 0 {
            3usize << ((packed & 7) + 1)
        } else {
            0
        }
    };
    let skip_sub_blocks = |mut i: usize| {
        while let Some(&len) = b.get(i) {
            i += 1 + len as usize;
            if len == 0 {
                break;
            }
        }
        i
    };
    let Some(&packed) = b.get(10) else { return 0 };
    let mut i = 13 + table_len(packed);
    let mut frames = 0;
    while let Some(&block) = b.get(i) {
        match block {
            0x21 => i = skip_sub_blocks(i + 2),
            0x2C => {
                frames += 1;
                let Some(&packed) = b.get(i + 9) else { break };
                i = skip_sub_blocks(i + 10 + table_len(packed) + 1);
            }
            _ => break,
        }
    }
    frames
}

/// What a walk over a JPEG's marker segments learns.
#[derive(Debug, Default, PartialEq, Eq)]
struct JpegMarkers {
    /// Start-of-scan segments; the walk stops counting once past [`MAX_JPEG_SCANS`].
    scans: u32,
    progressive: bool,
    /// Offset of the first start-of-scan marker: every header segment is before it.
    first_scan: Option<usize>,
}

/// Walks JPEG segments without decoding ([`imgd_jpeg::segments`], the walk the decoder's ICC
/// reader uses too). Linear in the file size; a truncated file counts what it has.
fn jpeg_markers(b: &[u8]) -> JpegMarkers {
    let mut found = JpegMarkers::default();
    for segment in imgd_jpeg::segments(b) {
        found.progressive |= segment.is_progressive_frame();
        if segment.marker == imgd_jpeg::SOS {
            found.first_scan.get_or_insert(segment.offset);
            found.scans += 1;
            if found.scans > MAX_JPEG_SCANS {
                break;
            }
        }
    }
    found
}

/// Counts `ANMF` chunks of a WebP; a still WebP has one frame.
/// The frames of an animated WebP (1 for a still). Each frame's image must be the size its
/// `ANMF` header gives, inside the canvas: decoders allocate what the bitstream's own header
/// says before comparing it with the frame, so a 1x1 animation could otherwise make them
/// allocate 16383 x 16383 pixels for one frame, past everything the budget counted.
fn webp_frames(b: &[u8], canvas: (u32, u32)) -> Result<u32> {
    // Frames count only in a file that says it is animated (VP8X's animation flag): decoders
    // ignore ANMF chunks elsewhere, and a count they will not deliver would fail every render.
    let animated = b.len() > 20 && &b[12..16] == b"VP8X" && b[20] & 0x02 != 0;
    if !animated {
        return Ok(1);
    }
    let mut frames = 0;
    for (name, payload) in riff_chunks(b, 12) {
        if name == b"ANMF" {
            frames += 1;
            check_webp_frame(payload, canvas)?;
        }
    }
    Ok(frames.max(1))
}

/// RIFF chunks from `start`: (name, payload), the payload cut short where the file ends.
fn riff_chunks(b: &[u8], start: usize) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut i = start;
    std::iter::from_fn(move || {
        if i.saturating_add(8) > b.len() {
            return None;
        }
        let size = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let body = i + 8;
        let chunk = (
            &b[i..i + 4],
            &b[body..body.saturating_add(size).min(b.len())],
        );
        i = body.saturating_add(size).saturating_add(size & 1);
        Some(chunk)
    })
}

/// An `ANMF` payload: offset and size (24-bit fields), then the frame's own chunks.
fn check_webp_frame(payload: &[u8], canvas: (u32, u32)) -> Result<()> {
    let Some(header) = payload.get(..16) else {
        // Truncated: the decoder reports it when it gets there.
        return Ok(());
    };
    let le24 = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], 0]);
    let (x, y, w, h) = (le24(0) * 2, le24(3) * 2, le24(6) + 1, le24(9) + 1);
    if x + w > canvas.0 || y + h > canvas.1 {
        return Err(Error::CorruptImage(format!(
            "an animation frame of {w}x{h} at ({x}, {y}) leaves its {}x{} canvas",
            canvas.0, canvas.1
        )));
    }
    for (name, inner) in riff_chunks(payload, 16) {
        if let Some(size) = bitstream_dimensions(name, inner)
            && size != (w, h)
        {
            return Err(Error::CorruptImage(format!(
                "an animation frame's image is {}x{}, its frame {w}x{h}",
                size.0, size.1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RIFF chunk, padded to an even length as RIFF requires.
    fn chunk(name: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c = name.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    /// A 10x10 WebP with VP8X `flags` and these ANMF payloads.
    fn animated_webp(flags: u8, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        body.extend(chunk(b"VP8X", &[flags, 0, 0, 0, 9, 0, 0, 9, 0, 0]));
        for frame in frames {
            body.extend(chunk(b"ANMF", frame));
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }

    /// An ANMF payload: a `w` x `h` frame at (`x`, `y`) holding a VP8L header of `inner`.
    fn anmf(x: u32, y: u32, (w, h): (u32, u32), inner: (u32, u32)) -> Vec<u8> {
        let mut p = Vec::new();
        for v in [x / 2, y / 2, w - 1, h - 1, 100] {
            p.extend_from_slice(&v.to_le_bytes()[..3]);
        }
        p.push(0);
        let bits = (inner.0 - 1) | ((inner.1 - 1) << 14);
        let mut vp8l = vec![0x2F];
        vp8l.extend_from_slice(&bits.to_le_bytes());
        p.extend(chunk(b"VP8L", &vp8l));
        p
    }

    #[test]
    fn webp_frames_count_only_in_a_file_flagged_animated() {
        let frames = [anmf(0, 0, (4, 4), (4, 4)), anmf(2, 2, (8, 8), (8, 8))];
        assert_eq!(
            webp_frames(&animated_webp(0x02, &frames), (10, 10)).unwrap(),
            2
        );
        assert_eq!(
            webp_frames(&animated_webp(0x00, &frames), (10, 10)).unwrap(),
            1,
            "ANMF chunks without the flag are not frames"
        );
    }

    #[test]
    fn a_webp_frame_must_be_its_stated_size_inside_the_canvas() {
        let check = |frame: Vec<u8>| webp_frames(&animated_webp(0x02, &[frame]), (10, 10));
        // A 1x1 frame whose bitstream says 16383 x 16383: what a decoder would allocate.
        let lying = check(anmf(0, 0, (1, 1), (16383, 16383))).unwrap_err();
        assert_eq!(lying.code(), "corrupt_image");
        let outside = check(anmf(8, 8, (4, 4), (4, 4))).unwrap_err();
        assert_eq!(outside.code(), "corrupt_image");
        assert_eq!(check(anmf(6, 6, (4, 4), (4, 4))).unwrap(), 1);
    }

    #[test]
    fn counts_gif_frames_from_blocks() {
        let mut gif = b"GIF89a\x02\x00\x02\x00\x00\x00\x00".to_vec();
        for _ in 0..3 {
            gif.extend_from_slice(b"\x21\xF9\x04\x00\x00\x00\x00\x00");
            gif.extend_from_slice(b"\x2C\x00\x00\x00\x00\x02\x00\x02\x00\x00\x02\x02\x44\x01\x00");
        }
        gif.push(0x3B);
        assert_eq!(gif_frames(&gif), 3);
        assert_eq!(gif_frames(&gif[..30]), 1);
    }

    #[test]
    fn counts_jpeg_scans_and_refuses_thousands() {
        let jpeg = |scans: usize| {
            let mut b = vec![
                0xFF, 0xD8, 0xFF, 0xC2, 0x00, 0x0B, 8, 0, 1, 0, 1, 1, 1, 0x11, 0,
            ];
            for _ in 0..scans {
                b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 63, 0]);
                b.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56]);
            }
            b.extend_from_slice(&[0xFF, 0xD9]);
            b
        };
        assert_eq!(
            jpeg_markers(&jpeg(3)),
            JpegMarkers {
                scans: 3,
                progressive: true,
                first_scan: Some(15),
            }
        );
        assert_eq!(jpeg_markers(&jpeg(5000)).scans, MAX_JPEG_SCANS + 1);
    }

    #[test]
    fn reads_webp_canvas_sizes_from_every_header_kind() {
        let riff = |chunk: &[u8], body: &[u8]| {
            let mut b = b"RIFF\0\0\0\0WEBP".to_vec();
            b.extend_from_slice(chunk);
            b.extend_from_slice(&(body.len() as u32).to_le_bytes());
            b.extend_from_slice(body);
            b
        };
        let vp8x = riff(b"VP8X", &[0, 0, 0, 0, 0xFF, 0x3F, 0, 0xFE, 0x3F, 0]);
        assert_eq!(webp_dimensions(&vp8x), Some((16384, 16383)));
        let bits: u32 = 16383 | (16383 << 14);
        let mut vp8l = vec![0x2F];
        vp8l.extend_from_slice(&bits.to_le_bytes());
        assert_eq!(webp_dimensions(&riff(b"VP8L", &vp8l)), Some((16384, 16384)));
        let vp8 = riff(
            b"VP8 ",
            &[0, 0, 0, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00],
        );
        assert_eq!(webp_dimensions(&vp8), Some((320, 240)));
        let probed = probe(&riff(b"VP8L", &vp8l)).unwrap();
        assert_eq!((probed.width, probed.height), (16384, 16384));
    }

    #[test]
    fn refuses_non_images_with_their_reason() {
        assert_eq!(
            probe(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
                .unwrap_err()
                .code(),
            "unsupported_format"
        );
        assert_eq!(
            probe(b"<!doctype html>").unwrap_err().code(),
            "unsupported_format"
        );
        assert_eq!(
            probe(b"plain text").unwrap_err().code(),
            "unsupported_format"
        );
        assert_eq!(
            probe(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 2]).unwrap_err().code(),
            "corrupt_image"
        );
    }
}
