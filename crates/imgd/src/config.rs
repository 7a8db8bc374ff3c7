//! Configuration in two stages (ripgrep's lowargs -> hiargs): layers of TOML merged as values
//! (defaults < file < environment < flags), then deserialised once into [`Config`], which
//! rejects unknown keys and checks ranges. Nothing else in imgd reads the environment.
//!
//! The defaults are `config/default.toml` itself, embedded at build time, so the documented file
//! and the behaviour cannot drift apart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// The documented defaults.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Named environment variables and the option each sets. Values are strings unless the option
/// is a number or a boolean (`IMGD_S3_PATH_STYLE=true`): a key or path that looks numeric stays
/// text.
pub const ENV_OPTIONS: &[(&str, &str, &str)] = &[
    ("IMGD_LISTEN", "server", "listen"),
    ("IMGD_DATA_DIR", "server", "data_dir"),
    ("IMGD_PUBLIC_URL", "server", "public_url"),
    ("IMGD_ADMIN_KEY", "auth", "admin_key"),
    ("IMGD_SECRET_KEY", "auth", "secret_key"),
    ("IMGD_SECRET_KEY_FILE", "auth", "secret_key_file"),
    ("IMGD_LOG", "log", "level"),
    ("IMGD_LOG_FORMAT", "log", "format"),
    ("IMGD_DATABASE_URL", "database", "url"),
    ("IMGD_STORE", "storage", "store"),
    ("IMGD_S3_ENDPOINT", "storage", "s3_endpoint"),
    ("IMGD_S3_REGION", "storage", "s3_region"),
    ("IMGD_S3_PATH_STYLE", "storage", "s3_path_style"),
    ("AWS_ACCESS_KEY_ID", "storage", "s3_access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "storage", "s3_secret_access_key"),
    ("IMGD_REDIS_URL", "cluster", "redis_url"),
    ("IMGD_NODE_ID", "cluster", "node_id"),
    ("IMGD_ADVERTISE_URL", "cluster", "advertise_url"),
    ("IMGD_CLUSTER_SECRET", "cluster", "secret"),
];

/// Named variables whose option is typed (boolean), parsed like `IMGD_<SECTION>__<KEY>` values.
const TYPED_ENV: &[&str] = &["IMGD_S3_PATH_STYLE"];

/// Read only when `IMGD_DATABASE_URL` is absent: the name most PostgreSQL tooling uses.
const FALLBACK_DATABASE_ENV: &str = "DATABASE_URL";

/// The validated configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub render: RenderConfig,
    pub log: LogConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub cluster: ClusterConfig,
    pub gc: GcConfig,
    pub presets: BTreeMap<String, String>,
}

/// `[gc]`: when unreferenced blobs are collected, and the timings of the pin/claim protocol.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    /// 0: no periodic collection on this node.
    pub interval_secs: u64,
    pub grace_secs: u64,
    pub pin_ttl_secs: u64,
    pub pin_wait_secs: u64,
    pub claim_ttl_secs: u64,
    /// 0: the server never lists the whole store (`imgd gc` still does).
    pub scan_interval_secs: u64,
    /// 0: multipart uploads are never aborted for age.
    pub upload_ttl_secs: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub store: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_path_style: bool,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    pub s3_multipart_threshold_mb: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub redis_url: String,
    pub namespace: String,
    pub node_id: String,
    pub advertise_url: String,
    pub secret: String,
    pub weight: f64,
    pub heartbeat_ttl_ms: u64,
    pub forward_timeout_ms: u64,
    pub lock_ttl_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: String,
    pub shutdown_grace_secs: u64,
    pub client_ip_header: String,
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub body_timeout_secs: u64,
    pub min_upload_bytes_per_sec: u64,
    pub max_header_bytes: usize,
    pub max_connections: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub admin_key: String,
    /// The KEK itself (hex or base64 of 32 bytes); checked here, used by `app`.
    pub secret_key: String,
    /// A file holding the KEK; read by `app` at start.
    pub secret_key_file: PathBuf,
}

/// The shortest operator-chosen admin key accepted: long enough that guessing is hopeless even
/// for a key a person made up.
pub const MIN_ADMIN_KEY_CHARS: usize = 24;

