//! The tenancy half of the metadata contract: tenants and their settings, usage counted and
//! refused past the quota with nothing recorded, key listings and revocation scoped by tenant,
//! preset versions with switch and rollback.

use imgd_core::id::{ContentHash, ImageId, TenantId};
use imgd_core::model::{
    ApiKeyRecord, DeliveryPolicy, Quota, Role, SigningKey, TenantRecord, Usage,
};
use imgd_core::port::MetadataRepo;

use crate::contract::image;

fn tenant(unique: &ImageId, label: &str) -> TenantRecord {
    TenantRecord {
        id: TenantId::new(format!("{label}-{unique}")),
        name: format!("{label}-{unique}"),
        disabled: false,
        delivery: DeliveryPolicy::Public,
        quota: Quota::default(),
        usage: Usage::default(),
        signing_keys: vec![SigningKey {
            id: "sk_1".into(),
            secret: "00ff".into(),
            created_at: 5,
        }],
        created_at: 5,
    }
}

/// Runs the tenancy contract.
pub async fn run(repo: &dyn MetadataRepo) {
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

    acme.delivery = DeliveryPolicy::PresetsOnly;
    acme.quota = Quota {
        bytes: Some(3000),
        images: Some(2),
    };
    assert!(repo.update_tenant(&acme).await.unwrap());
    assert_eq!(repo.tenant(&acme.id).await.unwrap(), Some(acme.clone()));
    let ghost = tenant(&unique, "ghost");
    assert!(!repo.update_tenant(&ghost).await.unwrap());

    // Usage counts each image's bytes; the quota refuses, and records nothing, past its limit.
    let hash = ContentHash::of(format!("quota {unique}").as_bytes());
    let first = image(&acme.id, &hash, 1, &[]);
    let second = image(&acme.id, &hash, 2, &["x"]);
    repo.insert_image(&first).await.unwrap();
    repo.insert_image(&second).await.unwrap();
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
        repo.insert_image(&third).await.unwrap_err().code(),
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
    repo.insert_image(&third).await.unwrap();
    acme.quota = Quota {
        bytes: Some(3000),
        images: None,
    };
    repo.update_tenant(&acme).await.unwrap();
    let fourth = image(&acme.id, &hash, 4, &[]);
    assert_eq!(
        repo.insert_image(&fourth).await.unwrap_err().code(),
        "quota_exceeded"
    );
    // Racing inserts cannot overshoot: six at once against room for two more images.
    acme.quota = Quota {
        bytes: None,
        images: Some(4),
    };
    repo.update_tenant(&acme).await.unwrap();
    let racers: Vec<_> = (10..16).map(|at| image(&acme.id, &hash, at, &[])).collect();
    let outcomes = tokio::join!(
        repo.insert_image(&racers[0]),
        repo.insert_image(&racers[1]),
        repo.insert_image(&racers[2]),
        repo.insert_image(&racers[3]),
        repo.insert_image(&racers[4]),
        repo.insert_image(&racers[5]),
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
