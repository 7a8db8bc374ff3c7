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

/// Runs the whole contract. `stores` are two handles on the same storage (two opens of one root
/// or bucket, as two processes have; the same handle twice where there is nothing to reopen).
/// `scratch` is a folder for staged files. Keys are unique per call, so the suite can share a
/// bucket with other runs.
pub async fn run(stores: [Arc<dyn BlobStore>; 2], scratch: &Path) {
    basics(stores[0].as_ref(), scratch).await;
    listing(stores[0].as_ref()).await;
    multipart(stores[0].as_ref(), stores[1].as_ref()).await;
}

async fn basics(store: &dyn BlobStore, scratch: &Path) {
    let unique = imgd_core::id::ImageId::generate();
    let content = format!("contract payload {unique}")
        .repeat(5000)
        .into_bytes();
    let hash = ContentHash::of(&content);
    let key = BlobKey::original(&hash);

    // Absent keys.
    assert!(store.get(&key, None).await.unwrap().is_none());
    assert!(store.read_all(&key).await.unwrap().is_none());
    assert_eq!(store.stat(&key).await.unwrap(), None);
    store
        .delete(&key)
        .await
        .expect("deleting a missing blob is fine");

    // put_file moves a staged file in.
    let staged = scratch.join(format!("staged-{unique}"));
    std::fs::write(&staged, &content).unwrap();
    store.put_file(&key, &staged).await.unwrap();
    assert!(!staged.exists(), "the store takes the staged file");
    let stat = store
        .stat(&key)
        .await
        .unwrap()
        .expect("stat of a stored blob");
    assert_eq!(stat.size, content.len() as u64);
    let age = std::time::SystemTime::now()
        .duration_since(stat.modified)
        .unwrap_or_default();
    assert!(age.as_secs() < 600, "modified is when it was written");
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
        store.stat(&large_key).await.unwrap().map(|s| s.size),
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

/// Listing: key order, pages resumed from the last key, prefixes that stop at a folder.
async fn listing(store: &dyn BlobStore) {
    let hash = ContentHash::of(imgd_core::id::ImageId::generate().as_str().as_bytes());
    let prefix = BlobKey::variant_prefix(&hash);
    // Eleven keys, written out of order; one lookalike folder beside them that must not show.
    let mut keys: Vec<BlobKey> = (0..11u8)
        .map(|i| BlobKey::variant(&hash, &vkey(i.wrapping_mul(37))))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        store
            .put_bytes(key, Bytes::from(vec![7u8; i + 1]))
            .await
            .unwrap();
    }
    let beside = BlobKey::original(&hash);
    store
        .put_bytes(&beside, Bytes::from_static(b"o"))
        .await
        .unwrap();
    keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list(&prefix, after.as_deref(), 4).await.unwrap();
        assert!(page.entries.len() <= 4);
        pages += 1;
        for entry in &page.entries {
            let key = BlobKey::parse(&entry.key).expect("listed keys parse back");
            let expected = store.stat(&key).await.unwrap().unwrap().size;
            assert_eq!(entry.stat.size, expected, "{}", entry.key);
            seen.push(key);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10, "the listing ends");
    }
    assert_eq!(
        seen, keys,
        "every key once, in byte order, nothing from beside"
    );

    // Starting after a key in the middle, and at the end.
    let middle = store
        .list(&prefix, Some(keys[5].as_str()), 100)
        .await
        .unwrap();
    let middle: Vec<&str> = middle.entries.iter().map(|e| e.key.as_str()).collect();
    let expected: Vec<&str> = keys[6..].iter().map(BlobKey::as_str).collect();
    assert_eq!(middle, expected);
    let end = store
        .list(&prefix, Some(keys[10].as_str()), 100)
        .await
        .unwrap();
    assert!(end.entries.is_empty() && end.next.is_none());

    // A folder's listing reaches into its subfolders; a missing folder lists nothing.
    let originals = store
        .list(&format!("blobs/{}", &hash.as_str()[0..2]), None, 1000)
        .await
        .unwrap();
    assert!(originals.entries.iter().any(|e| e.key == beside.as_str()));
    let missing = ContentHash::of(b"never written by anyone");
    let none = store
        .list(&BlobKey::variant_prefix(&missing), None, 10)
        .await
        .unwrap();
    assert!(none.entries.is_empty() && none.next.is_none());

    store.delete_prefix(&prefix).await.unwrap();
    store.delete(&beside).await.unwrap();
}

