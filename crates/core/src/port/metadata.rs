//! The metadata port: tenants, keys, images, blobs' reference counts and variants.

use crate::Result;
use crate::id::{ContentHash, ImageId, TenantId, VariantKey};
use crate::model::{
    ApiKeyRecord, BlobClaim, BlobPin, ClaimRule, Cursor, DeletedImage, ImagePatch, ImageRecord,
    ListQuery, Millis, OrphanBlob, PinOutcome, PresetRecord, TenantRecord, TenantWrite,
    VariantRecord,
};

/// Tenants, key listings and presets: the part of the records that tenancy added, a trait of its
/// own so each repo implements it from one shared set of queries.
#[async_trait::async_trait]
pub trait TenancyRepo: Send + Sync + 'static {
    /// Creates a tenant; `Conflict` (`tenant_exists`) when the name is taken.
    async fn create_tenant(&self, tenant: &TenantRecord) -> Result<()>;

    /// Every tenant, oldest first.
    async fn tenants(&self) -> Result<Vec<TenantRecord>>;

    /// One tenant, with its current usage.
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>>;

    /// Writes the settable fields (name, disabled, delivery, quota, signing keys) and bumps the
    /// version, only if the stored version is still `tenant.version` (compare-and-set, so a
    /// read-modify-write never undoes a concurrent one). Usage is the repo's own to count.
    async fn update_tenant(&self, tenant: &TenantRecord) -> Result<TenantWrite>;

    /// Keys, newest first: one tenant's, or every tenant's for `None`.
    async fn api_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>>;

    /// Marks the key revoked; false if there is no such key in `tenant` (any tenant for `None`).
    async fn revoke_api_key(&self, tenant: Option<&TenantId>, id: &str) -> Result<bool>;

    /// Adds a version of the tenant's preset (creating the preset) and makes it active.
    async fn put_preset(
        &self,
        tenant: &TenantId,
        name: &str,
        options: &str,
    ) -> Result<PresetRecord>;

    /// One preset with its versions.
    async fn preset(&self, tenant: &TenantId, name: &str) -> Result<Option<PresetRecord>>;

    /// The tenant's presets, by name.
    async fn presets(&self, tenant: &TenantId) -> Result<Vec<PresetRecord>>;

    /// Switches the active version: to `version`, or for `None` back to the newest version older
    /// than the active one. `None` if there is no such preset; `NotFound` for an unknown version,
    /// `Conflict` (`no_previous_version`) when there is nothing to roll back to.
    async fn activate_preset(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<PresetRecord>>;

    /// Deletes the preset and its versions; false if there was none.
    async fn delete_preset(&self, tenant: &TenantId, name: &str) -> Result<bool>;
}

/// Durable records. Every image query is scoped by tenant except [`MetadataRepo::image`], which
/// public delivery uses.
#[async_trait::async_trait]
pub trait MetadataRepo: TenancyRepo {
    /// Creates the tenant if it does not exist.
    async fn ensure_tenant(&self, id: &TenantId, name: &str) -> Result<()>;

    /// Returns the named setting, storing `init` first if it is not set yet (first writer wins).
    async fn setting_or_init(&self, name: &str, init: &str) -> Result<String>;

    /// Replaces the named setting's value with `value` only if it is still `expected`; false if
    /// it was not (another writer got there first) or is not set.
    async fn replace_setting(&self, name: &str, expected: &str, value: &str) -> Result<bool>;

    /// Inserts or replaces the key with this id.
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()>;

    /// The key with this id.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;

    /// The unrevoked key whose secret hashes to `secret_hash`.
    async fn api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>>;

    /// Records an image, takes a reference on its blob through `pin` (releasing the pin) and
    /// counts it in its tenant's usage, in one transaction; `QuotaExceeded` (and nothing
    /// recorded) when that would pass the quota; `Unavailable` (and nothing recorded) when the
    /// pinned row was claimed by a collector or is another incarnation than the pin's.
    async fn insert_image(&self, image: &ImageRecord, pin: &BlobPin) -> Result<()>;

