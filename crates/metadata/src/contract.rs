//! The metadata contract: what every `MetadataRepo` must do, as one async suite that each
//! implementation's tests run. Every call uses fresh tenants and ids, so runs can share a
//! database.

use std::sync::Arc;

use imgd_core::format::ImageFormat;
use imgd_core::id::{ContentHash, ImageId, TenantId, VariantKey};
use imgd_core::model::{
    ApiKeyRecord, BlobPin, ClaimRule, Cursor, ImagePatch, ImageRecord, ListQuery, PinOutcome, Role,
    VariantRecord, now_millis,
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

/// A random positive row generation, as the ingest service makes them.
fn generation() -> i64 {
    (i64::from_le_bytes(imgd_core::id::random_bytes::<8>()) & i64::MAX) | 1
}

/// Pins the image's blob as an upload does (for a minute), expecting it live.
pub(crate) async fn pin(repo: &dyn MetadataRepo, hash: &ContentHash) -> BlobPin {
    let now = now_millis();
    match repo
        .pin_blob(hash, 1234, now, now + 60_000, generation())
        .await
        .unwrap()
    {
        PinOutcome::Pinned(pin) => pin,
        PinOutcome::Deleting => panic!("blob {hash} is being collected"),
    }
}

/// Records the image as an upload does: pin its blob, then take the reference through the pin.
pub(crate) async fn insert_pinned(
    repo: &dyn MetadataRepo,
    image: &ImageRecord,
) -> imgd_core::Result<()> {
    let pin = pin(repo, &image.hash).await;
    repo.insert_image(image, &pin).await
}

/// Runs the whole contract against `repo`.
pub async fn run(repo: Arc<dyn MetadataRepo>) {
    crate::contract_tenancy::run(repo.clone()).await;
    collection(repo.as_ref()).await;
    adoption(repo.as_ref()).await;
    racing_pins_and_claims(repo.as_ref()).await;
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
    // Replacing is compare-and-set: only from the value the caller read.
    assert!(
        !repo
            .replace_setting(&setting, "second", "third")
            .await
            .unwrap()
    );
    assert!(
        repo.replace_setting(&setting, "first", "third")
            .await
            .unwrap()
    );
    assert_eq!(
        repo.setting_or_init(&setting, "fourth").await.unwrap(),
        "third"
    );
    assert!(
        !repo
            .replace_setting(&format!("unset-{unique}"), "", "x")
            .await
            .unwrap()
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
        insert_pinned(repo, img).await.unwrap();
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

    // Delete: only references go; the blob row and its variants stay until collected.
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
    assert_eq!(
        repo.variant(&variant.key).await.unwrap(),
        Some(variant.clone()),
        "variant rows go with the collection, not the delete"
    );
    assert_eq!(
        repo.delete_image(&tenant, &b.id).await.unwrap(),
        None,
        "deleting twice finds nothing"
    );

    // The same bytes uploaded again before collection take the orphan back.
    let again = image(&tenant, &shared, 3000, &[]);
    insert_pinned(repo, &again).await.unwrap();
    assert_eq!(repo.blob_refs(&shared).await.unwrap(), 1);
    repo.check().await.unwrap();
}

/// A rule that lets a collector claim anything unreferenced and unpinned at `now`.
fn eager(now: i64) -> ClaimRule {
    ClaimRule {
        now,
        orphaned_before: now + 1_000,
        never_referenced: false,
        stale_claim_before: i64::MIN,
    }
}

/// Blob collection: pins, claims and their order, as `imgd_core::service::gc` relies on.
/// Bytes found without a row: adopted as unreferenced, then collected by the usual rule; a row
/// that exists (pinned, referenced or claimed) is never touched. And the merge's side: recorded
/// hashes in a range, a page at a time.
async fn adoption(repo: &dyn MetadataRepo) {
    let unique = ImageId::generate();
    let tenant = TenantId::new(format!("adopt-{unique}"));
    repo.ensure_tenant(&tenant, &format!("adopt {unique}"))
        .await
        .unwrap();
    let blob = |label: &str| ContentHash::of(format!("{label} {unique}").as_bytes());
    let now = now_millis();

    let stray = blob("stray");
    assert!(repo.adopt_blob(&stray, 77, now - 10_000, 5).await.unwrap());
    assert!(
        !repo.adopt_blob(&stray, 1, now, 6).await.unwrap(),
        "adopting twice changes nothing"
    );
    // Orphaned ten seconds ago: a five-second grace lets it go, a minute does not.
    let graced = |grace: i64| ClaimRule {
        orphaned_before: now - grace,
        ..eager(now)
    };
    assert_eq!(
        repo.claim_orphan(&stray, &graced(60_000), 1).await.unwrap(),
        None
    );
    let claim = repo
        .claim_orphan(&stray, &graced(5_000), 2)
        .await
        .unwrap()
        .expect("an adopted blob is an orphan");
    assert_eq!(claim.size, 77);
    assert!(repo.finish_collect(&claim).await.unwrap());

    // A referenced blob is never adopted over.
    let kept = blob("kept");
    let image = image(&tenant, &kept, 1, &[]);
    insert_pinned(repo, &image).await.unwrap();
    assert!(!repo.adopt_blob(&kept, 1, 0, 9).await.unwrap());
    assert_eq!(repo.blob_refs(&kept).await.unwrap(), 1);
    assert_eq!(
        repo.claim_orphan(&kept, &eager(now), 3).await.unwrap(),
        None
    );

    // An adopted row (size unknown, from variants alone) learns its size from the next pin.
    let from_variants = blob("variants only");
    assert!(repo.adopt_blob(&from_variants, 0, now, 4).await.unwrap());
    let pinned = pin(repo, &from_variants).await;
    repo.release_pin(&pinned).await.unwrap();
    let claim = repo
        .claim_orphan(&from_variants, &eager(now + 1), 5)
        .await
        .unwrap()
        .expect("claimable once the pin is back");
    assert_eq!(claim.size, 1234, "the pin wrote the real size");
    assert!(repo.finish_collect(&claim).await.unwrap());

    // Known hashes in a range, paged: exactly those recorded, ascending.
    let mut recorded: Vec<ContentHash> = (0..5).map(|i| blob(&format!("known {i}"))).collect();
    for hash in &recorded {
        repo.adopt_blob(hash, 1, now, 1).await.unwrap();
    }
    recorded.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let (from, upto) = (recorded[1].clone(), recorded[4].clone());
    let mut after: Option<ContentHash> = None;
    let mut seen = Vec::new();
    loop {
        let page = repo
            .known_blobs(&from, after.as_ref(), &upto, 2)
            .await
            .unwrap();
        let done = page.len() < 2;
        after = page.last().cloned().or(after);
        seen.extend(page);
        if done {
            break;
        }
    }
    let ours: Vec<&ContentHash> = seen.iter().filter(|h| recorded.contains(h)).collect();
    assert_eq!(ours, recorded[1..].iter().collect::<Vec<_>>());
    assert!(seen.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
    assert!(
        seen.iter()
            .all(|h| h.as_str() >= from.as_str() && h.as_str() <= upto.as_str())
    );
    for hash in &recorded {
        let claim = repo
            .claim_orphan(hash, &eager(now + 1), 6)
            .await
            .unwrap()
            .unwrap();
        assert!(repo.finish_collect(&claim).await.unwrap());
    }
}

async fn collection(repo: &dyn MetadataRepo) {
    let unique = ImageId::generate();
    let tenant = TenantId::new(format!("gc-{unique}"));
    repo.ensure_tenant(&tenant, &format!("gc {unique}"))
        .await
        .unwrap();
    let blob = |label: &str| ContentHash::of(format!("{label} {unique}").as_bytes());

    // A pin blocks a claim, listed or not, until it is given back or expires.
    let pinned = blob("pinned");
    let first = pin(repo, &pinned).await;
    let second = pin(repo, &pinned).await;
    assert_eq!(first, second, "pins of a live row share its generation");
    let now = now_millis();
    assert_eq!(
        repo.claim_orphan(&pinned, &eager(now), 1).await.unwrap(),
        None
    );
    let listed = repo.orphans(&eager(now), None, 100_000).await.unwrap();
    assert!(
        !listed.iter().any(|o| o.hash == pinned),
        "pinned is no orphan"
    );
    repo.release_pin(&first).await.unwrap();
    assert_eq!(
        repo.claim_orphan(&pinned, &eager(now), 1).await.unwrap(),
        None,
        "one pin is still held"
    );
    let expired = ClaimRule {
        now: now + 61_000,
        orphaned_before: now + 61_000,
        ..eager(now)
    };
    assert!(
        repo.orphans(&expired, None, 100_000)
            .await
            .unwrap()
            .iter()
            .any(|o| o.hash == pinned && !o.stale_claim),
        "an expired pin no longer protects"
    );
    repo.release_pin(&second).await.unwrap();
    let claim = repo
        .claim_orphan(&pinned, &eager(now), 7)
        .await
        .unwrap()
        .expect("the last pin given back: claimable");
    assert_eq!((claim.size, claim.token), (1234, 7));

    // A claim blocks pins until finished; a pin from before it cannot commit, ever.
    let variant = VariantRecord {
        key: VariantKey::from_stored(format!("{:0>64}", unique.as_str())),
        source: pinned.clone(),
        format: ImageFormat::Webp,
        bytes: 9,
        etag: "f".repeat(64),
        created_at: 5,
    };
    repo.insert_variant(&variant).await.unwrap();
    assert_eq!(
        repo.pin_blob(&pinned, 1234, now, now + 60_000, 99)
            .await
            .unwrap(),
        PinOutcome::Deleting
    );
    let late = image(&tenant, &pinned, 1, &[]);
    assert_eq!(
        repo.insert_image(&late, &first).await.unwrap_err().code(),
        "unavailable",
        "a reference into a claimed row is refused"
    );
    assert_eq!(repo.image(&late.id).await.unwrap(), None);
    assert_eq!(
        repo.claim_orphan(&pinned, &eager(now), 8).await.unwrap(),
        None,
        "claimed once"
    );
    assert!(
        !repo
            .finish_collect(&imgd_core::model::BlobClaim {
                token: 8,
                ..claim.clone()
            })
            .await
            .unwrap(),
        "only the claim's holder finishes"
    );
    assert!(repo.finish_collect(&claim).await.unwrap());
    assert_eq!(
        repo.variant(&variant.key).await.unwrap(),
        None,
        "variant rows go with the blob"
    );
    let fresh = pin(repo, &pinned).await;
    assert_ne!(fresh.generation, first.generation, "a new incarnation");
    assert_eq!(
        repo.insert_image(&late, &first).await.unwrap_err().code(),
        "unavailable",
        "a pin of the collected incarnation cannot commit into the new one"
    );
    repo.insert_image(&late, &fresh).await.unwrap();
    assert_eq!(repo.blob_refs(&pinned).await.unwrap(), 1);

    // A referenced blob is never claimed, whatever the rule.
    let anything = ClaimRule {
        now: i64::MAX,
        orphaned_before: i64::MAX,
        never_referenced: false,
        stale_claim_before: i64::MAX,
    };
    assert_eq!(
        repo.claim_orphan(&pinned, &anything, 9).await.unwrap(),
        None
    );
    assert!(
        !repo
            .orphans(&anything, None, 100_000)
            .await
            .unwrap()
            .iter()
            .any(|o| o.hash == pinned)
    );

    // The grace period: an orphan is claimed only once it has been one long enough; an upload
    // that never committed counts from its pin, and only such blobs are "never referenced".
    repo.delete_image(&tenant, &late.id).await.unwrap();
    let now = now_millis();
    let graced = ClaimRule {
        orphaned_before: now - 3_600_000,
        ..eager(now)
    };
    assert_eq!(repo.claim_orphan(&pinned, &graced, 10).await.unwrap(), None);
    let unreferenced_only = ClaimRule {
        never_referenced: true,
        ..eager(now)
    };
    assert_eq!(
        repo.claim_orphan(&pinned, &unreferenced_only, 10)
            .await
            .unwrap(),
        None,
        "it was referenced"
    );
    let abandoned = blob("abandoned");
    let held = pin(repo, &abandoned).await;
    repo.release_pin(&held).await.unwrap();
    assert_eq!(
        repo.claim_orphan(&abandoned, &graced, 11).await.unwrap(),
        None,
        "a fresh row is young"
    );
    let claim = repo
        .claim_orphan(&abandoned, &unreferenced_only, 11)
        .await
        .unwrap()
        .expect("never referenced");
    assert!(repo.finish_collect(&claim).await.unwrap());
    let claim = repo
        .claim_orphan(&pinned, &eager(now_millis()), 12)
        .await
        .unwrap()
        .expect("past the grace period");

    // A stalled collector's claim is taken over once stale; the stalled one cannot finish.
    let stale = ClaimRule {
        stale_claim_before: now_millis() + 1,
        ..eager(now_millis())
    };
    assert!(
        repo.orphans(&stale, None, 100_000)
            .await
            .unwrap()
            .iter()
            .any(|o| o.hash == pinned && o.stale_claim)
    );
    let taken = repo
        .claim_orphan(&pinned, &stale, 13)
        .await
        .unwrap()
        .expect("a stale claim is taken over");
    assert!(!repo.finish_collect(&claim).await.unwrap());
    assert!(repo.finish_collect(&taken).await.unwrap());
    assert_eq!(repo.blob_refs(&pinned).await.unwrap(), 0);
}

/// A pin and a claim of the same orphan, at once, many times: exactly one of them wins.
async fn racing_pins_and_claims(repo: &dyn MetadataRepo) {
    let unique = ImageId::generate();
    let tenant = TenantId::new(format!("race-{unique}"));
    repo.ensure_tenant(&tenant, &format!("race {unique}"))
        .await
        .unwrap();
    let (mut pins_won, mut claims_won) = (0, 0);
    for round in 0..40 {
        let hash = ContentHash::of(format!("race {round} {unique}").as_bytes());
        let img = image(&tenant, &hash, round, &[]);
        insert_pinned(repo, &img).await.unwrap();
        repo.delete_image(&tenant, &img.id).await.unwrap();
        let now = now_millis();
        let rule = eager(now + 1);
        let (pinned, claimed) = tokio::join!(
            repo.pin_blob(&hash, 1234, now, now + 60_000, round | 1),
            repo.claim_orphan(&hash, &rule, round)
        );
        match (pinned.unwrap(), claimed.unwrap()) {
            (PinOutcome::Pinned(pin), None) => {
                pins_won += 1;
                let next = image(&tenant, &hash, round, &[]);
                repo.insert_image(&next, &pin).await.unwrap();
            }
            (PinOutcome::Deleting, Some(claim)) => {
                claims_won += 1;
                assert!(repo.finish_collect(&claim).await.unwrap());
            }
            (pin, claim) => panic!("both or neither won: {pin:?} {claim:?}"),
        }
    }
    eprintln!("pin and claim raced 40 times: pin first {pins_won}, claim first {claims_won}");
}
