//! Secrets at rest: tenant signing secrets and the API-key pepper are sealed with a
//! key-encryption key (KEK) kept outside the database (`auth.secret_key`, `auth.secret_key_file`,
//! or the `secret.key` the embedded default generates in the data dir), so a copy of the
//! database alone yields neither.
//!
//! A sealed value reads `v1:<base64(nonce | ciphertext)>`: ChaCha20-Poly1305 with a random 96-bit
//! nonce per value and the value's place (a setting's name; a signing key's tenant and id) as
//! associated data, so a sealed value copied to another place does not open. A value without a
//! version prefix is plaintext written before sealing existed; [`crate::service::auth`] and
//! [`crate::service::tenancy`] seal those in place at start.
//!
//! [`check_key`] keeps a known plaintext sealed in the settings, so a wrong KEK stops the start
//! with a clear message instead of silently producing HMACs that match nothing.
//!
//! This module does not decide where the KEK comes from; the composition root does.

use crate::Code;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use crate::id::{TenantId, random_bytes};
use crate::port::MetadataRepo;
use crate::{Error, Result};

/// The length of a KEK in bytes.
pub const KEY_BYTES: usize = 32;

/// The prefix of a value sealed by this version of the format.
const V1: &str = "v1:";

const NONCE_BYTES: usize = 12;

/// The setting that holds [`CHECK_PLAINTEXT`] sealed under the KEK.
const CHECK_SETTING: &str = "secret_key_check";

/// What the check value must open to.
const CHECK_PLAINTEXT: &str = "imgd secret key check";

/// The key-encryption key. Its `Debug` shows nothing of the key.
pub struct Kek {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<hidden>)")
    }
}

impl Kek {
    /// A KEK from its raw bytes.
    pub fn from_bytes(bytes: &[u8; KEY_BYTES]) -> Self {
        Kek {
            cipher: ChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// Parses a KEK written as 64 hex digits or as base64 (standard or URL-safe, padded or not)
    /// of 32 bytes; surrounding whitespace (a key file's newline) is ignored.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
        };
        let bytes: [u8; KEY_BYTES] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
            Error::invalid(
                Code::InvalidSecretKey,
                "a secret key is 32 bytes written as 64 hex digits or as base64 \
                     (e.g. `openssl rand -hex 32`)",
            )
        })?;
        Ok(Kek::from_bytes(&bytes))
    }

    /// Seals `plaintext` for `place` (see [`setting_place`], [`signing_key_place`]).
    pub fn seal(&self, place: &str, plaintext: &str) -> String {
        let nonce = random_bytes::<NONCE_BYTES>();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: place.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 seals any message of a secret's size");
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{V1}{}", STANDARD.encode(out))
    }

    /// Opens a value [`Kek::seal`] made for `place`. Fails on a plaintext value (see
    /// [`is_sealed`]), an unknown format version, a wrong KEK, another place, or altered bytes.
    pub fn open(&self, place: &str, stored: &str) -> Result<String> {
        let cannot = |why: &str| Error::internal(format!("sealed value for {place}: {why}"));
        let body = stored
            .strip_prefix(V1)
            .ok_or_else(|| cannot("not in a known sealed format"))?;
        let bytes = STANDARD
            .decode(body)
            .map_err(|_| cannot("malformed base64"))?;
        if bytes.len() < NONCE_BYTES {
            return Err(cannot("too short"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| cannot("does not open under the configured secret key"))?;
        String::from_utf8(plain).map_err(|_| cannot("not text"))
    }
}

/// True for a value in a sealed format; false for plaintext from before sealing existed.
/// Plaintext secrets are hex, so they never contain the `:` every sealed format starts with.
pub fn is_sealed(stored: &str) -> bool {
    stored.contains(':')
}

/// The associated data of the setting `name`.
pub fn setting_place(name: &str) -> String {
    format!("imgd/setting/{name}")
}

/// The associated data of the tenant's signing key `key_id`.
pub fn signing_key_place(tenant: &TenantId, key_id: &str) -> String {
    format!("imgd/signing-key/{tenant}/{key_id}")
}

/// Makes sure `kek` is the key this database's secrets are sealed with: the first start stores a
/// known plaintext sealed under it, every later start must open that again. A mismatch is an
/// `Invalid` error (`secret_key_mismatch`) saying so.
pub async fn check_key(repo: &dyn MetadataRepo, kek: &Kek) -> Result<()> {
    let place = setting_place(CHECK_SETTING);
    let stored = repo
        .setting_or_init(CHECK_SETTING, &kek.seal(&place, CHECK_PLAINTEXT))
        .await?;
    match kek.open(&place, &stored) {
        Ok(plain) if plain == CHECK_PLAINTEXT => Ok(()),
        _ => Err(Error::invalid(
            Code::SecretKeyMismatch,
            "the configured secret key (auth.secret_key, IMGD_SECRET_KEY, auth.secret_key_file \
             or DATA_DIR/secret.key) is not the key this database's secrets were sealed with; \
             start with the original key",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> Kek {
        Kek::from_bytes(&[byte; KEY_BYTES])
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_place() {
        let sealed = kek(1).seal("imgd/setting/a", "secret");
        assert!(sealed.starts_with("v1:") && is_sealed(&sealed));
        assert!(!sealed.contains("secret"));
        assert_eq!(kek(1).open("imgd/setting/a", &sealed).unwrap(), "secret");
        assert!(kek(2).open("imgd/setting/a", &sealed).is_err(), "wrong key");
        assert!(
            kek(1).open("imgd/setting/b", &sealed).is_err(),
            "wrong place"
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(kek(1).open("imgd/setting/a", &tampered).is_err());
        assert_ne!(
            kek(1).seal("p", "same"),
            kek(1).seal("p", "same"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn plaintext_and_unknown_formats_are_told_apart() {
        assert!(!is_sealed(&"ab".repeat(32)));
        assert!(kek(1).open("p", &"ab".repeat(32)).is_err());
        assert!(kek(1).open("p", "v9:AAAA").is_err());
    }

    #[test]
    fn keys_parse_from_hex_or_base64_of_32_bytes_only() {
        let raw = [7u8; KEY_BYTES];
        let sealed = Kek::from_bytes(&raw).seal("p", "x");
        for text in [
            hex::encode(raw),
            format!("{}\n", hex::encode(raw)),
            STANDARD.encode(raw),
            URL_SAFE_NO_PAD.encode(raw),
        ] {
            let parsed = Kek::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(parsed.open("p", &sealed).unwrap(), "x");
        }
        for bad in [
            "",
            "REPLACE-ME",
            &hex::encode([7u8; 16]),
            &STANDARD.encode([7u8; 31]),
        ] {
            assert_eq!(
                Kek::parse(bad).unwrap_err().code(),
                "invalid_secret_key",
                "{bad:?}"
            );
        }
        assert_eq!(format!("{:?}", Kek::from_bytes(&raw)), "Kek(<hidden>)");
    }
}
