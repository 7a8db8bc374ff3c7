//! The authorization matrix, generated from `/openapi.json`: every `/v1` operation, as every
//! kind of caller (admin, owner, writer, reader, no key, a revoked key), against the caller's own
//! tenant and another tenant. A route added without a fixture here fails the test, as does an
//! operation that declares no role.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{ADMIN_KEY, TestServer, fixtures};
use crate::tenancy::{Tenant, key, tenant, upload_as, with};

const ROLES: [&str; 4] = ["reader", "writer", "owner", "admin"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

/// One tenant's standing resources.
struct Side {
    tenant: Tenant,
    image: String,
}

struct Matrix<'a> {
    server: &'a TestServer,
    counter: usize,
}

impl Matrix<'_> {
    fn unique(&mut self) -> String {
        self.counter += 1;
        format!("m{}", self.counter)
    }

    async fn image(&self, side: &Side) -> String {
        let r: Value = upload_as(self.server, &side.tenant.writer, fixtures::jpeg(12, 12))
            .await
            .json()
            .await
            .unwrap();
        r["id"].as_str().unwrap().to_owned()
    }

    async fn preset(&mut self, side: &Side) -> String {
        let name = self.unique();
        for options in ["w=10", "w=20"] {
            let r = with(
                self.server,
                &side.tenant.owner,
                Method::PUT,
                &format!("/presets/{name}"),
            )
            .json(&json!({ "options": options }))
            .send()
            .await
            .unwrap();
            assert_eq!(r.status(), 200);
        }
        name
    }

    /// The concrete path and body of `template` aimed at `side`, with fresh resources where the
    /// operation consumes one.
    async fn request(
        &mut self,
        method: &Method,
        template: &str,
        side: &Side,
    ) -> (String, Option<Value>) {
        let t = &side.tenant.id;
        match (method.as_str(), template) {
            ("POST", "/v1/images") => ("/images".into(), None),
            ("GET", "/v1/images") => ("/images".into(), None),
            ("GET", "/v1/images/{id}") => (format!("/images/{}", side.image), None),
            ("PATCH", "/v1/images/{id}") => (
                format!("/images/{}", side.image),
                Some(json!({"tags": ["m"]})),
            ),
            ("DELETE", "/v1/images/{id}") => (format!("/images/{}", self.image(side).await), None),
            ("POST", "/v1/tenants") => ("/tenants".into(), Some(json!({"name": self.unique()}))),
            ("GET", "/v1/tenants") => ("/tenants".into(), None),
            ("GET", "/v1/tenants/{id}") => (format!("/tenants/{t}"), None),
            ("PATCH", "/v1/tenants/{id}") => {
                (format!("/tenants/{t}"), Some(json!({"delivery": "public"})))
            }
            ("GET", "/v1/tenants/{id}/usage") => (format!("/tenants/{t}/usage"), None),
            ("POST", "/v1/tenants/{id}/signing-keys") => {
                (format!("/tenants/{t}/signing-keys"), None)
            }
            ("DELETE", "/v1/tenants/{id}/signing-keys/{key_id}") => {
                let rotated: Value = self
                    .server
                    .api(Method::POST, &format!("/tenants/{t}/signing-keys"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (
                    format!(
                        "/tenants/{t}/signing-keys/{}",
                        rotated["id"].as_str().unwrap()
                    ),
                    None,
                )
            }
            ("POST", "/v1/keys") => (
                "/keys".into(),
                Some(json!({"tenant_id": t, "role": "reader"})),
            ),
            ("GET", "/v1/keys") => ("/keys".into(), None),
            ("DELETE", "/v1/keys/{id}") => (
                format!("/keys/{}", key(self.server, t, "reader").await.0),
                None,
            ),
            ("GET", "/v1/presets") => ("/presets".into(), None),
            ("GET", "/v1/presets/{name}") => {
                (format!("/presets/{}", self.preset(side).await), None)
            }
            ("PUT", "/v1/presets/{name}") => (
                format!("/presets/{}", self.preset(side).await),
                Some(json!({"options": "w=30"})),
            ),
            ("DELETE", "/v1/presets/{name}") => {
                (format!("/presets/{}", self.preset(side).await), None)
            }
            ("POST", "/v1/presets/{name}/activate") => (
                format!("/presets/{}/activate", self.preset(side).await),
                Some(json!({"version": 1})),
            ),
            ("POST", "/v1/presets/{name}/rollback") => (
                format!("/presets/{}/rollback", self.preset(side).await),
                None,
            ),
            ("POST", "/v1/sign") => (
                "/sign".into(),
                Some(json!({"path": format!("/i/{}/w=10", side.image)})),
            ),
            _ => panic!("no fixture for {method} {template}: add one to the authorization matrix"),
        }
    }
}

/// True for operations that name a tenant's resource (in the path or the body); the rest act on
/// the caller's own tenant whatever the "target". `PUT /v1/presets/{name}` is among the rest:
/// preset names are per tenant, so another tenant's name is a new preset in the caller's own
/// (checked after the matrix: the other tenant's presets are untouched).
fn targets_a_tenant(template: &str, method: &Method) -> bool {
    let upsert = *method == Method::PUT && template == "/v1/presets/{name}";
    (template.contains('{') && !upsert)
        || (*method == Method::POST && (template == "/v1/keys" || template == "/v1/sign"))
}

/// Admins manage every tenant and key; images and presets stay scoped to the admin's own tenant.
fn admin_reaches_every_tenant(template: &str) -> bool {
    template.starts_with("/v1/tenants") || template.starts_with("/v1/keys")
}

#[tokio::test]
async fn every_route_by_every_caller_on_own_and_other_tenant() {
    let server = TestServer::start().await;
    let doc: Value = server.get("/openapi.json").await.json().await.unwrap();
    let mut sides = Vec::new();
    for name in ["own", "other"] {
        let tenant = tenant(&server, name).await;
        let image: Value = upload_as(&server, &tenant.writer, fixtures::jpeg(16, 16))
            .await
            .json()
            .await
            .unwrap();
        sides.push(Side {
            image: image["id"].as_str().unwrap().to_owned(),
            tenant,
        });
    }
    let (own, other) = (&sides[0], &sides[1]);
    let (revoked_id, revoked) = key(&server, &own.tenant.id, "owner").await;
    assert_eq!(
        server
            .api_status(Method::DELETE, &format!("/keys/{revoked_id}"))
            .await,
        204
    );
    let callers: [(&str, Option<&str>); 6] = [
        ("admin", Some(ADMIN_KEY)),
        ("owner", Some(&own.tenant.owner)),
        ("writer", Some(&own.tenant.writer)),
        ("reader", Some(&own.tenant.reader)),
        ("no key", None),
        ("revoked", Some(&revoked)),
    ];
    let other_ids = [other.tenant.id.clone(), other.image.clone()];

    let mut matrix = Matrix {
        server: &server,
        counter: 0,
    };
    let mut cases = 0;
    let mut cross_tenant_successes = Vec::new();
    let mut wrong = Vec::new();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let paths = doc["paths"].as_object().unwrap();
    for (template, item) in paths.iter().filter(|(p, _)| p.starts_with("/v1/")) {
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let declared = operation["security"][0]["bearer"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {template} declares no role"));
            for (caller, secret) in callers {
                for (target, side) in [("own", own), ("other", other)] {
                    cases += 1;
                    let (path, body) = matrix.request(&method, template, side).await;
                    let mut request = server
                        .client
                        .request(method.clone(), server.url(&format!("/v1{path}")));
                    if let Some(secret) = secret {
                        request = request.bearer_auth(secret);
                    }
                    request = match (&body, method == Method::POST && template == "/v1/images") {
                        (_, true) => request.body(fixtures::jpeg(12, 12)),
                        (Some(body), _) => request.json(body),
                        (None, _) => request,
                    };
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap();
                    *by_status.entry(status).or_default() += 1;
                    let allowed = ROLES.contains(&caller) && rank(caller) >= rank(declared);
                    let aimed_elsewhere = target == "other" || caller == "admin";
                    let reaches = !targets_a_tenant(template, &method)
                        || !aimed_elsewhere
                        || (caller == "admin" && admin_reaches_every_tenant(template));
                    let expected: &[u16] =
                        match (secret.is_some() && caller != "revoked", allowed, reaches) {
                            (false, _, _) => &[401],
                            (true, false, _) => &[403],
                            (true, true, false) => &[404],
                            (true, true, true) => &[200, 201, 204],
                        };
                    if !expected.contains(&status) {
                        wrong.push(format!("{method} {path} as {caller} on {target}: {status}, expected {expected:?}: {text}"));
                    }
                    let success = (200..300).contains(&status);
                    let leaks = other_ids.iter().any(|id| text.contains(id.as_str()));
                    if caller != "admin"
                        && success
                        && (target == "other" && targets_a_tenant(template, &method) || leaks)
                    {
                        cross_tenant_successes.push(format!("{method} {path} as {caller}"));
                    }
                }
            }
        }
    }
    println!("authorization matrix: {cases} cases, statuses {by_status:?}");
    let theirs: Value = with(&server, &other.tenant.reader, Method::GET, "/presets")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for preset in theirs["presets"].as_array().unwrap() {
        let versions = preset["versions"].as_array().unwrap().len();
        let untouched = versions == 2 && preset["active_version"] == 2;
        assert!(untouched, "changed from outside: {preset}");
    }
    assert!(
        cases >= 22 * 12,
        "every operation was exercised ({cases} cases)"
    );
    assert_eq!(
        cross_tenant_successes,
        Vec::<String>::new(),
        "cross-tenant successes"
    );
    assert!(
        wrong.is_empty(),
        "{} unexpected answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
