//! Three real imgd processes on 127.0.0.1 sharing PostgreSQL, an S3-compatible store and Redis,
//! as a cluster runs in production. Needs `IMGD_TEST_DATABASE_URL`, `IMGD_TEST_S3_ENDPOINT`
//! (with `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` and the bucket `IMGD_TEST_S3_BUCKET`,
//! default `imgd-test`) and `IMGD_TEST_REDIS_URL`; `.ci/run` starts all three. Without them the
//! test says SKIPPED, except under CI, where that is a failure.

#[path = "../integration/common/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "../shared/postgres.rs"]
mod postgres;

use imgd_core::service::gc::{GcOptions, Quiet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ADMIN_KEY: &str = "cluster-admin-key-0123456789";
const SECRET: &str = "cluster-secret-0123456789abcdef";
/// The KEK every node shares (PostgreSQL refuses to start without one).
const SECRET_KEY: &str = "636c75737465722d6b656b2d303132333435363738396162636465662d2d2d2d";
/// The tests here each run several imgd processes on a 2-core machine; one at a time keeps the
/// timings they check meaningful.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Short, so a killed node leaves the ring within a couple of seconds.
const HEARTBEAT_TTL_MS: u64 = 1500;

/// The shared engines every node is pointed at.
#[derive(Clone)]
struct Backends {
    env: Vec<(String, String)>,
}

impl Backends {
    async fn from_env() -> Option<Backends> {
        let vars = [
            "IMGD_TEST_DATABASE_URL",
            "IMGD_TEST_S3_ENDPOINT",
            "IMGD_TEST_REDIS_URL",
        ];
        if vars.iter().any(|v| std::env::var_os(v).is_none()) {
            assert!(std::env::var_os("CI").is_none(), "CI must set {vars:?}");
            eprintln!("SKIPPED: set {vars:?} to run the cluster tests");
            return None;
        }
        let var = |name: &str| std::env::var(name).unwrap();
        let run = imgd_core::id::ImageId::generate();
        let bucket = std::env::var("IMGD_TEST_S3_BUCKET").unwrap_or_else(|_| "imgd-test".into());
        let database = postgres::fresh_database(&var("IMGD_TEST_DATABASE_URL")).await;
        let env = [
            ("IMGD_DATABASE_URL", database),
            ("IMGD_STORE", format!("s3://{bucket}/cluster-{run}")),
            ("IMGD_S3_ENDPOINT", var("IMGD_TEST_S3_ENDPOINT")),
            ("IMGD_S3_PATH_STYLE", "true".into()),
            ("IMGD_REDIS_URL", var("IMGD_TEST_REDIS_URL")),
            ("IMGD_CLUSTER__NAMESPACE", format!("cluster-{run}")),
            ("IMGD_CLUSTER_SECRET", SECRET.into()),
            (
                "IMGD_CLUSTER__HEARTBEAT_TTL_MS",
                HEARTBEAT_TTL_MS.to_string(),
            ),
            // A dead owner refuses connections at once; a generous connect timeout only keeps a
            // busy owner (300 connections at once on 2 cores) from being given up on.
            ("IMGD_CLUSTER__FORWARD_TIMEOUT_MS", "5000".into()),
            ("IMGD_CLUSTER__LOCK_TTL_MS", "3000".into()),
            ("IMGD_ADMIN_KEY", ADMIN_KEY.into()),
            ("IMGD_SECRET_KEY", SECRET_KEY.into()),
        ];
        Some(Backends {
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })
    }
}

impl Backends {
    /// The same engines with another Redis.
    fn with_redis(&self, url: &str) -> Backends {
        let mut copy = self.clone();
        for (name, value) in &mut copy.env {
            if name == "IMGD_REDIS_URL" {
                *value = url.to_owned();
            }
        }
        copy
    }
}

/// A private `redis-server` this test may stop and start.
struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateRedis { child }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `imgd serve` process with a fixed id and port, so it can be killed and restarted as the
/// same node.
struct Node {
    id: String,
    base: String,
    child: Child,
    _data: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    fn start(id: &str, port: u16, backends: &Backends) -> Node {
        Self::start_with(id, port, backends, &[])
    }

    fn start_with(id: &str, port: u16, backends: &Backends, extra: &[(&str, &str)]) -> Node {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgd"))
            .arg("serve")
            .envs(backends.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .env("IMGD_NODE_ID", id)
            .env("IMGD_LISTEN", format!("127.0.0.1:{port}"))
            .env("IMGD_DATA_DIR", data.path())
            .env("IMGD_LOG", "warn,imgd=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let node = id.to_owned();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("imgd listening") {
                    let _ = tx.send(());
                } else if line.contains("\"ERROR\"") || line.contains("\"WARN\"") {
                    eprintln!("[{node}] {line}");
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{id} did not start"));
        Node {
            id: id.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            child,
            _data: data,
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Uploads through `base` and returns the new image's id.
async fn upload(client: &reqwest::Client, base: &str, bytes: Vec<u8>) -> String {
    let answer: serde_json::Value = client
        .post(format!("{base}/v1/images"))
        .bearer_auth(ADMIN_KEY)
        .body(bytes)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["id"]
        .as_str()
        .expect("upload answered with an id")
        .to_owned()
}

/// The member ids `node` currently sees (its `/readyz` detail).
async fn members(client: &reqwest::Client, base: &str) -> Vec<String> {
    let ready: serde_json::Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::from_value(ready["cluster"]["members"].clone()).unwrap()
}

/// Polls until `base` sees exactly `expected`; returns how long that took.
async fn wait_members(client: &reqwest::Client, base: &str, expected: &[&str]) -> Duration {
    let started = Instant::now();
    loop {
        if members(client, base).await == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{base} never saw {expected:?}, sees {:?}",
            members(client, base).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `imgd_variant_renders_total` of one node.
async fn renders(client: &reqwest::Client, base: &str) -> u64 {
    counter(client, base, "imgd_variant_renders_total").await
}

/// The value of an unlabelled counter on one node (0 before its first increment).
async fn counter(client: &reqwest::Client, base: &str, name: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

async fn total_renders(client: &reqwest::Client, nodes: &[&Node]) -> u64 {
    let mut sum = 0;
    for node in nodes {
        sum += renders(client, &node.base).await;
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_render_each_variant_once_and_survive_losing_one() {
    let _serial = SERIAL.lock().await;
    let Some(backends) = Backends::from_env().await else {
        return;
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let mut a = Node::start("node-a", ports[0], &backends);
    let b = Node::start("node-b", ports[1], &backends);
    let c = Node::start("node-c", ports[2], &backends);
    let all = ["node-a", "node-b", "node-c"];
    for node in [&a, &b, &c] {
        wait_members(&client, &node.base, &all).await;
    }

    // An upload through A is served by B and C.
    let original = fixtures::noisy_jpeg(1600, 1200);
    let id = upload(&client, &a.base, original.clone()).await;
    for node in [&b, &c] {
        let got = client
            .get(format!("{}/i/{id}", node.base))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(
            got.bytes().await.unwrap(),
            original,
            "{} serves A's upload",
            node.id
        );
    }

    // The internal endpoint answers peers only.
    let internal = format!("{}/internal/v1/i/{id}/w=64", b.base);
    for token in [None, Some("wrong-secret-0123456789")] {
        let mut request = client.get(&internal);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 401);
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
    }
    let peer = client
        .get(&internal)
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(peer.status(), 200);

    // 300 concurrent requests for one new variant, spread over the three nodes.
    let before = total_renders(&client, &[&a, &b, &c]).await;
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    let answers = burst(
        &client,
        &bases,
        &format!("{id}/w=480,h=320,fit=cover,f=webp"),
        300,
    )
    .await;
    assert!(answers.iter().all(|(status, _, _)| *status == 200));
    assert!(
        answers.iter().all(|(_, _, body)| *body == answers[0].2),
        "identical bytes"
    );
    let servers: std::collections::BTreeSet<&str> =
        answers.iter().map(|(_, node, _)| node.as_str()).collect();
    assert_eq!(
        servers.len(),
        1,
        "one owner served every request: {servers:?}"
    );
    let after = total_renders(&client, &[&a, &b, &c]).await;
    assert_eq!(
        after - before,
        1,
        "rendered exactly once across the cluster"
    );
    eprintln!(
        "300 concurrent requests over 3 nodes: all 200, one render on {}",
        answers[0].1
    );

    // Load on all three nodes (a new variant of a small image per request, so renders are
    // short and many), then SIGKILL A in the middle of it.
    let small_id = upload(&client, &c.base, fixtures::noisy_jpeg(400, 300)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<[[AtomicU64; 2]; 3]> = Arc::new(Default::default());
    let width = Arc::new(AtomicU64::new(100));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (client, stop, counters, width) = (
                client.clone(),
                stop.clone(),
                counters.clone(),
                width.clone(),
            );
            let (base, target) = (bases[w % 3].clone(), w % 3);
            let id = small_id.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let w = width.fetch_add(1, Ordering::SeqCst);
                    let url = format!("{base}/i/{id}/w={w}");
                    let request = client.get(url).timeout(Duration::from_secs(20)).send();
                    let ok = match request.await {
                        Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                        Ok(r) if target != 0 => {
                            eprintln!("survivor failed: {} {:?}", r.status(), r.text().await);
                            false
                        }
                        Err(e) if target != 0 => {
                            eprintln!("survivor failed: {e}");
                            false
                        }
                        _ => false,
                    };
                    counters[target][usize::from(!ok)].fetch_add(1, Ordering::SeqCst);
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill();
    let left = wait_members(&client, &b.base, &["node-b", "node-c"]).await;
    wait_members(&client, &c.base, &["node-b", "node-c"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }
    let count = |node: usize, kind: usize| counters[node][kind].load(Ordering::SeqCst);
    eprintln!(
        "SIGKILL under load: requests to A ok {} / failed {}; to B ok {} / failed {}; to C ok {} / failed {}; \
         B dropped A from the ring {left:?} after the kill (TTL {HEARTBEAT_TTL_MS} ms)",
        count(0, 0),
        count(0, 1),
        count(1, 0),
        count(1, 1),
        count(2, 0),
        count(2, 1),
    );
    assert_eq!(
        count(1, 1) + count(2, 1),
        0,
        "no client errors on the surviving nodes"
    );
    assert!(
        count(1, 0) > 0 && count(2, 0) > 0,
        "the survivors served load"
    );
    assert!(
        left < Duration::from_millis(3 * HEARTBEAT_TTL_MS),
        "A left within its TTL"
    );

    // A restarts under the same id and port and rejoins. While it joins (membership changing
    // under the requests), 300 concurrent requests for another new variant still render once.
    let before = total_renders(&client, &[&b, &c]).await;
    let a = Node::start("node-a", ports[0], &backends);
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    let joining = burst(&client, &bases, &format!("{id}/w=200,h=200,fit=cover"), 300).await;
    assert!(
        joining
            .iter()
            .all(|(status, _, body)| *status == 200 && *body == joining[0].2)
    );
    let after = total_renders(&client, &[&a, &b, &c]).await;
    assert_eq!(
        after - before,
        1,
        "rendered once while the membership changed"
    );
    for node in [&a, &b, &c] {
        wait_members(&client, &node.base, &all).await;
    }
    let again = client
        .get(format!("{}/i/{id}/w=480,h=320,fit=cover,f=webp", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_ne!(
        again.headers()["x-imgd-cache"],
        "miss",
        "a rejoined node does not render again"
    );
    assert_eq!(again.bytes().await.unwrap(), answers[0].2);
}

/// `n` concurrent GETs of `/i/{path}` spread round-robin over `bases`: (status, serving node,
/// body) each.
async fn burst(
    client: &reqwest::Client,
    bases: &[String],
    path: &str,
    n: usize,
) -> Vec<(u16, String, bytes::Bytes)> {
    let requests = (0..n).map(|i| {
        let url = format!("{}/i/{path}", bases[i % bases.len()]);
        let client = client.clone();
        tokio::spawn(async move {
            let response = client.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let node = response
                .headers()
                .get("x-imgd-node")
                .map_or("?", |v| v.to_str().unwrap())
                .to_owned();
            (status, node, response.bytes().await.unwrap())
        })
    });
    futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// `/readyz`'s coordination detail of one node.
async fn coordination(client: &reqwest::Client, base: &str) -> (u16, String) {
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    let status = ready.status().as_u16();
    let body: serde_json::Value = ready.json().await.unwrap();
    (
        status,
        body["cluster"]["coordination"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn with_redis_down_a_node_serves_and_renders_under_local_locks() {
    let _serial = SERIAL.lock().await;
    let Some(backends) = Backends::from_env().await else {
        return;
    };
    let client = reqwest::Client::new();
    let redis_port = free_port();
    let redis = PrivateRedis::start(redis_port);
    let backends = backends.with_redis(&format!("redis://127.0.0.1:{redis_port}/"));
    let node = Node::start("node-r", free_port(), &backends);
    wait_members(&client, &node.base, &["node-r"]).await;
    let started = Instant::now();
    while coordination(&client, &node.base).await != (200, "redis".into()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never joined through Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = upload(&client, &node.base, fixtures::jpeg(320, 240)).await;
    let variant = |w: u32| format!("{}/i/{id}/w={w}", node.base);
    assert_eq!(client.get(variant(100)).send().await.unwrap().status(), 200);

    drop(redis);
    // Stored originals and variants are still served; a new variant renders under a local lock.
    assert_eq!(
        client
            .get(format!("{}/i/{id}", node.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(client.get(variant(100)).send().await.unwrap().status(), 200);
    let fresh = client.get(variant(101)).send().await.unwrap();
    assert_eq!(fresh.status(), 200);
    assert_eq!(fresh.headers()["x-imgd-cache"], "miss");
    assert!(counter(&client, &node.base, "imgd_lock_fallbacks_total").await >= 1);
    // Readiness holds (the node still serves) and says it is degraded.
    let started = Instant::now();
    loop {
        let (status, detail) = coordination(&client, &node.base).await;
        assert_eq!(
            status, 200,
            "losing Redis does not take the node out of service"
        );
        if detail.starts_with("degraded") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never reported degraded: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Redis returns: the node reconnects and coordinates again.
    let _redis = PrivateRedis::start(redis_port);
    let started = Instant::now();
    while coordination(&client, &node.base).await.1 != "redis" {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never reconnected to Redis"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn nodes_share_one_rate_allowance_per_key() {
    let _serial = SERIAL.lock().await;
    let Some(backends) = Backends::from_env().await else {
        return;
    };
    let client = reqwest::Client::new();
    // A burst of 4, then one request a minute: the test's six requests see no refill.
    let limits = [
        ("IMGD_LIMITS__API_REQUESTS_PER_MINUTE", "1"),
        ("IMGD_LIMITS__API_BURST", "4"),
    ];
    let a = Node::start_with("node-a", free_port(), &backends, &limits);
    let b = Node::start_with("node-b", free_port(), &backends, &limits);
    let mut statuses = Vec::new();
    for i in 0..6 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let answer = client
            .get(format!("{base}/v1/images"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        if answer.status() == 429 {
            let retry: u64 = answer.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
            let body: serde_json::Value = answer.json().await.unwrap();
            assert_eq!(body["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(answer.status().as_u16());
        }
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429, 429],
        "one allowance across both nodes"
    );
}

/// Deletes an image through `base`; returns the status.
async fn delete_image(client: &reqwest::Client, base: &str, id: &str) -> u16 {
    client
        .delete(format!("{base}/v1/images/{id}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The original through `base`, if it answers 200.
async fn original(client: &reqwest::Client, base: &str, id: &str) -> Option<bytes::Bytes> {
    let response = client.get(format!("{base}/i/{id}")).send().await.unwrap();
    (response.status() == 200).then_some(response.bytes().await.unwrap())
}

/// `imgd gc --grace-secs 0` against the cluster's database and store: blobs it removed.
fn gc_cli(backends: &Backends) -> u64 {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imgd"))
        .args(["gc", "--grace-secs", "0"])
        .envs(backends.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("IMGD_DATA_DIR", data.path())
        .env("IMGD_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imgd gc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["removed"].as_u64().unwrap()
}

/// With Redis stopped, two nodes hold only node-local locks. Round after round an image of X is
/// deleted through one node while X is uploaded again through the other and collectors run with
/// no grace period (`imgd gc`, and each node's own every second): every acknowledged upload
/// stays readable through both nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_no_acknowledged_upload_is_lost_to_a_racing_delete_and_gc() {
    let _serial = SERIAL.lock().await;
    let Some(backends) = Backends::from_env().await else {
        return;
    };
    let client = reqwest::Client::new();
    let redis_port = free_port();
    let redis = PrivateRedis::start(redis_port);
    let backends = backends.with_redis(&format!("redis://127.0.0.1:{redis_port}/"));
    let collect = [
        ("IMGD_GC__INTERVAL_SECS", "1"),
        ("IMGD_GC__GRACE_SECS", "0"),
    ];
    let a = Node::start_with("node-a", free_port(), &backends, &collect);
    let b = Node::start_with("node-b", free_port(), &backends, &collect);
    for node in [&a, &b] {
        wait_members(&client, &node.base, &["node-a", "node-b"]).await;
    }
    drop(redis);
    for node in [&a, &b] {
        let started = Instant::now();
        while !coordination(&client, &node.base)
            .await
            .1
            .starts_with("degraded")
        {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{} never noticed Redis is down",
                node.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let x = fixtures::jpeg(64, 48);
    let rounds = 200;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        Duration::from_micros(rng % 20_000)
    };
    let (mut acknowledged, mut refused, mut cli_removed) = (0u64, 0u64, 0u64);
    let (mut test_removed, mut passes) = (0u64, 0u64);
    let mut config_env = backends.env.clone();
    let scratch = tempfile::tempdir().unwrap();
    config_env.push(("IMGD_DATA_DIR".into(), scratch.path().display().to_string()));
    // The nodes inherit the store's credentials from this process's environment.
    config_env.extend(
        std::env::vars().filter(|(k, _)| k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY"),
    );
    let config =
        imgd::config::Config::load(&imgd::config::Overrides::default(), config_env).unwrap();
    let gc = imgd::app::open_gc(&config).await.unwrap();
    let never = AtomicBool::new(false);
    let mut keep: Option<String> = None;
    let started = Instant::now();
    for round in 0..rounds {
        let (up, down) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let first = upload(&client, &down.base, x.clone()).await;
        acknowledged += 1;
        let delays = [next(), next(), next()];
        let previous = keep.take();
        let deleting = async {
            tokio::time::sleep(delays[0]).await;
            assert_eq!(delete_image(&client, &down.base, &first).await, 204);
            if let Some(previous) = &previous {
                assert_eq!(delete_image(&client, &up.base, previous).await, 204);
            }
        };
        let uploading = async {
            tokio::time::sleep(delays[1]).await;
            let response = client
                .post(format!("{}/v1/images", up.base))
                .bearer_auth(ADMIN_KEY)
                .body(x.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        };
        // One `imgd gc` process per round, and a collector in this process running pass after
        // pass until the delete and the upload are both done, so claims land anywhere in their
        // window.
        let done = AtomicBool::new(false);
        let racing = async {
            let outcome = tokio::join!(deleting, uploading);
            done.store(true, Ordering::SeqCst);
            outcome
        };
        let collect_only = GcOptions::collect_only(Duration::ZERO);
        let collecting = async {
            tokio::time::sleep(delays[2]).await;
            let backends = backends.clone();
            let cli = tokio::task::spawn_blocking(move || gc_cli(&backends));
            let (mut removed, mut passes) = (0, 0);
            loop {
                removed += gc.run(&collect_only, &Quiet, &never).await.unwrap().removed;
                passes += 1;
                if done.load(Ordering::SeqCst) {
                    return (cli.await.unwrap(), removed, passes);
                }
            }
        };
        let (((), (status, body)), (by_cli, by_test, ran)) = tokio::join!(racing, collecting);
        cli_removed += by_cli;
        test_removed += by_test;
        passes += ran;
        match status {
            201 => {
                acknowledged += 1;
                let id = body["id"].as_str().unwrap().to_owned();
                for node in [&a, &b] {
                    assert_eq!(
                        original(&client, &node.base, &id).await.as_deref(),
                        Some(x.as_slice()),
                        "round {round}: acknowledged upload {id} lost, read through {}",
                        node.id
                    );
                }
                keep = Some(id);
            }
            503 => {
                assert_eq!(body["code"], "unavailable", "{body}");
                refused += 1;
            }
            other => panic!("round {round}: upload answered {other}: {body}"),
        }
    }
    // A second later the nodes' own collectors have run again: the survivor is still there.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if let Some(id) = &keep {
        assert_eq!(
            original(&client, &a.base, id).await.as_deref(),
            Some(x.as_slice())
        );
    }
    let mut node_removed = 0;
    for node in [&a, &b] {
        node_removed += counter(&client, &node.base, "imgd_gc_blobs_removed_total").await;
    }
    eprintln!(
        "Redis down, {rounds} rounds in {:?}: {acknowledged} uploads acknowledged and readable on both nodes, \
         {refused} refused with 503; X collected {cli_removed} times by imgd gc, {test_removed} times by \
         {passes} passes of the test's collector and {node_removed} times by the nodes",
        started.elapsed()
    );
    assert!(
        cli_removed + test_removed + node_removed > 0,
        "no collector got in: the race was not exercised"
    );
}