    /// Any tenant's image, for delivery.
    async fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>>;

    /// Ids of every tenant's images created at or after `since` (ms), oldest first, at most
    /// `limit`, continuing after `after` (the last row of the previous page): what the id
    /// filter is built and kept current from.
    async fn image_ids_since(
        &self,
        since: Millis,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<Cursor>>;

    /// A page of the tenant's images, newest first.
    async fn list_images(&self, tenant: &TenantId, query: &ListQuery) -> Result<Vec<ImageRecord>>;

    /// Applies `patch`; `None` if the tenant has no such image.
    async fn update_image(
        &self,
        tenant: &TenantId,
        id: &ImageId,
        patch: &ImagePatch,
    ) -> Result<Option<ImageRecord>>;

    /// Deletes the image and drops its blob reference; when that was the last one, stamps the
    /// blob orphaned. Never removes the blob row: only a collector does, through a claim. `None`
    /// if the tenant has no such image.
    async fn delete_image(&self, tenant: &TenantId, id: &ImageId) -> Result<Option<DeletedImage>>;

    /// How many images refer to the blob.
    async fn blob_refs(&self, hash: &ContentHash) -> Result<u64>;

    /// Pins the blob row before its bytes are written, in one statement: creates it (no
    /// references, generation `generation`, created at `now`) or, unless it is `deleting`, adds
    /// a pin to it; either way the row is protected until at least `until` (Unix ms).
    async fn pin_blob(
        &self,
        hash: &ContentHash,
        size: u64,
        now: i64,
        until: i64,
        generation: i64,
    ) -> Result<PinOutcome>;

    /// Gives back a pin whose upload will not commit; a no-op if the row is another
    /// incarnation or is being collected.
    async fn release_pin(&self, pin: &BlobPin) -> Result<()>;

    /// Up to `limit` blobs `rule` lets a collector claim, by hash, after `after`.
    async fn orphans(
        &self,
        rule: &ClaimRule,
        after: Option<&ContentHash>,
        limit: u32,
    ) -> Result<Vec<OrphanBlob>>;

    /// Claims the blob for collection in one statement, which the database serialises against
    /// pins and references: marks it `deleting` with `token` if it has no reference, no live
    /// pin and `rule` allows it (or it is `deleting` under a stale claim). `None` if not.
    async fn claim_orphan(
        &self,
        hash: &ContentHash,
        rule: &ClaimRule,
        token: i64,
    ) -> Result<Option<BlobClaim>>;

    /// After the claim's bytes and variants are gone from the store: deletes the blob row and
    /// its variant rows, if the claim is still this one; false if it was taken over.
    async fn finish_collect(&self, claim: &BlobClaim) -> Result<bool>;

    /// Up to `limit` recorded blob hashes from `from` to `upto` (both included) and after
    /// `after`, ascending: the database side of a merge with a store listing (`service::gc`).
    async fn known_blobs(
        &self,
        from: &ContentHash,
        after: Option<&ContentHash>,
        upto: &ContentHash,
        limit: u32,
    ) -> Result<Vec<ContentHash>>;

    /// Records bytes found in the store without a row, so the collector can claim them by the
    /// usual rule: no references, orphaned since `orphaned_at`. A no-op (false) if a row exists,
    /// whether an upload's pin or a collector's claim made it.
    async fn adopt_blob(
        &self,
        hash: &ContentHash,
        size: u64,
        orphaned_at: i64,
        generation: i64,
    ) -> Result<bool>;

    /// A stored variant.
    async fn variant(&self, key: &VariantKey) -> Result<Option<VariantRecord>>;

    /// Records a stored variant; a no-op if it is already recorded.
    async fn insert_variant(&self, variant: &VariantRecord) -> Result<()>;

    /// Answers whether the database is usable right now (for `/readyz`).
    async fn check(&self) -> Result<()>;
}
