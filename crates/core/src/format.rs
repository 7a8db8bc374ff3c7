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
}

impl ImageFormat {
    /// Every format, in the order `f=` lists them.
    pub const ALL: [ImageFormat; 5] = [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Webp,
        ImageFormat::Avif,
    ];

    /// The lowercase name used in JSON, options and storage.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::Gif => "gif",
            ImageFormat::Webp => "webp",
            ImageFormat::Avif => "avif",
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
    // ISO-BMFF: a size, then `ftyp` and a major brand.
    if head.len() >= 12 && &head[4..8] == b"ftyp" && matches!(&head[8..12], b"avif" | b"avis") {
        return Sniffed::Image(ImageFormat::Avif);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_magic() {
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Sniffed::Image(ImageFormat::Jpeg)
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n...."),
            Sniffed::Image(ImageFormat::Png)
        );
        assert_eq!(sniff(b"GIF89a......"), Sniffed::Image(ImageFormat::Gif));
        assert_eq!(
            sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Sniffed::Image(ImageFormat::Webp)
        );
        assert_eq!(
            sniff(b"\0\0\0\x1cftypavif\0\0"),
            Sniffed::Image(ImageFormat::Avif)
        );
        assert_eq!(
            sniff(b"  <?xml version='1.0'?><svg xmlns=''>"),
            Sniffed::Svg
        );
        assert_eq!(sniff(b"<!DOCTYPE html><html>"), Sniffed::Html);
        assert_eq!(sniff(b"hello world"), Sniffed::Unknown);
        assert_eq!(sniff(b""), Sniffed::Unknown);
        assert_eq!(sniff(b"RIFF"), Sniffed::Unknown);
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
