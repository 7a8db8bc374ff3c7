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
        .bearer_auth("k")
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

    let restarted = Process::spawn(dir.path(), &[], &[("IMGD_ADMIN_KEY", ADMIN_KEY)]);
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "swept at start-up"
    );
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/images", restarted.base))
        .bearer_auth("k")
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
