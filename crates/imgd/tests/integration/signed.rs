//! Delivery policies over real HTTP: signed URLs from `POST /v1/sign`, tampering, expiry, key
//! rotation, and presets-only.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, error_code, fixtures};
use crate::tenancy::{tenant, upload_as, with};

async fn set_policy(server: &TestServer, tenant: &str, policy: &str) {
    let response = server
        .api(Method::PATCH, &format!("/tenants/{tenant}"))
        .json(&json!({ "delivery": policy }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn sign(server: &TestServer, key: &str, path: &str, expires_in: u64) -> String {
    let response = with(server, key, Method::POST, "/sign")
        .json(&json!({ "path": path, "expires_in": expires_in }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn signed_policy_serves_signed_urls_only_and_rotation_keeps_old_ones_alive() {
    let server = TestServer::start().await;
    let acme = tenant(&server, "acme").await;
    let id: Value = upload_as(&server, &acme.writer, fixtures::jpeg(64, 64))
        .await
        .json()
        .await
        .unwrap();
    let id = id["id"].as_str().unwrap().to_owned();
    set_policy(&server, &acme.id, "signed").await;

    let unsigned = server.get(&format!("/i/{id}/w=20")).await;
    assert_eq!(
        error_code(unsigned).await,
        (403, "signature_required".into())
    );
    let original = server.get(&format!("/i/{id}")).await;
    assert_eq!(
        error_code(original).await,
        (403, "signature_required".into())
    );

    let url = sign(&server, &acme.reader, &format!("/i/{id}/w=20"), 600).await;
    let first = server.get(&url).await;
    assert_eq!(first.status(), 200);
    let max_age: u64 = first.headers()["cache-control"]
        .to_str()
        .unwrap()
        .trim_start_matches("public, max-age=")
        .parse()
        .unwrap();
    assert!(
        (590..=600).contains(&max_age),
        "cached no longer than the URL lives: {max_age}"
    );
    assert_eq!(first.headers()["x-imgd-cache"], "miss");
    // Another signature for the same variant is the same cached variant: sig is not in the key.
    let other = sign(&server, &acme.reader, &format!("/i/{id}/w=20"), 900).await;
    assert_ne!(other, url);
    assert_eq!(
        server.get(&other).await.headers()["x-imgd-cache"],
        "hit-memory"
    );

    // Tampering with the options, the expiry or the signature, or adding a parameter.
    let tampered = [
        url.replace("w=20", "w=21"),
        url.replace("exp=", "exp=9"),
        flip_last(&url),
        format!("{url}&w=1"),
    ];
    for bad in tampered {
        let response = server.get(&bad).await;
        assert_eq!(
            error_code(response).await,
            (403, "signature_invalid".into()),
            "{bad}"
        );
    }
    let short = sign(&server, &acme.reader, &format!("/i/{id}"), 1).await;
    assert_eq!(server.get(&short).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        error_code(server.get(&short).await).await,
        (403, "signature_expired".into())
    );

    // Rotation: the old key still verifies; a second rotation retires it.
    let rotate = || {
        with(
            &server,
            &acme.owner,
            Method::POST,
            &format!("/tenants/{}/signing-keys", acme.id),
        )
        .send()
    };
    assert_eq!(rotate().await.unwrap().status(), 201);
    assert_eq!(
        server.get(&url).await.status(),
        200,
        "signed before the rotation, still valid"
    );
    let after = sign(&server, &acme.reader, &format!("/i/{id}/w=20"), 600).await;
    assert_eq!(server.get(&after).await.status(), 200);
    assert_eq!(rotate().await.unwrap().status(), 201);
    assert_eq!(
        error_code(server.get(&url).await).await,
        (403, "signature_invalid".into())
    );
    assert_eq!(
        server.get(&after).await.status(),
        200,
        "one rotation back is still active"
    );

    // Another tenant cannot sign acme's image.
    let globex = tenant(&server, "globex").await;
    let foreign = with(&server, &globex.reader, Method::POST, "/sign")
        .json(&json!({ "path": format!("/i/{id}/w=20") }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(foreign).await, (404, "not_found".into()));
}

#[tokio::test]
async fn presets_only_lets_unsigned_urls_name_presets_and_nothing_else() {
    let server = TestServer::start().await;
    let acme = tenant(&server, "acme").await;
    let id: Value = upload_as(&server, &acme.writer, fixtures::jpeg(64, 64))
        .await
        .json()
        .await
        .unwrap();
    let id = id["id"].as_str().unwrap().to_owned();
    let put = with(&server, &acme.owner, Method::PUT, "/presets/avatar")
        .json(&json!({"options": "w=32,h=32,fit=cover"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    set_policy(&server, &acme.id, "presets_only").await;
    assert_eq!(server.get(&format!("/i/{id}/avatar")).await.status(), 200);
    assert_eq!(
        server.get(&format!("/i/{id}/thumb")).await.status(),
        200,
        "configured presets count"
    );
    for refused in [
        format!("/i/{id}/w=32"),
        format!("/i/{id}/avatar,f=webp"),
        format!("/i/{id}"),
    ] {
        let response = server.get(&refused).await;
        assert_eq!(
            error_code(response).await,
            (403, "signature_required".into()),
            "{refused}"
        );
    }
    let signed = sign(&server, &acme.reader, &format!("/i/{id}/w=32"), 60).await;
    assert_eq!(server.get(&signed).await.status(), 200);
}

/// The URL with its last hex digit changed.
fn flip_last(url: &str) -> String {
    let (head, last) = url.split_at(url.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}
