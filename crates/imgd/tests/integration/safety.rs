//! What a client with nothing but public URLs can ask of the server, over real sockets: bounded
//! renders, the memory budget, per-client render budgets, the id filter and no cross-tenant
//! signal through the variant cache. (Abandoned queue places: `render_pool`'s unit tests; a
//! client that leaves mid-render: `process.rs`.)

use std::time::Duration;

use reqwest::Method;

use crate::common::{TestServer, error_code, fixtures, probe};
use crate::tenancy::{tenant, upload_as};

/// The 1x10000 strip asked for `w=8192,h=1,fit=cover` used to allocate an 8192 x 81,920,000
/// intermediate and kill the process; a 6000x1000 panorama at `w=1,h=8192` took ~1.2 GB.
#[tokio::test]
async fn extreme_strips_render_at_their_output_size_for_every_fit() {
    let server = TestServer::start().await;
    let strip = server.upload_ok(fixtures::png(1, 10_000)).await;
    let panorama = server.upload_ok(fixtures::jpeg(6000, 1000)).await;
    for (id, options, size) in [
        (&strip, "w=8192,h=1,fit=cover", Some((8192, 1))),
        (&panorama, "w=1,h=8192,fit=cover", Some((1, 8192))),
        (&strip, "w=8192,h=1,fit=contain", Some((8192, 1))),
        (&strip, "w=8192,h=1,fit=inside", None),
        (&strip, "w=8192,h=1,fit=outside", None),
        (
            &panorama,
            "w=3000,h=3000,fit=cover,f=png",
            Some((3000, 3000)),
        ),
    ] {
        let response = server.get(&format!("/i/{id}/{options}")).await;
        assert_eq!(response.status(), 200, "{options}");
        let bytes = response.bytes().await.unwrap();
        if let Some(size) = size {
            let p = probe(&bytes);
            assert_eq!((p.width, p.height), size, "{options}");
        }
    }
    // Only the width given: the strip would grow to 8192 x 81,920,000. Refused, not allocated.
    let (status, code) =
        error_code(server.get(&format!("/i/{strip}/w=8192,fit=cover")).await).await;
    assert_eq!((status, code.as_str()), (400, "option_out_of_range"));
    let (status, code) = error_code(
        server
            .get(&format!("/i/{strip}/w=8192,h=8192,fit=fill"))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "option_out_of_range"));
}

#[tokio::test]
async fn an_image_the_memory_budget_cannot_hold_is_refused_with_a_code() {
    let server = TestServer::start_with(&[("IMGD_LIMITS__MEMORY_BUDGET_MB", "16")]).await;
    let (status, body) = server.upload(fixtures::png(1500, 1500)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("image_too_large"))
    );
    // Small ones still go through, and so do their variants.
    let id = server.upload_ok(fixtures::png(100, 100)).await;
    assert_eq!(server.get(&format!("/i/{id}/w=50")).await.status(), 200);
    // A variant whose output alone passes the budget is refused before the source is read.
    let (status, code) =
        error_code(server.get(&format!("/i/{id}/w=4000,h=4000,fit=fill")).await).await;
    assert_eq!((status, code.as_str()), (422, "image_too_large"));
}

/// Two tenants upload the same bytes: the blob is shared, but neither the cache status nor
/// the dates of a variant tell one tenant that the other asked for it first.
#[tokio::test]
async fn another_tenants_identical_upload_shows_nowhere_in_variant_answers() {
    let server = TestServer::start().await;
    let (acme, globex) = (
        tenant(&server, "acme").await,
        tenant(&server, "globex").await,
    );
    let bytes = fixtures::jpeg(64, 48);
    let mut ids = Vec::new();
    for key in [&acme.writer, &globex.writer] {
        let created: serde_json::Value = upload_as(&server, key, bytes.clone())
            .await
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let (ours, theirs) = (&ids[0], &ids[1]);
    let first = server.get(&format!("/i/{ours}/w=20,f=png")).await;
    assert_eq!(first.headers()["x-imgd-cache"], "miss");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = server.get(&format!("/i/{theirs}/w=20,f=png")).await;
    assert_eq!(
        other.headers()["x-imgd-cache"],
        "miss",
        "the other tenant's first request renders its own variant"
    );
    assert_ne!(
        first.headers()["last-modified"],
        other.headers()["last-modified"],
        "dates are the requesting tenant's own"
    );
    let again = server.get(&format!("/i/{theirs}/w=20,f=png")).await;
    assert_eq!(again.headers()["x-imgd-cache"], "hit-memory");
}

#[tokio::test]
async fn renders_are_budgeted_per_client_address_and_cached_variants_are_not() {
    let server = TestServer::start_with(&[
        ("IMGD_LIMITS__CLIENT_RENDERS_PER_MINUTE", "1"),
        ("IMGD_LIMITS__CLIENT_RENDER_BURST", "1"),
    ])
    .await;
    let id = server.upload_ok(fixtures::jpeg(64, 48)).await;
    assert_eq!(server.get(&format!("/i/{id}/w=10")).await.status(), 200);
    let limited = server.get(&format!("/i/{id}/w=11")).await;
    assert!(limited.headers().contains_key("retry-after"));
    let (status, code) = error_code(limited).await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
    for _ in 0..5 {
        let cached = server.get(&format!("/i/{id}/w=10")).await;
        assert_eq!(cached.status(), 200, "cached variants cost no render");
    }
    assert_eq!(server.get(&format!("/i/{id}")).await.status(), 200);
}

/// The `imgd_id_filter_absent_total` counter of the process (shared by every test server in
/// this binary, so tests compare increases).
async fn absent_answers(server: &TestServer) -> u64 {
    let text = server.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with("imgd_id_filter_absent_total"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

#[tokio::test]
async fn unknown_ids_are_answered_by_the_filter_and_known_ones_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let server = TestServer::start_in(dir.path(), &[]).await;
        server.upload_ok(fixtures::jpeg(32, 32)).await
    };
    let server = TestServer::start_in(dir.path(), &[]).await;
    assert_eq!(
        server.get(&format!("/i/{id}")).await.status(),
        200,
        "rebuilt at start"
    );
    let fresh = server.upload_ok(fixtures::png(8, 8)).await;
    assert_eq!(server.get(&format!("/i/{fresh}/w=4")).await.status(), 200);
    let before = absent_answers(&server).await;
    for i in 0..50u32 {
        let made_up = format!("{:032x}", 0x5eed_0000_u128 + u128::from(i) * 7919);
        let response = server.get(&format!("/i/{made_up}/w=10")).await;
        let (status, code) = error_code(response).await;
        assert_eq!((status, code.as_str()), (404, "not_found"));
    }
    let after = absent_answers(&server).await;
    assert!(
        after >= before + 45,
        "at most a few of 50 made-up ids reached the database ({before} -> {after})"
    );
    // Deleted ids stay in the filter; the database answers them.
    server
        .api(Method::DELETE, &format!("/images/{fresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(server.get(&format!("/i/{fresh}")).await.status(), 404);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("imgd_id_filter_false_positive_rate"));
    assert!(metrics.contains("imgd_id_filter_items"));
}
