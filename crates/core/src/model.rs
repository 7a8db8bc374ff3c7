//! Records exchanged between use cases and the ports.

use crate::Code;
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
        let bad = || crate::Error::invalid(Code::InvalidCursor, "the cursor is malformed");
        let (at, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            created_at: at.parse().map_err(|_| bad())?,
            id: ImageId::parse(id).map_err(|_| bad())?,
        })
    }
}

/// What deleting an image did to its blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedImage {
    pub hash: ContentHash,
    /// True when no other image refers to the blob any more. Its bytes stay: the collector
    /// (`service::gc`) removes them after the grace period unless an upload takes them back.
    pub blob_orphaned: bool,
}

/// An upload's hold on a blob row, taken before the bytes are written: while the row carries
/// a live pin no collector claims it, and `insert_image` takes its reference only through the
/// pin, so only if the row is still the same incarnation (`generation`) and was never claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobPin {
    pub hash: ContentHash,
    /// Random per incarnation of the row: a row collected and created again has another, so a
    /// pin from before the collection cannot commit against bytes it never wrote.
    pub generation: i64,
}

/// What pinning found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinOutcome {
    /// The row is live (created now, or already there) and pinned.
    Pinned(BlobPin),
    /// A collector is removing these bytes; pin again once it has finished.
    Deleting,
}

/// Which unreferenced blobs a collector may claim, in its own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimRule {
    /// Now (Unix ms): a pin ending before it no longer protects its row.
    pub now: Millis,
    /// Only blobs without a reference since at or before this (Unix ms); a blob no image ever
    /// referred to counts from its row's creation.
    pub orphaned_before: Millis,
    /// Only blobs no image ever referred to (an upload cleaning up after its own failure).
    pub never_referenced: bool,
    /// A `deleting` row claimed before this (Unix ms) is a crashed collector's: take it over.
    pub stale_claim_before: Millis,
}

/// A blob row a collector may claim, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanBlob {
    pub hash: ContentHash,
    pub size: u64,
    /// Already `deleting` under a stale claim.
    pub stale_claim: bool,
}

/// A collector's claim on a blob: the row is `deleting`, uploads of its bytes wait, and only
/// this claim's holder removes the bytes and then the row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobClaim {
    pub hash: ContentHash,
    pub size: u64,
    /// Random per claim, so a collector taken over after a stall cannot finish the new claim.
    pub token: i64,
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

/// A key for signing a tenant's delivery URLs. Verifying an HMAC needs the secret itself, so it
/// cannot be hashed like an API key; at rest it is sealed under the KEK instead
/// ([`crate::service::sealing`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    pub id: String,
    /// Hex of 32 random bytes in the services; the sealed form (`v1:...`) in records that go to
    /// and come from the repo (the tenant service converts at that boundary).
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
    /// Counts writes of the settings above (not of usage, which uploads count atomically): a
    /// write applies only if the stored version is still the one the record was read at, and
    /// bumps it. Clients see it as the tenant's `ETag`.
    pub version: u64,
}

/// What a versioned write of a tenant found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantWrite {
    /// Written; the tenant's new version.
    Written(u64),
    /// The stored version is no longer the record's: someone wrote in between. Nothing written.
    Stale,
    /// No such tenant.
    Missing,
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