fn vkey(i: u8) -> VariantKey {
    VariantKey::from_stored(format!("{:02x}{}", i, "0".repeat(62)))
}

/// Multipart: parts put through one handle, completed through the other; pending uploads
/// listed until completed or aborted; a part put twice keeps the second.
async fn multipart(first: &dyn BlobStore, second: &dyn BlobStore) {
    let min = first.min_part_bytes().max(1) as usize;
    let unique = imgd_core::id::ImageId::generate();
    let key = BlobKey::staging(&format!("contract-{}", &unique.as_str()[..12])).unwrap();
    let parts: Vec<Vec<u8>> = vec![
        vec![1u8; min],
        (0..min).map(|i| (i % 253) as u8).collect(),
        b"the short last part".to_vec(),
    ];

    let upload = first.create_multipart(&key).await.unwrap();
    assert!(
        first.stat(&key).await.unwrap().is_none(),
        "nothing shows before completion"
    );
    let pending = second.pending_multipart().await.unwrap();
    assert!(
        pending.iter().any(|p| p.upload == upload),
        "another handle sees the pending upload"
    );
    // Out of order, across both handles; part 2 first with the wrong bytes, then again.
    let tag3 = second
        .put_part(&upload, 3, Bytes::from(parts[2].clone()))
        .await
        .unwrap();
    let stale = first
        .put_part(&upload, 2, Bytes::from(vec![9u8; min]))
        .await
        .unwrap();
    let tag2 = second
        .put_part(&upload, 2, Bytes::from(parts[1].clone()))
        .await
        .unwrap();
    let tag1 = first
        .put_part(&upload, 1, Bytes::from(parts[0].clone()))
        .await
        .unwrap();
    assert_eq!((tag1.number, tag2.number, tag3.number), (1, 2, 3));
    assert!(first.put_part(&upload, 0, Bytes::new()).await.is_err());
    assert!(
        first
            .complete_multipart(&upload, &[tag1.clone(), tag3.clone()])
            .await
            .is_err(),
        "a gap in the numbers is refused"
    );
    assert_ne!(stale.tag, tag2.tag, "a part's tag names its bytes");
    second
        .complete_multipart(&upload, &[tag1, tag2, tag3])
        .await
        .unwrap();
    assert_eq!(
        first.read_all(&key).await.unwrap().unwrap(),
        parts.concat(),
        "the parts joined in order, the replaced part's later bytes"
    );
    assert!(
        !first
            .pending_multipart()
            .await
            .unwrap()
            .iter()
            .any(|p| p.upload == upload),
        "a completed upload is no longer pending"
    );
    first.delete(&key).await.unwrap();

    // Abort: the upload and its parts go, the key never appears; aborting again is fine.
    let aborted = second.create_multipart(&key).await.unwrap();
    second
        .put_part(&aborted, 1, Bytes::from_static(b"abandoned"))
        .await
        .unwrap();
    first.abort_multipart(&aborted).await.unwrap();
    first.abort_multipart(&aborted).await.unwrap();
    assert!(
        !second
            .pending_multipart()
            .await
            .unwrap()
            .iter()
            .any(|p| p.upload == aborted)
    );
    assert!(
        second
            .put_part(&aborted, 2, Bytes::from_static(b"late"))
            .await
            .is_err(),
        "no part lands in an aborted upload"
    );
    assert!(first.stat(&key).await.unwrap().is_none());
}
