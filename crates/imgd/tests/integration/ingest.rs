//! Uploads: formats, limits, hostile input, dedupe, multipart.

use reqwest::Method;

use crate::common::{TestServer, error_code, fixtures};

#[tokio::test]
async fn raw_upload_returns_the_documented_fields() {
    let server = TestServer::start().await;
    let bytes = fixtures::jpeg(64, 48);
    let response = server
        .api(Method::POST, "/images?filename=cat.jpg&tags=pets,cats")
        .header("content-type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["format"], "jpeg");
    assert_eq!(body["mime"], "image/jpeg");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(64), Some(48))
    );
    assert_eq!(body["bytes"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(body["frames"], 1);
    assert_eq!(body["hash"], blake3::hash(&bytes).to_hex().as_str());
    assert_eq!(body["filename"], "cat.jpg");
    assert_eq!(body["tags"], serde_json::json!(["pets", "cats"]));
    assert!(body["blurhash"].as_str().is_some_and(|b| b.len() >= 6));
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    let id = body["id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(body["urls"]["original"], format!("/i/{id}"));
}

#[tokio::test]
async fn every_accepted_format_is_sniffed_from_its_bytes() {
    let server = TestServer::start().await;
    let cases = [
        (fixtures::jpeg(20, 10), "jpeg", 1),
        (fixtures::png(20, 10), "png", 1),
        (fixtures::gif(20, 10, 3), "gif", 3),
        (fixtures::webp(20, 10), "webp", 1),
    ];
    for (bytes, format, frames) in cases {
        // The declared type is deliberately wrong: only the bytes count.
        let response = server
            .api(Method::POST, "/images?filename=lies.txt")
            .header("content-type", "text/plain")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{format}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["format"], format);
        assert_eq!(body["frames"], frames, "{format}");
        assert_eq!(
            (body["width"].as_u64(), body["height"].as_u64()),
            (Some(20), Some(10))
        );
    }
}

#[tokio::test]
async fn dimensions_follow_exif_orientation() {
    let server = TestServer::start().await;
    let (status, body) = server
        .upload(fixtures::jpeg_with_orientation(40, 20, 6))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(20), Some(40))
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let server = TestServer::start_with(&[("IMGD_LIMITS__MAX_FRAMES", "4")]).await;
    let jpeg = fixtures::jpeg(300, 200);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("text", b"just some text".to_vec(), 415, "unsupported_format"),
        ("empty", Vec::new(), 400, "empty_upload"),
        ("truncated jpeg", jpeg[..jpeg.len() / 2].to_vec(), 422, "corrupt_image"),
        ("jpeg header only", jpeg[..200].to_vec(), 422, "corrupt_image"),
        ("html", b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec(), 415, "unsupported_format"),
        ("svg", b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec(), 415, "unsupported_format"),
        ("bare svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>".to_vec(), 415, "unsupported_format"),
        ("png bomb", fixtures::png_declaring(40_000, 40_000), 422, "too_many_pixels"),
        ("too many frames", fixtures::gif(8, 8, 5), 422, "too_many_frames"),
        ("png with broken body", fixtures::png_declaring(64, 64), 422, "corrupt_image"),
    ];
    for (name, bytes, status, code) in cases {
        let response = server
            .api(Method::POST, "/images")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (status, code.to_owned()),
            "{name}"
        );
    }
    let list: serde_json::Value = server.api_json(Method::GET, "/images").await;
    assert_eq!(
        list["images"].as_array().unwrap().len(),
        0,
        "nothing was recorded"
    );
    assert!(server.files_under("blobs").is_empty(), "nothing was stored");
    assert!(server.files_under("tmp").is_empty(), "no staging leftovers");
}

#[tokio::test]
async fn the_byte_limit_answers_413_streamed_or_announced() {
    let server = TestServer::start_with(&[("IMGD_LIMITS__MAX_UPLOAD_BYTES", "1000")]).await;
    let big = fixtures::jpeg(200, 200);
    assert!(big.len() > 1000);
    let announced = server
        .api(Method::POST, "/images")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(announced).await,
        (413, "payload_too_large".into())
    );
    // Without Content-Length (chunked), the limit is enforced while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(300).map(|c| Ok(c.to_vec())).collect();
    let streamed = server
        .api(Method::POST, "/images")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(streamed).await,
        (413, "payload_too_large".into())
    );
    assert!(server.files_under("tmp").is_empty());
}

#[tokio::test]
async fn identical_bytes_are_stored_once_with_distinct_ids() {
    let server = TestServer::start().await;
    let bytes = fixtures::png(30, 30);
    let (_, a) = server.upload(bytes.clone()).await;
    let (_, b) = server.upload(bytes.clone()).await;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["hash"], b["hash"]);
    assert_eq!(server.files_under("blobs").len(), 1);

    // Deleting one keeps the bytes for the other; deleting both leaves them to the collector
    // (see gc.rs), which removes them and their variants after the grace period.
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    assert_eq!(
        server
            .api_status(Method::DELETE, &format!("/images/{a}"))
            .await,
        204
    );
    assert_eq!(
        server.get(&format!("/i/{b}")).await.bytes().await.unwrap(),
        bytes
    );
    assert_eq!(server.get(&format!("/i/{b}/w=10")).await.status(), 200);
    assert_eq!(server.files_under("blobs").len(), 1);
    assert_eq!(
        server
            .api_status(Method::DELETE, &format!("/images/{b}"))
            .await,
        204
    );
    assert_eq!(server.files_under("blobs").len(), 1, "until collected");
}

#[tokio::test]
async fn multipart_uploads_give_per_file_results() {
    let server = TestServer::start().await;
    let one = reqwest::multipart::Form::new().text("tags", "a,b").part(
        "file",
        reqwest::multipart::Part::bytes(fixtures::jpeg(10, 10)).file_name("one.jpg"),
    );
    let response = server
        .api(Method::POST, "/images")
        .multipart(one)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["filename"], "one.jpg");
    assert_eq!(body["tags"], serde_json::json!(["a", "b"]));

    let several = reqwest::multipart::Form::new()
        .text("metadata", r#"{"album":"x"}"#)
        .part(
            "file",
            reqwest::multipart::Part::bytes(fixtures::png(10, 10)).file_name("ok.png"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"nope".to_vec()).file_name("bad.txt"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(fixtures::gif(5, 5, 2)).file_name("ok.gif"),
        );
    let response = server
        .api(Method::POST, "/images")
        .multipart(several)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 207);
    let body: serde_json::Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![201, 415, 201]);
    assert_eq!(results[0]["image"]["metadata"]["album"], "x");
    assert_eq!(results[1]["error"]["code"], "unsupported_format");
    assert_eq!(results[2]["image"]["format"], "gif");

    let empty = reqwest::multipart::Form::new().text("tags", "x");
    let response = server
        .api(Method::POST, "/images")
        .multipart(empty)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (400, "missing_file".into()));
    let bad_field = reqwest::multipart::Form::new().text("tenant_id", "x");
    let response = server
        .api(Method::POST, "/images")
        .multipart(bad_field)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (400, "unknown_field".into()));
}
