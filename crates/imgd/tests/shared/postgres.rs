//! A fresh PostgreSQL database per test server, created over the server at
//! `IMGD_TEST_DATABASE_URL` (which `.ci/run` provides), so tests never share rows or the
//! bootstrap admin key.

use sqlx::Connection;

/// Creates an empty database next to the one `admin_url` names and returns its URL.
pub async fn fresh_database(admin_url: &str) -> String {
    let name = format!("imgd_t_{}", imgd_core::id::ImageId::generate());
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to IMGD_TEST_DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("a database URL ends with /name");
    format!("{base}/{name}")
}
