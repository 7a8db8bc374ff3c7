//! Test harness: a real imgd server on an ephemeral port over a temp data dir, and image
//! fixtures generated in code (every property known); HEIC, which no Rust crate encodes, comes
//! from `tests/fixtures`.

#![allow(dead_code)]

pub mod fixtures;

use std::path::PathBuf;

use imgd::config::{Config, Overrides};
use reqwest::{Client, RequestBuilder};

/// The admin key test servers are started with.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// The KEK test servers on PostgreSQL are given (which requires one); on SQLite each data dir
/// generates its own `secret.key`, as the embedded default does.
pub const SECRET_KEY: &str = "746573742d7365637265742d6b65792d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d";

/// A running in-process server; stops when dropped.
pub struct TestServer {
    pub base: String,
    pub client: Client,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// A server with default configuration.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A server with extra `IMGD_*` environment-style settings, e.g. `("IMGD_LIMITS__MAX_UPLOAD_BYTES", "100")`.
    pub async fn start_with(settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_in(dir.path(), settings).await;
        server._dir = Some(dir);
        server
    }

    /// The configuration [`TestServer::start_in`] starts with (to test starts that must fail).
    pub async fn config_in(data_dir: &std::path::Path, settings: &[(&str, &str)]) -> Config {
        let mut env: Vec<(String, String)> = vec![
            ("IMGD_LISTEN".into(), "127.0.0.1:0".into()),
            ("IMGD_DATA_DIR".into(), data_dir.display().to_string()),
            ("IMGD_ADMIN_KEY".into(), ADMIN_KEY.into()),
        ];
        if let Some(url) = metadata_database(data_dir).await {
            env.push(("IMGD_DATABASE_URL".into(), url));
            env.push(("IMGD_SECRET_KEY".into(), SECRET_KEY.into()));
        }
        env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // A test that names its own PostgreSQL database needs the shared KEK as every
        // PostgreSQL start does, unless it is testing that very refusal.
        let names = |key: &str| env.iter().any(|(k, _)| k == key);
        if names("IMGD_DATABASE_URL") && !names("IMGD_SECRET_KEY") && !names("IMGD_SECRET_KEY_FILE")
        {
            env.push(("IMGD_SECRET_KEY".into(), SECRET_KEY.into()));
        }
        Config::load(&Overrides::default(), env).unwrap()
    }

    /// A server over an existing data dir (to test restarts).
    pub async fn start_in(data_dir: &std::path::Path, settings: &[(&str, &str)]) -> Self {
        // The server runs inside this test binary, which does not answer the HEIF decoder's
        // subcommand: the imgd binary does.
        #[cfg(feature = "heif")]
        imgd_imaging::decode::set_heif_helper(env!("CARGO_BIN_EXE_imgd").into());
        let config = Self::config_in(data_dir, settings).await;
        let server = imgd::app::start(config, imgd::telemetry::metrics_handle())
            .await
            .unwrap();
        let base = format!("http://{}", server.addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            client: Client::new(),
            data_dir: data_dir.to_owned(),
            _dir: None,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `/v1{path}` with the admin key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(&format!("/v1{path}")))
            .bearer_auth(ADMIN_KEY)
    }

    /// Uploads raw bytes; returns (status, JSON body).
    pub async fn upload(&self, bytes: Vec<u8>) -> (u16, serde_json::Value) {
        let response = self
            .api(reqwest::Method::POST, "/images")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Uploads and returns the new image's id, asserting success.
    pub async fn upload_ok(&self, bytes: Vec<u8>) -> String {
        let (status, body) = self.upload(bytes).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// A `/v1` request without a body; returns its JSON.
    pub async fn api_json(&self, method: reqwest::Method, path: &str) -> serde_json::Value {
        self.api(method, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A `/v1` request without a body; returns its status.
    pub async fn api_status(&self, method: reqwest::Method, path: &str) -> u16 {
        self.api(method, path)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Files under the data dir's `sub` folder, recursively.
    pub fn files_under(&self, sub: &str) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out)
                } else {
                    out.push(path)
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir.join(sub), &mut out);
        out
    }
}

/// With `IMGD_TEST_METADATA=postgres` the suite runs on PostgreSQL (`.ci/run` runs it both
/// ways): each data dir gets its own fresh database, kept across restarts of that data dir.
async fn metadata_database(data_dir: &std::path::Path) -> Option<String> {
    if std::env::var("IMGD_TEST_METADATA").ok()? != "postgres" {
        return None;
    }
    let admin = std::env::var("IMGD_TEST_DATABASE_URL")
        .expect("IMGD_TEST_METADATA=postgres needs IMGD_TEST_DATABASE_URL");
    let marker = data_dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return Some(url);
    }
    let url = crate::postgres::fresh_database(&admin).await;
    std::fs::write(&marker, &url).unwrap();
    Some(url)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// GETs `path` (with `accept`), asserting a 200: its headers and body.
pub async fn fetch(
    server: &TestServer,
    path: &str,
    accept: Option<&str>,
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = server.client.get(server.url(path));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    (
        response.headers().clone(),
        response.bytes().await.unwrap().to_vec(),
    )
}

/// The JSON error code of a response.
pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        body["code"].as_str().unwrap_or("<no code>").to_owned(),
    )
}

/// Pixels decoded by imgd's own decoder (the test build's `image` has no JPEG decoder).
pub fn decoded(bytes: &[u8]) -> image::DynamicImage {
    let job = imgd_core::port::JobControl::new(
        std::time::Instant::now() + std::time::Duration::from_secs(60),
        None,
    );
    imgd_imaging::decode::decode(bytes, &probe(bytes), None, 1 << 24, &job)
        .unwrap()
        .image
}

/// Decodes an image with the project's own pipeline probe (format and stored dimensions).
pub fn probe(bytes: &[u8]) -> imgd_imaging::probe::Probe {
    imgd_imaging::probe::probe(bytes).unwrap()
}
