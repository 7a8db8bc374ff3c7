//! The catalog: get, list, patch and delete a tenant's images. Deleting drops the image's
//! reference on its blob and nothing more: the bytes and variants of a blob no image refers to
//! are removed later, by the collector ([`super::gc`]).

use super::Ports;
use super::ingest::{validate_metadata, validate_tags};
use crate::Code;
use crate::id::{ImageId, TenantId};
use crate::model::{Cursor, ImagePatch, ImageRecord, ListQuery};
use crate::{Error, Result};

/// Largest page.
pub const MAX_PAGE: u32 = 1000;

/// One page of images and where the next starts.
#[derive(Clone, Debug)]
pub struct Page {
    pub images: Vec<ImageRecord>,
    pub next: Option<Cursor>,
}

/// Image management for API callers.
pub struct CatalogService {
    ports: Ports,
    /// Called with each deleted image id so caches can forget it at once.
    on_delete: Box<dyn Fn(&ImageId) + Send + Sync>,
}

impl CatalogService {
    /// A service over the shared ports.
    pub fn new(ports: Ports, on_delete: Box<dyn Fn(&ImageId) + Send + Sync>) -> Self {
        CatalogService { ports, on_delete }
    }

    /// The tenant's image; another tenant's image is "not found", exactly like a missing one.
    pub async fn get(&self, tenant: &TenantId, id: &ImageId) -> Result<ImageRecord> {
        match self.ports.repo.image(id).await? {
            Some(image) if &image.tenant == tenant => Ok(image),
            _ => Err(Error::NotFound("image")),
        }
    }

    /// Newest first, `limit` at a time.
    pub async fn list(
        &self,
        tenant: &TenantId,
        limit: u32,
        after: Option<Cursor>,
        tag: Option<String>,
    ) -> Result<Page> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(Error::invalid(
                Code::InvalidLimit,
                format!("limit must be 1..={MAX_PAGE}"),
            ));
        }
        // Ask for one more than the page to learn whether a next page exists.
        let query = ListQuery {
            limit: limit + 1,
            after,
            tag,
        };
        let mut images = self.ports.repo.list_images(tenant, &query).await?;
        let next = if images.len() > limit as usize {
            images.truncate(limit as usize);
            images.last().map(|last| Cursor {
                created_at: last.created_at,
                id: last.id.clone(),
            })
        } else {
            None
        };
        Ok(Page { images, next })
    }

    /// Replaces tags and/or user metadata.
    pub async fn patch(
        &self,
        tenant: &TenantId,
        id: &ImageId,
        mut patch: ImagePatch,
    ) -> Result<ImageRecord> {
        if let Some(tags) = &patch.tags {
            patch.tags = Some(validate_tags(tags)?);
        }
        if let Some(metadata) = &patch.metadata {
            validate_metadata(metadata)?;
        }
        self.ports
            .repo
            .update_image(tenant, id, &patch)
            .await?
            .ok_or(Error::NotFound("image"))
    }

    /// Deletes the image. Its bytes stay until the collector finds them unreferenced past the
    /// grace period: deleting them here would race uploads of the same bytes on other nodes.
    pub async fn delete(&self, tenant: &TenantId, id: &ImageId) -> Result<()> {
        self.ports
            .repo
            .delete_image(tenant, id)
            .await?
            .ok_or(Error::NotFound("image"))?;
        (self.on_delete)(id);
        Ok(())
    }
}
