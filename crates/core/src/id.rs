//! Typed identifiers. Each validates on parse so a malformed path segment never reaches a query.

use std::fmt;

use crate::{Error, Result};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// An image's public id: 32 lowercase hex digits, a 48-bit creation time and 80 random
    /// bits, so ids are unguessable and independent of content (two uploads of the same bytes
    /// get two ids).
    ImageId
);
string_id!(
    /// BLAKE3 of a blob's bytes, 64 lowercase hex digits: the content address and strong ETag.
    ContentHash
);
string_id!(
    /// BLAKE3 of (source hash, canonical render spec, pipeline version): one stored variant.
    VariantKey
);
string_id!(
    /// The tenant a record belongs to. Until tenancy lands, every record is in [`TenantId::default_tenant`].
    TenantId
);

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Fills `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).expect("the OS random source is available");
    buf
}

impl ImageId {
    /// A fresh id: the creation time in milliseconds (48 bits) then 80 random bits, like a
    /// UUIDv7. Still unguessable; the time lets the id filter judge, without a query, whether
    /// an unknown id could have been created on another node since it last synced.
    pub fn generate() -> Self {
        Self::with_time(crate::model::now_millis())
    }

    /// An id with a given creation time (tests, and the filter's reasoning about it).
    pub fn with_time(millis: crate::model::Millis) -> Self {
        let time = (millis.max(0) as u64).to_be_bytes();
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&time[2..]);
        bytes[6..].copy_from_slice(&random_bytes::<10>());
        ImageId(hex::encode(bytes))
    }

    /// The creation time an id claims (ids made before ids carried one claim a random time).
    pub fn created_millis(&self) -> u64 {
        u64::from_str_radix(&self.0[..12], 16).unwrap_or(u64::MAX)
    }

    /// Parses a path segment; anything but 32 lowercase hex digits is "not found", not an error,
    /// so probing ids reveals nothing.
    pub fn parse(s: &str) -> Result<Self> {
        if is_lower_hex(s, 32) {
            Ok(ImageId(s.to_owned()))
        } else {
            Err(Error::NotFound("image"))
        }
    }
}

impl ContentHash {
    /// Wraps a finished BLAKE3 hasher.
    pub fn from_blake3(hash: blake3::Hash) -> Self {
        ContentHash(hash.to_hex().to_string())
    }

    /// Hashes a whole buffer.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_blake3(blake3::hash(bytes))
    }

    /// Parses a stored hash.
    pub fn parse(s: &str) -> Result<Self> {
        if is_lower_hex(s, 64) {
            Ok(ContentHash(s.to_owned()))
        } else {
            Err(Error::internal(format!("malformed content hash {s:?}")))
        }
    }
}

impl VariantKey {
    /// Wraps a stored key without re-deriving it.
    pub fn from_stored(s: String) -> Self {
        VariantKey(s)
    }

    /// Parses a key read back from a store listing: 64 lowercase hex digits, else `None`.
    pub fn parse(s: &str) -> Option<Self> {
        is_lower_hex(s, 64).then(|| VariantKey(s.to_owned()))
    }

    /// Derives the key; see [`crate::transform::RenderSpec::variant_key`].
    pub(crate) fn derive(parts: &[&str]) -> Self {
        let mut hasher = blake3::Hasher::new();
        for part in parts {
            hasher.update(part.as_bytes());
            hasher.update(b"\0");
        }
        VariantKey(hasher.finalize().to_hex().to_string())
    }
}

impl TenantId {
    /// The tenant every record belongs to before multi-tenancy.
    pub fn default_tenant() -> Self {
        TenantId("default".to_owned())
    }

    /// Wraps a stored tenant id.
    pub fn new(s: impl Into<String>) -> Self {
        TenantId(s.into())
    }

    /// A fresh random id: `t_` and 16 hex digits.
    pub fn generate() -> Self {
        TenantId(format!("t_{}", hex::encode(random_bytes::<8>())))
    }

    /// Parses a path segment: the default tenant or a generated id; anything else is not found.
    pub fn parse(s: &str) -> Result<Self> {
        let generated = s.strip_prefix("t_").is_some_and(|h| is_lower_hex(h, 16));
        if generated || s == "default" {
            Ok(TenantId(s.to_owned()))
        } else {
            Err(Error::NotFound("tenant"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_image_ids_parse_and_differ() {
        let a = ImageId::generate();
        let b = ImageId::generate();
        assert_ne!(a, b);
        assert_eq!(ImageId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn malformed_image_ids_are_not_found() {
        for bad in ["", "abc", "../etc/passwd", &"G".repeat(32), &"A".repeat(32)] {
            assert!(
                matches!(ImageId::parse(bad), Err(Error::NotFound(_))),
                "{bad}"
            );
        }
    }
}
