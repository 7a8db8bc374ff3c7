//! The metadata port: tenants, keys, images, blobs' reference counts and variants.

use crate::Result;
use crate::id::{ContentHash, ImageId, TenantId, VariantKey};
use crate::model::{
    ApiKeyRecord, DeletedImage, ImagePatch, ImageRecord, ListQuery, PresetRecord, TenantRecord,
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

    /// Writes the settable fields (name, disabled, delivery, quota, signing keys); false if there
    /// is no such tenant. Usage is the repo's own to count.
    async fn update_tenant(&self, tenant: &TenantRecord) -> Result<bool>;

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

    /// Inserts or replaces the key with this id.
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()>;

    /// The key with this id.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;

    /// The unrevoked key whose secret hashes to `secret_hash`.
    async fn api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>>;

    /// Records an image, takes a reference on its blob and counts it in its tenant's usage, in
    /// one transaction; `QuotaExceeded` (and nothing recorded) when that would pass the quota.
    async fn insert_image(&self, image: &ImageRecord) -> Result<()>;

    /// Any tenant's image, for delivery.
    async fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>>;

    /// A page of the tenant's images, newest first.
    async fn list_images(&self, tenant: &TenantId, query: &ListQuery) -> Result<Vec<ImageRecord>>;

    /// Applies `patch`; `None` if the tenant has no such image.
    async fn update_image(
        &self,
        tenant: &TenantId,
        id: &ImageId,
        patch: &ImagePatch,
    ) -> Result<Option<ImageRecord>>;

    /// Deletes the image and drops its blob reference; when that was the last one, the blob row
    /// and its variant rows go too. `None` if the tenant has no such image.
    async fn delete_image(&self, tenant: &TenantId, id: &ImageId) -> Result<Option<DeletedImage>>;

    /// How many images refer to the blob.
    async fn blob_refs(&self, hash: &ContentHash) -> Result<u64>;

    /// A stored variant.
    async fn variant(&self, key: &VariantKey) -> Result<Option<VariantRecord>>;

    /// Records a stored variant; a no-op if it is already recorded.
    async fn insert_variant(&self, variant: &VariantRecord) -> Result<()>;

    /// Answers whether the database is usable right now (for `/readyz`).
    async fn check(&self) -> Result<()>;
}