/// Where the KEK comes from, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretKeySource {
    /// `auth.secret_key` / `IMGD_SECRET_KEY`.
    Value(String),
    /// `auth.secret_key_file`.
    File(PathBuf),
    /// Neither: the embedded default generates `DATA_DIR/secret.key` on first start.
    DataDir,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_upload_bytes: u64,
    pub max_pixels: u64,
    pub max_frames: u64,
    pub max_output_dimension: u32,
    pub api_requests_per_minute: u32,
    pub api_burst: u32,
    pub client_requests_per_minute: u32,
    pub client_burst: u32,
    pub uploads_per_minute: u32,
    pub upload_burst: u32,
    pub renders_per_minute: u32,
    pub render_burst: u32,
    pub client_renders_per_minute: u32,
    pub client_render_burst: u32,
    pub memory_budget_mb: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    pub workers: usize,
    pub queue: usize,
    pub timeout_secs: u64,
    pub keep_icc: bool,
    pub avif_speed: u8,
    pub max_avif_pixels: u64,
    pub max_gif_pixels: u64,
    pub max_animation_pixels: u64,
    pub quality_jpeg: u8,
    pub quality_webp: u8,
    pub quality_avif: u8,
    pub memory_cache_mb: u64,
    pub memory_item_max_kb: u64,
    pub record_cache_ttl_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// Merges `top` into `base`, recursing into tables.
