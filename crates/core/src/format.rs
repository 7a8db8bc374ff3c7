//! Image formats and magic-byte sniffing. The declared Content-Type and the file name are never
//! trusted: what the first bytes say is what the file is.

use serde::{Deserialize, Serialize};

/// A raster format imgd stores and serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
    Avif,
    /// HEIC/HEIF (HEVC-coded; every iPhone photo): stored and served as uploaded, decoded in
    /// builds with the `heif` feature, never an output.
    Heic,
}

impl ImageFormat {
    /// Every format, in the order `f=` lists them, then the input-only ones.
    pub const ALL: [ImageFormat; 6] = [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Webp,
        ImageFormat::Avif,
        ImageFormat::Heic,
    ];

    /// True for the formats a variant can be encoded in (`f=`); HEIC is read, never written:
    /// no browser but Safari displays it, and its encoder is patent-encumbered.
    pub fn is_output(self) -> bool {
        self != ImageFormat::Heic
    }

    /// True for the outputs that can carry an animation's frames (GIF and WebP); AVIF could,
    /// but its encoder here (rav1e through ravif) writes stills only.
    pub fn animates(self) -> bool {
        matches!(self, ImageFormat::Gif | ImageFormat::Webp)
    }

    /// The lowercase name used in JSON, options and storage.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::Gif => "gif",
            ImageFormat::Webp => "webp",
            ImageFormat::Avif => "avif",
            ImageFormat::Heic => "heic",
        }
    }

    /// The media type sent as Content-Type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Gif => "image/gif",
            ImageFormat::Webp => "image/webp",
            ImageFormat::Avif => "image/avif",
            ImageFormat::Heic => "image/heic",
        }
    }

    /// Parses [`ImageFormat::name`] (and the common alias `jpg`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "jpg" => Some(ImageFormat::Jpeg),
            _ => Self::ALL.into_iter().find(|f| f.name() == name),
        }
    }
}

/// What the first bytes of an upload say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// A raster format imgd knows.
    Image(ImageFormat),
    /// SVG or XML: refused, because serving it as-is would let scripts run on our origin.
    Svg,
    /// HTML: refused for the same reason.
    Html,
    /// Anything else.
    Unknown,
}

/// How many leading bytes [`sniff`] needs to decide.
pub const SNIFF_LEN: usize = 512;

/// Identifies a format from its magic bytes.
pub fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Sniffed::Image(ImageFormat::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Sniffed::Image(ImageFormat::Png);
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return Sniffed::Image(ImageFormat::Gif);
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Sniffed::Image(ImageFormat::Webp);
    }
    if let Some(format) = sniff_heif(head) {
        return Sniffed::Image(format);
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(SNIFF_LEN)]).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.contains("<svg") {
        return Sniffed::Svg;
    }
    if text.starts_with("<!doctype html") || text.starts_with("<html") || text.contains("<script") {
        return Sniffed::Html;
    }
    if text.starts_with("<?xml") {
        return Sniffed::Svg;
    }
    Sniffed::Unknown
}

/// ISO-BMFF images: a size, `ftyp`, a major brand, a minor version and compatible brands. The
/// codec-specific brand decides (AV1: AVIF; HEVC: HEIC), wherever it is listed: many files carry
/// the generic `mif1`/`msf1` as their major brand.
fn sniff_heif(head: &[u8]) -> Option<ImageFormat> {
    if head.len() < 12 || &head[4..8] != b"ftyp" {
        return None;
    }
    let declared = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let compatible = head.get(16..declared.min(head.len())).unwrap_or_default();
    let brands = std::iter::once(&head[8..12]).chain(compatible.chunks_exact(4));
    let mut generic = false;
    for brand in brands {
        match brand {
            b"avif" | b"avis" => return Some(ImageFormat::Avif),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"hevm" | b"hevs" => {
                return Some(ImageFormat::Heic);
            }
            b"mif1" | b"msf1" => generic = true,
            _ => {}
        }
    }
    // A generic HEIF naming no codec: libheif reads it; HEVC is the common case.
    generic.then_some(ImageFormat::Heic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_magic() {
        use ImageFormat::*;
        let cases: [(&[u8], Sniffed); 16] = [
            (&[0xFF, 0xD8, 0xFF, 0xE0], Sniffed::Image(Jpeg)),
            (b"\x89PNG\r\n\x1a\n....", Sniffed::Image(Png)),
            (b"GIF89a......", Sniffed::Image(Gif)),
            (b"RIFF\0\0\0\0WEBPVP8 ", Sniffed::Image(Webp)),
            (b"\0\0\0\x1cftypavif\0\0", Sniffed::Image(Avif)),
            (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", Sniffed::Image(Heic)),
            // The codec brand among the compatible ones decides, whatever the major brand.
            (
                b"\0\0\0\x1cftypmif1\0\0\0\0mif1miafavif",
                Sniffed::Image(Avif),
            ),
            (b"\0\0\0\x18ftypmif1\0\0\0\0mif1miaf", Sniffed::Image(Heic)),
            // An MP4 video is not an image.
            (b"\0\0\0\x18ftypisom\0\0\0\0isommp41", Sniffed::Unknown),
            (b"  <?xml version='1.0'?><svg xmlns=''>", Sniffed::Svg),
            (b"<!DOCTYPE html><html>", Sniffed::Html),
            (b"hello world", Sniffed::Unknown),
            (b"", Sniffed::Unknown),
            (b"RIFF", Sniffed::Unknown),
            (b"\0\0\0\x18ftyp", Sniffed::Unknown),
            (b"\0\0\0\x08ftypisom", Sniffed::Unknown),
        ];
        for (head, expected) in cases {
            assert_eq!(sniff(head), expected, "{head:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for f in ImageFormat::ALL {
            assert_eq!(ImageFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(ImageFormat::from_name("jpg"), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::from_name("bmp"), None);
    }
}
