//! AVIF and HEIC sources: accepted and rendered by builds with the `heif` feature (libheif in a
//! memory-capped child process), refused with a clear 415 by builds without it.
//!
//! The HEIC files come from `tests/fixtures` (made by libheif's `heif-enc` with x265; no Rust
//! crate encodes HEVC, see `tests/fixtures/README.md`); the AVIF files are imgd's own output.

use reqwest::Method;

use crate::common::TestServer;

/// 640x480: red rises left to right, green top to bottom, blue rings round the centre.
const PHOTO_HEIC: &[u8] = include_bytes!("../fixtures/photo.heic");

#[cfg(feature = "heif")]
mod decoded {
    use imgd_core::format::{ImageFormat, Sniffed, sniff};

    use super::*;
    use crate::common::{decoded, error_code, fixtures, probe};

    /// 320x240 with alpha: an opaque disc on a transparent ground.
    const ALPHA_HEIC: &[u8] = include_bytes!("../fixtures/alpha.heic");
    /// Headers say 64x64; the HEVC stream inside is 8192x8192 (`ispe` rewritten).
    const LYING_HEIC: &[u8] = include_bytes!("../fixtures/lying-8k.heic");
    /// 4032x3024 (a 12 MP phone photo's size), a grey ramp.
    const PHONE_HEIC: &[u8] = include_bytes!("../fixtures/phone-12mp.heic");
    /// The same lie in AV1.
    const LYING_AVIF: &[u8] = include_bytes!("../fixtures/lying-8k.avif");

    async fn get(server: &TestServer, path: &str) -> (String, Vec<u8>) {
        let response = server.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (kind, response.bytes().await.unwrap().to_vec())
    }

