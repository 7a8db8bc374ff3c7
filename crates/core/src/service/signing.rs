//! Signed delivery URLs (issue 4): `/i/{id}/{options}?exp=UNIX&sig=HEX`, where `sig` is
//! HMAC-SHA256 over the path and the query without `sig`, exactly as sent, so the signer and the
//! verifier never disagree about canonical forms. `exp` is part of the signed bytes; `sig` is
//! not part of a variant's cache key (the key comes from the options alone).
//!
//! A tenant has up to two active signing keys: during rotation, URLs signed with the old key stay
//! valid until it is retired. The comparison is `hmac`'s `verify_slice`, constant time.
//!
//! Not wired to routes yet: tenant policies (public / signed / presets-only) arrive with tenants.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a URL's signature was refused; each reason has a stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No `sig` (or no `exp`) in a URL that needs one.
    Missing,
    /// `exp` is in the past.
    Expired,
    /// Malformed, or matches none of the active keys.
    Invalid,
}

impl Rejection {
    /// The stable error code.
    pub fn code(self) -> crate::Code {
        match self {
            Rejection::Missing => crate::Code::SignatureRequired,
            Rejection::Expired => crate::Code::SignatureExpired,
            Rejection::Invalid => crate::Code::SignatureInvalid,
        }
    }
}

fn mac(key: &[u8], message: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac
}

/// The signed message: the path, then `?` and the query pairs other than `sig`, in the order
/// and the encoding they were sent in.
fn message(path: &str, query: &str) -> Option<(String, String)> {
    let mut signature = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("sig=") {
            // Two signatures is an attempt to confuse whoever reads the query next.
            Some(_) if signature.is_some() => return None,
            Some(sig) => signature = Some(sig.to_owned()),
            None => rest.push(pair),
        }
    }
    Some((format!("{path}?{}", rest.join("&")), signature?))
}

/// `path?exp=EXPIRES&sig=HEX` for `key`; `path` is what the client will request, already
/// percent-encoded.
pub fn sign(path: &str, expires_at: u64, key: &[u8]) -> String {
    let unsigned = format!("{path}?exp={expires_at}");
    let sig = hex::encode(mac(key, &unsigned).finalize().into_bytes());
    format!("{unsigned}&sig={sig}")
}

/// The `exp` of a query that carries a `sig`: when a signed URL stops being valid.
pub fn signed_expiry(query: Option<&str>) -> Option<u64> {
    let query = query?;
    if !query.split('&').any(|p| p.starts_with("sig=")) {
        return None;
    }
    query
        .split('&')
        .find_map(|p| p.strip_prefix("exp="))?
        .parse()
        .ok()
}

/// Checks the signature of a request for `path` with the raw `query` against `keys` (the active
/// ones, newest first) at `now` (Unix seconds).
pub fn verify(path: &str, query: Option<&str>, keys: &[&[u8]], now: u64) -> Result<(), Rejection> {
    let query = query.unwrap_or("");
    let Some((message, sig_hex)) = message(path, query) else {
        return Err(if query.contains("sig=") {
            Rejection::Invalid
        } else {
            Rejection::Missing
        });
    };
    let expires_at = query
        .split('&')
        .find_map(|p| p.strip_prefix("exp="))
        .ok_or(Rejection::Missing)?;
    let expires_at = expires_at.parse::<u64>().map_err(|_| Rejection::Invalid)?;
    let sig = hex::decode(&sig_hex).map_err(|_| Rejection::Invalid)?;
    // Signature before expiry: an attacker learns nothing from which check failed first.
    let valid = keys
        .iter()
        .any(|key| mac(key, &message).verify_slice(&sig).is_ok());
    if !valid {
        return Err(Rejection::Invalid);
    }
    if expires_at <= now {
        return Err(Rejection::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = b"old signing key";
    const NEW: &[u8] = b"new signing key";
    const PATH: &str = "/i/0123456789abcdef0123456789abcdef/w=100,f=webp";

    fn split(url: &str) -> (&str, &str) {
        url.split_once('?').unwrap()
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let url = sign(PATH, 1_000, NEW);
        let (path, query) = split(&url);
        assert_eq!(verify(path, Some(query), &[NEW], 999), Ok(()));
        assert_eq!(
            verify(path, Some(query), &[NEW], 1_000),
            Err(Rejection::Expired)
        );
    }

    #[test]
    fn flipping_any_byte_of_path_query_exp_or_sig_is_refused() {
        let url = sign(PATH, 2_000, NEW);
        let bytes = url.as_bytes();
        for i in 0..bytes.len() {
            if bytes[i] == b'?' {
                continue; // the split point itself, not a byte of any part
            }
            let mut flipped = bytes.to_vec();
            // A different character of the same class keeps the URL well-formed where possible.
            flipped[i] = match bytes[i] {
                b'0'..=b'8' | b'a'..=b'e' => bytes[i] + 1,
                b'9' => b'0',
                b'f' => b'a',
                other => other ^ 0x01,
            };
            let flipped = String::from_utf8_lossy(&flipped).into_owned();
            let Some((path, query)) = flipped.split_once('?') else {
                continue;
            };
            let verdict = verify(path, Some(query), &[NEW], 1_000);
            assert!(
                verdict.is_err(),
                "byte {i} flipped in {flipped} still verified"
            );
        }
    }

    #[test]
    fn rotation_keeps_old_urls_valid_until_the_old_key_is_retired() {
        let old_url = sign(PATH, 5_000, OLD);
        let (path, query) = split(&old_url);
        assert_eq!(verify(path, Some(query), &[NEW, OLD], 1), Ok(()));
        assert_eq!(
            verify(path, Some(query), &[NEW], 1),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn missing_duplicate_or_malformed_parts_are_refused_with_their_code() {
        assert_eq!(verify(PATH, None, &[NEW], 1), Err(Rejection::Missing));
        assert_eq!(
            verify(PATH, Some("exp=5"), &[NEW], 1),
            Err(Rejection::Missing)
        );
        let url = sign(PATH, 5_000, NEW);
        let (path, query) = split(&url);
        let doubled = format!("{query}&sig=00");
        assert_eq!(
            verify(path, Some(&doubled), &[NEW], 1),
            Err(Rejection::Invalid)
        );
        let no_exp = query.replace("exp=5000&", "");
        assert_ne!(verify(path, Some(&no_exp), &[NEW], 1), Ok(()));
        assert_eq!(
            verify(path, Some("exp=5&sig=zz"), &[NEW], 1),
            Err(Rejection::Invalid)
        );
        assert_eq!(Rejection::Expired.code(), "signature_expired");
    }

    #[test]
    fn extra_query_parameters_are_signed_too() {
        let url = sign(PATH, 5_000, NEW);
        let (path, query) = split(&url);
        let added = format!("{query}&w=4000");
        assert_eq!(
            verify(path, Some(&added), &[NEW], 1),
            Err(Rejection::Invalid)
        );
    }
}
