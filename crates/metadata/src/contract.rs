//! The metadata contract: what every `MetadataRepo` must do, as one async suite that each
//! implementation's tests run. Every call uses fresh tenants and ids, so runs can share a
//! database.

use std::sync::Arc;

use imgd_core::format::ImageFormat;
use imgd_core::id::{ContentHash, ImageId, TenantId, VariantKey};
use imgd_core::model::{
    ApiKeyRecord, Cursor, ImagePatch, ImageRecord, ListQuery, Role, VariantRecord,
};
use imgd_core::port::MetadataRepo;

pub(crate) fn image(
    tenant: &TenantId,
    hash: &ContentHash,
    created_at: i64,
    tags: &[&str],
) -> ImageRecord {
    ImageRecord {
        id: ImageId::generate(),
        tenant: tenant.clone(),
        hash: hash.clone(),
        format: ImageFormat::Png,
        width: 10,
        height: 20,
        bytes: 1234,
        frames: 1,
        filename: Some("a.png".into()),
        blurhash: Some("LEHV6nWB2yk8pyo0adR*.7kCMdnj".into()),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        metadata: serde_json::json!({"alt": "a cat"})
            .as_object()
            .unwrap()
            .clone(),
        created_at,
    }
}

/// Runs the whole contract against `repo`.
pub async fn run(repo: Arc<dyn MetadataRepo>) {
    crate::contract_tenancy::run(repo.as_ref()).await;
    let repo = repo.as_ref();
    let unique = ImageId::generate();
    let tenant = TenantId::new(format!("t-{unique}"));
    let other = TenantId::new(format!("o-{unique}"));
    repo.ensure_tenant(&tenant, &format!("tenant {unique}"))
        .await
        .unwrap();
    repo.ensure_tenant(&tenant, &format!("tenant {unique}"))
        .await
        .expect("ensure_tenant is idempotent");
    repo.ensure_tenant(&other, &format!("other {unique}"))
        .await
        .unwrap();

    // Settings: the first writer wins.
    let setting = format!("setting-{unique}");
    assert_eq!(
        repo.setting_or_init(&setting, "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        repo.setting_or_init(&setting, "second").await.unwrap(),
        "first"
    );

    // API keys.
    let key = ApiKeyRecord {
        id: format!("key-{unique}"),
        tenant: tenant.clone(),
        role: Role::Admin,
        secret_hash: format!("hash-{unique}"),
        created_at: 1,
        revoked: false,
        name: Some("ci".into()),
    };
    repo.put_api_key(&key).await.unwrap();
    assert_eq!(repo.api_key(&key.id).await.unwrap(), Some(key.clone()));
    assert_eq!(
        repo.api_key_by_hash(&key.secret_hash).await.unwrap(),
        Some(key.clone())
    );
    let rotated = ApiKeyRecord {
        secret_hash: format!("rotated-{unique}"),
        ..key.clone()
    };
    repo.put_api_key(&rotated).await.unwrap();
    assert_eq!(
        repo.api_key_by_hash(&key.secret_hash).await.unwrap(),
        None,
        "replacing a key drops the old hash"
    );
    repo.put_api_key(&ApiKeyRecord {
        revoked: true,
        ..rotated.clone()
    })
    .await
    .unwrap();
    assert_eq!(
        repo.api_key_by_hash(&rotated.secret_hash).await.unwrap(),
        None,
        "revoked keys do not authenticate"
    );

    // Images: two share a blob, one has its own; same timestamp on two to exercise the id tiebreak.
    let shared = ContentHash::of(format!("shared {unique}").as_bytes());
    let own = ContentHash::of(format!("own {unique}").as_bytes());
    let a = image(&tenant, &shared, 1000, &["cat", "pet"]);
    let b = image(&tenant, &shared, 2000, &["dog"]);
    let c = image(&tenant, &own, 2000, &["cat"]);
    for img in [&a, &b, &c] {
        repo.insert_image(img).await.unwrap();
    }
    assert_eq!(repo.blob_refs(&shared).await.unwrap(), 2);
    assert_eq!(repo.image(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(repo.image(&ImageId::generate()).await.unwrap(), None);

    // Newest first with a stable tiebreak, paged by cursor, never repeating or skipping.
    let all = repo
        .list_images(
            &tenant,
            &ListQuery {
                limit: 10,
                after: None,
                tag: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].id, a.id);
    assert!(all[0].created_at >= all[1].created_at);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = repo
            .list_images(
                &tenant,
                &ListQuery {
                    limit: 1,
                    after: after.clone(),
                    tag: None,
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(Cursor {
            created_at: last.created_at,
            id: last.id.clone(),
        });
        paged.extend(page);
    }
    assert_eq!(
        paged.iter().map(|i| &i.id).collect::<Vec<_>>(),
        all.iter().map(|i| &i.id).collect::<Vec<_>>()
    );
    let cats = repo
        .list_images(
            &tenant,
            &ListQuery {
                limit: 10,
                after: None,
                tag: Some("cat".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        cats.iter().map(|i| &i.id).collect::<Vec<_>>(),
        vec![&c.id, &a.id]
    );
    assert!(
        repo.list_images(
            &other,
            &ListQuery {
                limit: 10,
                after: None,
                tag: None
            }
        )
        .await
        .unwrap()
        .is_empty()
    );

    // Patch: tags are re-indexed; other tenants cannot touch the image.
    let patch = ImagePatch {
        tags: Some(vec!["bird".into()]),
        metadata: None,
    };
    assert_eq!(
        repo.update_image(&other, &a.id, &patch).await.unwrap(),
        None
    );
    let patched = repo
        .update_image(&tenant, &a.id, &patch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(patched.tags, vec!["bird"]);
    assert_eq!(patched.metadata, a.metadata, "absent fields stay");
    assert_eq!(repo.image(&a.id).await.unwrap().unwrap().tags, vec!["bird"]);
    let birds = repo
        .list_images(
            &tenant,
            &ListQuery {
                limit: 10,
                after: None,
                tag: Some("bird".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(birds.len(), 1);
    let cats = repo
        .list_images(
            &tenant,
            &ListQuery {
                limit: 10,
                after: None,
                tag: Some("cat".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(cats.len(), 1);

    // Variants.
    let variant = VariantRecord {
        key: VariantKey::from_stored(format!("{:0>64}", unique.as_str())),
        source: shared.clone(),
        format: ImageFormat::Webp,
        bytes: 99,
        etag: "e".repeat(64),
        created_at: 5,
    };
    assert_eq!(repo.variant(&variant.key).await.unwrap(), None);
    repo.insert_variant(&variant).await.unwrap();
    repo.insert_variant(&variant)
        .await
        .expect("insert_variant is idempotent");
    assert_eq!(
        repo.variant(&variant.key).await.unwrap(),
        Some(variant.clone())
    );

    // Delete: the blob survives while referenced; its variants go with the last reference.
    assert_eq!(
        repo.delete_image(&other, &a.id).await.unwrap(),
        None,
        "other tenants cannot delete"
    );
    let first = repo.delete_image(&tenant, &a.id).await.unwrap().unwrap();
    assert!(!first.blob_orphaned);
    assert_eq!(
        repo.variant(&variant.key).await.unwrap(),
        Some(variant.clone())
    );
    let second = repo.delete_image(&tenant, &b.id).await.unwrap().unwrap();
    assert_eq!(second.hash, shared);
    assert!(second.blob_orphaned);
    assert_eq!(repo.blob_refs(&shared).await.unwrap(), 0);
    assert_eq!(repo.variant(&variant.key).await.unwrap(), None);
    assert_eq!(
        repo.delete_image(&tenant, &b.id).await.unwrap(),
        None,
        "deleting twice finds nothing"
    );

    // The same bytes uploaded again start a fresh reference count.
    let again = image(&tenant, &shared, 3000, &[]);
    repo.insert_image(&again).await.unwrap();
    assert_eq!(repo.blob_refs(&shared).await.unwrap(), 1);
    repo.check().await.unwrap();
}
