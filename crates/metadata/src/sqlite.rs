//! SQLite metadata. WAL with `synchronous=FULL`, so a commit that returned is on disk: an upload
//! is acknowledged only after its record is durable.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use imgd_core::{Error, Result};

use crate::repo::impl_metadata_repo;
use crate::rows::db_error;
use crate::tenancy::{Scope, impl_tenancy_repo};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The SQLite repo.
pub struct SqliteRepo {
    pool: SqlitePool,
}

fn db(e: sqlx::Error) -> Error {
    db_error("sqlite", e)
}

impl SqliteRepo {
    /// Opens (creating) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(db)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(db)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| Error::internal(format!("migrations: {e}")))?;
        Ok(SqliteRepo { pool })
    }

    /// A transaction; SQLite has no row-level security, so the scope is only documentation.
    async fn scoped(&self, _scope: Scope<'_>) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin().await.map_err(db)
    }
}

impl_tenancy_repo!(SqliteRepo, sqlx::Sqlite);
impl_metadata_repo!(SqliteRepo, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use imgd_core::port::MetadataRepo;

    #[tokio::test]
    async fn sqlite_repo_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let repo = SqliteRepo::open(&dir.path().join("meta.db")).await.unwrap();
        crate::contract::run(Arc::new(repo)).await;
    }

    #[tokio::test]
    async fn reopening_keeps_records_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let repo = SqliteRepo::open(&path).await.unwrap();
        let value = repo.setting_or_init("k", "v1").await.unwrap();
        drop(repo);
        let repo = SqliteRepo::open(&path).await.unwrap();
        assert_eq!(repo.setting_or_init("k", "v2").await.unwrap(), value);
    }
}
