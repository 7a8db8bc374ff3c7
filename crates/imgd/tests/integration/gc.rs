//! Blob collection: deleting an image leaves its bytes, `imgd gc` removes them once no image
//! refers to them, and an acknowledged upload is never lost to a racing delete and collection,
//! even on two nodes whose locks are node-local (what a node does when Redis is down).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use imgd_core::service::gc::{GcOptions, Quiet};
use reqwest::Method;
use serde_json::Value;

use crate::common::{SECRET_KEY, TestServer, fixtures};

/// The metadata database a test server over `data_dir` uses, when not SQLite in the data dir.
fn database_url(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join("test-database-url")).ok()
}

/// Runs `imgd gc` over the server's data dir and database; returns its JSON summary.
pub(crate) fn gc_cli(data_dir: &Path, args: &[&str]) -> Value {
    gc_cli_with(data_dir, args, &[])
}

/// `imgd gc` with extra settings.
fn gc_cli_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imgd"));
    command
        .arg("gc")
        .args(args)
        .env("IMGD_DATA_DIR", data_dir)
        .env("IMGD_LOG", "warn")
        .envs(env.iter().copied());
    if let Some(url) = database_url(data_dir) {
        command
            .env("IMGD_DATABASE_URL", url)
            .env("IMGD_SECRET_KEY", SECRET_KEY);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "imgd gc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The original's bytes as a client gets them (`None` for a 404; other answers fail the test).
async fn original(server: &TestServer, id: &str) -> Option<Vec<u8>> {
    let response = server.get(&format!("/i/{id}")).await;
    match response.status().as_u16() {
        200 => Some(response.bytes().await.unwrap().to_vec()),
        404 => None,
        other => panic!("GET /i/{id}: {other} {}", response.text().await.unwrap()),
    }
}

async fn delete(server: &TestServer, id: &str) -> u16 {
    server
        .api_status(Method::DELETE, &format!("/images/{id}"))
        .await
}

#[tokio::test]
async fn deleted_bytes_stay_until_gc_and_referenced_bytes_never_go() {
    let server = TestServer::start().await;
    let shared = fixtures::png(30, 30);
    let alone = fixtures::jpeg(40, 30);
    let a = server.upload_ok(shared.clone()).await;
    let b = server.upload_ok(shared.clone()).await;
    let c = server.upload_ok(alone.clone()).await;
    assert_eq!(server.get(&format!("/i/{c}/w=10")).await.status(), 200);
    assert_eq!(server.files_under("blobs").len(), 2);
    assert_eq!(server.files_under("variants").len(), 1);

    // Deleting removes the records, never the bytes.
    assert_eq!(delete(&server, &a).await, 204);
    assert_eq!(delete(&server, &c).await, 204);
    assert_eq!(original(&server, &a).await, None);
    assert_eq!(server.files_under("blobs").len(), 2, "bytes stay");
    assert_eq!(server.files_under("variants").len(), 1);

    // Within the grace period nothing goes; a dry run counts without removing.
    let graced = gc_cli(&server.data_dir, &[]);
    assert_eq!(
        (graced["candidates"].as_u64(), graced["removed"].as_u64()),
        (Some(0), Some(0))
    );
    let dry = gc_cli(&server.data_dir, &["--dry-run", "--grace-secs", "0"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (dry["candidates"].as_u64(), dry["removed"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(dry["candidate_bytes"].as_u64(), Some(alone.len() as u64));
    assert_eq!(server.files_under("blobs").len(), 2);

    // Past it, the unreferenced blob and its variants go; the one B still refers to stays.
    let run = gc_cli(&server.data_dir, &["--grace-secs", "0"]);
    assert_eq!(
        (run["removed"].as_u64(), run["errors"].as_u64()),
        (Some(1), Some(0)),
        "{run}"
    );
    assert_eq!(run["removed_bytes"].as_u64(), Some(alone.len() as u64));
    assert_eq!(server.files_under("blobs").len(), 1);
    assert!(
        server.files_under("variants").is_empty(),
        "variants go with their source"
    );
    assert_eq!(original(&server, &b).await, Some(shared.clone()));
    let again = gc_cli(&server.data_dir, &["--grace-secs", "0"]);
    assert_eq!(
        again["removed"].as_u64(),
        Some(0),
        "a referenced blob is never removed"
    );
    assert_eq!(original(&server, &b).await, Some(shared.clone()));

    // The last reference gone, the shared bytes go too; uploading them again stores them anew.
    assert_eq!(delete(&server, &b).await, 204);
    assert_eq!(
        gc_cli(&server.data_dir, &["--grace-secs", "0"])["removed"].as_u64(),
        Some(1)
    );
    assert!(server.files_under("blobs").is_empty());
    let d = server.upload_ok(shared.clone()).await;
    assert_eq!(original(&server, &d).await, Some(shared));
}

#[tokio::test]
async fn the_server_collects_on_its_own_and_counts_it() {
    let server = TestServer::start_with(&[
        ("IMGD_GC__INTERVAL_SECS", "1"),
        ("IMGD_GC__GRACE_SECS", "0"),
    ])
    .await;
    let id = server.upload_ok(fixtures::jpeg(20, 20)).await;
    assert_eq!(delete(&server, &id).await, 204);
    // The bytes go first, the row (and then the count) right after.
    let started = Instant::now();
    loop {
        let metrics = server.get("/metrics").await.text().await.unwrap();
        if server.files_under("blobs").is_empty()
            && metrics.contains("imgd_gc_runs_total")
            && metrics.contains("imgd_gc_blobs_removed_total")
            // The supervisor ran it, and counts it as a job.
            && metrics.contains("imgd_job_runs_total{job=\"gc\"}")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never collected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small deterministic generator for jitter.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn jitter(state: u64) {
    tokio::time::sleep(Duration::from_micros(state % 15_000)).await;
}

/// The stored original of `hash` in the data dir's local store, if any.
fn stored(data_dir: &Path, hash: &str) -> Option<Vec<u8>> {
    std::fs::read(data_dir.join(format!("blobs/{}/{}/{hash}", &hash[0..2], &hash[2..4]))).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_upload_is_lost_to_a_racing_delete_and_gc_across_two_nodes() {
    // Two nodes over one data dir (the store) and one database, each with its own in-process
    // locks (what a node falls back to when Redis is down), and a third party's collector with
    // no grace period. PostgreSQL when the suite has a server (a cluster's database: real
    // concurrency), else the SQLite file in the data dir.
    let dir = tempfile::tempdir().unwrap();
    let mut shared: Vec<(&str, String)> = Vec::new();
    if let Ok(admin) = std::env::var("IMGD_TEST_DATABASE_URL") {
        let url = crate::postgres::fresh_database(&admin).await;
        shared.push(("IMGD_DATABASE_URL", url));
        shared.push(("IMGD_SECRET_KEY", SECRET_KEY.to_owned()));
    }
    let settings: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let postgres = !settings.is_empty();
    let one = TestServer::start_in(dir.path(), &settings).await;
    let two = TestServer::start_in(dir.path(), &settings).await;
    let config = TestServer::config_in(dir.path(), &settings).await;
    let gc = imgd::app::open_gc(&config).await.unwrap();
    let never = AtomicBool::new(false);

    let bytes = fixtures::png(24, 24);
    let hash = blake3::hash(&bytes).to_hex().to_string();
    // Readable through the node that acknowledged it, and in the store; through the other node
    // too on PostgreSQL (on SQLite each node's id filter assumes it is the only writer).
    let readable = async |round: usize, id: &str, acked_by: &TestServer, other: &TestServer| {
        let mut via = vec![acked_by];
        if postgres {
            via.push(other);
        }
        for node in via {
            assert_eq!(
                original(node, id).await.as_deref(),
                Some(bytes.as_slice()),
                "round {round}: acknowledged upload {id} lost"
            );
        }
        assert_eq!(stored(dir.path(), &hash).as_deref(), Some(bytes.as_slice()));
    };

    let rounds = 200;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let (mut acknowledged, mut refused, mut collected, mut passes) = (0, 0, 0, 0);
    let mut keep: Option<String> = None;
    let started = Instant::now();
    for round in 0..rounds {
        let (uploader, deleter) = if round % 2 == 0 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        let first = deleter.upload_ok(bytes.clone()).await;
        acknowledged += 1;
        readable(round, &first, deleter, uploader).await;
        let delays = [next(&mut rng), next(&mut rng), next(&mut rng)];
        let previous = keep.take();
        let deleting = async {
            jitter(delays[0]).await;
            assert_eq!(delete(deleter, &first).await, 204);
            if let Some(previous) = &previous {
                assert_eq!(delete(uploader, previous).await, 204);
            }
        };
        let uploading = async {
            jitter(delays[1]).await;
            uploader.upload(bytes.clone()).await
        };
        // The collector runs pass after pass until the delete and the upload are both done, so
        // its claims land anywhere in their window.
        let done = AtomicBool::new(false);
        let racing = async {
            let outcome = tokio::join!(deleting, uploading);
            done.store(true, Ordering::SeqCst);
            outcome
        };
        let collecting = async {
            jitter(delays[2]).await;
            let (mut removed, mut passes) = (0, 0);
            loop {
                // Every other pass also lists the store and adopts bytes without a row: the
                // scan must never take bytes an upload is about to reference.
                let options = GcOptions {
                    scan_store: passes % 2 == 1,
                    ..GcOptions::collect_only(Duration::ZERO)
                };
                removed += gc.run(&options, &Quiet, &never).await.unwrap().removed;
                passes += 1;
                if done.load(Ordering::SeqCst) {
                    return (removed, passes);
                }
            }
        };
        let (((), (status, body)), (removed, ran)) = tokio::join!(racing, collecting);
        collected += removed;
        passes += ran;
        match status {
            201 => {
                acknowledged += 1;
                let id = body["id"].as_str().unwrap().to_owned();
                readable(round, &id, uploader, deleter).await;
                keep = Some(id);
            }
            503 => {
                assert_eq!(body["code"], "unavailable", "{body}");
                refused += 1;
            }
            other => panic!("round {round}: upload answered {other}: {body}"),
        }
        // (The other node may serve its cached record for record_cache_ttl_ms: why the grace
        // period is never that short outside tests.)
        assert_eq!(
            original(deleter, &first).await,
            None,
            "round {round}: deleted"
        );
    }
    // A collection after the race never takes the survivor.
    collected += gc
        .run(&GcOptions::collect_only(Duration::ZERO), &Quiet, &never)
        .await
        .unwrap()
        .removed;
    if let Some(id) = &keep {
        let other = if rounds % 2 == 0 { &one } else { &two };
        readable(rounds, id, if rounds % 2 == 0 { &two } else { &one }, other).await;
    }
    eprintln!(
        "{} two nodes, {rounds} rounds in {:?}: {acknowledged} uploads acknowledged and readable, \
         {refused} refused with 503, {passes} collector passes collected the blob {collected} times",
        if postgres { "PostgreSQL" } else { "SQLite" },
        started.elapsed()
    );
    assert!(
        collected > 0,
        "the collector never got in: the race was not exercised"
    );
}

/// The items of a dry run's list of one kind.
fn listed(report: &Value, kind: &str) -> Vec<String> {
    report["would_remove"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| i["kind"] == kind)
                .map(|i| i["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn bytes_without_a_record_and_abandoned_uploads_go_after_the_grace_period() {
    let server = TestServer::start_with(&[("IMGD_GC__INTERVAL_SECS", "0")]).await;
    let kept_bytes = fixtures::png(30, 20);
    let kept = server.upload_ok(kept_bytes.clone()).await;
    let lost = server.upload_ok(fixtures::jpeg(40, 30)).await;
    assert_eq!(server.get(&format!("/i/{lost}/w=10")).await.status(), 200);
    assert_eq!(server.get(&format!("/i/{kept}/w=12")).await.status(), 200);
    let lost_hash = server
        .api_json(Method::GET, &format!("/images/{lost}"))
        .await["hash"]
        .as_str()
        .unwrap()
        .to_owned();

    // A store restored from a backup older than the database: bytes come back whose rows the
    // database no longer has (the image was deleted and collected since).
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = server
        .files_under("blobs")
        .into_iter()
        .chain(server.files_under("variants"))
        .filter(|p| p.to_string_lossy().contains(&lost_hash))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    assert_eq!(saved.len(), 2, "the original and its variant");
    assert_eq!(delete(&server, &lost).await, 204);
    assert_eq!(
        gc_cli(&server.data_dir, &["--grace-secs", "0"])["removed"],
        1
    );
    for (path, bytes) in &saved {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    // A multipart upload nobody finished, made through the store as the next process finds it.
    let store = imgd_blob::LocalBlobStore::open(&server.data_dir).unwrap();
    let upload = {
        use imgd_core::port::BlobStore;
        let upload = store
            .create_multipart(&imgd_core::port::BlobKey::staging("abandoned").unwrap())
            .await
            .unwrap();
        store
            .put_part(&upload, 1, bytes::Bytes::from_static(b"half a photo"))
            .await
            .unwrap();
        upload
    };

    // Within the grace period and the upload lifetime nothing goes.
    let graced = gc_cli(&server.data_dir, &[]);
    assert_eq!(
        (graced["scanned"].as_u64(), graced["unrecorded"].as_u64()),
        (Some(4), Some(0)),
        "{graced}"
    );
    assert_eq!(graced["stale_uploads"], 0);

    // Past them, a dry run lists each leftover once and removes nothing.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let short = [("IMGD_GC__UPLOAD_TTL_SECS", "1")];
    let dry = gc_cli_with(
        &server.data_dir,
        &["--dry-run", "--grace-secs", "0"],
        &short,
    );
    assert_eq!(
        dry["unrecorded"], 1,
        "one source, found by its original and its variant: {dry}"
    );
    assert_eq!(listed(&dry, "unrecorded").len(), 1);
    assert_eq!(
        listed(&dry, "stale_upload"),
        vec!["staging/abandoned".to_owned()]
    );
    assert_eq!(dry["stale_uploads"], 1);
    assert_eq!(server.files_under("blobs").len(), 2);

    // The run adopts the bytes and collects them by the one rule; the upload is aborted.
    let run = gc_cli_with(&server.data_dir, &["--grace-secs", "0"], &short);
    assert_eq!(
        (
            run["unrecorded"].as_u64(),
            run["removed"].as_u64(),
            run["stale_uploads"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{run}"
    );
    assert_eq!(run["errors"], 0);
    for (path, _) in &saved {
        assert!(!path.exists(), "{} is gone", path.display());
    }
    {
        use imgd_core::port::BlobStore;
        assert!(store.pending_multipart().await.unwrap().is_empty());
        assert!(
            store
                .put_part(&upload, 2, bytes::Bytes::new())
                .await
                .is_err()
        );
    }
    // What is referenced stays, variants included, and a second run finds nothing.
    assert_eq!(original(&server, &kept).await, Some(kept_bytes));
    assert_eq!(server.files_under("variants").len(), 1);
    let again = gc_cli_with(&server.data_dir, &["--grace-secs", "0"], &short);
    assert_eq!(
        (again["unrecorded"].as_u64(), again["removed"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
}

/// The same leftovers on the real S3 server: bytes under the store's prefix without a row, and a
/// multipart upload abandoned there, found and removed by `imgd gc` alone.
#[tokio::test]
async fn on_s3_unrecorded_bytes_and_abandoned_multipart_uploads_go() {
    let Ok(endpoint) = std::env::var("IMGD_TEST_S3_ENDPOINT") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set IMGD_TEST_S3_ENDPOINT"
        );
        eprintln!("SKIPPED: IMGD_TEST_S3_ENDPOINT is not set");
        return;
    };
    use imgd_core::port::{BlobKey, BlobStore};
    let bucket = std::env::var("IMGD_TEST_S3_BUCKET").unwrap_or_else(|_| "imgd-test".into());
    let run = imgd_core::id::ImageId::generate();
    let url = format!("s3://{bucket}/gc-{run}");
    let mut settings = imgd_blob::S3Settings::from_url(&url).unwrap();
    settings.endpoint = Some(endpoint.clone());
    settings.path_style = true;
    settings.access_key_id = std::env::var("AWS_ACCESS_KEY_ID").ok();
    settings.secret_access_key = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
    let store = imgd_blob::S3BlobStore::new(&settings).unwrap();

    let content = format!("bytes nobody recorded {run}").into_bytes();
    let hash = imgd_core::id::ContentHash::of(&content);
    let key = BlobKey::original(&hash);
    store.put_bytes(&key, content.into()).await.unwrap();
    let abandoned = store
        .create_multipart(&BlobKey::staging("abandoned").unwrap())
        .await
        .unwrap();
    store
        .put_part(&abandoned, 1, bytes::Bytes::from_static(b"part"))
        .await
        .unwrap();
    // Marker times have one-second resolution.
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("IMGD_STORE", url.as_str()),
        ("IMGD_S3_ENDPOINT", endpoint.as_str()),
        ("IMGD_S3_PATH_STYLE", "true"),
        ("IMGD_GC__UPLOAD_TTL_SECS", "1"),
    ];
    let dry = gc_cli_with(dir.path(), &["--dry-run", "--grace-secs", "0"], &env);
    assert_eq!(
        listed(&dry, "unrecorded"),
        vec![key.as_str().to_owned()],
        "{dry}"
    );
    assert_eq!(
        listed(&dry, "stale_upload"),
        vec!["staging/abandoned".to_owned()]
    );
    assert!(store.stat(&key).await.unwrap().is_some());

    let done = gc_cli_with(dir.path(), &["--grace-secs", "0"], &env);
    assert_eq!(
        (
            done["unrecorded"].as_u64(),
            done["removed"].as_u64(),
            done["stale_uploads"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{done}"
    );
    assert!(store.stat(&key).await.unwrap().is_none());
    assert!(
        !store
            .pending_multipart()
            .await
            .unwrap()
            .iter()
            .any(|p| p.upload == abandoned)
    );
}
