//! The tenancy half of the metadata contract: tenants and their settings, versioned writes
//! (compare-and-set, with racing rotations, retirements and PATCHes through the tenant service),
//! signing secrets sealed at rest, usage counted and refused past the quota with nothing
//! recorded, key listings and revocation scoped by tenant, preset versions with switch and
//! rollback.

use std::sync::Arc;
use std::time::Duration;

use imgd_core::id::{ContentHash, ImageId, TenantId};
use imgd_core::model::{
    ApiKeyRecord, DeliveryPolicy, Quota, Role, SigningKey, TenantRecord, TenantWrite, Usage,
};
use imgd_core::port::MetadataRepo;
use imgd_core::service::sealing::{self, Kek};
use imgd_core::service::tenancy::{TenantPatch, TenantService};

use crate::contract::{image, insert_pinned};

/// Concurrent rotations in the race below; within the service's retry budget by design.
const RACERS: usize = 8;

fn kek() -> Arc<Kek> {
    Arc::new(Kek::from_bytes(&[9; sealing::KEY_BYTES]))
}

/// A tenant as the tenant service would store it: its signing secret sealed.
fn tenant(unique: &ImageId, label: &str) -> TenantRecord {
    let id = TenantId::new(format!("{label}-{unique}"));
    let secret = kek().seal(&sealing::signing_key_place(&id, "sk_1"), "00ff");
    TenantRecord {
        id,
        name: format!("{label}-{unique}"),
        disabled: false,
        delivery: DeliveryPolicy::Public,
        quota: Quota::default(),
        usage: Usage::default(),
        signing_keys: vec![SigningKey {
            id: "sk_1".into(),
            secret,
            created_at: 5,
        }],
        created_at: 5,
        version: 1,
    }
}

/// Writes `tenant` at its version, which must still be current, and takes the new version.
async fn write(repo: &dyn MetadataRepo, tenant: &mut TenantRecord) {
    match repo.update_tenant(tenant).await.unwrap() {
        TenantWrite::Written(version) => {
            assert_eq!(version, tenant.version + 1, "each write bumps the version");
            tenant.version = version;
        }
        other => panic!("write of {} at {}: {other:?}", tenant.id, tenant.version),
    }
}