    /// Uploads `bytes`, checks the recorded format and size, returns the record.
    async fn upload_as(
        server: &TestServer,
        bytes: &[u8],
        format: &str,
        size: (u64, u64),
    ) -> serde_json::Value {
        let (status, body) = server.upload(bytes.to_vec()).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["format"], format, "{body}");
        assert_eq!(
            (body["width"].as_u64(), body["height"].as_u64()),
            (Some(size.0), Some(size.1)),
            "{body}"
        );
        body
    }

    fn rgba(bytes: &[u8]) -> image::RgbaImage {
        decoded(bytes).to_rgba8()
    }

    /// The mean of the pixels in the square of side `side` whose top-left corner is `at`.
    fn mean(image: &image::RgbaImage, at: (u32, u32), side: u32) -> [f64; 4] {
        let mut sum = [0f64; 4];
        for y in at.1..at.1 + side {
            for x in at.0..at.0 + side {
                for (s, v) in sum.iter_mut().zip(image.get_pixel(x, y).0) {
                    *s += f64::from(v);
                }
            }
        }
        sum.map(|s| s / f64::from(side * side))
    }

    #[tokio::test]
    async fn a_heic_photo_is_stored_as_is_and_rendered_to_what_browsers_show() {
        let server = TestServer::start().await;
        let body = upload_as(&server, PHOTO_HEIC, "heic", (640, 480)).await;
        assert!(
            body["blurhash"].as_str().is_some_and(|h| h.len() > 6),
            "{body}"
        );
        let id = body["id"].as_str().unwrap();

        let (kind, original) = get(&server, &format!("/i/{id}")).await;
        assert_eq!(
            (kind.as_str(), original.as_slice()),
            ("image/heic", PHOTO_HEIC)
        );

        // No `f`: HEIC is never an output, so the variant is a JPEG.
        let (kind, variant) = get(&server, &format!("/i/{id}/w=320")).await;
        assert_eq!(kind, "image/jpeg");
        let pixels = rgba(&variant);
        assert_eq!(pixels.dimensions(), (320, 240));
        // The picture survived: red grows to the right, green downwards.
        let (left, right) = (mean(&pixels, (8, 112), 16), mean(&pixels, (296, 112), 16));
        let (top, bottom) = (mean(&pixels, (152, 8), 16), mean(&pixels, (152, 216), 16));
        assert!(right[0] - left[0] > 150.0, "red {left:?} -> {right:?}");
        assert!(bottom[1] - top[1] > 150.0, "green {top:?} -> {bottom:?}");

        let (kind, webp) = get(&server, &format!("/i/{id}/w=100,f=webp")).await;
        assert_eq!(kind, "image/webp");
        assert_eq!(probe(&webp).width, 100);

        let refused = server.get(&format!("/i/{id}/w=100,f=heic")).await;
        assert_eq!(error_code(refused).await, (400, "invalid_option".into()));
    }

    #[tokio::test]
    async fn an_avif_source_renders_like_the_jpeg_it_was_made_from() {
        let server = TestServer::start().await;
        let jpeg = server.upload_ok(fixtures::jpeg(400, 200)).await;
        let (_, avif) = get(&server, &format!("/i/{jpeg}/f=avif,q=90")).await;
        assert_eq!(sniff(&avif), Sniffed::Image(ImageFormat::Avif));

        let avif = upload_as(&server, &avif, "avif", (400, 200)).await;
        let id = avif["id"].as_str().unwrap();
        let (kind, from_avif) = get(&server, &format!("/i/{id}/w=100,f=png")).await;
        assert_eq!(kind, "image/png");
        let (_, from_jpeg) = get(&server, &format!("/i/{jpeg}/w=100,f=png")).await;
        let (a, b) = (rgba(&from_avif), rgba(&from_jpeg));
        assert_eq!(a.dimensions(), (100, 50));
        for at in [(0, 0), (42, 17), (84, 34)] {
            let (x, y) = (mean(&a, at, 16), mean(&b, at, 16));
            for c in 0..3 {
                assert!((x[c] - y[c]).abs() < 12.0, "at {at:?}: {x:?} vs {y:?}");
            }
        }
    }

    #[tokio::test]
    async fn heic_transparency_is_kept_where_the_output_has_alpha() {
        let server = TestServer::start().await;
        let id = server.upload_ok(ALPHA_HEIC.to_vec()).await;
        let (_, png) = get(&server, &format!("/i/{id}/f=png")).await;
        let pixels = rgba(&png);
        assert_eq!(pixels.dimensions(), (320, 240));
        assert!(
            mean(&pixels, (0, 0), 8)[3] < 8.0,
            "the corner is transparent"
        );
        assert!(
            mean(&pixels, (152, 112), 16)[3] > 247.0,
            "the centre is opaque"
        );
    }

    /// A phone-sized photo (4032x3024) fits the default memory budget (256 MiB) both when its
    /// upload is inspected and when it is rendered, though neither codec decodes at a fraction.
    #[tokio::test]
    async fn a_twelve_megapixel_phone_photo_fits_the_default_budget() {
        let server = TestServer::start().await;
        let phone = upload_as(&server, PHONE_HEIC, "heic", (4032, 3024)).await;
        let id = phone["id"].as_str().unwrap();
        let (kind, variant) = get(&server, &format!("/i/{id}/w=400")).await;
        assert_eq!(kind, "image/jpeg");
        assert_eq!(rgba(&variant).dimensions(), (400, 300));
    }

    /// libheif decodes the stream at its own size whatever the header says (at 8192x8192 that
    /// is hundreds of MB for a 64x64 image); the child's memory cap and its size check turn
    /// that into a 422, and the server goes on.
    #[tokio::test]
    async fn a_stream_larger_than_its_header_is_refused_without_harm() {
        let server = TestServer::start().await;
        for (name, bytes) in [("heic", LYING_HEIC), ("avif", LYING_AVIF)] {
            assert_eq!(probe(bytes).width, 64, "{name}: the header lies");
            let started = std::time::Instant::now();
            let response = server
                .api(Method::POST, "/images")
                .body(bytes.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(
                error_code(response).await,
                (422, "corrupt_image".into()),
                "{name}"
            );
            assert!(
                started.elapsed().as_secs() < 20,
                "{name}: {:?}",
                started.elapsed()
            );
        }
        let list = server.api_json(Method::GET, "/images").await;
        assert_eq!(list["images"].as_array().map(Vec::len), Some(0), "{list}");
        // Still serving.
        server.upload_ok(PHOTO_HEIC.to_vec()).await;
    }
}

#[cfg(not(feature = "heif"))]
#[tokio::test]
async fn builds_without_libheif_refuse_heic_and_name_the_feature() {
    let server = TestServer::start().await;
    let response = server
        .api(Method::POST, "/images")
        .body(PHOTO_HEIC.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unsupported_format");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`heif` feature"),
        "{body}"
    );
}
