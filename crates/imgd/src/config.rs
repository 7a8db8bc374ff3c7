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
use serde::Deserialize;
use toml::{Table, Value};

/// The documented defaults.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Named environment variables and the option each sets.
pub const ENV_OPTIONS: &[(&str, &str, &str)] = &[
    ("IMGD_LISTEN", "server", "listen"),
    ("IMGD_DATA_DIR", "server", "data_dir"),
    ("IMGD_PUBLIC_URL", "server", "public_url"),
    ("IMGD_ADMIN_KEY", "auth", "admin_key"),
    ("IMGD_LOG", "log", "level"),
    ("IMGD_LOG_FORMAT", "log", "format"),
];

/// The validated configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub render: RenderConfig,
    pub log: LogConfig,
    pub presets: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: String,
    pub shutdown_grace_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub admin_key: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_upload_bytes: u64,
    pub max_pixels: u64,
    pub max_frames: u64,
    pub max_output_dimension: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    pub workers: usize,
    pub queue: usize,
    pub timeout_secs: u64,
    pub keep_icc: bool,
    pub avif_speed: u8,
    pub quality_jpeg: u8,
    pub quality_webp: u8,
    pub quality_avif: u8,
    pub memory_cache_mb: u64,
    pub memory_item_max_kb: u64,
    pub record_cache_ttl_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
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
        for (name, raw) in env {
            if let Some((_, section, key)) = ENV_OPTIONS.iter().find(|(env, _, _)| *env == name) {
                // Named variables are always strings (a key or a path that looks numeric stays text).
                set(&mut table, section, key, Value::String(raw));
            } else if let Some((section, key)) = name
                .strip_prefix("IMGD_")
                .and_then(|rest| rest.split_once("__"))
            {
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
        Ok(())
    }

    /// The pipeline's settings.
    pub fn pipeline_settings(&self) -> imgd_imaging::PipelineSettings {
        imgd_imaging::PipelineSettings {
            keep_icc: self.render.keep_icc,
            encode: imgd_imaging::encode::EncodeOptions {
                avif_speed: self.render.avif_speed,
            },
            max_pixels: self.limits.max_pixels,
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

    /// Render workers, resolving 0 to the number of cores.
    pub fn render_workers(&self) -> usize {
        match self.render.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
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

    #[test]
    fn the_documented_defaults_parse_and_match_the_contract() {
        let config = Config::load(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.data_dir, PathBuf::from("./imgd-data"));
        assert_eq!(config.auth.admin_key, "");
        assert!(config.presets.contains_key("thumb"));
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
