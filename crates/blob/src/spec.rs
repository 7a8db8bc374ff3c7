//! Stores described as values. A [`StoreSpec`] is parsed from one string and opened by one
//! function, [`StoreSpec::open`], so a deployment can name more than one store (the primary and,
//! with replication, a replica in another zone) in the same words:
//!
//! - `local` — files under the data dir (the embedded default);
//! - `local:PATH`, or an absolute path such as `/mnt/zone-b/imgd` — files under `PATH`;
//! - `s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path_style=true&access_key_id=..&secret_access_key=..]`
//!   — an S3-compatible bucket. Options the URL leaves out keep the values the caller filled in
//!   before parsing (the configuration's flat `storage.s3_*` keys for the primary store).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use imgd_core::port::BlobStore;
use imgd_core::{Code, Error, Result};

use crate::{LocalBlobStore, S3BlobStore, S3Settings};

/// Which store, and where.
#[derive(Clone, Debug)]
pub enum StoreSpec {
    /// Files under this directory.
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Settings),
}

fn bad(message: impl Into<String>) -> Error {
    Error::invalid(Code::BadStore, message)
}

impl StoreSpec {
    /// Parses `text` (see the module docs). `data_dir` is where `local` points; `s3` holds the
    /// S3 options the URL's query may override.
    pub fn parse(text: &str, data_dir: &Path, s3: &S3Settings) -> Result<Self> {
        if text == "local" {
            return Ok(StoreSpec::Local(data_dir.to_owned()));
        }
        if let Some(path) = text.strip_prefix("local:") {
            if path.is_empty() {
                return Err(bad("local: needs a directory (local:/srv/imgd)"));
            }
            return Ok(StoreSpec::Local(PathBuf::from(path)));
        }
        if Path::new(text).is_absolute() {
            return Ok(StoreSpec::Local(PathBuf::from(text)));
        }
        if text.starts_with("s3://") {
            return parse_s3(text, s3).map(StoreSpec::S3);
        }
        Err(bad(format!(
            "a store is \"local\", \"local:PATH\", an absolute path or \"s3://BUCKET[/PREFIX]\", not {text:?}"
        )))
    }

    /// Opens the store; an S3 client contacts nothing until its first request.
    pub fn open(&self) -> Result<Arc<dyn BlobStore>> {
        Ok(match self {
            StoreSpec::Local(root) => Arc::new(LocalBlobStore::open(root)?),
            StoreSpec::S3(settings) => Arc::new(S3BlobStore::new(settings)?),
        })
    }

    /// True for a store on this machine's disk (not shared with other nodes).
    pub fn is_local(&self) -> bool {
        matches!(self, StoreSpec::Local(_))
    }

    /// The store for logs: where it is, without credentials.
    pub fn describe(&self) -> String {
        match self {
            StoreSpec::Local(root) => format!("local:{}", root.display()),
            StoreSpec::S3(s) => {
                let endpoint = s.endpoint.as_deref().unwrap_or("aws");
                format!("s3://{}/{} at {endpoint}", s.bucket, s.prefix)
            }
        }
    }
}

/// `s3://bucket[/prefix][?options]` over `defaults`.
fn parse_s3(url: &str, defaults: &S3Settings) -> Result<S3Settings> {
    let (location, query) = url.split_once('?').unwrap_or((url, ""));
    let place = S3Settings::from_url(location)?;
    let mut settings = S3Settings {
        bucket: place.bucket,
        prefix: place.prefix,
        ..defaults.clone()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("s3:// option {pair:?} has no value")))?;
        match key {
            "endpoint" => settings.endpoint = Some(value.to_owned()),
            "region" => settings.region = value.to_owned(),
            "path_style" => {
                settings.path_style = value
                    .parse()
                    .map_err(|_| bad("path_style is true or false"))?
            }
            "access_key_id" => settings.access_key_id = Some(value.to_owned()),
            "secret_access_key" => settings.secret_access_key = Some(value.to_owned()),
            other => {
                return Err(bad(format!(
                    "unknown s3:// option {other:?}: endpoint, region, path_style, access_key_id, secret_access_key"
                )));
            }
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> S3Settings {
        S3Settings {
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key_id: Some("from-config".into()),
            ..S3Settings::from_url("s3://unused").unwrap()
        }
    }

    fn parse(text: &str) -> Result<StoreSpec> {
        StoreSpec::parse(text, Path::new("/data"), &defaults())
    }

    #[test]
    fn local_forms_name_a_directory() {
        for (text, root) in [
            ("local", "/data"),
            ("local:/srv/imgd", "/srv/imgd"),
            ("local:relative/dir", "relative/dir"),
            ("/mnt/zone-b/imgd", "/mnt/zone-b/imgd"),
        ] {
            match parse(text).unwrap() {
                StoreSpec::Local(path) => assert_eq!(path, Path::new(root), "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_s3_url_keeps_what_it_does_not_say() {
        let StoreSpec::S3(s) = parse("s3://images/prod/").unwrap() else {
            panic!("not S3")
        };
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("images", "prod"));
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.access_key_id.as_deref(), Some("from-config"));

        let text = "s3://replica?endpoint=http://127.0.0.1:9100&region=eu-west-1&path_style=true&access_key_id=b";
        let StoreSpec::S3(s) = parse(text).unwrap() else {
            panic!("not S3")
        };
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("replica", ""));
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9100"));
        assert_eq!(s.region, "eu-west-1");
        assert!(s.path_style);
        assert_eq!(s.access_key_id.as_deref(), Some("b"));
        assert!(!parse(text).unwrap().describe().contains("access"));
    }

    #[test]
    fn anything_else_is_refused_with_the_forms_listed() {
        for text in [
            "",
            "s3",
            "relative/dir",
            "local:",
            "s3://",
            "s3://b?colour=blue",
            "s3://b?path_style=maybe",
            "s3://b?endpoint",
            "gs://bucket",
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.code(), Code::BadStore, "{text:?}");
        }
        let listed = parse("gs://bucket").unwrap_err().to_string();
        assert!(
            listed.contains("local:PATH") && listed.contains("s3://"),
            "{listed}"
        );
    }
}
