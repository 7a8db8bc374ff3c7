//! Animated variants: a GIF or animated WebP keeps its frames, their timing and its loop in GIF
//! and WebP outputs; a still format, or an animation past `render.max_animation_pixels`, gets
//! the first frame and says so in `x-imgd-animation`, on the first render and on every hit.

use std::io::Cursor;

use image::codecs::{gif::GifDecoder, webp::WebPDecoder};
use image::{AnimationDecoder, Frame};

use crate::common::{TestServer, fetch, fixtures, probe};

const CHROME: &str = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8";

/// Every frame of an animated GIF or WebP, decoded by the `image` crate.
fn frames_of(bytes: &[u8]) -> Vec<Frame> {
    let frames = if bytes.starts_with(b"GIF") {
        GifDecoder::new(Cursor::new(bytes)).unwrap().into_frames()
    } else {
        WebPDecoder::new(Cursor::new(bytes)).unwrap().into_frames()
    };
    frames.collect::<Result<Vec<_>, _>>().unwrap()
}

fn delays_ms(frames: &[Frame]) -> Vec<u32> {
    frames
        .iter()
        .map(|f| {
            let (n, d) = f.delay().numer_denom_ms();
            n / d
        })
        .collect()
}

/// The red channel of each frame's centre: the fixture paints frame i with red = i * 60.
fn reds(frames: &[Frame]) -> Vec<u8> {
    frames
        .iter()
        .map(|f| {
            let b = f.buffer();
            b.get_pixel(b.width() / 2, b.height() / 2)[0]
        })
        .collect()
}

#[tokio::test]
async fn a_gif_keeps_its_frames_timing_and_loop_in_gif_and_webp() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::gif(60, 40, 3)).await;

    let (headers, gif) = fetch(&server, &format!("/i/{id}/w=30"), None).await;
    assert_eq!(headers["content-type"], "image/gif");
    assert!(headers.get("x-imgd-animation").is_none());
    let frames = frames_of(&gif);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].buffer().dimensions(), (30, 20));
    assert_eq!(delays_ms(&frames), [100, 100, 100]);
    assert_eq!(reds(&frames), [0, 60, 120], "the frames in their order");
    assert!(
        gif.windows(11).any(|w| w == b"NETSCAPE2.0"),
        "loops forever, as the source does"
    );
    assert_eq!(probe(&gif).frames, 3);

    let (headers, webp) = fetch(&server, &format!("/i/{id}/w=30,f=webp"), None).await;
    assert_eq!(headers["content-type"], "image/webp");
    let frames = frames_of(&webp);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].buffer().dimensions(), (30, 20));
    assert_eq!(delays_ms(&frames), [100, 100, 100]);
    for (red, expected) in reds(&frames).into_iter().zip([0u8, 60, 120]) {
        assert!(
            red.abs_diff(expected) <= 8,
            "lossy, close: {red} vs {expected}"
        );
    }

    // An animated WebP is a source too: it moves in both outputs.
    let webp_id = server.upload_ok(webp).await;
    for (options, mime) in [("w=20", "image/webp"), ("w=20,f=gif", "image/gif")] {
        let (headers, bytes) = fetch(&server, &format!("/i/{webp_id}/{options}"), None).await;
        assert_eq!(headers["content-type"], mime, "{options}");
        let frames = frames_of(&bytes);
        assert_eq!(frames.len(), 3, "{options}");
        assert_eq!(delays_ms(&frames), [100, 100, 100], "{options}");
    }
}

#[tokio::test]
async fn auto_picks_a_format_that_moves() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::gif(40, 40, 4)).await;
    let (headers, bytes) = fetch(&server, &format!("/i/{id}/w=20,f=auto"), Some(CHROME)).await;
    assert_eq!(
        headers["content-type"], "image/webp",
        "not AVIF, which would be a still"
    );
    assert_eq!(headers["vary"], "Accept");
    assert_eq!(frames_of(&bytes).len(), 4);
    let (headers, bytes) = fetch(&server, &format!("/i/{id}/w=20,f=auto"), Some("*/*")).await;
    assert_eq!(headers["content-type"], "image/gif");
    assert_eq!(frames_of(&bytes).len(), 4);
}

#[tokio::test]
async fn a_still_says_it_is_the_first_frame_on_every_answer() {
    let server = TestServer::start_with(&[
        // 3 frames of 60 x 40 = 7200 pixels of work: allowed; 4 frames of 60 x 40 are not.
        ("IMGD_RENDER__MAX_ANIMATION_PIXELS", "8000"),
    ])
    .await;
    let short = server.upload_ok(fixtures::gif(60, 40, 3)).await;
    let long = server.upload_ok(fixtures::gif(60, 40, 4)).await;

    let (headers, bytes) = fetch(&server, &format!("/i/{short}/w=30"), None).await;
    assert!(headers.get("x-imgd-animation").is_none());
    assert_eq!(frames_of(&bytes).len(), 3);

    // `f=auto` picks for the frames; when they cannot be kept it picks as for a still.
    let (headers, bytes) = fetch(&server, &format!("/i/{long}/w=30,f=auto"), Some("*/*")).await;
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-imgd-animation"], "first-frame; reason=budget");
    assert_eq!(probe(&bytes).frames, 1);

    let cases = [
        (format!("/i/{long}/w=30"), "first-frame; reason=budget"),
        (
            format!("/i/{short}/w=30,f=jpeg"),
            "first-frame; reason=format",
        ),
        (
            format!("/i/{short}/w=30,f=avif"),
            "first-frame; reason=format",
        ),
    ];
    for (path, reason) in cases {
        let (first, bytes) = fetch(&server, &path, None).await;
        assert_eq!(first["x-imgd-cache"], "miss", "{path}");
        assert_eq!(first["x-imgd-animation"], reason, "{path}");
        if !path.ends_with("avif") {
            // (The default build's probe does not read AVIF; its encoder writes stills only.)
            assert_eq!(probe(&bytes).frames, 1, "{path}");
        }
        // A hit, a HEAD and a revalidation say the same.
        let (hit, _) = fetch(&server, &path, None).await;
        assert_eq!(hit["x-imgd-cache"], "hit-memory", "{path}");
        assert_eq!(hit["x-imgd-animation"], reason, "{path}");
        let head = server.client.head(server.url(&path)).send().await.unwrap();
        assert_eq!(head.headers()["x-imgd-animation"], reason, "{path}");
        let revalidated = server
            .client
            .get(server.url(&path))
            .header("if-none-match", first["etag"].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304, "{path}");
        assert_eq!(revalidated.headers()["x-imgd-animation"], reason, "{path}");
    }
}
