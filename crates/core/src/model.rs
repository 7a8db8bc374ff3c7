//! Records exchanged between use cases and the ports.

use serde::{Deserialize, Serialize};

use crate::format::ImageFormat;
use crate::id::{ContentHash, ImageId, TenantId, VariantKey};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// User-supplied key/value metadata: a JSON object.
pub type UserMetadata = serde_json::Map<String, serde_json::Value>;

/// One uploaded image. Many images may share one blob (same bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRecord {
    pub id: ImageId,
    pub tenant: TenantId,
    pub hash: ContentHash,
    pub format: ImageFormat,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    pub bytes: u64,
    /// 1 for still images.
    pub frames: u32,
    pub filename: Option<String>,
    pub blurhash: Option<String>,
    pub tags: Vec<String>,
    pub metadata: UserMetadata,
    pub created_at: Millis,
}

/// What a `PATCH` may change; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePatch {
    pub tags: Option<Vec<String>>,
    pub metadata: Option<UserMetadata>,
}

/// A page request for the image list, newest first.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub limit: u32,
    /// Only images created strictly before this position.
    pub after: Option<Cursor>,
    pub tag: Option<String>,
}

/// A position in the newest-first order: `(created_at, id)` of the last item seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Millis,
    pub id: ImageId,
}

impl Cursor {
    /// Opaque text form for clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    /// Parses [`Cursor::encode`]'s output.
    pub fn decode(s: &str) -> crate::Result<Self> {
        let bad = || crate::Error::invalid("invalid_cursor", "the cursor is malformed");
        let (at, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            created_at: at.parse().map_err(|_| bad())?,
            id: ImageId::parse(id).map_err(|_| bad())?,
        })
    }
}

/// What deleting an image left behind for the caller to clean up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedImage {
    pub hash: ContentHash,
    /// True when no other image refers to the blob: its bytes and variants must go too.
    pub blob_orphaned: bool,
}

/// A rendered, stored variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantRecord {
    pub key: VariantKey,
    pub source: ContentHash,
    pub format: ImageFormat,
    pub bytes: u64,
    /// BLAKE3 of the variant's bytes: its strong ETag.
    pub etag: String,
    pub created_at: Millis,
}

/// What an API key may do. Only `Admin` exists until tenancy lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Owner,
    Writer,
    Reader,
}

impl Role {
    /// The lowercase name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }

    /// True when a key with this role may do what `required` allows: admin > owner > writer >
    /// reader, each including the ones after it.
    pub fn allows(self, required: Role) -> bool {
        self.rank() >= required.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Role::Admin => 3,
            Role::Owner => 2,
            Role::Writer => 1,
            Role::Reader => 0,
        }
    }

    /// Parses [`Role::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        [Role::Admin, Role::Owner, Role::Writer, Role::Reader]
            .into_iter()
            .find(|r| r.name() == s)
    }
}

/// A stored API key: never the secret, only its keyed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant: TenantId,
    pub role: Role,
    /// Hex HMAC-SHA256 of the secret under the server's key pepper.
    pub secret_hash: String,
    pub created_at: Millis,
    pub revoked: bool,
}
