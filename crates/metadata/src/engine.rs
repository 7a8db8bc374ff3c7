//! Which metadata engine, decided once: [`Engine::parse`] reads the configured URL (empty for
//! SQLite in the data dir, `postgres://` for PostgreSQL) and [`Engine::open`] opens it. The rest
//! of the program asks the engine (`is_embedded`) instead of looking at the URL again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use imgd_core::port::MetadataRepo;
use imgd_core::{Code, Error, Result};

use crate::{PostgresRepo, SqliteRepo};

/// The metadata database a process uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// SQLite in this file: the embedded default, one node.
    Sqlite(PathBuf),
    /// PostgreSQL at this URL, shared by every node of a cluster.
    Postgres { url: String, max_connections: u32 },
}

impl Engine {
    /// The engine `url` names: empty for SQLite (`imgd.db` in `data_dir`), else a
    /// `postgres://` or `postgresql://` URL. Anything else is an error listing both.
    pub fn parse(url: &str, data_dir: &Path, max_connections: u32) -> Result<Self> {
        if url.is_empty() {
            return Ok(Engine::Sqlite(data_dir.join("imgd.db")));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Engine::Postgres {
                url: url.to_owned(),
                max_connections,
            });
        }
        Err(Error::invalid(
            Code::BadDatabaseUrl,
            "the database URL is empty (SQLite in the data dir) or postgres://...",
        ))
    }

    /// True for the embedded default: a database no other node shares.
    pub fn is_embedded(&self) -> bool {
        matches!(self, Engine::Sqlite(_))
    }

    /// Opens the database and applies its migrations.
    pub async fn open(&self) -> Result<Arc<dyn MetadataRepo>> {
        Ok(match self {
            Engine::Sqlite(path) => Arc::new(SqliteRepo::open(path).await?),
            Engine::Postgres {
                url,
                max_connections,
            } => Arc::new(PostgresRepo::open_with(url, *max_connections).await?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_decides_the_engine() {
        let dir = Path::new("/data");
        assert_eq!(
            Engine::parse("", dir, 4).unwrap(),
            Engine::Sqlite("/data/imgd.db".into())
        );
        for url in ["postgres://db/imgd", "postgresql://u@db:5432/imgd"] {
            let engine = Engine::parse(url, dir, 4).unwrap();
            assert!(!engine.is_embedded(), "{url}");
        }
        for url in ["mysql://db/imgd", "sqlite://x.db", "imgd.db"] {
            let message = Engine::parse(url, dir, 4).unwrap_err().to_string();
            assert!(message.contains("postgres://"), "{url}: {message}");
        }
    }
}
