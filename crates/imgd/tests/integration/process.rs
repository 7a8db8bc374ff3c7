//! The real binary as a new user runs it: the CLI and environment contract, the generated admin
//! key, graceful drain on SIGTERM, and recovery after SIGKILL mid-upload.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{ADMIN_KEY, fixtures};

struct Process {
    child: Child,
    base: String,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `imgd serve` and waits for its "listening" log line.
    fn spawn(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_imgd"));
        command
            .arg("serve")
            .args(args)
            .env_remove("IMGD_ADMIN_KEY")
            .env("IMGD_DATA_DIR", data_dir);
        if !args.contains(&"--listen") && !env.iter().any(|(k, _)| *k == "IMGD_LISTEN") {
            command.env("IMGD_LISTEN", "127.0.0.1:0");
        }
        command
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = BufReader::new(child.stdout.take().unwrap());
        let sink = stdout.clone();
        std::thread::spawn(move || {
            out.lines()
                .map_while(Result::ok)
                .for_each(|l| sink.lock().unwrap().push(l))
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
                    && log["message"] == "imgd listening"
                {
                    let _ = tx.send(log["addr"].as_str().unwrap().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("imgd did not start listening");
        Process {
            child,
            base: format!("http://{addr}"),
            stdout,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "imgd did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stdout lines announcing a generated key, waiting up to `patience` for the first one.
fn wait_key_lines(p: &Process, patience: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let lines = key_lines(p);
        if !lines.is_empty() || started.elapsed() > patience {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn key_lines(p: &Process) -> Vec<String> {
    p.stdout
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("admin API key"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_generated_admin_key_is_stored_hashed_written_0600_and_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut first = Process::spawn(dir.path(), &[], &[]);
    let key_file = dir.path().join("admin.key");
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let printed = wait_key_lines(&first, Duration::from_secs(5));
    assert_eq!(printed.len(), 1);
    assert!(printed[0].ends_with(&key));
    let db = std::fs::read(dir.path().join("imgd.db")).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "the database never holds the key itself"
    );
    let ok = client
        .get(format!("{}/v1/images", first.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    first.signal("TERM");
    assert!(first.wait_exit(Duration::from_secs(10)).success());

    let second = Process::spawn(dir.path(), &[], &[]);
    assert!(
        wait_key_lines(&second, Duration::from_millis(500)).is_empty(),
        "the key is printed only when generated"
    );
    let ok = client
        .get(format!("{}/v1/images", second.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the generated key survives restarts");
}

#[tokio::test]
async fn flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (env_port, flag_port) = (free_port(), free_port());
    let env_listen = format!("127.0.0.1:{env_port}");
    let by_env = Process::spawn(
        dir.path(),
        &[],
        &[("IMGD_LISTEN", &env_listen), ("IMGD_ADMIN_KEY", ADMIN_KEY)],
    );
    assert_eq!(by_env.base, format!("http://127.0.0.1:{env_port}"));
    drop(by_env);
    let flag_listen = format!("127.0.0.1:{flag_port}");
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().display().to_string();
    let by_flag = Process::spawn(
        dir.path(),
        &["--listen", &flag_listen, "--data-dir", &other],
        &[("IMGD_LISTEN", &env_listen), ("IMGD_ADMIN_KEY", ADMIN_KEY)],
    );
    assert_eq!(by_flag.base, format!("http://127.0.0.1:{flag_port}"));
    assert!(
        other_dir.path().join("imgd.db").exists(),
        "--data-dir beats IMGD_DATA_DIR"
    );
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::spawn(dir.path(), &[], &[("IMGD_ADMIN_KEY", ADMIN_KEY)]);
    // An upload whose body is still arriving when the signal comes.
    let bytes = fixtures::jpeg(600, 400);
    let (tx, upload) = half_sent_upload(&server, dir.path(), &bytes).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "imgd waits for the in-flight upload"
    );
    tx.unbounded_send(Ok(bytes[bytes.len() / 2..].to_vec()))
        .unwrap();
    drop(tx);
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), 201, "the in-flight upload completed");
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

type Chunks = futures::channel::mpsc::UnboundedSender<Result<Vec<u8>, std::io::Error>>;
type Upload = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;

/// Starts an upload of `bytes` that has sent only its first half, and waits until the server is
/// writing it to staging. Send the rest through the returned sender.
async fn half_sent_upload(server: &Process, data_dir: &Path, bytes: &[u8]) -> (Chunks, Upload) {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    tx.unbounded_send(Ok(bytes[..bytes.len() / 2].to_vec()))
        .unwrap();
    let request = reqwest::Client::new()
        .post(format!("{}/v1/images", server.base))
        .bearer_auth(ADMIN_KEY)
        .body(reqwest::Body::wrap_stream(rx));
    let upload = tokio::spawn(request.send());
    wait_for_staged_file(&data_dir.join("tmp").join("uploads")).await;
    (tx, upload)
}

async fn wait_for_staged_file(staging: &Path) {
    let started = Instant::now();
    while std::fs::read_dir(staging).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the upload never reached staging"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_crash_mid_upload_leaves_no_image_and_the_leftover_is_swept() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::spawn(dir.path(), &[], &[("IMGD_ADMIN_KEY", ADMIN_KEY)]);
    let bytes = fixtures::jpeg(600, 400);
    let (tx, upload) = half_sent_upload(&server, dir.path(), &bytes).await;
    let staging = dir.path().join("tmp").join("uploads");
    server.signal("KILL");
    server.wait_exit(Duration::from_secs(10));
    assert!(
        upload.await.unwrap().is_err(),
        "the client saw the connection die"
    );
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        1,
        "the crash left a partial file"
    );
    drop(tx);

    // `imgd gc` finds it without a restart: listed by a dry run, removed by a run.
    let gc = |args: &[&str]| crate::gc::gc_cli(dir.path(), args);
    let young = gc(&["--grace-secs", "0"]);
    assert_eq!(
        young["stray_files"], 0,
        "a file touched minutes ago may be a live upload's, whatever the grace"
    );
    // Aged past the least age of a leftover, as a file half an hour after the crash is.
    let partial = std::fs::read_dir(&staging)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let aged = Command::new("touch")
        .args(["-d", "30 minutes ago"])
        .arg(&partial)
        .status()
        .unwrap();
    assert!(aged.success());
    let graced = gc(&[]);
    assert_eq!(
        graced["stray_files"], 0,
        "half an hour is within the default grace period of an hour"
    );
    let dry = gc(&["--dry-run", "--grace-secs", "0"]);
    assert_eq!(dry["stray_files"], 1, "{dry}");
    assert_eq!(dry["would_remove"][0]["kind"], "stray_file");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 1);
    let swept = gc(&["--grace-secs", "0"]);
    assert_eq!(
        (swept["stray_files"].as_u64(), swept["errors"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "removed by gc"
    );
    std::fs::write(staging.join("upload-left-again.part"), b"half").unwrap();

    let restarted = Process::spawn(dir.path(), &[], &[("IMGD_ADMIN_KEY", ADMIN_KEY)]);
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "swept at start-up"
    );
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/images", restarted.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["images"].as_array().unwrap().len(),
        0,
        "no partial image is visible"
    );
}

/// CPU seconds the process has used (user + system), from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// A client that disconnects mid-render stops the render: the process goes idle within
/// seconds instead of finishing a blur and WebP encode nobody will read, and its one worker is
/// free. Many abandoned requests, queued or running, leak no queue place.
#[tokio::test]
async fn a_render_whose_client_left_stops_and_frees_its_worker() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::spawn(
        dir.path(),
        &[],
        &[
            ("IMGD_ADMIN_KEY", ADMIN_KEY),
            ("IMGD_RENDER__WORKERS", "1"),
            ("IMGD_RENDER__QUEUE", "4"),
            ("IMGD_LIMITS__MEMORY_BUDGET_MB", "2048"),
        ],
    );
    let client = reqwest::Client::new();
    let upload = |bytes: Vec<u8>| {
        client
            .post(format!("{}/v1/images", p.base))
            .bearer_auth(ADMIN_KEY)
            .body(bytes)
            .send()
    };
    let big: serde_json::Value = upload(fixtures::jpeg(4000, 4000))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let small: serde_json::Value = upload(fixtures::jpeg(64, 64))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = p.child.id();
    // A render of several seconds: a 36 MP resize, blur and WebP encode.
    let slow_variant = |width: u32| {
        format!(
            "{}/i/{}/w={width},h=6000,fit=fill,blur=80,f=webp",
            p.base,
            big["id"].as_str().unwrap()
        )
    };
    let slow = slow_variant(6000);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let busy_from = cpu_seconds(pid);
    assert!(
        impatient.get(&slow).send().await.is_err(),
        "the client gave up"
    );
    let given_up = Instant::now();
    let busy = cpu_seconds(pid) - busy_from;
    // Loose on purpose: other tests share the machine's two cores.
    assert!(busy > 0.05, "the render was running ({busy:.2} s of CPU)");
    // The job stops at its next checkpoint: between stages, between bands of the blur, and
    // inside the WebP encode (libwebp's progress hook). It is counted as cancelled instead of
    // finishing, and only then does the process go idle.
    let metrics = |client: reqwest::Client, base: String| async move {
        client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let cancelled_after = loop {
        if metrics(client.clone(), p.base.clone())
            .await
            .contains("imgd_renders_cancelled_total 1")
        {
            break given_up.elapsed();
        }
        assert!(
            given_up.elapsed() < Duration::from_secs(60),
            "the render was not cancelled within 60 s of its client leaving"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 0.2,
        "idle once cancelled ({used:.2} s CPU in a second)"
    );
    // The one worker is free: a small render answers at once.
    let started = Instant::now();
    let small_variant = format!("{}/i/{}/w=32", p.base, small["id"].as_str().unwrap());
    assert_eq!(
        client.get(&small_variant).send().await.unwrap().status(),
        200
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    eprintln!("cancelled {cancelled_after:?} after the client left");

    // Twelve abandoned requests: one runs, four queue (the queue holds 4), the rest are refused.
    let abandoned: Vec<_> = (0..12)
        .map(|i| impatient.get(slow_variant(5990 - i)).send())
        .collect();
    for outcome in futures::future::join_all(abandoned).await {
        assert!(
            outcome.map_or(true, |r| r.status() == 503),
            "given up on, or refused"
        );
    }
    // Until the one that ran has stopped too (the process idles).
    let abandoned_at = Instant::now();
    loop {
        let before = cpu_seconds(pid);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if cpu_seconds(pid) - before < 0.1 {
            break;
        }
        assert!(
            abandoned_at.elapsed() < Duration::from_secs(60),
            "abandoned renders still running after 60 s"
        );
    }
    // Had a queued waiter kept its place, the queue below would be short of room. Hold the
    // worker with a render nobody abandons yet, fill the queue with four small renders, then
    // abandon the holder: all four must be served.
    let holder = tokio::spawn(client.get(slow_variant(5900)).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queued: Vec<_> = (0..4)
        .map(|i| {
            let url = format!(
                "{}/i/{}/w={}",
                p.base,
                small["id"].as_str().unwrap(),
                20 + i
            );
            tokio::spawn(client.get(url).send())
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    holder.abort();
    for answer in futures::future::join_all(queued).await {
        let status = answer.unwrap().unwrap().status();
        assert_eq!(
            status, 200,
            "a queued render behind abandoned ones was served"
        );
    }
}

/// Misconfigured secrets stop the start, before the data dir is touched, with a message that
/// says what to fix: a short admin key, PostgreSQL without a secret key, a malformed secret key.
#[tokio::test]
async fn weak_or_missing_secrets_refuse_to_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (env, says) in [
        (
            vec![("IMGD_ADMIN_KEY", "short-admin-key")],
            "auth.admin_key (IMGD_ADMIN_KEY) must be at least 24 characters, not 15",
        ),
        (
            vec![
                ("IMGD_ADMIN_KEY", ADMIN_KEY),
                ("IMGD_DATABASE_URL", "postgres://127.0.0.1:1/none"),
            ],
            "needs a secret key shared by every node: set IMGD_SECRET_KEY",
        ),
        (
            vec![
                ("IMGD_ADMIN_KEY", ADMIN_KEY),
                ("IMGD_SECRET_KEY", "REPLACE-ME"),
            ],
            "auth.secret_key (IMGD_SECRET_KEY) is not a valid key",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_imgd"))
            .arg("serve")
            .env_remove("IMGD_SECRET_KEY")
            .env_remove("IMGD_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env("IMGD_DATA_DIR", &data)
            .env("IMGD_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?} started");
        assert!(stderr.contains(says), "{env:?}: {stderr}");
    }
    assert!(!data.exists(), "refused before creating anything");
}

/// `imgd config` prints the resolved configuration as TOML with every secret masked.
#[tokio::test]
async fn config_output_masks_every_secret() {
    let secrets = [
        ("IMGD_ADMIN_KEY", "printed-admin-key-0123456789"),
        (
            "IMGD_SECRET_KEY",
            "7072696e7465642d6b656b2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d",
        ),
        ("AWS_SECRET_ACCESS_KEY", "printed-s3-secret"),
        ("IMGD_CLUSTER_SECRET", "printed-cluster-secret"),
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_imgd"))
        .arg("config")
        .envs(secrets)
        .env(
            "IMGD_DATABASE_URL",
            "postgres://imgd:printed-db-pass@db/imgd?password=printed-query-pass",
        )
        .env("IMGD_REDIS_URL", "redis://:printed-redis-pass@redis:6379/")
        .env("IMGD_STORE", "s3://bucket")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // TOML, as `imgd config --help` says, that parses as such.
    let printed: toml::Table = stdout.parse().expect("imgd config prints TOML");
    assert_eq!(
        printed["auth"]["secret_key"].as_str(),
        Some("<set, not shown>"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("printed-"),
        "a secret was printed:\n{stdout}"
    );
    assert!(!stdout.contains("7072696e7465642d"), "the KEK was printed");
}

/// SIGKILL in the middle of a render leaves nothing that breaks later and nothing `imgd gc`
/// must take that is still referenced: the next process serves the original and renders the
/// variant, and a collection with no grace period removes nothing (what a kill can leave, a
/// temp file of the store, goes as a stray file).
#[tokio::test]
async fn a_crash_mid_render_leaves_nothing_referenced_to_collect() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("IMGD_ADMIN_KEY", ADMIN_KEY),
        ("IMGD_RENDER__WORKERS", "1"),
        ("IMGD_LIMITS__MEMORY_BUDGET_MB", "2048"),
    ];
    let mut server = Process::spawn(dir.path(), &[], &env);
    let source = fixtures::jpeg(3000, 2000);
    let client = reqwest::Client::new();
    let uploaded: serde_json::Value = client
        .post(format!("{}/v1/images", server.base))
        .bearer_auth(ADMIN_KEY)
        .body(source.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = uploaded["id"].as_str().unwrap().to_owned();
    let variant = format!("/i/{id}/w=2800,blur=40,f=webp");
    let pending = tokio::spawn(client.get(format!("{}{variant}", server.base)).send());
    // Killed once the render is using CPU.
    let pid = server.child.id();
    let from = cpu_seconds(pid);
    let started = Instant::now();
    while cpu_seconds(pid) - from < 0.3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the render never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.signal("KILL");
    server.wait_exit(Duration::from_secs(10));
    assert!(
        pending.await.unwrap().is_err(),
        "the client saw the connection die"
    );

    let report = crate::gc::gc_cli(dir.path(), &["--grace-secs", "0"]);
    assert_eq!(
        (
            report["unrecorded"].as_u64(),
            report["removed"].as_u64(),
            report["errors"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{report}"
    );

    let restarted = Process::spawn(dir.path(), &[], &env);
    let original = client
        .get(format!("{}/i/{id}", restarted.base))
        .send()
        .await
        .unwrap();
    assert_eq!(original.status(), 200);
    assert_eq!(original.bytes().await.unwrap().to_vec(), source);
    let rendered = client
        .get(format!("{}{variant}", restarted.base))
        .send()
        .await
        .unwrap();
    assert_eq!(rendered.status(), 200);
    assert_eq!(rendered.headers()["content-type"], "image/webp");
}
