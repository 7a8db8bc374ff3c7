//! Images, settings, API keys, blob references and variants: the `MetadataRepo` port, one set of
//! `$N` queries for both engines (SQLite accepts PostgreSQL's placeholders and binds booleans as
//! integers). [`impl_metadata_repo!`] expands to the same bodies for each repo, as
//! [`crate::tenancy`] does for `TenancyRepo`, so a new query is written once. Every query on a
//! tenant table runs in a transaction from `scoped`, which names the row-level-security tenant
//! on PostgreSQL and only begins on SQLite.

/// Expands to `impl MetadataRepo for $repo` (over the sqlx database `$db`). The repo has a
/// `pool` and `scoped(Scope) -> Result<Transaction>`; the invoking module provides
/// `db(sqlx::Error) -> Error`.
macro_rules! impl_metadata_repo {
    ($repo:ty, $db:ty) => {
        // A block of its own, so the expansion brings its imports and asks the invoking module
        // for nothing but `db`.
        const _: () = {
        use imgd_core::id::{ContentHash, ImageId, TenantId, VariantKey};
        use imgd_core::model::{
            ApiKeyRecord, BlobClaim, BlobPin, ClaimRule, Cursor, DeletedImage, ImagePatch,
            ImageRecord, ListQuery, Millis, OrphanBlob, PinOutcome, VariantRecord, now_millis,
        };
        use imgd_core::{Error, Result};
        use sqlx::Row;
        use $crate::rows::{
            IMAGE_COLUMNS, IMAGE_IDS_SINCE, cursor_from_row, image_from_row, variant_from_row,
        };
        use $crate::tenancy::{CHARGE_USAGE, REFUND_USAGE, Scope, key_from_row, quota_exceeded};

        impl $repo {
            /// The row `sql` finds by its one parameter `$1`, in a transaction scoped to `scope`:
            /// the lookups by id or hash of both repo traits.
            pub(crate) async fn row_by(
                &self,
                scope: Scope<'_>,
                sql: &str,
                key: &str,
            ) -> Result<Option<<$db as sqlx::Database>::Row>> {
                let mut tx = self.scoped(scope).await?;
                let row = sqlx::query(sql)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                Ok(row)
            }

            async fn replace_tags(
                tx: &mut <$db as sqlx::Database>::Connection,
                image: &ImageId,
                tenant: &TenantId,
                tags: &[String],
                created_at: i64,
            ) -> Result<()> {
                sqlx::query("DELETE FROM image_tags WHERE image_id = $1")
                    .bind(image.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                for tag in tags {
                    sqlx::query(
                        "INSERT INTO image_tags (image_id, tenant_id, tag, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(image.as_str())
                    .bind(tenant.as_str())
                    .bind(tag)
                    .bind(created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl imgd_core::port::MetadataRepo for $repo {
            async fn ensure_tenant(&self, id: &TenantId, name: &str) -> Result<()> {
                sqlx::query(
                    "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(id.as_str())
                .bind(name)
                .bind(now_millis())
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn setting_or_init(&self, name: &str, init: &str) -> Result<String> {
                sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(name)
                    .bind(init)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(row.get("value"))
            }

            async fn replace_setting(&self, name: &str, expected: &str, value: &str) -> Result<bool> {
                let done = sqlx::query("UPDATE settings SET value = $3 WHERE name = $1 AND value = $2")
                    .bind(name)
                    .bind(expected)
                    .bind(value)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(done.rows_affected() == 1)
            }

            async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
                let mut tx = self.scoped(Scope::Tenant(&key.tenant)).await?;
                sqlx::query(
                    "INSERT INTO api_keys (id, tenant_id, role, secret_hash, created_at, revoked, name) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, role = excluded.role,
                       secret_hash = excluded.secret_hash, created_at = excluded.created_at, revoked = excluded.revoked,
                       name = excluded.name",
                )
                .bind(&key.id)
                .bind(key.tenant.as_str())
                .bind(key.role.name())
                .bind(&key.secret_hash)
                .bind(key.created_at)
                .bind(key.revoked)
                .bind(&key.name)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                tx.commit().await.map_err(db)
            }

            async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
                let sql = "SELECT * FROM api_keys WHERE id = $1";
                let row = self.row_by(Scope::AllTenants, sql, id).await?;
                row.as_ref().map(key_from_row).transpose()
            }

            async fn api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>> {
                let sql = "SELECT * FROM api_keys WHERE secret_hash = $1 AND NOT revoked";
                let row = self.row_by(Scope::AllTenants, sql, secret_hash).await?;
                row.as_ref().map(key_from_row).transpose()
            }

            async fn insert_image(&self, image: &ImageRecord, pin: &BlobPin) -> Result<()> {
                if pin.hash != image.hash {
                    return Err(Error::internal("a pin of another blob"));
                }
                let mut tx = self.scoped(Scope::Tenant(&image.tenant)).await?;
                let charged = sqlx::query(CHARGE_USAGE)
                    .bind(image.tenant.as_str())
                    .bind(image.bytes as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                if charged.rows_affected() != 1 {
                    return Err(quota_exceeded());
                }
                let referenced = sqlx::query($crate::blobs::TAKE_REFERENCE)
                    .bind(image.hash.as_str())
                    .bind(pin.generation)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                if referenced.rows_affected() != 1 {
                    return Err($crate::blobs::collected());
                }
                let sql = format!(
                    "INSERT INTO images ({IMAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                );
                sqlx::query(&sql)
                    .bind(image.id.as_str())
                    .bind(image.tenant.as_str())
                    .bind(image.hash.as_str())
                    .bind(image.format.name())
                    .bind(i64::from(image.width))
                    .bind(i64::from(image.height))
                    .bind(image.bytes as i64)
                    .bind(i64::from(image.frames))
                    .bind(&image.filename)
                    .bind(&image.blurhash)
                    .bind(serde_json::to_string(&image.tags).map_err(Error::internal)?)
                    .bind(serde_json::to_string(&image.metadata).map_err(Error::internal)?)
                    .bind(image.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                Self::replace_tags(
                    &mut tx,
                    &image.id,
                    &image.tenant,
                    &image.tags,
                    image.created_at,
                )
                .await?;
                tx.commit().await.map_err(db)
            }

            async fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>> {
                let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = $1");
                let row = self.row_by(Scope::AllTenants, &sql, id.as_str()).await?;
                row.as_ref().map(image_from_row).transpose()
            }

            async fn image_ids_since(
                &self,
                since: Millis,
                after: Option<&Cursor>,
                limit: u32,
            ) -> Result<Vec<Cursor>> {
                let mut tx = self.scoped(Scope::AllTenants).await?;
                let rows = sqlx::query(IMAGE_IDS_SINCE)
                    .bind(since)
                    .bind(after.map(|c| c.created_at))
                    .bind(after.map(|c| c.id.as_str()))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                rows.iter().map(cursor_from_row).collect()
            }

            async fn list_images(&self, tenant: &TenantId, query: &ListQuery) -> Result<Vec<ImageRecord>> {
                let (after_at, after_id) = match &query.after {
                    Some(c) => (Some(c.created_at), Some(c.id.as_str().to_owned())),
                    None => (None, None),
                };
                let sql = format!(
                    "SELECT {IMAGE_COLUMNS} FROM images i
                     WHERE i.tenant_id = $1
                       AND ($2 IS NULL OR EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = i.id AND t.tag = $2))
                       AND ($3 IS NULL OR i.created_at < $3 OR (i.created_at = $3 AND i.id < $4))
                     ORDER BY i.created_at DESC, i.id DESC
                     LIMIT $5"
                );
                let mut tx = self.scoped(Scope::Tenant(tenant)).await?;
                let rows = sqlx::query(&sql)
                    .bind(tenant.as_str())
                    .bind(&query.tag)
                    .bind(after_at)
                    .bind(after_id)
                    .bind(i64::from(query.limit))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                rows.iter().map(image_from_row).collect()
            }

            async fn update_image(
                &self,
                tenant: &TenantId,
                id: &ImageId,
                patch: &ImagePatch,
            ) -> Result<Option<ImageRecord>> {
                let mut tx = self.scoped(Scope::Tenant(tenant)).await?;
                let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = $1 AND tenant_id = $2");
                let Some(row) = sqlx::query(&sql)
                    .bind(id.as_str())
                    .bind(tenant.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
                else {
                    return Ok(None);
                };
                let mut image = image_from_row(&row)?;
                if let Some(tags) = &patch.tags {
                    image.tags = tags.clone();
                    Self::replace_tags(&mut tx, id, tenant, tags, image.created_at).await?;
                }
                if let Some(metadata) = &patch.metadata {
                    image.metadata = metadata.clone();
                }
                sqlx::query("UPDATE images SET tags = $1, metadata = $2 WHERE id = $3")
                    .bind(serde_json::to_string(&image.tags).map_err(Error::internal)?)
                    .bind(serde_json::to_string(&image.metadata).map_err(Error::internal)?)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                Ok(Some(image))
            }

            async fn delete_image(&self, tenant: &TenantId, id: &ImageId) -> Result<Option<DeletedImage>> {
                let mut tx = self.scoped(Scope::Tenant(tenant)).await?;
                let Some(row) = sqlx::query(
                    "DELETE FROM images WHERE id = $1 AND tenant_id = $2 RETURNING blob_hash, bytes",
                )
                .bind(id.as_str())
                .bind(tenant.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                else {
                    return Ok(None);
                };
                let hash = ContentHash::parse(row.get("blob_hash"))?;
                sqlx::query(REFUND_USAGE)
                    .bind(tenant.as_str())
                    .bind(row.get::<i64, _>("bytes"))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                let refs: i64 = sqlx::query($crate::blobs::DROP_REFERENCE)
                    .bind(hash.as_str())
                    .bind(now_millis())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?
                    .get("refcount");
                let blob_orphaned = refs == 0;
                tx.commit().await.map_err(db)?;
                Ok(Some(DeletedImage {
                    hash,
                    blob_orphaned,
                }))
            }

            async fn blob_refs(&self, hash: &ContentHash) -> Result<u64> {
                let row = sqlx::query("SELECT refcount FROM blobs WHERE hash = $1")
                    .bind(hash.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(row.map_or(0, |r| r.get::<i64, _>("refcount") as u64))
            }

            async fn pin_blob(
                &self,
                hash: &ContentHash,
                size: u64,
                now: i64,
                until: i64,
                generation: i64,
            ) -> Result<PinOutcome> {
                let row = sqlx::query($crate::blobs::PIN)
                    .bind(hash.as_str())
                    .bind(size as i64)
                    .bind(now)
                    .bind(until)
                    .bind(generation)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(match row {
                    Some(row) => PinOutcome::Pinned(BlobPin {
                        hash: hash.clone(),
                        generation: row.get("generation"),
                    }),
                    None => PinOutcome::Deleting,
                })
            }

            async fn release_pin(&self, pin: &BlobPin) -> Result<()> {
                sqlx::query($crate::blobs::RELEASE_PIN)
                    .bind(pin.hash.as_str())
                    .bind(pin.generation)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(())
            }

            async fn orphans(
                &self,
                rule: &ClaimRule,
                after: Option<&ContentHash>,
                limit: u32,
            ) -> Result<Vec<OrphanBlob>> {
                let rows = sqlx::query($crate::blobs::ORPHANS)
                    .bind(after.map_or("", |h| h.as_str()))
                    .bind(rule.now)
                    .bind(rule.orphaned_before)
                    .bind(i64::from(rule.never_referenced))
                    .bind(rule.stale_claim_before)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)?;
                rows.iter()
                    .map(|row| {
                        Ok(OrphanBlob {
                            hash: ContentHash::parse(row.get("hash"))?,
                            size: row.get::<i64, _>("size") as u64,
                            stale_claim: row.get::<&str, _>("state") == "deleting",
                        })
                    })
                    .collect()
            }

            async fn claim_orphan(
                &self,
                hash: &ContentHash,
                rule: &ClaimRule,
                token: i64,
            ) -> Result<Option<BlobClaim>> {
                let row = sqlx::query($crate::blobs::CLAIM)
                    .bind(hash.as_str())
                    .bind(rule.now)
                    .bind(rule.orphaned_before)
                    .bind(i64::from(rule.never_referenced))
                    .bind(rule.stale_claim_before)
                    .bind(token)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(row.map(|row| BlobClaim {
                    hash: hash.clone(),
                    size: row.get::<i64, _>("size") as u64,
                    token,
                }))
            }

            async fn finish_collect(&self, claim: &BlobClaim) -> Result<bool> {
                let mut tx = self.pool.begin().await.map_err(db)?;
                let forgotten = sqlx::query($crate::blobs::FORGET_BLOB)
                    .bind(claim.hash.as_str())
                    .bind(claim.token)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                if forgotten.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query($crate::blobs::FORGET_VARIANTS)
                    .bind(claim.hash.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                Ok(true)
            }

            async fn known_blobs(
                &self,
                from: &ContentHash,
                after: Option<&ContentHash>,
                upto: &ContentHash,
                limit: u32,
            ) -> Result<Vec<ContentHash>> {
                let rows = sqlx::query($crate::blobs::KNOWN)
                    .bind(from.as_str())
                    .bind(after.map_or("", |h| h.as_str()))
                    .bind(upto.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)?;
                rows.iter()
                    .map(|row| ContentHash::parse(row.get("hash")))
                    .collect()
            }

            async fn adopt_blob(
                &self,
                hash: &ContentHash,
                size: u64,
                orphaned_at: i64,
                generation: i64,
            ) -> Result<bool> {
                let done = sqlx::query($crate::blobs::ADOPT)
                    .bind(hash.as_str())
                    .bind(size as i64)
                    .bind(orphaned_at)
                    .bind(generation)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(done.rows_affected() == 1)
            }

            async fn variant(&self, key: &VariantKey) -> Result<Option<VariantRecord>> {
                let row = sqlx::query("SELECT * FROM variants WHERE key = $1")
                    .bind(key.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
                row.as_ref().map(variant_from_row).transpose()
            }

            async fn insert_variant(&self, v: &VariantRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO variants (key, source_hash, format, bytes, etag, created_at) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(v.key.as_str())
                .bind(v.source.as_str())
                .bind(v.format.name())
                .bind(v.bytes as i64)
                .bind(&v.etag)
                .bind(v.created_at)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn check(&self) -> Result<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(())
            }
        }
        };
    };
}
pub(crate) use impl_metadata_repo;
