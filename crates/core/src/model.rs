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

/// What an API key may do: `admin` everything, `owner` its tenant's keys, presets and policy,
/// `writer` its tenant's images, `reader` its tenant's metadata.
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
    /// Public: the prefix of generated secrets (`imgd_{id}_{secret}`), used to find the row.
    pub id: String,
    /// A label for people.
    pub name: Option<String>,
    pub tenant: TenantId,
    pub role: Role,
    /// Hex HMAC-SHA256 of the secret under the server's key pepper.
    pub secret_hash: String,
    pub created_at: Millis,
    pub revoked: bool,
}

/// Who may fetch a tenant's images from `/i/...` without an API key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryPolicy {
    /// Anyone with the URL (image ids are unguessable).
    #[default]
    Public,
    /// Only signed URLs (`exp` and `sig`).
    Signed,
    /// Unsigned URLs may name the tenant's presets only; anything else must be signed.
    PresetsOnly,
}

impl DeliveryPolicy {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryPolicy::Public => "public",
            DeliveryPolicy::Signed => "signed",
            DeliveryPolicy::PresetsOnly => "presets_only",
        }
    }

    /// Parses [`DeliveryPolicy::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        [Self::Public, Self::Signed, Self::PresetsOnly]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

/// Limits on what a tenant may store; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub bytes: Option<u64>,
    pub images: Option<u64>,
}

/// What a tenant stores now: every image counts its own bytes, even when its blob is shared, so
/// usage never reveals what other tenants hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub images: u64,
}

/// A key for signing a tenant's delivery URLs. The secret is stored as is: verifying an HMAC
/// needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    pub id: String,
    /// Hex of 32 random bytes.
    pub secret: String,
    pub created_at: Millis,
}

/// A tenant: the unit of isolation for keys, images, presets, policy and quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub disabled: bool,
    pub delivery: DeliveryPolicy,
    pub quota: Quota,
    pub usage: Usage,
    /// The active signing keys, newest first; at most two.
    pub signing_keys: Vec<SigningKey>,
    pub created_at: Millis,
}

/// One version of a preset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetVersion {
    pub version: u64,
    /// Variant options, as in `/i/{id}/{options}`.
    pub options: String,
    pub created_at: Millis,
}

/// A tenant's named preset: its active version and its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetRecord {
    pub name: String,
    pub active_version: u64,
    /// Oldest first.
    pub versions: Vec<PresetVersion>,
}

impl PresetRecord {
    /// The options of the active version.
    pub fn active_options(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.version == self.active_version)
            .map(|v| v.options.as_str())
    }
}
