//! Backends that stop answering: readiness fails with the reason, requests get 503
//! `unavailable` within seconds instead of hanging, and nothing acknowledged is lost.

use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::common::{TestServer, error_code, fixtures};

#[tokio::test]
async fn an_unreachable_store_fails_readiness_and_uploads_get_503() {
    // An S3 endpoint nobody listens on.
    let server = TestServer::start_with(&[
        ("IMGD_STORE", "s3://down"),
        ("IMGD_S3_ENDPOINT", "http://127.0.0.1:9"),
        ("IMGD_S3_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", "id"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ])
    .await;
    let started = Instant::now();
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["metadata"], "ok");
    assert!(
        body["checks"]["blob_store"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{body}"
    );
    let (status, body) = server.upload(fixtures::jpeg(64, 64)).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered, not hung"
    );
    let listed = server.api_json(reqwest::Method::GET, "/images").await;
    assert_eq!(
        listed["images"].as_array().unwrap().len(),
        0,
        "no half-stored image"
    );
}

#[tokio::test]
async fn a_database_that_goes_away_gets_503_and_nothing_is_lost() {
    let Ok(admin_url) = std::env::var("IMGD_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set IMGD_TEST_DATABASE_URL"
        );
        eprintln!("SKIPPED: IMGD_TEST_DATABASE_URL is not set");
        return;
    };
    let url = crate::postgres::fresh_database(&admin_url).await;
    let name = url.rsplit('/').next().unwrap().to_owned();
    // Short record cache, so reads go to the database.
    let server = TestServer::start_with(&[
        ("IMGD_DATABASE_URL", &url),
        ("IMGD_RENDER__RECORD_CACHE_TTL_MS", "1"),
    ])
    .await;
    let id = server.upload_ok(fixtures::jpeg(64, 48)).await;

    // The database refuses new connections and drops the open ones.
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let set_allowed = |allowed: bool| format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allowed}");
    sqlx::query(&set_allowed(false))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();

    let started = Instant::now();
    assert_eq!(server.get("/readyz").await.status(), 503);
    let get = server
        .api(reqwest::Method::GET, &format!("/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(get).await, (503, "unavailable".into()));
    let (status, body) = server.upload(fixtures::jpeg(32, 32)).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered, not hung"
    );

    // Back up: ready again, and the acknowledged upload is intact.
    sqlx::query(&set_allowed(true))
        .execute(&mut admin)
        .await
        .unwrap();
    let back = Instant::now();
    while server.get("/readyz").await.status() != 200 {
        assert!(back.elapsed() < Duration::from_secs(15), "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let image = server
        .api_status(reqwest::Method::GET, &format!("/images/{id}"))
        .await;
    assert_eq!(image, 200);
    assert_eq!(server.get(&format!("/i/{id}")).await.status(), 200);
}
