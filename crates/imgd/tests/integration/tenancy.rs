//! Tenants, keys, isolation, quotas, presets and limits over real HTTP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, error_code, fixtures, probe};

/// A tenant and keys in it, made through the API by the admin.
pub struct Tenant {
    pub id: String,
    pub owner: String,
    pub writer: String,
    pub reader: String,
}

pub async fn tenant(server: &TestServer, name: &str) -> Tenant {
    let created = server
        .api(Method::POST, "/tenants")
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut keys = Vec::new();
    for role in ["owner", "writer", "reader"] {
        keys.push(key(server, &id, role).await.1);
    }
    Tenant {
        id,
        owner: keys[0].clone(),
        writer: keys[1].clone(),
        reader: keys[2].clone(),
    }
}

/// (key id, secret) of a new key in `tenant` made by the admin.
pub async fn key(server: &TestServer, tenant: &str, role: &str) -> (String, String) {
    let body: Value = server
        .api(Method::POST, "/keys")
        .json(&json!({ "tenant_id": tenant, "role": role }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

/// A `/v1` request with `key`.
pub fn with(server: &TestServer, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    server
        .client
        .request(method, server.url(&format!("/v1{path}")))
        .bearer_auth(key)
}

pub async fn upload_as(server: &TestServer, key: &str, bytes: Vec<u8>) -> reqwest::Response {
    with(server, key, Method::POST, "/images")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn upload_id(server: &TestServer, key: &str, bytes: Vec<u8>) -> String {
    let response = upload_as(server, key, bytes).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn tenants_and_keys_are_managed_through_the_api() {
    let server = TestServer::start().await;
    let created: Value = server
        .api(Method::POST, "/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["name"], "acme");
    assert_eq!(created["delivery"], "public");
    let tenant = created["id"].as_str().unwrap();
    let again = server
        .api(Method::POST, "/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again).await, (409, "tenant_exists".into()));
    let listed = server.api_json(Method::GET, "/tenants").await;
    assert!(
        listed["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == tenant)
    );

    let issued: Value = server
        .api(Method::POST, "/keys")
        .json(&json!({"tenant_id": tenant, "role": "writer", "name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        issued["id"].as_str().unwrap(),
        issued["key"].as_str().unwrap(),
    );
    assert!(
        secret.starts_with(&format!("imgd_{id}_")),
        "the public prefix is the id"
    );
    assert_eq!(
        (issued["role"].clone(), issued["tenant_id"].clone()),
        (json!("writer"), json!(tenant))
    );
    assert_eq!(
        with(&server, secret, Method::GET, "/images")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let keys = server.api_json(Method::GET, "/keys").await;
    let listed = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(listed.get("key"), None, "the secret is shown once");
    assert!(!listed.to_string().contains(&secret[18..]));

    assert_eq!(
        server
            .api_status(Method::DELETE, &format!("/keys/{id}"))
            .await,
        204
    );
    let revoked = with(&server, secret, Method::GET, "/images")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(revoked).await, (401, "unauthorized".into()));
    let itself = server
        .api(Method::DELETE, "/keys/bootstrap-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(itself).await, (409, "key_in_use".into()));

    // Disabling a tenant stops its keys; the default tenant cannot be disabled.
    let (_, other) = key(&server, tenant, "reader").await;
    let patched = server
        .api(Method::PATCH, &format!("/tenants/{tenant}"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let stopped = with(&server, &other, Method::GET, "/images")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(stopped).await, (403, "tenant_disabled".into()));
    let default = server
        .api(Method::PATCH, "/tenants/default")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(default).await, (409, "default_tenant".into()));
}

#[tokio::test]
async fn bodies_refuse_unknown_fields_so_nothing_is_mass_assigned() {
    let server = TestServer::start().await;
    let acme = tenant(&server, "acme").await;
    let id = upload_id(&server, &acme.writer, fixtures::jpeg(8, 8)).await;
    let attempts = [
        (
            &acme.owner,
            Method::POST,
            "/keys".to_owned(),
            json!({"tenant_id": acme.id, "role": "reader", "secret_hash": "x"}),
        ),
        (
            &acme.owner,
            Method::PATCH,
            format!("/tenants/{}", acme.id),
            json!({"delivery": "public", "usage": {"bytes": 0}}),
        ),
        (
            &acme.writer,
            Method::PATCH,
            format!("/images/{id}"),
            json!({"tags": ["a"], "tenant_id": "default"}),
        ),
        (
            &acme.writer,
            Method::PATCH,
            format!("/images/{id}"),
            json!({"hash": "00"}),
        ),
        (
            &acme.writer,
            Method::PATCH,
            format!("/images/{id}"),
            json!({"bytes": 1}),
        ),
        (
            &acme.owner,
            Method::PUT,
            "/presets/thumb".to_owned(),
            json!({"options": "w=10", "version": 9}),
        ),
    ];
    for (key, method, path, body) in attempts {
        let response = with(&server, key, method, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (400, "invalid_json".into()),
            "{path} {body}"
        );
    }
    // An owner cannot raise its own quota or mint an admin key.
    let quota = with(
        &server,
        &acme.owner,
        Method::PATCH,
        &format!("/tenants/{}", acme.id),
    )
    .json(&json!({"quota": {"bytes": null, "images": null}}))
    .send()
    .await
    .unwrap();
    assert_eq!(error_code(quota).await, (403, "forbidden".into()));
    let admin = with(&server, &acme.owner, Method::POST, "/keys")
        .json(&json!({"tenant_id": acme.id, "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(admin).await, (403, "forbidden".into()));
}

#[tokio::test]
async fn another_tenants_image_is_exactly_as_missing_and_dedup_reveals_nothing() {
    let server = TestServer::start().await;
    let (acme, globex) = (
        tenant(&server, "acme").await,
        tenant(&server, "globex").await,
    );
    let bytes = fixtures::jpeg(40, 30);
    let theirs = upload_id(&server, &acme.writer, bytes.clone()).await;
    let missing = "0123456789abcdef0123456789abcdef";
    for (method, path) in [
        (Method::GET, format!("/images/{theirs}")),
        (Method::PATCH, format!("/images/{theirs}")),
        (Method::DELETE, format!("/images/{theirs}")),
    ] {
        let cross = with(&server, &globex.writer, method.clone(), &path)
            .json(&json!({"tags": []}))
            .send()
            .await
            .unwrap();
        let absent = with(
            &server,
            &globex.writer,
            method,
            &path.replace(&theirs, missing),
        )
        .json(&json!({"tags": []}))
        .send()
        .await
        .unwrap();
        let (cross_status, cross_body) = (cross.status(), cross.text().await.unwrap());
        let (absent_status, absent_body) = (absent.status(), absent.text().await.unwrap());
        assert_eq!(cross_status, 404);
        assert_eq!(
            (cross_status, cross_body),
            (absent_status, absent_body),
            "{path}"
        );
    }
    let listed: Value = with(&server, &globex.reader, Method::GET, "/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["images"], json!([]));

    // The same bytes uploaded by another tenant: a new id, the same answer shape, own usage.
    let first: Value = upload_as(&server, &globex.writer, bytes.clone())
        .await
        .json()
        .await
        .unwrap();
    let second: Value = upload_as(&server, &globex.writer, bytes)
        .await
        .json()
        .await
        .unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&first), keys(&second));
    assert_ne!(first["id"], theirs);
    let usage: Value = with(
        &server,
        &globex.reader,
        Method::GET,
        &format!("/tenants/{}/usage", globex.id),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(usage["usage"]["images"], 2);
    assert_eq!(
        usage["usage"]["bytes"],
        2 * first["bytes"].as_u64().unwrap()
    );
    // The acme image is still acme's, untouched by the attempts above.
    assert_eq!(
        with(
            &server,
            &acme.reader,
            Method::GET,
            &format!("/images/{theirs}")
        )
        .send()
        .await
        .unwrap()
        .status(),
        200
    );
}

#[tokio::test]
async fn over_quota_uploads_get_409_and_store_nothing() {
    let server = TestServer::start().await;
    let acme = tenant(&server, "acme").await;
    let (small, other) = (fixtures::jpeg(8, 8), fixtures::jpeg(9, 9));
    let quota = (small.len() + other.len()) as u64 + 10;
    let set = server
        .api(Method::PATCH, &format!("/tenants/{}", acme.id))
        .json(&json!({"quota": {"bytes": quota, "images": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    upload_id(&server, &acme.writer, small.clone()).await;
    upload_id(&server, &acme.writer, other).await;
    let blobs_before = server.files_under("blobs").len();
    // New bytes that would pass the byte quota: refused, and their blob is not left behind.
    let over = upload_as(&server, &acme.writer, fixtures::noisy_jpeg(64, 64)).await;
    assert_eq!(error_code(over).await, (409, "quota_exceeded".into()));
    assert_eq!(
        server.files_under("blobs").len(),
        blobs_before,
        "no bytes stored past the quota"
    );
    let usage: Value = with(
        &server,
        &acme.reader,
        Method::GET,
        &format!("/tenants/{}/usage", acme.id),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(usage["usage"]["images"], 2);
    assert_eq!(usage["quota"]["bytes"], quota);
    let listed: Value = with(&server, &acme.reader, Method::GET, "/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["images"].as_array().unwrap().len(), 2);
    // The image count binds too, and deleting makes room again.
    server
        .api(Method::PATCH, &format!("/tenants/{}", acme.id))
        .json(&json!({"quota": {"bytes": null, "images": 2}}))
        .send()
        .await
        .unwrap();
    let full = upload_as(&server, &acme.writer, fixtures::jpeg(10, 10)).await;
    assert_eq!(error_code(full).await, (409, "quota_exceeded".into()));
    let id = listed["images"][0]["id"].as_str().unwrap();
    assert_eq!(
        with(
            &server,
            &acme.writer,
            Method::DELETE,
            &format!("/images/{id}")
        )
        .send()
        .await
        .unwrap()
        .status(),
        204
    );
    assert_eq!(
        upload_as(&server, &acme.writer, fixtures::jpeg(10, 10))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn presets_are_versioned_switched_and_rolled_back() {
    let server = TestServer::start().await;
    let acme = tenant(&server, "acme").await;
    let id = upload_id(&server, &acme.writer, fixtures::jpeg(400, 200)).await;
    let put = |options: &'static str| {
        with(&server, &acme.owner, Method::PUT, "/presets/banner")
            .json(&json!({"options": options}))
            .send()
    };
    let v1: Value = put("w=100").await.unwrap().json().await.unwrap();
    assert_eq!(
        (v1["active_version"].clone(), v1["options"].clone()),
        (json!(1), json!("w=100"))
    );
    let width = |server: &TestServer| {
        let url = server.url(&format!("/i/{id}/banner"));
        let client = server.client.clone();
        async move {
            let bytes = client.get(url).send().await.unwrap().bytes().await.unwrap();
            probe(&bytes).width
        }
    };
    assert_eq!(width(&server).await, 100);
    let v2: Value = put("w=200").await.unwrap().json().await.unwrap();
    assert_eq!(v2["active_version"], 2);
    assert_eq!(
        width(&server).await,
        200,
        "the new version is live at once on this node"
    );
    let back: Value = with(
        &server,
        &acme.owner,
        Method::POST,
        "/presets/banner/rollback",
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(back["active_version"], 1);
    assert_eq!(width(&server).await, 100);
    let forward = with(
        &server,
        &acme.owner,
        Method::POST,
        "/presets/banner/activate",
    )
    .json(&json!({"version": 2}))
    .send()
    .await
    .unwrap();
    assert_eq!(forward.status(), 200);
    assert_eq!(width(&server).await, 200);
    let bad = put("w=abc").await.unwrap();
    assert_eq!(error_code(bad).await, (400, "invalid_preset".into()));
    // Another tenant's URLs do not see acme's preset.
    let globex = tenant(&server, "globex").await;
    let theirs = upload_id(&server, &globex.writer, fixtures::jpeg(400, 200)).await;
    let unknown = server.get(&format!("/i/{theirs}/banner")).await;
    assert_eq!(error_code(unknown).await, (400, "unknown_preset".into()));
}

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_ratelimit_headers() {
    let server = TestServer::start_with(&[
        ("IMGD_LIMITS__CLIENT_REQUESTS_PER_MINUTE", "1"),
        ("IMGD_LIMITS__CLIENT_BURST", "3"),
        ("IMGD_LIMITS__RENDERS_PER_MINUTE", "1"),
        ("IMGD_LIMITS__RENDER_BURST", "1"),
    ])
    .await;
    let id = server.upload_ok(fixtures::jpeg(64, 64)).await;
    let ok = server.api(Method::GET, "/images").send().await.unwrap();
    assert_eq!(ok.headers()["ratelimit-policy"], "\"client\";q=3;w=180");
    assert_eq!(ok.headers()["ratelimit"], "\"client\";r=1;t=120");
    server.api(Method::GET, "/images").send().await.unwrap();
    // Per client address, before any key is looked at: a wrong key is throttled too.
    let limited = server
        .client
        .get(server.url("/v1/images"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(limited.headers()["ratelimit"], "\"client\";r=0;t=60");
    assert_eq!(error_code(limited).await, (429, "rate_limited".into()));

    // Renders: one per minute for the tenant; cached variants are never limited.
    assert_eq!(server.get(&format!("/i/{id}/w=10")).await.status(), 200);
    let second = server.get(&format!("/i/{id}/w=11")).await;
    assert!(second.headers().contains_key("retry-after"));
    assert_eq!(error_code(second).await, (429, "rate_limited".into()));
    assert_eq!(server.get(&format!("/i/{id}/w=10")).await.status(), 200);
    assert_eq!(server.get(&format!("/i/{id}")).await.status(), 200);
}

/// The status and body of a `/v1` request with `key`, for comparing answers byte for byte.
async fn answer(server: &TestServer, key: &str, method: Method, path: &str) -> (u16, String) {
    let response = with(server, key, method, path).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn an_owner_can_neither_see_nor_revoke_admin_keys() {
    let server = TestServer::start().await;
    let acme = tenant(&server, "acme").await;
    let (acme_admin_id, acme_admin) = key(&server, &acme.id, "admin").await;
    let (_, default_owner) = key(&server, "default", "owner").await;
    let missing = "0123456789ab";

    for (owner, admin_id) in [
        (&default_owner, "bootstrap-admin"),
        (&acme.owner, acme_admin_id.as_str()),
    ] {
        let listed: Value = with(&server, owner, Method::GET, "/keys")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listed = listed["keys"].as_array().unwrap();
        assert!(!listed.is_empty(), "an owner still lists its tenant's keys");
        assert!(
            listed
                .iter()
                .all(|k| k["role"] != "admin" && k["id"] != admin_id),
            "{listed:?}"
        );
        // An admin key is exactly as missing as a key that does not exist.
        let admin_key = answer(&server, owner, Method::DELETE, &format!("/keys/{admin_id}")).await;
        let absent = answer(&server, owner, Method::DELETE, &format!("/keys/{missing}")).await;
        assert_eq!(admin_key.0, 404, "{}", admin_key.1);
        assert_eq!(admin_key, absent);
    }
    // Both admin keys still work, and the admin still sees and manages them.
    for admin in [crate::common::ADMIN_KEY, acme_admin.as_str()] {
        assert_eq!(answer(&server, admin, Method::GET, "/tenants").await.0, 200);
    }
    let all = server.api_json(Method::GET, "/keys").await;
    let ids: Vec<&str> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"bootstrap-admin") && ids.contains(&acme_admin_id.as_str()));
    // An owner still revokes its tenant's other keys.
    let (reader_id, _) = key(&server, &acme.id, "reader").await;
    assert_eq!(
        answer(
            &server,
            &acme.owner,
            Method::DELETE,
            &format!("/keys/{reader_id}")
        )
        .await
        .0,
        204
    );
    assert_eq!(
        server
            .api_status(Method::DELETE, &format!("/keys/{acme_admin_id}"))
            .await,
        204,
        "an admin revokes admin keys"
    );
}

#[tokio::test]
async fn a_tenant_patch_with_a_stale_if_match_gets_412_and_changes_nothing() {
    let server = TestServer::start().await;
    let acme = tenant(&server, "acme").await;
    let path = format!("/tenants/{}", acme.id);
    let etag_of = |r: &reqwest::Response| r.headers()["etag"].to_str().unwrap().to_owned();
    let patch = |key: &str, if_match: Option<&str>, delivery: &str| {
        let mut request =
            with(&server, key, Method::PATCH, &path).json(&json!({"delivery": delivery}));
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request.send()
    };

    let read = with(&server, &acme.owner, Method::GET, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let first = etag_of(&read);
    assert!(first.starts_with('"') && first.ends_with('"'), "{first}");
    let changed = patch(&acme.owner, Some(&first), "signed").await.unwrap();
    assert_eq!(changed.status(), 200);
    let second = etag_of(&changed);
    assert_ne!(second, first, "a write is a new version");

    // The first ETag is stale now: refused, and the tenant is as the second write left it.
    let stale = patch(&acme.owner, Some(&first), "public").await.unwrap();
    assert_eq!(error_code(stale).await, (412, "precondition_failed".into()));
    let now = with(&server, &acme.owner, Method::GET, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(etag_of(&now), second);
    assert_eq!(now.json::<Value>().await.unwrap()["delivery"], "signed");

    // A signing-key rotation is a write too.
    let rotated = with(
        &server,
        &acme.owner,
        Method::POST,
        &format!("{path}/signing-keys"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(rotated.status(), 201);
    // Neither that version, nor anything that names no current one (a weak tag never matches).
    let current = with(&server, &acme.owner, Method::GET, &path)
        .send()
        .await
        .unwrap();
    let current = etag_of(&current);
    let weak = format!("W/{current}");
    for tag in [second.as_str(), &weak, "\"abc\"", "1", ""] {
        let refused = patch(&acme.owner, Some(tag), "public").await.unwrap();
        assert_eq!(
            error_code(refused).await,
            (412, "precondition_failed".into()),
            "{tag}"
        );
    }
    // A list applies when one of its tags is current.
    let listed = patch(&acme.owner, Some(&format!("{second}, {current}")), "signed")
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    // Without If-Match, or with `*`, a PATCH applies to the latest version as before.
    for tag in [None, Some("*")] {
        let applied = patch(&acme.owner, tag, "presets_only").await.unwrap();
        assert_eq!(applied.status(), 200, "{tag:?}");
    }
    let latest = with(&server, &acme.owner, Method::GET, &path)
        .send()
        .await
        .unwrap();
    let tag = etag_of(&latest);
    let applied = patch(&acme.owner, Some(&tag), "public").await.unwrap();
    assert_eq!(applied.status(), 200);
    assert_eq!(applied.json::<Value>().await.unwrap()["delivery"], "public");
}
