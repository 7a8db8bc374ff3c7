//! Originals: bytes, caching headers, conditional and range requests.

use crate::common::{TestServer, error_code, fixtures};

#[tokio::test]
async fn originals_stream_with_full_caching_semantics() {
    let server = TestServer::start().await;
    let bytes = fixtures::jpeg(120, 80);
    let id = server.upload_ok(bytes.clone()).await;
    let path = format!("/i/{id}");

    let response = server.get(&path).await;
    assert_eq!(response.status(), 200);
    let h = response.headers().clone();
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", blake3::hash(&bytes).to_hex()));
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(
        h["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    let last_modified = h["last-modified"].to_str().unwrap().to_owned();
    assert!(h.get("vary").is_none());
    assert_eq!(response.bytes().await.unwrap(), bytes);

    let head = server.client.head(server.url(&path)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    let revalidate = server
        .client
        .get(server.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidate.status(), 304);
    assert_eq!(revalidate.headers()["etag"].to_str().unwrap(), etag);
    assert!(revalidate.bytes().await.unwrap().is_empty());
    let stale = server
        .client
        .get(server.url(&path))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    let since = server
        .client
        .get(server.url(&path))
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(since.status(), 304);

    let partial = server
        .client
        .get(server.url(&path))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(
        partial.headers()["content-range"].to_str().unwrap(),
        format!("bytes 10-19/{}", bytes.len())
    );
    assert_eq!(partial.bytes().await.unwrap(), &bytes[10..20]);
    let suffix = server
        .client
        .get(server.url(&path))
        .header("range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.bytes().await.unwrap(), &bytes[bytes.len() - 5..]);
    let beyond = server
        .client
        .get(server.url(&path))
        .header("range", format!("bytes={}-", bytes.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        beyond.headers()["content-range"].to_str().unwrap(),
        format!("bytes */{}", bytes.len())
    );
    assert_eq!(
        error_code(beyond).await,
        (416, "range_not_satisfiable".into())
    );
    let stale_range = server
        .client
        .get(server.url(&path))
        .header("range", "bytes=0-1")
        .header("if-range", "\"old\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale_range.status(),
        200,
        "If-Range with an old ETag gets the whole file"
    );
}

#[tokio::test]
async fn a_large_original_streams_intact() {
    let server = TestServer::start().await;
    let bytes = fixtures::noisy_jpeg(1000, 800);
    assert!(
        bytes.len() > 1_000_000,
        "big enough to need many chunks: {}",
        bytes.len()
    );
    let id = server.upload_ok(bytes.clone()).await;
    assert_eq!(
        server.get(&format!("/i/{id}")).await.bytes().await.unwrap(),
        bytes
    );
}

#[tokio::test]
async fn a_node_alone_has_no_internal_endpoint_to_reach() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(32, 32)).await;
    let internal = server
        .client
        .get(server.url(&format!("/internal/v1/i/{id}/w=10")))
        .bearer_auth("any-guess-at-a-cluster-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(internal).await, (401, "unauthorized".into()));
}

/// Plain delivery paths are answered ahead of the router (the delivery lane); other shapes of
/// the same routes are routed. Both must give the same answer for the same request.
#[tokio::test]
async fn the_delivery_lane_and_the_router_answer_alike() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(120, 80)).await;
    let headers = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // `,` takes the lane; `%2C` is decoded by the router to the same options.
    let laned = server.get(&format!("/i/{id}/w=40,f=png")).await;
    let routed = server.get(&format!("/i/{id}/w=40%2Cf=png")).await;
    assert_eq!(
        (laned.status().as_u16(), routed.status().as_u16()),
        (200, 200)
    );
    for name in ["etag", "content-type", "cache-control", "content-length"] {
        assert_eq!(headers(&laned, name), headers(&routed, name), "{name}");
    }
    assert_eq!(laned.bytes().await.unwrap(), routed.bytes().await.unwrap());

    // Errors: the same status and stable code either way.
    let laned = server.get("/i/notanid/w=40").await;
    let routed = server.get("/i/notanid/w%3D40").await;
    let laned = error_code(laned).await;
    assert_eq!(laned.0 / 100, 4, "{laned:?}");
    assert_eq!(laned, error_code(routed).await);
    let laned = server.get(&format!("/i/{id}/w=nope")).await;
    let routed = server.get(&format!("/i/{id}/w%3Dnope")).await;
    let laned = error_code(laned).await;
    assert_eq!(laned.0, 400);
    assert_eq!(laned, error_code(routed).await);

    // What the lane does not take is routed as before: other methods, a third segment.
    let post = server
        .client
        .post(server.url(&format!("/i/{id}/w=40")))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    let deeper = server.get(&format!("/i/{id}/w=40/more")).await;
    assert_eq!(error_code(deeper).await, (404, "not_found".to_owned()));

    // Both are counted under the route template.
    let metrics = server.get("/metrics").await.text().await.unwrap();
    let variant_200s = metrics
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .filter(|l| l.contains("route=\"/i/{id}/{options}\"") && l.contains("status=\"200\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum::<u64>();
    assert!(variant_200s >= 2, "{metrics}");
}
