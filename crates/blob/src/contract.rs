//! The blob store contract: what every `BlobStore` must do, as one async suite. Each
//! implementation's tests call [`run`] (garage's `src/db/test.rs` pattern), so a new backend is
//! correct when this passes against a real instance of it.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use imgd_core::id::{ContentHash, VariantKey};
use imgd_core::port::{BlobKey, BlobStore, ByteRange};

async fn read(store: &dyn BlobStore, key: &BlobKey, range: Option<ByteRange>) -> Option<Vec<u8>> {
    let read = store.get(key, range).await.expect("get")?;
    let chunks: Vec<Bytes> = read.body.try_collect().await.expect("stream");
    let bytes = chunks.concat();
    assert_eq!(
        bytes.len() as u64,
        read.len,
        "BlobRead::len matches the streamed bytes"
    );
    Some(bytes)
}

/// Runs the whole contract. `scratch` is a folder for staged files. Keys are unique per call, so
/// the suite can share a bucket with other runs.
pub async fn run(store: Arc<dyn BlobStore>, scratch: &Path) {
    let store = store.as_ref();
    let unique = imgd_core::id::ImageId::generate();
    let content = format!("contract payload {unique}")
        .repeat(5000)
        .into_bytes();
    let hash = ContentHash::of(&content);
    let key = BlobKey::original(&hash);

    // Absent keys.
    assert!(store.get(&key, None).await.unwrap().is_none());
    assert!(store.read_all(&key).await.unwrap().is_none());
    assert_eq!(store.size(&key).await.unwrap(), None);
    store
        .delete(&key)
        .await
        .expect("deleting a missing blob is fine");

    // put_file moves a staged file in.
    let staged = scratch.join(format!("staged-{unique}"));
    std::fs::write(&staged, &content).unwrap();
    store.put_file(&key, &staged).await.unwrap();
    assert!(!staged.exists(), "the store takes the staged file");
    assert_eq!(store.size(&key).await.unwrap(), Some(content.len() as u64));
    assert_eq!(read(store, &key, None).await.unwrap(), content);
    assert_eq!(
        &store.read_all(&key).await.unwrap().unwrap()[..],
        &content[..]
    );

    // Ranges.
    let range = ByteRange { start: 10, end: 19 };
    assert_eq!(
        read(store, &key, Some(range)).await.unwrap(),
        &content[10..20]
    );
    let last = content.len() as u64 - 1;
    assert_eq!(
        read(
            store,
            &key,
            Some(ByteRange {
                start: last,
                end: last
            })
        )
        .await
        .unwrap(),
        &content[content.len() - 1..]
    );

    // Writes are idempotent: an existing key keeps its bytes and the staged file still goes.
    let staged_again = scratch.join(format!("staged-again-{unique}"));
    std::fs::write(&staged_again, b"different").unwrap();
    store.put_file(&key, &staged_again).await.unwrap();
    assert!(!staged_again.exists());
    store
        .put_bytes(&key, Bytes::from_static(b"different"))
        .await
        .unwrap();
    assert_eq!(read(store, &key, None).await.unwrap(), content);

    // Variants live under their source's prefix and go with it.
    let variants: Vec<BlobKey> = (0..3)
        .map(|i| BlobKey::variant(&hash, &VariantKey::from_stored(format!("{:064x}", i))))
        .collect();
    for (i, v) in variants.iter().enumerate() {
        store
            .put_bytes(v, Bytes::from(vec![i as u8; 100]))
            .await
            .unwrap();
    }
    assert_eq!(
        read(store, &variants[2], None).await.unwrap(),
        vec![2u8; 100]
    );
    assert_eq!(
        store
            .delete_prefix(&BlobKey::variant_prefix(&hash))
            .await
            .unwrap(),
        3
    );
    for v in &variants {
        assert!(store.get(v, None).await.unwrap().is_none());
    }
    assert!(
        store.get(&key, None).await.unwrap().is_some(),
        "deleting variants keeps the original"
    );
    assert_eq!(
        store
            .delete_prefix(&BlobKey::variant_prefix(&hash))
            .await
            .unwrap(),
        0
    );

    // A large blob (multipart where the store has it), and a range across its parts.
    let large: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let large_key = BlobKey::original(&ContentHash::of(&large));
    let staged_large = scratch.join(format!("staged-large-{unique}"));
    std::fs::write(&staged_large, &large).unwrap();
    store.put_file(&large_key, &staged_large).await.unwrap();
    assert!(!staged_large.exists());
    assert_eq!(
        store.size(&large_key).await.unwrap(),
        Some(large.len() as u64)
    );
    let across = ByteRange {
        start: 8 * 1024 * 1024 - 5,
        end: 8 * 1024 * 1024 + 4,
    };
    assert_eq!(
        read(store, &large_key, Some(across)).await.unwrap(),
        &large[across.start as usize..=across.end as usize]
    );
    assert_eq!(read(store, &large_key, None).await.unwrap(), large);
    store.delete(&large_key).await.unwrap();

    // Racing writers of one key all succeed and the key holds those bytes.
    let raced = BlobKey::variant(&hash, &VariantKey::from_stored(format!("{:064x}", 99)));
    let writers = (0..8).map(|_| store.put_bytes(&raced, Bytes::from_static(b"same bytes")));
    for result in futures::future::join_all(writers).await {
        result.expect("a racing put of the same bytes succeeds");
    }
    assert_eq!(read(store, &raced, None).await.unwrap(), b"same bytes");
    store.delete(&raced).await.unwrap();

    // Delete.
    store.delete(&key).await.unwrap();
    assert!(store.get(&key, None).await.unwrap().is_none());
    store.check().await.unwrap();
}
