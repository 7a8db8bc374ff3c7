//! Fuzz target: signed-URL verification. Arbitrary paths, queries, keys and clocks through
//! `signing::verify` and `signing::signed_expiry` (never a panic), plus properties:
//! - a URL made by `sign` verifies with its key until `exp`, then is `Expired`, never `Invalid`;
//! - with any other key set it is refused (keys HMAC cannot tell apart excepted);
//! - changing one byte of the signed path, or of `exp`, makes it `Invalid`;
//! - whenever `verify` accepts a query, `signed_expiry` (what sets the cache lifetime) reports
//!   the same, still-future `exp`.

#![no_main]

use imgd_core::service::signing::{Rejection, sign, signed_expiry, verify};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let path: String = u.arbitrary()?;
    let key: Vec<u8> = u.arbitrary()?;
    let other_key: Vec<u8> = u.arbitrary()?;
    let exp: u64 = u.arbitrary()?;
    let now: u64 = u.arbitrary()?;
    let flip: usize = u.arbitrary()?;
    let query: Option<String> = u.arbitrary()?;

    // 1. Arbitrary input: any verdict, no panic; accepted implies a consistent future expiry.
    let keys: [&[u8]; 2] = [&key, &other_key];
    let verdict = verify(&path, query.as_deref(), &keys, now);
    let expiry = signed_expiry(query.as_deref());
    if verdict.is_ok() {
        let e = expiry.expect("an accepted query has a signed expiry");
        assert!(e > now, "accepted with exp {e} <= now {now}");
    }

    // 2. A URL we sign ourselves.
    let url = sign(&path, exp, &key);
    let query = url
        .strip_prefix(path.as_str())
        .and_then(|rest| rest.strip_prefix('?'))
        .expect("sign returns path?query");
    let expected = if exp > now { Ok(()) } else { Err(Rejection::Expired) };
    assert_eq!(verify(&path, Some(query), &[&key], now), expected, "own signature on {url:?}");
    assert_eq!(verify(&path, Some(query), &[&other_key, &key], now), expected, "rotation order");
    assert_eq!(signed_expiry(Some(query)), Some(exp));
    if !hmac_equivalent(&other_key, &key) {
        assert_eq!(verify(&path, Some(query), &[&other_key], now), Err(Rejection::Invalid), "wrong key accepted");
    }

    // 3. One byte of the signed path changed (ASCII only, so it stays a str).
    if !path.is_empty() {
        let i = flip % path.len();
        let b = path.as_bytes()[i];
        if b.is_ascii() {
            let mut bytes = path.clone().into_bytes();
            bytes[i] = if b == 0x7f { b'a' } else { (b ^ 0x01) & 0x7f };
            let tampered = String::from_utf8(bytes).expect("ascii swap keeps utf-8");
            assert_eq!(
                verify(&tampered, Some(query), &[&key], now),
                Err(Rejection::Invalid),
                "path {path:?} changed to {tampered:?} still verifies"
            );
        }
    }
    // 4. A different exp with the same signature.
    let sig = &query[query.find("&sig=").expect("sig") + 5..];
    let bumped = exp.wrapping_add(1 + (flip as u64 % 1000));
    let forged = format!("exp={bumped}&sig={sig}");
    assert_eq!(verify(&path, Some(&forged), &[&key], now), Err(Rejection::Invalid), "exp changed: {forged:?}");
    Ok(())
}

/// HMAC pads keys up to its block with zeros, so keys that differ only by trailing zero bytes
/// (both within the block) make the same MACs: the fuzzer's first finding, a property of HMAC
/// (RFC 2104), not of imgd. Generated signing keys are random 32-byte values, never such pairs.
fn hmac_equivalent(a: &[u8], b: &[u8]) -> bool {
    const BLOCK: usize = 64;
    let trim = |k: &[u8]| k.len() - k.iter().rev().take_while(|&&x| x == 0).count();
    a == b || (a.len() <= BLOCK && b.len() <= BLOCK && a[..trim(a)] == b[..trim(b)])
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
