//! Variants: the option language over HTTP, formats, caching, render-once.

use imgd_core::format::{ImageFormat, Sniffed, sniff};

use crate::common::{TestServer, error_code, fetch, fixtures, probe};

#[tokio::test]
async fn resizes_crops_and_converts() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(400, 200)).await;
    let cases: Vec<(&str, ImageFormat, (u32, u32))> = vec![
        ("w=100", ImageFormat::Jpeg, (100, 50)),
        ("h=50", ImageFormat::Jpeg, (100, 50)),
        ("w=100,h=100,fit=cover", ImageFormat::Jpeg, (100, 100)),
        (
            "w=100,h=100,fit=cover,g=smart",
            ImageFormat::Jpeg,
            (100, 100),
        ),
        ("w=100,h=100,fit=cover,g=ne", ImageFormat::Jpeg, (100, 100)),
        (
            "w=100,h=100,fit=contain,f=png",
            ImageFormat::Png,
            (100, 100),
        ),
        ("w=100,h=100,fit=fill", ImageFormat::Jpeg, (100, 100)),
        ("w=100,h=100", ImageFormat::Jpeg, (100, 50)),
        ("w=100,h=100,fit=outside", ImageFormat::Jpeg, (200, 100)),
        ("w=4000", ImageFormat::Jpeg, (400, 200)),
        ("w=50,dpr=2", ImageFormat::Jpeg, (100, 50)),
        ("w=100,rotate=90", ImageFormat::Jpeg, (100, 200)),
        ("w=100,blur=3", ImageFormat::Jpeg, (100, 50)),
        ("w=100,f=webp,q=50", ImageFormat::Webp, (100, 50)),
        ("w=100,f=png", ImageFormat::Png, (100, 50)),
        ("w=40,f=avif", ImageFormat::Avif, (40, 20)),
        ("w=100,f=gif", ImageFormat::Gif, (100, 50)),
        ("thumb", ImageFormat::Jpeg, (200, 200)),
        ("thumb,f=webp", ImageFormat::Webp, (200, 200)),
    ];
    for (options, format, size) in cases {
        let (headers, bytes) = fetch(&server, &format!("/i/{id}/{options}"), None).await;
        assert_eq!(headers["content-type"], format.mime(), "{options}");
        assert_eq!(sniff(&bytes), Sniffed::Image(format), "{options}");
        if format != ImageFormat::Avif {
            let p = probe(&bytes);
            assert_eq!((p.width, p.height), size, "{options}");
        }
        // A preset's meaning can be switched by its owner, so URLs naming one are not forever.
        let expected = if options.starts_with("thumb") {
            "public, max-age=60"
        } else {
            "public, max-age=31536000, immutable"
        };
        assert_eq!(headers["cache-control"], expected, "{options}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn exif_orientation_is_applied_to_variants() {
    let server = TestServer::start().await;
    let id = server
        .upload_ok(fixtures::jpeg_with_orientation(40, 20, 6))
        .await;
    let (_, bytes) = fetch(&server, &format!("/i/{id}/w=10"), None).await;
    let p = probe(&bytes);
    assert_eq!(
        (p.width, p.height, p.orientation),
        (10, 20, 1),
        "rotated upright, EXIF stripped"
    );
}

#[tokio::test]
async fn alpha_survives_png_and_webp() {
    let server = TestServer::start().await;
    let png = server.upload_ok(fixtures::png(64, 32)).await;
    for f in ["png", "webp"] {
        let (_, bytes) = fetch(&server, &format!("/i/{png}/w=32,f={f}"), None).await;
        let decoded = crate::common::decoded(&bytes);
        assert!(decoded.color().has_alpha(), "{f}");
    }
}

#[tokio::test]
async fn order_of_options_does_not_matter_and_the_second_request_is_a_hit() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(300, 300)).await;
    let (first, a) = fetch(
        &server,
        &format!("/i/{id}/w=120,h=80,fit=cover,f=webp"),
        None,
    )
    .await;
    assert_eq!(first["x-imgd-cache"], "miss");
    let (second, b) = fetch(
        &server,
        &format!("/i/{id}/f=webp,fit=cover,h=80,w=120"),
        None,
    )
    .await;
    assert_eq!(second["x-imgd-cache"], "hit-memory");
    assert_eq!(first["etag"], second["etag"]);
    assert_eq!(a, b);
    let (third, _) = fetch(
        &server,
        &format!("/i/{id}/w=60,h=40,dpr=2,fit=cover,f=webp"),
        None,
    )
    .await;
    assert_eq!(third["etag"], first["etag"], "dpr folds into pixels");

    let etag = first["etag"].to_str().unwrap();
    let revalidated = server
        .client
        .get(server.url(&format!("/i/{id}/w=120,h=80,fit=cover,f=webp")))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    let ranged = server
        .client
        .get(server.url(&format!("/i/{id}/w=120,h=80,fit=cover,f=webp")))
        .header("range", "bytes=0-11")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(&ranged.bytes().await.unwrap()[..4], b"RIFF");
}

