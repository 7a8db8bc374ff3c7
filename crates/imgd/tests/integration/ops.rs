//! Health, metrics and overload behaviour.

use crate::common::{TestServer, error_code, fixtures};

#[tokio::test]
async fn health_probes_answer() {
    let server = TestServer::start().await;
    let live = server.get("/livez").await;
    assert_eq!(live.status(), 200);
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["metadata"], "ok");
    assert_eq!(body["checks"]["blob_store"], "ok");
}

#[tokio::test]
async fn metrics_use_route_templates_and_count_renders() {
    let server = TestServer::start().await;
    let id = server.upload_ok(fixtures::jpeg(64, 64)).await;
    assert_eq!(server.get(&format!("/i/{id}/w=10")).await.status(), 200);
    assert_eq!(server.get(&format!("/i/{id}/w=10")).await.status(), 200);
    let text = server.get("/metrics").await.text().await.unwrap();
    for name in [
        "http_server_request_duration_seconds_bucket",
        "imgd_variant_renders_total",
        "imgd_variant_cache_hits_total",
        "imgd_render_duration_seconds_bucket",
        "imgd_upload_bytes_total",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    assert!(
        text.contains("route=\"/i/{id}/{options}\""),
        "route label is the template"
    );
    assert!(!text.contains(&id), "raw paths never become labels");
}

#[tokio::test]
async fn a_full_render_queue_answers_503_with_retry_after() {
    let server =
        TestServer::start_with(&[("IMGD_RENDER__WORKERS", "1"), ("IMGD_RENDER__QUEUE", "0")]).await;
    let id = server.upload_ok(fixtures::jpeg(2400, 1800)).await;
    let requests = (0..8).map(|i| {
        server
            .client
            .get(server.url(&format!("/i/{id}/w={},f=png", 1000 + i)))
            .send()
    });
    let responses = futures::future::join_all(requests).await;
    let mut ok = 0;
    let mut overloaded = 0;
    for response in responses {
        let response = response.unwrap();
        if response.status() == 200 {
            ok += 1;
            continue;
        }
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(error_code(response).await, (503, "overloaded".into()));
        overloaded += 1;
    }
    assert!(ok >= 1, "the worker rendered something");
    assert!(overloaded >= 1, "the rest were turned away, not queued");
    assert_eq!(server.get("/livez").await.status(), 200);
}
