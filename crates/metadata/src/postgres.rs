//! PostgreSQL metadata, for clusters: the same schema and queries as [`crate::sqlite`], with
//! PostgreSQL placeholders and types. Migrations in `migrations/postgres` run at open; sqlx's
//! migration lock makes concurrent starts of several nodes safe.
//!
//! Tenant tables carry row-level security (`0002_row_level_security.sql`): each query on them
//! runs in a transaction opened by [`PostgresRepo::scoped`], which names the tenant the policies
//! let it see.

use std::time::Duration;

use imgd_core::{Error, Result};

use crate::repo::impl_metadata_repo;
use crate::rows::db_error;
use crate::tenancy::{Scope, impl_tenancy_repo};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The PostgreSQL repo.
pub struct PostgresRepo {
    pool: PgPool,
}

fn db(e: sqlx::Error) -> Error {
    db_error("postgres", e)
}

impl PostgresRepo {
    /// Connects to `url` (`postgres://...`) and applies migrations.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, 16).await
    }

    /// [`PostgresRepo::open`] with at most `max_connections`. Nodes starting together migrate
    /// safely: sqlx serialises migrations with an advisory lock.
    pub async fn open_with(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // A database that is down answers 503 `unavailable` within this, not a hung request.
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await
            .map_err(db)?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| Error::internal(format!("migrations: {e}")))?;
        Ok(PostgresRepo { pool })
    }

    /// A transaction whose row-level-security scope is `scope`.
    async fn scoped(&self, scope: Scope<'_>) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let tenant = match scope {
            Scope::Tenant(t) => t.as_str(),
            Scope::AllTenants => "*",
        };
        sqlx::query("SELECT set_config('imgd.tenant', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(tx)
    }
}

impl_tenancy_repo!(PostgresRepo, sqlx::Postgres);
impl_metadata_repo!(PostgresRepo, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use imgd_core::id::ImageId;
    use imgd_core::port::MetadataRepo;
    use sqlx::Row;

    /// Runs against the PostgreSQL server named by `IMGD_TEST_DATABASE_URL`, which `.ci/run`
    /// starts and sets. Outside CI, without it, the test says so and checks nothing: a new user's
    /// `cargo test` does not need a database server.
    #[tokio::test]
    async fn postgres_repo_meets_the_contract() {
        let Ok(url) = std::env::var("IMGD_TEST_DATABASE_URL") else {
            // CI always provides the server, so there a missing URL is a failure, not a skip.
            assert!(
                std::env::var("CI").is_err(),
                "CI must set IMGD_TEST_DATABASE_URL"
            );
            eprintln!("SKIPPED: set IMGD_TEST_DATABASE_URL to run the PostgreSQL contract suite");
            return;
        };
        let repo = PostgresRepo::open(&url).await.unwrap();
        crate::contract::run(Arc::new(repo)).await;
        // Migrations are idempotent: a second node starting against the same database is fine.
        let again = PostgresRepo::open(&url).await.unwrap();
        again.check().await.unwrap();
    }

    /// Row-level security binds an ordinary role (superusers skip it, so the suite above cannot
    /// show it): the contract still passes as that role, and a session that names no tenant, or
    /// another tenant, sees none of the rows.
    #[tokio::test]
    async fn row_level_security_hides_other_tenants_rows() {
        use sqlx::Connection;
        let Ok(admin_url) = std::env::var("IMGD_TEST_DATABASE_URL") else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set IMGD_TEST_DATABASE_URL"
            );
            eprintln!("SKIPPED: set IMGD_TEST_DATABASE_URL to run the row-level security test");
            return;
        };
        let name = format!("imgd_t_rls_{}", ImageId::generate());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        for sql in [
            format!("CREATE ROLE {name} LOGIN"),
            format!("CREATE DATABASE {name} OWNER {name}"),
        ] {
            sqlx::query(&sql).execute(&mut admin).await.unwrap();
        }
        let (server, _) = admin_url.rsplit_once('/').unwrap();
        let (scheme, host) = server.split_once("://").unwrap();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let url = format!("{scheme}://{name}@{host}/{name}");

        let repo = Arc::new(PostgresRepo::open(&url).await.unwrap());
        crate::contract::run(repo.clone()).await;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut visible = async |tenant: Option<&str>| -> i64 {
            if let Some(t) = tenant {
                sqlx::query("SELECT set_config('imgd.tenant', $1, false)")
                    .bind(t)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            let row = sqlx::query("SELECT count(*) AS n FROM images")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            row.get("n")
        };
        assert_eq!(
            visible(None).await,
            0,
            "a session naming no tenant sees nothing"
        );
        assert_eq!(
            visible(Some("nobody")).await,
            0,
            "another tenant sees nothing"
        );
        assert!(
            visible(Some("*")).await > 0,
            "the contract left images behind"
        );
        sqlx::query("SELECT set_config('imgd.tenant', 'nobody', false)")
            .execute(&mut conn)
            .await
            .unwrap();
        let updated = sqlx::query("UPDATE images SET tags = '[]'")
            .execute(&mut conn)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(updated, 0, "nor write their rows");
        drop(conn);
        repo.pool.close().await;
        sqlx::query(&format!("DROP DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query(&format!("DROP ROLE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
