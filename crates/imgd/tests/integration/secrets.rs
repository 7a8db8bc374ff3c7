//! Secrets at rest, on the embedded default (SQLite, the KEK generated into
//! `DATA_DIR/secret.key`) whatever engine the rest of the suite runs on: the database file holds
//! no signing secret and no pepper in plaintext, signed URLs and keys keep working across a
//! restart, a wrong KEK stops the start, and plaintext rows of an earlier version are sealed at
//! start.

use std::path::Path;

use imgd_core::service::sealing::{self, Kek};
use imgd_core::service::signing;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, Row, SqliteConnection};

use crate::common::{ADMIN_KEY, TestServer, fixtures};
use crate::tenancy::{Tenant, tenant, upload_as, with};

/// The embedded default, even when the suite runs on PostgreSQL.
const EMBEDDED: &[(&str, &str)] = &[("IMGD_DATABASE_URL", ""), ("IMGD_SECRET_KEY", "")];

/// The data dir's generated KEK.
fn data_dir_kek(dir: &Path) -> Kek {
    Kek::parse(&std::fs::read_to_string(dir.join("secret.key")).unwrap()).unwrap()
}

async fn sqlite(dir: &Path) -> SqliteConnection {
    let url = format!("sqlite://{}", dir.join("imgd.db").display());
    SqliteConnection::connect(&url).await.unwrap()
}

async fn setting(db: &mut SqliteConnection, name: &str) -> Option<String> {
    sqlx::query("SELECT value FROM settings WHERE name = ?")
        .bind(name)
        .fetch_optional(db)
        .await
        .unwrap()
        .map(|row| row.get("value"))
}

async fn stored_signing_keys(db: &mut SqliteConnection, tenant: &str) -> Vec<Value> {
    let row = sqlx::query("SELECT signing_keys FROM tenants WHERE id = ?")
        .bind(tenant)
        .fetch_one(db)
        .await
        .unwrap();
    serde_json::from_str(row.get::<&str, _>("signing_keys")).unwrap()
}

/// The pepper, opened with the data dir's KEK.
async fn pepper(dir: &Path) -> String {
    let sealed = setting(&mut sqlite(dir).await, "api_key_pepper")
        .await
        .unwrap();
    assert!(sealed.starts_with("v1:"), "{sealed}");
    data_dir_kek(dir)
        .open(&sealing::setting_place("api_key_pepper"), &sealed)
        .unwrap()
}

/// A new signing key for the tenant: (id, secret), the secret as shown once.
async fn rotate(server: &TestServer, tenant: &Tenant) -> (String, String) {
    let issued: Value = with(
        server,
        &tenant.owner,
        Method::POST,
        &format!("/tenants/{}/signing-keys", tenant.id),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    (
        issued["id"].as_str().unwrap().to_owned(),
        issued["secret"].as_str().unwrap().to_owned(),
    )
}

/// A tenant with the signed policy and one image; returns it and a variant URL signed offline
/// with `secret` (so only a server holding that very secret accepts it).
async fn signed_tenant(server: &TestServer) -> (Tenant, String, String) {
    let acme = tenant(server, "acme").await;
    let image: Value = upload_as(server, &acme.writer, fixtures::jpeg(32, 32))
        .await
        .json()
        .await
        .unwrap();
    let patched = server
        .api(Method::PATCH, &format!("/tenants/{}", acme.id))
        .json(&json!({"delivery": "signed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let (_, secret) = rotate(server, &acme).await;
    let path = format!("/i/{}/w=16", image["id"].as_str().unwrap());
    let expires = imgd_core::model::now_millis() as u64 / 1000 + 3600;
    let url = signing::sign(&path, expires, &hex::decode(&secret).unwrap());
    (acme, secret, url)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_secret_is_in_the_database_file_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), EMBEDDED).await;
    let key_file = dir.path().join("secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the generated KEK is the owner's only");
    }
    let (acme, secret, url) = signed_tenant(&server).await;
    assert_eq!(
        server.get(&url).await.status(),
        200,
        "the sealed secret verifies"
    );
    let pepper = pepper(dir.path()).await;

    let mut bytes = std::fs::read(dir.path().join("imgd.db")).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("imgd.db-wal")) {
        bytes.extend(wal);
    }
    assert!(
        contains(&bytes, acme.id.as_bytes()),
        "the scan sees the tenant's rows"
    );
    let kek = std::fs::read_to_string(&key_file).unwrap();
    for (what, text) in [
        ("signing secret", secret.as_str()),
        ("pepper", pepper.as_str()),
        ("KEK", kek.trim()),
        ("admin key", ADMIN_KEY),
        ("owner key", acme.owner.as_str()),
    ] {
        assert!(
            !contains(&bytes, text.as_bytes()),
            "{what} in the database file"
        );
        if let Ok(raw) = hex::decode(text) {
            assert!(
                !contains(&bytes, &raw),
                "{what} (raw bytes) in the database file"
            );
        }
    }
}

