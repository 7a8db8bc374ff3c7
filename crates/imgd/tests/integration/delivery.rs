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
    let variant_200s = || async {
        let metrics = server.get("/metrics").await.text().await.unwrap();
        metrics
            .lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
            .filter(|l| l.contains("route=\"/i/{id}/{options}\"") && l.contains("status=\"200\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    let counted_before = variant_200s().await;

    // `,` takes the lane; `%2C` is decoded by the router to the same options.
    let (lane, routed) = (
        format!("/i/{id}/w=40,f=png"),
        format!("/i/{id}/w=40%2Cf=png"),
    );
    let request =
        |method: reqwest::Method, path: &str| server.client.request(method, server.url(path));
    // Rendered once first, so both answer from the memory cache (`x-imgd-cache` agrees).
    let rendered = request(reqwest::Method::GET, &lane).send().await.unwrap();
    assert_eq!(rendered.headers()["x-imgd-cache"], "miss");
    let laned = request(reqwest::Method::GET, &lane).send().await.unwrap();
    let etag = laned.headers()["etag"].to_str().unwrap().to_owned();
    let conditional =
        |path: &str| request(reqwest::Method::GET, path).header("if-none-match", etag.as_str());
    let pairs = [
        (
            laned,
            request(reqwest::Method::GET, &routed).send().await.unwrap(),
        ),
        (
            request(reqwest::Method::HEAD, &lane).send().await.unwrap(),
            request(reqwest::Method::HEAD, &routed)
                .send()
                .await
                .unwrap(),
        ),
        (
            conditional(&lane).send().await.unwrap(),
            conditional(&routed).send().await.unwrap(),
        ),
    ];
    let mut statuses = Vec::new();
    for (laned, routed) in pairs {
        assert_eq!(laned.status(), routed.status());
        statuses.push(laned.status().as_u16());
        let mut names: Vec<_> = laned.headers().keys().filter(|n| *n != "date").collect();
        let mut routed_names: Vec<_> = routed.headers().keys().filter(|n| *n != "date").collect();
        names.sort_by_key(|n| n.as_str().to_owned());
        routed_names.sort_by_key(|n| n.as_str().to_owned());
        assert_eq!(names, routed_names, "{}", laned.status());
        for name in names {
            assert_eq!(laned.headers()[name], routed.headers()[name], "{name}");
        }
        assert_eq!(laned.bytes().await.unwrap(), routed.bytes().await.unwrap());
    }
    assert_eq!(statuses, [200, 200, 304]);

    // Errors: the same status and stable code either way.
    let laned = error_code(server.get("/i/notanid/w=40").await).await;
    assert_eq!(laned.0 / 100, 4, "{laned:?}");
    assert_eq!(
        laned,
        error_code(server.get("/i/notanid/w%3D40").await).await
    );
    let laned = error_code(server.get(&format!("/i/{id}/w=nope")).await).await;
    assert_eq!(laned.0, 400);
    assert_eq!(
        laned,
        error_code(server.get(&format!("/i/{id}/w%3Dnope")).await).await
    );

    // A `%` escape that is not UTF-8 names nothing: our 404, not axum's plain-text 400.
    let undecodable = server.get("/i/%C3%28/w=40").await;
    assert_eq!(error_code(undecodable).await, (404, "not_found".to_owned()));

    // What the lane does not take is routed as before: other methods, a third segment.
    let post = request(reqwest::Method::POST, &format!("/i/{id}/w=40"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    let deeper = server.get(&format!("/i/{id}/w=40/more")).await;
    assert_eq!(error_code(deeper).await, (404, "not_found".to_owned()));

    // Both are counted under the route template (the laned GETs and HEAD, the routed GET and
    // HEAD; other tests' requests may land in the same counter meanwhile).
    assert!(variant_200s().await >= counted_before + 5);
}

/// Over HTTP/2 hyper sends whatever body a response has, HEAD or not: an answer to HEAD must
/// have none, errors included, or HTTP/2 clients reset the stream.
#[tokio::test]
async fn head_answers_have_no_body_over_http2() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(120, 80)).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let unknown = imgd_core::id::ImageId::generate();
    for (path, status) in [
        (format!("/i/{id}/w=40"), 200),
        (format!("/i/{id}"), 200),
        (format!("/i/{id}/w=nope"), 400),
        (format!("/i/{unknown}/w=40"), 404),
        (format!("/i/{id}/w%3Dnope"), 400),
    ] {
        let response = client.head(server.url(&path)).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), status, "{path}");
        assert!(response.bytes().await.unwrap().is_empty(), "{path}");
    }
}