#[tokio::test]
async fn variants_survive_a_restart_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let first_server = TestServer::start_in(dir.path(), &[]).await;
    let id = first_server.upload_ok(fixtures::jpeg(100, 100)).await;
    let (first, bytes) = fetch(&first_server, &format!("/i/{id}/w=30"), None).await;
    assert_eq!(first["x-imgd-cache"], "miss");
    assert_eq!(
        first_server.files_under("variants").len(),
        1,
        "the variant is stored"
    );
    drop(first_server);
    let second_server = TestServer::start_in(dir.path(), &[]).await;
    let (second, again) = fetch(&second_server, &format!("/i/{id}/w=30"), None).await;
    assert_eq!(
        second["x-imgd-cache"], "hit-store",
        "served from the store, not rendered again"
    );
    assert_eq!(second["etag"], first["etag"]);
    assert_eq!(bytes, again);
}

#[tokio::test]
async fn auto_format_follows_accept_and_varies() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(80, 60)).await;
    let path = format!("/i/{id}/w=40,f=auto");
    for (accept, format) in [
        ("image/avif,image/webp,*/*", ImageFormat::Avif),
        ("image/webp,*/*", ImageFormat::Webp),
        ("*/*", ImageFormat::Jpeg),
    ] {
        let (headers, bytes) = fetch(&server, &path, Some(accept)).await;
        assert_eq!(headers["vary"], "Accept", "{accept}");
        assert_eq!(headers["content-type"], format.mime(), "{accept}");
        assert_eq!(sniff(&bytes), Sniffed::Image(format));
    }
    let (fixed, _) = fetch(&server, &format!("/i/{id}/w=40,f=webp"), Some("image/avif")).await;
    assert!(fixed.get("vary").is_none(), "a fixed format does not vary");
}

#[tokio::test]
async fn bad_options_are_400_with_a_code() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(20, 20)).await;
    for (options, code) in [
        ("w=abc", "invalid_option"),
        ("w=0", "option_out_of_range"),
        ("w=100000", "option_out_of_range"),
        ("w=5000,dpr=2", "option_out_of_range"),
        ("q=0", "option_out_of_range"),
        ("fit=stretch", "invalid_option"),
        ("g=middle", "invalid_option"),
        ("f=tiff", "invalid_option"),
        ("rotate=45", "option_out_of_range"),
        ("blur=1000", "option_out_of_range"),
        ("w=1,w=2", "duplicate_option"),
        ("nosuchpreset", "unknown_preset"),
        ("zoom=3", "invalid_option"),
        ("w=8000,h=8000,fit=fill", "option_out_of_range"),
    ] {
        let response = server.get(&format!("/i/{id}/{options}")).await;
        assert_eq!(error_code(response).await, (400, code.into()), "{options}");
    }
}

#[tokio::test]
async fn concurrent_requests_for_a_new_variant_render_it_once() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(1200, 900)).await;
    let path = format!("/i/{id}/w=300,h=300,fit=cover,g=smart,f=webp");
    let requests = (0..24).map(|_| fetch(&server, &path, None));
    let results = futures::future::join_all(requests).await;
    let misses = results
        .iter()
        .filter(|(h, _)| h["x-imgd-cache"] == "miss")
        .count();
    assert_eq!(misses, 1, "exactly one request rendered");
    assert!(
        results.iter().all(|(_, body)| body == &results[0].1),
        "everyone got the same bytes"
    );
    assert_eq!(server.files_under("variants").len(), 1);
}