fn merge(base: &mut Table, top: Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(base_table)), Value::Table(top_table)) => {
                merge(base_table, top_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn set(table: &mut Table, section: &str, key: &str, value: Value) {
    let section = table
        .entry(section.to_owned())
        .or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(section) = section {
        section.insert(key.to_owned(), value);
    }
}

/// An environment value as TOML: numbers and booleans typed, anything else a string.
fn env_value(raw: &str) -> Value {
    raw.parse::<i64>()
        .map(Value::Integer)
        .or_else(|_| raw.parse::<bool>().map(Value::Boolean))
        .unwrap_or_else(|_| Value::String(raw.to_owned()))
}

impl Config {
    /// Resolves the configuration from defaults, `overrides.config_file`, `env` and flags.
    pub fn load(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut table: Table = DEFAULT_TOML
            .parse()
            .context("parsing the built-in defaults")?;
        if let Some(path) = &overrides.config_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file: Table = text
                .parse()
                .with_context(|| format!("parsing {}", path.display()))?;
            merge(&mut table, file);
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let has_imgd_database = env.iter().any(|(name, _)| name == "IMGD_DATABASE_URL");
        for (name, raw) in env {
            if name == FALLBACK_DATABASE_ENV && !has_imgd_database {
                set(&mut table, "database", "url", Value::String(raw));
            } else if let Some((_, section, key)) =
                ENV_OPTIONS.iter().find(|(env, _, _)| *env == name)
            {
                let value = if TYPED_ENV.contains(&name.as_str()) {
                    env_value(&raw)
                } else {
                    Value::String(raw)
                };
                set(&mut table, section, key, value);
            } else if let Some((section, key)) = name
                .strip_prefix("IMGD_")
                .and_then(|rest| rest.split_once("__"))
            {
                // One variable per option: a second spelling of an option that has a named
                // variable would make the winner depend on the environment's order.
                let (section_lc, key_lc) = (section.to_lowercase(), key.to_lowercase());
                if let Some((named, _, _)) = ENV_OPTIONS
                    .iter()
                    .find(|(_, s, k)| *s == section_lc && *k == key_lc)
                {
                    bail!(
                        "{name}: {section_lc}.{key_lc} is set by {named} in the environment; \
                         each option has one variable"
                    );
                }
                set(
                    &mut table,
                    &section.to_lowercase(),
                    &key.to_lowercase(),
                    env_value(&raw),
                );
            }
        }
        if let Some(listen) = &overrides.listen {
            set(
                &mut table,
                "server",
                "listen",
                Value::String(listen.clone()),
            );
        }
        if let Some(dir) = &overrides.data_dir {
            set(
                &mut table,
                "server",
                "data_dir",
                Value::String(dir.display().to_string()),
            );
        }
        let config: Config = Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.validate_auth()?;
        let r = &self.render;
        for (name, q) in [
            ("quality_jpeg", r.quality_jpeg),
            ("quality_webp", r.quality_webp),
            ("quality_avif", r.quality_avif),
        ] {
            if !(1..=100).contains(&q) {
                bail!("render.{name} must be 1..=100, not {q}");
            }
        }
        if !(1..=10).contains(&r.avif_speed) {
            bail!("render.avif_speed must be 1..=10");
        }
        if r.timeout_secs == 0 {
            bail!("render.timeout_secs must be positive");
        }
        if self.limits.max_upload_bytes == 0
            || self.limits.max_pixels == 0
            || self.limits.max_output_dimension == 0
        {
            bail!("limits must be positive");
        }
        if self.server.public_url.ends_with('/') {
            bail!("server.public_url must not end with '/'");
        }
        let server = &self.server;
        if server.header_read_timeout_secs == 0
            || server.idle_timeout_secs == 0
            || server.body_timeout_secs == 0
        {
            bail!(
                "server.header_read_timeout_secs, idle_timeout_secs and body_timeout_secs must be positive"
            );
        }
        if server.max_header_bytes < 4096 {
            bail!("server.max_header_bytes must be at least 4096");
        }
        if server.max_connections == 0 {
            bail!("server.max_connections must be positive");
        }
        let store = self.store_spec()?;
        let engine = self.metadata_engine()?;
        let c = &self.cluster;
        if !c.redis_url.is_empty() {
            if c.secret.len() < 16 {
                bail!(
                    "cluster.secret (IMGD_CLUSTER_SECRET) of at least 16 characters is required with a Redis URL"
                );
            }
            if engine.is_embedded() || store.is_local() {
                bail!(
                    "a cluster (IMGD_REDIS_URL) needs shared metadata and blobs: set IMGD_DATABASE_URL and IMGD_STORE=s3://..."
                );
            }
        }
        if !(c.weight > 0.0 && c.weight.is_finite()) {
            bail!("cluster.weight must be positive");
        }
        if c.heartbeat_ttl_ms < 300 || c.lock_ttl_ms < 300 {
            bail!("cluster.heartbeat_ttl_ms and cluster.lock_ttl_ms must be at least 300");
        }
        if self.gc.pin_ttl_secs == 0 || self.gc.claim_ttl_secs < 2 {
            bail!("gc.pin_ttl_secs must be positive and gc.claim_ttl_secs at least 2");
        }
        Ok(())
    }

    /// The admin key's length, and the KEK's form and presence: a cluster (PostgreSQL) refuses
    /// to start without one, because every node must seal and open with the same key.
    fn validate_auth(&self) -> Result<()> {
        let a = &self.auth;
        let chars = a.admin_key.chars().count();
        if chars > 0 && chars < MIN_ADMIN_KEY_CHARS {
            bail!(
                "auth.admin_key (IMGD_ADMIN_KEY) must be at least {MIN_ADMIN_KEY_CHARS} characters, \
                 not {chars}; e.g. `openssl rand -hex 24`, or leave it empty to have one generated"
            );
        }
        if !a.secret_key.is_empty() && !a.secret_key_file.as_os_str().is_empty() {
            bail!(
                "set auth.secret_key (IMGD_SECRET_KEY) or auth.secret_key_file (IMGD_SECRET_KEY_FILE), not both"
            );
        }
        if !a.secret_key.is_empty() {
            imgd_core::service::sealing::Kek::parse(&a.secret_key).map_err(|e| {
                anyhow::anyhow!("auth.secret_key (IMGD_SECRET_KEY) is not a valid key: {e}")
            })?;
        }
        if self.secret_key_source() == SecretKeySource::DataDir
            && !self.metadata_engine()?.is_embedded()
        {
            bail!(
                "PostgreSQL (IMGD_DATABASE_URL) needs a secret key shared by every node: set \
                 IMGD_SECRET_KEY (auth.secret_key, e.g. `openssl rand -hex 32`) or \
                 auth.secret_key_file"
            );
        }
        Ok(())
    }

    /// Where the KEK comes from.
    pub fn secret_key_source(&self) -> SecretKeySource {
        let a = &self.auth;
        if !a.secret_key.is_empty() {
            SecretKeySource::Value(a.secret_key.clone())
        } else if !a.secret_key_file.as_os_str().is_empty() {
            SecretKeySource::File(a.secret_key_file.clone())
        } else {
            SecretKeySource::DataDir
        }
    }

    /// The pipeline's settings.
    pub fn pipeline_settings(&self) -> imgd_imaging::PipelineSettings {
        imgd_imaging::PipelineSettings {
            keep_icc: self.render.keep_icc,
            encode: imgd_imaging::encode::EncodeOptions {
                avif_speed: self.render.avif_speed,
            },
            max_pixels: self.limits.max_pixels,
            max_avif_pixels: self.render.max_avif_pixels,
            max_gif_pixels: self.render.max_gif_pixels,
            max_animation_pixels: self.render.max_animation_pixels,
        }
    }

    /// The blob-collection protocol's timings, for uploads and collectors.
    pub fn collect_timings(&self) -> imgd_core::service::gc::CollectTimings {
        let g = &self.gc;
        imgd_core::service::gc::CollectTimings {
            pin_ttl: std::time::Duration::from_secs(g.pin_ttl_secs),
            pin_wait: std::time::Duration::from_secs(g.pin_wait_secs),
            claim_ttl: std::time::Duration::from_secs(g.claim_ttl_secs),
        }
    }

    /// Where this node stages upload bodies while they are hashed and checked.
    pub fn staging_dir(&self) -> PathBuf {
        self.server.data_dir.join("tmp").join("uploads")
    }

    /// What a collection run does beyond the orphan rule, as configured (the server's job and
    /// `imgd gc` start from this).
    pub fn gc_options(&self) -> imgd_core::service::gc::GcOptions {
        let g = &self.gc;
        imgd_core::service::gc::GcOptions {
            grace: std::time::Duration::from_secs(g.grace_secs),
            dry_run: false,
            scan_store: true,
            collect: true,
            sweep_files: true,
            upload_ttl: (g.upload_ttl_secs > 0)
                .then(|| std::time::Duration::from_secs(g.upload_ttl_secs)),
        }
    }

    /// Default quality per lossy format.
    pub fn quality_defaults(&self) -> imgd_core::transform::QualityDefaults {
        let r = &self.render;
        imgd_core::transform::QualityDefaults {
            jpeg: r.quality_jpeg,
            webp: r.quality_webp,
            avif: r.quality_avif,
        }
    }

    /// Bounds on what a variant may ask for.
    pub fn transform_limits(&self) -> imgd_core::transform::TransformLimits {
        imgd_core::transform::TransformLimits {
            max_dimension: self.limits.max_output_dimension,
        }
    }

    /// The configured presets, parsed.
    pub fn presets(&self) -> Result<imgd_core::transform::Presets> {
        imgd_core::transform::Presets::parse(&self.presets, &self.transform_limits())
            .map_err(|e| anyhow::anyhow!("invalid [presets]: {e}"))
    }

    /// The configuration as a TOML file `--config` takes back (secrets as they are: call
    /// [`Config::hide_secrets`] first to print it).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).context("writing the configuration as TOML")
    }

    /// Replaces every secret with a marker, for printing.
    pub fn hide_secrets(&mut self) {
        let hide = |value: &mut String| {
            if !value.is_empty() {
                *value = "<set, not shown>".into();
            }
        };
        hide(&mut self.auth.admin_key);
        hide(&mut self.auth.secret_key);
        hide(&mut self.storage.s3_secret_access_key);
        hide(&mut self.cluster.secret);
        // A database or Redis URL may carry a password.
        for url in [&mut self.database.url, &mut self.cluster.redis_url] {
            *url = hide_url_credentials(url);
        }
    }

    /// The `/v1` rates per client address, per key and per key's uploads.
    pub fn api_limits(&self) -> imgd_http::middleware::access::ApiLimits {
        let l = &self.limits;
        imgd_http::middleware::access::ApiLimits {
            client: rate(l.client_requests_per_minute, l.client_burst),
            key: rate(l.api_requests_per_minute, l.api_burst),
            upload: rate(l.uploads_per_minute, l.upload_burst),
        }
    }

    /// Per-connection limits: header, idle and body timeouts, head size, connection count.
    pub fn connection_limits(&self) -> imgd_http::serve::ConnectionLimits {
        let s = &self.server;
        imgd_http::serve::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(s.header_read_timeout_secs),
            idle_timeout: std::time::Duration::from_secs(s.idle_timeout_secs),
            body: imgd_http::serve::body::BodyLimits {
                timeout: std::time::Duration::from_secs(s.body_timeout_secs),
                min_bytes_per_sec: s.min_upload_bytes_per_sec,
            },
            max_header_bytes: s.max_header_bytes,
            max_connections: s.max_connections,
        }
    }

    /// Renders per tenant, if limited.
    pub fn render_rate(&self) -> Option<imgd_core::port::Rate> {
        rate(self.limits.renders_per_minute, self.limits.render_burst)
    }

    /// Renders per client address, if limited.
    pub fn client_render_rate(&self) -> Option<imgd_core::port::Rate> {
        rate(
            self.limits.client_renders_per_minute,
            self.limits.client_render_burst,
        )
    }

    /// Bytes renders and upload inspections may reserve together.
    pub fn memory_budget_bytes(&self) -> u64 {
        self.limits.memory_budget_mb.saturating_mul(1 << 20)
    }

    /// The client-address header, if configured and valid.
    pub fn client_ip_header(&self) -> Option<axum::http::HeaderName> {
        let name = self.server.client_ip_header.trim();
        (!name.is_empty())
            .then(|| axum::http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok())
            .flatten()
    }

    /// This node's id: configured, else the host name (a StatefulSet pod's stable name).
    pub fn node_id(&self) -> String {
        if !self.cluster.node_id.is_empty() {
            return self.cluster.node_id.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("imgd-{}", self.server.listen.port()))
    }

    /// How peers reach this node: configured, else `http://` + the listen address.
    pub fn advertise_url(&self, bound: std::net::SocketAddr) -> String {
        let url = &self.cluster.advertise_url;
        if url.is_empty() {
            format!("http://{bound}")
        } else {
            url.trim_end_matches('/').to_owned()
        }
    }

    /// The blob store `storage.store` names. The flat `storage.s3_*` keys (and their env
    /// names) fill in what an `s3://` URL does not say.
    pub fn store_spec(&self) -> Result<imgd_blob::StoreSpec> {
        let s = &self.storage;
        let non_empty = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
        let s3 = imgd_blob::S3Settings {
            endpoint: non_empty(&s.s3_endpoint),
            region: s.s3_region.clone(),
            path_style: s.s3_path_style,
            access_key_id: non_empty(&s.s3_access_key_id),
            secret_access_key: non_empty(&s.s3_secret_access_key),
            multipart_threshold: s.s3_multipart_threshold_mb.max(5) * 1024 * 1024,
            ..imgd_blob::S3Settings::from_url("s3://bucket")?
        };
        imgd_blob::StoreSpec::parse(&s.store, &self.server.data_dir, &s3)
            .map_err(|e| anyhow::anyhow!("storage.store (IMGD_STORE): {e}"))
    }

    /// The metadata database `database.url` names.
    pub fn metadata_engine(&self) -> Result<imgd_metadata::Engine> {
        let d = &self.database;
        imgd_metadata::Engine::parse(&d.url, &self.server.data_dir, d.max_connections)
            .map_err(|e| anyhow::anyhow!("database.url (IMGD_DATABASE_URL): {e}"))
    }

    /// Render workers, resolving 0 to the number of cores.
    pub fn render_workers(&self) -> usize {
        match self.render.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

/// `url` with its credentials replaced by markers: the user information before the host
/// (`user:pass@`, `:pass@`) and the values of query parameters that carry a secret
/// (`?password=`, which libpq and sqlx accept, and the like). Errs on the side of hiding: a
/// password may hold `/`, `?` or `@` unescaped, so everything up to the last `@` goes.
fn hide_url_credentials(url: &str) -> String {
    const SECRET_PARAMS: &[&str] = &["password", "pass", "passwd", "pwd", "secret", "token"];
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let rest = match rest.rsplit_once('@') {
        Some((_, host)) => format!("<credentials>@{host}"),
        None => rest.to_owned(),
    };
    let masked: String = rest
        .split_inclusive(['?', '&'])
        .map(|piece| {
            let body = piece.trim_end_matches(['?', '&']);
            let separator = &piece[body.len()..];
            match body.split_once('=') {
                Some((name, _)) if SECRET_PARAMS.contains(&name.to_ascii_lowercase().as_str()) => {
                    format!("{name}=<hidden>{separator}")
                }
                _ => piece.to_owned(),
            }
        })
        .collect();
    format!("{scheme}://{masked}")
}

/// A per-minute rate; 0 means unlimited.
fn rate(per_minute: u32, burst: u32) -> Option<imgd_core::port::Rate> {
    (per_minute > 0).then(|| imgd_core::port::Rate::per_minute(per_minute, burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `imgd config` prints TOML that `--config` takes back as the same configuration.
    #[test]
    fn the_printed_configuration_is_toml_that_loads_back() {
        let given = env(&[
            ("IMGD_STORE", "s3://images/prod?region=eu-west-1"),
            ("IMGD_S3_PATH_STYLE", "true"),
            ("IMGD_RENDER__WORKERS", "3"),
            ("IMGD_LOG_FORMAT", "text"),
            ("IMGD_PRESETS__CARD", "w=1200,h=630,fit=cover"),
        ]);
        let config = Config::load(&Overrides::default(), given).unwrap();
        let printed = config.to_toml().unwrap();
        assert!(
            printed.contains("[render]") && printed.contains("workers = 3"),
            "{printed}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("imgd.toml");
        std::fs::write(&file, &printed).unwrap();
        let overrides = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let again = Config::load(&overrides, env(&[])).unwrap();
        assert_eq!(again.to_toml().unwrap(), printed);
    }

    #[test]
    fn gc_timings_default_and_are_checked() {
        let config = Config::load(&Overrides::default(), env(&[])).unwrap();
        assert_eq!((config.gc.interval_secs, config.gc.grace_secs), (300, 3600));
        let timings = config.collect_timings();
        assert_eq!(timings.pin_wait.as_secs(), 10);
        assert!(timings.pin_ttl > timings.pin_wait);
        let set = |k: &str, v: &str| Config::load(&Overrides::default(), env(&[(k, v)]));
        assert_eq!(set("IMGD_GC__GRACE_SECS", "0").unwrap().gc.grace_secs, 0);
        // One variable per option: the long spelling of a named one is refused, naming it.
        let twice = set("IMGD_SERVER__LISTEN", "127.0.0.1:1").unwrap_err();
        assert!(format!("{twice:#}").contains("IMGD_LISTEN"), "{twice:#}");
        assert!(set("IMGD_STORAGE__S3_ENDPOINT", "http://x").is_err());
        assert!(set("IMGD_GC__PIN_TTL_SECS", "0").is_err());
        assert!(set("IMGD_GC__CLAIM_TTL_SECS", "1").is_err());
    }

    #[test]
    fn the_documented_defaults_parse_and_match_the_contract() {
        let config = Config::load(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.data_dir, PathBuf::from("./imgd-data"));
        assert_eq!(config.auth.admin_key, "");
        assert!(config.presets.contains_key("thumb"));
        let limits = config.connection_limits();
        assert_eq!(limits.header_read_timeout.as_secs(), 10);
        assert_eq!(limits.idle_timeout.as_secs(), 60);
        assert_eq!(limits.body.timeout.as_secs(), 30);
        assert_eq!(limits.body.min_bytes_per_sec, 1024);
        assert_eq!(limits.max_header_bytes, 16384);
        assert_eq!(limits.max_connections, 4096);
    }

    #[test]
    fn every_default_option_is_commented() {
        // Each option line is preceded by a comment line explaining it.
        let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let is_option = line.contains(" = ") && !line.starts_with('#');
            let in_presets = lines[..i]
                .iter()
                .rev()
                .find(|l| l.starts_with('['))
                .is_some_and(|s| *s == "[presets]");
            if is_option && !in_presets {
                assert!(
                    lines[i - 1].starts_with('#') || lines[i - 1].contains(" = "),
                    "option without a comment: {line}"
                );
            }
        }
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("imgd.toml");
        std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:1111\"\ndata_dir = \"/from/file\"\n[render]\nqueue = 7\n").unwrap();
        let with_file = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        let config = Config::load(&with_file, env(&[])).unwrap();
        assert_eq!(config.server.listen.port(), 1111);
        assert_eq!(config.render.queue, 7);
        let config = Config::load(
            &with_file,
            env(&[
                ("IMGD_LISTEN", "127.0.0.1:2222"),
                ("IMGD_RENDER__QUEUE", "9"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 2222);
        assert_eq!(config.server.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.render.queue, 9);
        let flags = Overrides {
            listen: Some("127.0.0.1:3333".into()),
            data_dir: Some("/flag".into()),
            ..with_file
        };
        let config = Config::load(
            &flags,
            env(&[("IMGD_LISTEN", "127.0.0.1:2222"), ("IMGD_DATA_DIR", "/env")]),
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 3333);
        assert_eq!(config.server.data_dir, PathBuf::from("/flag"));
    }

    #[test]
    fn cluster_variables_follow_the_documented_names() {
        let cluster = env(&[
            ("DATABASE_URL", "postgres://ignored/db"),
            ("IMGD_DATABASE_URL", "postgres://u:p@db/imgd"),
            ("IMGD_STORE", "s3://images/prod"),
            ("IMGD_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("IMGD_S3_PATH_STYLE", "true"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("IMGD_REDIS_URL", "redis://127.0.0.1/"),
            ("IMGD_NODE_ID", "node-a"),
            ("IMGD_CLUSTER_SECRET", "0123456789abcdef"),
            ("IMGD_SECRET_KEY", KEK),
        ]);
        let mut config = Config::load(&Overrides::default(), cluster.clone()).unwrap();
        assert_eq!(config.database.url, "postgres://u:p@db/imgd");
        assert_eq!(config.node_id(), "node-a");
        let imgd_blob::StoreSpec::S3(s3) = config.store_spec().unwrap() else {
            panic!("not S3")
        };
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("images", "prod"));
        assert!(s3.path_style);
        assert_eq!(s3.secret_access_key.as_deref(), Some("secret"));
        config.hide_secrets();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("secret\"") && !shown.contains("u:p@") && !shown.contains("0123456789")
        );

        // DATABASE_URL is honoured when IMGD_DATABASE_URL is absent.
        let fallback = Config::load(
            &Overrides::default(),
            env(&[("DATABASE_URL", "postgres://x/y"), ("IMGD_SECRET_KEY", KEK)]),
        );
        assert_eq!(fallback.unwrap().database.url, "postgres://x/y");
        // A cluster without a secret, or without shared storage, is refused.
        let mut no_secret = cluster.clone();
        no_secret.retain(|(k, _)| k != "IMGD_CLUSTER_SECRET");
        assert!(Config::load(&Overrides::default(), no_secret).is_err());
        let mut local_store = cluster;
        local_store.retain(|(k, _)| k != "IMGD_STORE");
        assert!(Config::load(&Overrides::default(), local_store).is_err());
    }

    /// A valid KEK for tests: 32 bytes as hex.
    const KEK: &str = "0001020304050607080910111213141516171819202122232425262728293031";

    #[test]
    fn admin_keys_shorter_than_24_characters_are_refused() {
        let short = Config::load(
            &Overrides::default(),
            env(&[("IMGD_ADMIN_KEY", "only-23-characters-long")]),
        )
        .unwrap_err();
        assert!(
            format!("{short:#}").contains("at least 24 characters, not 23"),
            "{short:#}"
        );
        for ok in ["", "test-admin-key-0123456789", "exactly-24-characters-ok"] {
            assert!(
                Config::load(&Overrides::default(), env(&[("IMGD_ADMIN_KEY", ok)])).is_ok(),
                "{ok:?}"
            );
        }
    }

    #[test]
    fn the_secret_key_is_checked_and_required_with_postgres() {
        let load = |pairs: &[(&str, &str)]| Config::load(&Overrides::default(), env(pairs));
        let embedded = load(&[]).unwrap();
        assert_eq!(embedded.secret_key_source(), SecretKeySource::DataDir);
        let given = load(&[("IMGD_SECRET_KEY", KEK)]).unwrap();
        assert_eq!(
            given.secret_key_source(),
            SecretKeySource::Value(KEK.into())
        );
        let file = load(&[("IMGD_SECRET_KEY_FILE", "/run/secrets/kek")]).unwrap();
        assert_eq!(
            file.secret_key_source(),
            SecretKeySource::File("/run/secrets/kek".into())
        );
        for (pairs, says) in [
            (vec![("IMGD_SECRET_KEY", "REPLACE-ME")], "not a valid key"),
            (
                vec![("IMGD_SECRET_KEY", KEK), ("IMGD_SECRET_KEY_FILE", "/k")],
                "not both",
            ),
            (
                vec![("IMGD_DATABASE_URL", "postgres://db/imgd")],
                "needs a secret key shared by every node",
            ),
        ] {
            let err = load(&pairs).unwrap_err();
            assert!(format!("{err:#}").contains(says), "{pairs:?}: {err:#}");
        }
        for kek in [("IMGD_SECRET_KEY", KEK), ("IMGD_SECRET_KEY_FILE", "/k")] {
            assert!(load(&[("IMGD_DATABASE_URL", "postgres://db/imgd"), kek]).is_ok());
        }
    }

    #[test]
    fn config_output_hides_every_secret() {
        let mut config = Config::load(
            &Overrides::default(),
            env(&[
                ("IMGD_ADMIN_KEY", "admin-key-that-is-long-enough"),
                ("IMGD_SECRET_KEY", KEK),
                (
                    "IMGD_DATABASE_URL",
                    "postgres://imgd:db-pass@db:5432/imgd?sslmode=require&password=query-pass",
                ),
                ("AWS_SECRET_ACCESS_KEY", "s3-secret"),
                ("IMGD_REDIS_URL", "redis://:redis-pass@redis:6379/0"),
                ("IMGD_STORE", "s3://bucket"),
                ("IMGD_CLUSTER_SECRET", "cluster-secret-0123456789"),
            ]),
        )
        .unwrap();
        config.hide_secrets();
        let shown = format!("{config:#?}");
        for secret in [
            "admin-key-that-is-long-enough",
            KEK,
            "db-pass",
            "query-pass",
            "s3-secret",
            "redis-pass",
            "cluster-secret-0123456789",
        ] {
            assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
        }
        assert_eq!(
            config.database.url,
            "postgres://<credentials>@db:5432/imgd?sslmode=require&password=<hidden>"
        );
        assert_eq!(
            config.cluster.redis_url,
            "redis://<credentials>@redis:6379/0"
        );
        assert_eq!(config.auth.secret_key, "<set, not shown>");
        for (url, hidden) in [
            (
                "postgres://db/imgd?user=me&PASSWORD=x",
                "postgres://db/imgd?user=me&PASSWORD=<hidden>",
            ),
            (
                "postgres://u:p/with?odd@chars@db/imgd",
                "postgres://<credentials>@db/imgd",
            ),
            ("postgres://db/imgd", "postgres://db/imgd"),
        ] {
            assert_eq!(hide_url_credentials(url), hidden);
        }
    }

    #[test]
    fn mistakes_are_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[server]\nlisten_addr = \"x\"\n").unwrap();
        let err = Config::load(
            &Overrides {
                config_file: Some(file),
                ..Default::default()
            },
            env(&[]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("listen_addr"), "{err:#}");
        assert!(
            Config::load(
                &Overrides::default(),
                env(&[("IMGD_RENDER__QUALITY_JPEG", "0")])
            )
            .is_err()
        );
        assert!(
            Config::load(
                &Overrides::default(),
                env(&[("IMGD_LISTEN", "not an address")])
            )
            .is_err()
        );
        assert!(Config::load(&Overrides::default(), env(&[("IMGD_RENDER__NOPE", "1")])).is_err());
        for (name, value) in [
            ("IMGD_SERVER__HEADER_READ_TIMEOUT_SECS", "0"),
            ("IMGD_SERVER__MAX_HEADER_BYTES", "1024"),
            ("IMGD_SERVER__MAX_CONNECTIONS", "0"),
        ] {
            assert!(
                Config::load(&Overrides::default(), env(&[(name, value)])).is_err(),
                "{name}={value}"
            );
        }
        // Unrelated variables are left alone.
        assert!(
            Config::load(
                &Overrides::default(),
                env(&[("IMGD_UNRELATED", "1"), ("PATH", "/bin")])
            )
            .is_ok()
        );
    }
}
