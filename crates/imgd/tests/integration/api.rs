//! The `/v1` metadata API and its authentication.

use reqwest::Method;

use crate::common::{TestServer, error_code, fixtures};

#[tokio::test]
async fn v1_requires_a_valid_bearer_key() {
    let server = TestServer::start().await;
    let none = server
        .client
        .get(server.url("/v1/images"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_code(none).await, (401, "unauthorized".into()));
    let wrong = server
        .client
        .get(server.url("/v1/images"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(wrong).await, (401, "unauthorized".into()));
    let upload = server
        .client
        .post(server.url("/v1/images"))
        .body(fixtures::jpeg(8, 8))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(upload).await, (401, "unauthorized".into()));
    assert_eq!(server.api_status(Method::GET, "/images").await, 200);
}

#[tokio::test]
async fn list_is_newest_first_with_cursor_pages_and_a_tag_filter() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for i in 0..5u16 {
        let tags = if i % 2 == 0 { "even" } else { "odd" };
        let response = server
            .api(Method::POST, &format!("/images?tags={tags}"))
            .body(fixtures::jpeg(8 + i, 8))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/images?limit=2&cursor={c}"),
            None => "/images?limit=2".to_owned(),
        };
        let page: serde_json::Value = server.api_json(Method::GET, &path).await;
        let images = page["images"].as_array().unwrap();
        assert!(images.len() <= 2);
        seen.extend(images.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "all images, newest first, each once");
    let even: serde_json::Value = server.api_json(Method::GET, "/images?tag=even").await;
    assert_eq!(even["images"].as_array().unwrap().len(), 3);
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=x", "invalid_limit"),
        ("cursor=garbage", "invalid_cursor"),
    ] {
        let response = server
            .api(Method::GET, &format!("/images?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, (400, code.into()), "{query}");
    }
}

#[tokio::test]
async fn patch_changes_tags_and_metadata_and_refuses_unknown_fields() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::png(8, 8)).await;
    let patched: serde_json::Value = server
        .api(Method::PATCH, &format!("/images/{id}"))
        .json(&serde_json::json!({"tags": ["x", "y"], "metadata": {"alt": "a square"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["tags"], serde_json::json!(["x", "y"]));
    assert_eq!(patched["metadata"]["alt"], "a square");
    let fetched: serde_json::Value = server.api_json(Method::GET, &format!("/images/{id}")).await;
    assert_eq!(fetched["tags"], serde_json::json!(["x", "y"]));
    let tagged: serde_json::Value = server.api_json(Method::GET, "/images?tag=y").await;
    assert_eq!(tagged["images"][0]["id"], id.as_str());

    for body in [
        r#"{"hash": "x"}"#,
        r#"{"tenant_id": "t"}"#,
        r#"{"tags": "notalist"}"#,
        "not json",
        r#"{"tags": ["bad tag"]}"#,
    ] {
        let response = server
            .api(Method::PATCH, &format!("/images/{id}"))
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, code) = error_code(response).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            code == "invalid_json" || code == "invalid_tag",
            "{body}: {code}"
        );
    }
}

#[tokio::test]
async fn delete_removes_the_image_and_both_urls() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(50, 40)).await;
    assert_eq!(server.get(&format!("/i/{id}/w=20")).await.status(), 200);
    assert_eq!(server.get(&format!("/i/{id}")).await.status(), 200);
    assert_eq!(
        server
            .api_status(Method::DELETE, &format!("/images/{id}"))
            .await,
        204
    );
    assert_eq!(
        error_code(server.get(&format!("/i/{id}")).await).await,
        (404, "not_found".into())
    );
    assert_eq!(
        error_code(server.get(&format!("/i/{id}/w=20")).await).await,
        (404, "not_found".into())
    );
    let again = server
        .api(Method::DELETE, &format!("/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again).await, (404, "not_found".into()));
    let get = server
        .api(Method::GET, &format!("/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(get).await, (404, "not_found".into()));
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let server = TestServer::start().await;
    for id in [
        "0123456789abcdef0123456789abcdef",
        "nothex",
        "..%2F..%2Fetc%2Fpasswd",
    ] {
        assert_eq!(
            error_code(
                server
                    .api(Method::GET, &format!("/images/{id}"))
                    .send()
                    .await
                    .unwrap()
            )
            .await
            .0,
            404,
            "{id}"
        );
        assert_eq!(
            error_code(server.get(&format!("/i/{id}")).await).await.0,
            404,
            "{id}"
        );
        assert_eq!(
            error_code(server.get(&format!("/i/{id}/w=10")).await)
                .await
                .0,
            404,
            "{id}"
        );
    }
    assert_eq!(
        error_code(server.get("/no/such/route").await).await,
        (404, "not_found".into())
    );
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let server = TestServer::start_with(&[
        ("IMGD_LIMITS__API_REQUESTS_PER_MINUTE", "1"),
        ("IMGD_LIMITS__API_BURST", "2"),
    ])
    .await;
    let id = server.upload_ok(fixtures::jpeg(16, 16)).await;
    assert_eq!(server.api_status(Method::GET, "/images").await, 200);
    let limited = server.api(Method::GET, "/images").send().await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(error_code(limited).await, (429, "rate_limited".into()));
    // Public delivery is not an API call and is not limited by key.
    assert_eq!(server.get(&format!("/i/{id}")).await.status(), 200);
}
