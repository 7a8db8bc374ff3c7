//! The metadata port: tenants, keys, images, blobs' reference counts and variants.

use crate::Result;
use crate::id::{ContentHash, ImageId, TenantId, VariantKey};
use crate::model::{ApiKeyRecord, DeletedImage, ImagePatch, ImageRecord, ListQuery, VariantRecord};

/// Durable records. Every image query is scoped by tenant except [`MetadataRepo::image`], which
/// public delivery uses.
#[async_trait::async_trait]
pub trait MetadataRepo: Send + Sync + 'static {
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

    /// Records an image and takes a reference on its blob, in one transaction.
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