/// Runs the tenancy contract.
pub async fn run(shared: Arc<dyn MetadataRepo>) {
    versioned_writes(shared.clone()).await;
    sealed_secrets(shared.clone()).await;
    let repo = shared.as_ref();
    let unique = ImageId::generate();
    let mut acme = tenant(&unique, "acme");
    let globex = tenant(&unique, "globex");
    repo.create_tenant(&acme).await.unwrap();
    repo.create_tenant(&globex).await.unwrap();
    let taken = TenantRecord {
        id: TenantId::new(format!("dup-{unique}")),
        ..acme.clone()
    };
    assert_eq!(
        repo.create_tenant(&taken).await.unwrap_err().code(),
        "tenant_exists"
    );
    assert_eq!(repo.tenant(&acme.id).await.unwrap(), Some(acme.clone()));
    let all = repo.tenants().await.unwrap();
    assert!(all.iter().any(|t| t.id == acme.id) && all.iter().any(|t| t.id == globex.id));

    let read = acme.clone();
    acme.delivery = DeliveryPolicy::PresetsOnly;
    acme.quota = Quota {
        bytes: Some(3000),
        images: Some(2),
    };
    write(repo, &mut acme).await;
    assert_eq!(repo.tenant(&acme.id).await.unwrap(), Some(acme.clone()));
    // A write from a stale read changes nothing: it cannot undo the one above.
    let mut stale = read;
    stale.signing_keys.clear();
    stale.delivery = DeliveryPolicy::Signed;
    assert_eq!(
        repo.update_tenant(&stale).await.unwrap(),
        TenantWrite::Stale
    );
    assert_eq!(repo.tenant(&acme.id).await.unwrap(), Some(acme.clone()));
    let ghost = tenant(&unique, "ghost");
    assert_eq!(
        repo.update_tenant(&ghost).await.unwrap(),
        TenantWrite::Missing
    );

    // Usage counts each image's bytes; the quota refuses, and records nothing, past its limit.
    let hash = ContentHash::of(format!("quota {unique}").as_bytes());
    let first = image(&acme.id, &hash, 1, &[]);
    let second = image(&acme.id, &hash, 2, &["x"]);
    insert_pinned(repo, &first).await.unwrap();
    insert_pinned(repo, &second).await.unwrap();
    let usage = repo.tenant(&acme.id).await.unwrap().unwrap().usage;
    assert_eq!(
        usage,
        Usage {
            bytes: 2468,
            images: 2
        }
    );
    let third = image(&acme.id, &hash, 3, &[]);
    assert_eq!(
        insert_pinned(repo, &third).await.unwrap_err().code(),
        "quota_exceeded"
    );
    assert_eq!(repo.image(&third.id).await.unwrap(), None);
    assert_eq!(
        repo.blob_refs(&hash).await.unwrap(),
        2,
        "no reference taken"
    );
    repo.delete_image(&acme.id, &second.id).await.unwrap();
    let usage = repo.tenant(&acme.id).await.unwrap().unwrap().usage;
    assert_eq!(
        usage,
        Usage {
            bytes: 1234,
            images: 1
        }
    );
    // 1234 + 1234 fits 3000 bytes and 2 images again; a byte quota alone also refuses.
    insert_pinned(repo, &third).await.unwrap();
    acme.quota = Quota {
        bytes: Some(3000),
        images: None,
    };
    write(repo, &mut acme).await;
    let fourth = image(&acme.id, &hash, 4, &[]);
    assert_eq!(
        insert_pinned(repo, &fourth).await.unwrap_err().code(),
        "quota_exceeded"
    );
    // Racing inserts cannot overshoot: six at once against room for two more images.
    acme.quota = Quota {
        bytes: None,
        images: Some(4),
    };
    write(repo, &mut acme).await;
    let racers: Vec<_> = (10..16).map(|at| image(&acme.id, &hash, at, &[])).collect();
    let outcomes = tokio::join!(
        insert_pinned(repo, &racers[0]),
        insert_pinned(repo, &racers[1]),
        insert_pinned(repo, &racers[2]),
        insert_pinned(repo, &racers[3]),
        insert_pinned(repo, &racers[4]),
        insert_pinned(repo, &racers[5]),
    );
    let outcomes = [
        outcomes.0, outcomes.1, outcomes.2, outcomes.3, outcomes.4, outcomes.5,
    ];
    let stored = outcomes.iter().filter(|o| o.is_ok()).count();
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(refused.code(), "quota_exceeded");
    }
    assert_eq!(stored, 2, "exactly the room left, whoever wins");
    assert_eq!(
        repo.tenant(&acme.id).await.unwrap().unwrap().usage.images,
        4
    );

    // Another tenant's usage is its own.
    assert_eq!(
        repo.tenant(&globex.id).await.unwrap().unwrap().usage,
        Usage::default()
    );

    // Keys list and revoke within a tenant; another tenant's key is invisible there.
    let key = |id: &str, tenant: &TenantId, at: i64| ApiKeyRecord {
        id: format!("{id}{unique}")[..12].to_owned(),
        name: None,
        tenant: tenant.clone(),
        role: Role::Writer,
        secret_hash: format!("{id}-{unique}"),
        created_at: at,
        revoked: false,
    };
    let (k1, k2, k3) = (
        key("a", &acme.id, 1),
        key("b", &acme.id, 2),
        key("c", &globex.id, 3),
    );
    for k in [&k1, &k2, &k3] {
        repo.put_api_key(k).await.unwrap();
    }
    let listed = repo.api_keys(Some(&acme.id)).await.unwrap();
    assert_eq!(
        listed,
        vec![k2.clone(), k1.clone()],
        "newest first, own tenant only"
    );
    assert!(repo.api_keys(None).await.unwrap().len() >= 3);
    assert!(!repo.revoke_api_key(Some(&acme.id), &k3.id).await.unwrap());
    assert!(repo.revoke_api_key(Some(&globex.id), &k3.id).await.unwrap());
    assert!(repo.api_key(&k3.id).await.unwrap().unwrap().revoked);
    assert!(repo.revoke_api_key(None, &k1.id).await.unwrap());

    // Presets: each put is a new active version; switch, roll back, scoped per tenant.
    let p1 = repo.put_preset(&acme.id, "thumb", "w=100").await.unwrap();
    assert_eq!((p1.active_version, p1.active_options()), (1, Some("w=100")));
    let p2 = repo.put_preset(&acme.id, "thumb", "w=200").await.unwrap();
    assert_eq!((p2.active_version, p2.versions.len()), (2, 2));
    repo.put_preset(&acme.id, "hero", "w=1200").await.unwrap();
    assert_eq!(repo.preset(&globex.id, "thumb").await.unwrap(), None);
    let names: Vec<String> = repo
        .presets(&acme.id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["hero", "thumb"]);
    let back = repo
        .activate_preset(&acme.id, "thumb", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.active_options(), Some("w=100"));
    assert_eq!(
        repo.activate_preset(&acme.id, "thumb", None)
            .await
            .unwrap_err()
            .code(),
        "no_previous_version"
    );
    let forward = repo
        .activate_preset(&acme.id, "thumb", Some(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(forward.active_options(), Some("w=200"));
    assert_eq!(
        repo.activate_preset(&acme.id, "thumb", Some(9))
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert_eq!(
        repo.activate_preset(&globex.id, "thumb", Some(1))
            .await
            .unwrap(),
        None
    );
    assert!(!repo.delete_preset(&globex.id, "thumb").await.unwrap());
    assert!(repo.delete_preset(&acme.id, "thumb").await.unwrap());
    assert_eq!(repo.preset(&acme.id, "thumb").await.unwrap(), None);
    let again = repo.put_preset(&acme.id, "thumb", "w=50").await.unwrap();
    assert_eq!(again.active_version, 1, "a deleted preset starts over");
}

/// Read-modify-writes through the tenant service race and lose nothing: concurrent rotations
/// each land on top of the previous one (no shown key is dropped), a PATCH racing a retirement
/// neither brings the retired key back nor is lost itself, and a PATCH conditional on an old
/// version is refused.
async fn versioned_writes(repo: Arc<dyn MetadataRepo>) {
    let service = Arc::new(TenantService::new(repo.clone(), Duration::ZERO, kek()));
    let created = service
        .create(&format!("race-{}", ImageId::generate()))
        .await
        .unwrap();
    let id = created.id.clone();

    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let (service, id) = (service.clone(), id.clone());
        racers.spawn(async move { service.rotate_signing_key(&id).await.unwrap() });
    }
    let mut rotations = racers.join_all().await;
    rotations.sort_by_key(|(written, _)| written.version);
    let versions: Vec<u64> = rotations.iter().map(|(t, _)| t.version).collect();
    let expected: Vec<u64> = (2..2 + RACERS as u64).collect();
    assert_eq!(
        versions, expected,
        "every rotation wrote once, one after another"
    );
    let mut previous = created.signing_keys[0].clone();
    for (written, shown) in &rotations {
        assert_eq!(
            written.signing_keys,
            vec![shown.clone(), previous.clone()],
            "the shown key is the newest, on top of the key shown before it"
        );
        previous = shown.clone();
    }
    let now = service.get(&id).await.unwrap();
    assert_eq!(now.signing_keys, rotations.last().unwrap().0.signing_keys);

    // A PATCH and a retirement of the older key, raced a few times over.
    for round in 0..4u64 {
        let before = service.get(&id).await.unwrap();
        let retired = before.signing_keys[1].id.clone();
        let delivery = if round % 2 == 0 {
            DeliveryPolicy::Signed
        } else {
            DeliveryPolicy::PresetsOnly
        };
        let patch = TenantPatch {
            delivery: Some(delivery),
            ..Default::default()
        };
        let (patched, retirement) = tokio::join!(
            service.update(&id, patch, None),
            service.retire_signing_key(&id, &retired)
        );
        patched.unwrap();
        retirement.unwrap();
        let after = service.get(&id).await.unwrap();
        assert_eq!(after.delivery, delivery, "the PATCH is not lost");
        assert!(
            after.signing_keys.iter().all(|k| k.id != retired),
            "the retired key does not come back"
        );
        assert_eq!(after.signing_keys, before.signing_keys[..1]);
        assert_eq!(after.version, before.version + 2);
        service.rotate_signing_key(&id).await.unwrap();
    }

    // If-Match: the current version applies, an old one is refused and changes nothing.
    let current = service.get(&id).await.unwrap();
    let rename = |name: &str| TenantPatch {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    let fresh = format!("race-renamed-{}", ImageId::generate());
    let renamed = service
        .update(&id, rename(&fresh), Some(&[current.version]))
        .await
        .unwrap();
    assert_eq!(renamed.version, current.version + 1);
    let refused = service
        .update(&id, rename("never"), Some(&[current.version]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "precondition_failed");
    assert_eq!(service.get(&id).await.unwrap().name, fresh);
}

/// Signing secrets reach the repo sealed for their tenant and key, and plaintext ones written
/// by an earlier version are sealed in place by the start-up pass.
async fn sealed_secrets(repo: Arc<dyn MetadataRepo>) {
    let service = TenantService::new(repo.clone(), Duration::ZERO, kek());
    let created = service
        .create(&format!("sealed-{}", ImageId::generate()))
        .await
        .unwrap();
    let (_, shown) = service.rotate_signing_key(&created.id).await.unwrap();
    let stored = repo.tenant(&created.id).await.unwrap().unwrap();
    assert_eq!(stored.signing_keys.len(), 2);
    for key in &stored.signing_keys {
        assert!(key.secret.starts_with("v1:"), "{}", key.secret);
        assert!(!key.secret.contains(&shown.secret));
    }
    assert_eq!(
        service.get(&created.id).await.unwrap().signing_keys[0],
        shown
    );

    let unique = ImageId::generate();
    let mut legacy = tenant(&unique, "legacy");
    legacy.signing_keys[0].secret = "ab".repeat(32);
    repo.create_tenant(&legacy).await.unwrap();
    assert_eq!(
        service.get(&legacy.id).await.unwrap().signing_keys[0].secret,
        "ab".repeat(32),
        "a plaintext secret still works until it is sealed"
    );
    assert!(service.seal_plaintext_secrets().await.unwrap() >= 1);
    let stored = repo.tenant(&legacy.id).await.unwrap().unwrap();
    assert!(stored.signing_keys[0].secret.starts_with("v1:"));
    assert_eq!(
        service.get(&legacy.id).await.unwrap().signing_keys[0].secret,
        "ab".repeat(32)
    );
    service.seal_plaintext_secrets().await.unwrap();
    assert_eq!(
        repo.tenant(&legacy.id).await.unwrap().unwrap().version,
        stored.version,
        "a sealed tenant is not rewritten again"
    );
}