#[tokio::test]
async fn signed_urls_verify_after_a_restart_and_a_wrong_secret_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), EMBEDDED).await;
    let (acme, _, url) = signed_tenant(&server).await;
    assert_eq!(server.get(&url).await.status(), 200);
    drop(server);

    let again = TestServer::start_in(dir.path(), EMBEDDED).await;
    let after = again.get(&url).await;
    assert_eq!(after.status(), 200, "the same KEK opens the same secret");
    let images = with(&again, &acme.reader, Method::GET, "/images")
        .send()
        .await
        .unwrap();
    assert_eq!(
        images.status(),
        200,
        "keys hash alike under the same pepper"
    );
    drop(again);

    // Another key, configured or in the data dir's file: refused before serving anything.
    let other = hex::encode([0x42u8; 32]);
    let configured = TestServer::config_in(
        dir.path(),
        &[("IMGD_DATABASE_URL", ""), ("IMGD_SECRET_KEY", &other)],
    )
    .await;
    let original = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    std::fs::write(dir.path().join("secret.key"), format!("{other}\n")).unwrap();
    let replaced = TestServer::config_in(dir.path(), EMBEDDED).await;
    for config in [configured, replaced] {
        let refused = imgd::app::start(config, imgd::telemetry::metrics_handle()).await;
        let message = format!("{:#}", refused.err().expect("a wrong KEK must not start"));
        assert!(
            message.contains("not the key this database's secrets were sealed with"),
            "{message}"
        );
    }
    std::fs::write(dir.path().join("secret.key"), original).unwrap();
    let restored = TestServer::start_in(dir.path(), EMBEDDED).await;
    assert_eq!(restored.get(&url).await.status(), 200);
}

#[tokio::test]
async fn plaintext_secrets_of_an_earlier_version_are_sealed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), EMBEDDED).await;
    let (acme, secret, url) = signed_tenant(&server).await;
    drop(server);

    // Rewind the data dir to what a version before sealing left: the pepper and the signing
    // secrets in plaintext, no check value, no secret.key.
    let kek = data_dir_kek(dir.path());
    let pepper = pepper(dir.path()).await;
    let mut db = sqlite(dir.path()).await;
    let mut keys = stored_signing_keys(&mut db, &acme.id).await;
    let acme_id = imgd_core::id::TenantId::parse(&acme.id).unwrap();
    for key in &mut keys {
        let place = sealing::signing_key_place(&acme_id, key["id"].as_str().unwrap());
        key["secret"] = json!(kek.open(&place, key["secret"].as_str().unwrap()).unwrap());
    }
    assert_eq!(keys[0]["secret"], secret.as_str());
    sqlx::query("UPDATE tenants SET signing_keys = ? WHERE id = ?")
        .bind(serde_json::to_string(&keys).unwrap())
        .bind(&acme.id)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE settings SET value = ? WHERE name = 'api_key_pepper'")
        .bind(&pepper)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM settings WHERE name = 'secret_key_check'")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    std::fs::remove_file(dir.path().join("secret.key")).unwrap();

    let upgraded = TestServer::start_in(dir.path(), EMBEDDED).await;
    assert_eq!(
        upgraded.get(&url).await.status(),
        200,
        "the same signing secret"
    );
    for key in [ADMIN_KEY, acme.reader.as_str()] {
        let images = with(&upgraded, key, Method::GET, "/images")
            .send()
            .await
            .unwrap();
        assert_eq!(images.status(), 200, "the same pepper");
    }
    // Sealed in place, under the newly generated KEK.
    assert_eq!(self::pepper(dir.path()).await, pepper);
    let mut db = sqlite(dir.path()).await;
    let stored = stored_signing_keys(&mut db, &acme.id).await;
    assert_eq!(stored.len(), 2);
    for key in &stored {
        let sealed = key["secret"].as_str().unwrap();
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert!(!sealed.contains(&secret));
    }
    assert!(setting(&mut db, "secret_key_check").await.is_some());
}
