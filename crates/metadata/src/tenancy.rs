//! Tenants, keys listing and presets: queries written once for both engines. SQLite accepts
//! PostgreSQL's `$N` placeholders, both repos open a transaction with `scoped` (which names the
//! row-level-security tenant on PostgreSQL and only begins on SQLite), and the rows map through
//! the generic functions below, so [`impl_tenancy_repo!`] expands to the same bodies for each
//! repo instead of two copies drifting apart.

use imgd_core::id::TenantId;
use imgd_core::model::{
    ApiKeyRecord, DeliveryPolicy, PresetRecord, PresetVersion, Quota, Role, TenantRecord, Usage,
};
use imgd_core::{Error, Result};
use sqlx::{ColumnIndex, Decode, Row, Type};

/// Whose rows a transaction may see under row-level security (PostgreSQL; SQLite ignores it).
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    Tenant(&'a TenantId),
    /// Lookups that are cross-tenant by design: authenticating a key, serving an image by id,
    /// the admin's listings.
    AllTenants,
}

/// The columns of `tenants`.
pub(crate) const TENANT_COLUMNS: &str = "id, name, disabled, delivery, quota_bytes, quota_images, used_bytes, used_images, signing_keys, created_at, version";

/// Counts one image against its tenant's usage, only if that stays within the quota. The row
/// lock this UPDATE takes serialises concurrent uploads of one tenant, so two racing uploads
/// cannot both squeeze under the limit.
pub(crate) const CHARGE_USAGE: &str =
    "UPDATE tenants SET used_bytes = used_bytes + $2, used_images = used_images + 1
     WHERE id = $1
       AND (quota_bytes IS NULL OR used_bytes + $2 <= quota_bytes)
       AND (quota_images IS NULL OR used_images + 1 <= quota_images)";

/// Gives back what a deleted image counted.
pub(crate) const REFUND_USAGE: &str =
    "UPDATE tenants SET used_bytes = used_bytes - $2, used_images = used_images - 1 WHERE id = $1";

/// The error for an upload the quota refuses.
pub(crate) fn quota_exceeded() -> Error {
    Error::QuotaExceeded("storing this image would exceed the tenant's quota".into())
}

/// True for a unique-constraint violation (a name or version taken by a concurrent writer).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

pub(crate) fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

/// A `tenants` row as a record.
pub(crate) fn tenant_from_row<'r, R>(row: &'r R) -> Result<TenantRecord>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let delivery: String = row.get("delivery");
    let keys: String = row.get("signing_keys");
    Ok(TenantRecord {
        id: TenantId::new(row.get::<String, _>("id")),
        name: row.get("name"),
        disabled: row.get("disabled"),
        delivery: DeliveryPolicy::from_name(&delivery)
            .ok_or_else(|| Error::internal(format!("unknown delivery policy {delivery}")))?,
        quota: Quota {
            bytes: row.get::<Option<i64>, _>("quota_bytes").map(to_u64),
            images: row.get::<Option<i64>, _>("quota_images").map(to_u64),
        },
        usage: Usage {
            bytes: to_u64(row.get("used_bytes")),
            images: to_u64(row.get("used_images")),
        },
        signing_keys: serde_json::from_str(&keys).map_err(Error::internal)?,
        created_at: row.get("created_at"),
        version: to_u64(row.get("version")),
    })
}

/// An `api_keys` row as a record.
pub(crate) fn key_from_row<'r, R>(row: &'r R) -> Result<ApiKeyRecord>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let role: String = row.get("role");
    Ok(ApiKeyRecord {
        id: row.get("id"),
        name: row.get("name"),
        tenant: TenantId::new(row.get::<String, _>("tenant_id")),
        role: Role::from_name(&role)
            .ok_or_else(|| Error::internal(format!("unknown role {role}")))?,
        secret_hash: row.get("secret_hash"),
        created_at: row.get("created_at"),
        revoked: row.get("revoked"),
    })
}

/// Presets from rows of `presets` joined with their head, ordered by name then version.
pub(crate) fn presets_from_rows<'r, R>(rows: &'r [R]) -> Vec<PresetRecord>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut presets: Vec<PresetRecord> = Vec::new();
    for row in rows {
        let name: String = row.get("name");
        let version = PresetVersion {
            version: to_u64(row.get("version")),
            options: row.get("options"),
            created_at: row.get("created_at"),
        };
        match presets.last_mut() {
            Some(last) if last.name == name => last.versions.push(version),
            _ => presets.push(PresetRecord {
                name,
                active_version: to_u64(row.get("active_version")),
                versions: vec![version],
            }),
        }
    }
    presets
}

/// The select behind every preset read; `$1` is the tenant, `$2` a name or NULL for all.
pub(crate) const PRESET_ROWS: &str =
    "SELECT p.name, p.version, p.options, p.created_at, h.active_version
     FROM presets p JOIN preset_heads h ON h.tenant_id = p.tenant_id AND h.name = p.name
     WHERE p.tenant_id = $1 AND ($2 IS NULL OR p.name = $2)
     ORDER BY p.name, p.version";

/// Expands to `impl TenancyRepo for $repo` (over the sqlx database `$db`). The repo provides
/// `scoped(Scope) -> Result<Transaction>`, and the invoking module a `db(sqlx::Error) -> Error`.
macro_rules! impl_tenancy_repo {
    ($repo:ty, $db:ty) => {
        // A block of its own, so the expansion brings its imports (as `impl_metadata_repo!`).
        const _: () = {
        use imgd_core::id::TenantId;
        use imgd_core::model::{ApiKeyRecord, PresetRecord, TenantRecord};
        use imgd_core::{Code, Error, Result};
        use sqlx::Row;
        use $crate::tenancy::Scope;

        impl $repo {
            /// The tenant's presets (one, or all for `None`) inside `tx`.
            async fn preset_rows(
                tx: &mut sqlx::Transaction<'static, $db>,
                tenant: &TenantId,
                name: Option<&str>,
            ) -> Result<Vec<PresetRecord>> {
                let rows = sqlx::query($crate::tenancy::PRESET_ROWS)
                    .bind(tenant.as_str())
                    .bind(name)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(db)?;
                Ok($crate::tenancy::presets_from_rows(&rows))
            }
        }

        #[async_trait::async_trait]
        impl imgd_core::port::TenancyRepo for $repo {
        async fn create_tenant(&self, tenant: &TenantRecord) -> Result<()> {
            let mut tx = self.scoped(Scope::AllTenants).await?;
            let inserted = sqlx::query(
                "INSERT INTO tenants (id, name, created_at, disabled, delivery, quota_bytes, quota_images, signing_keys, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(tenant.id.as_str())
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .bind(tenant.disabled)
            .bind(tenant.delivery.name())
            .bind(tenant.quota.bytes.map(|b| b as i64))
            .bind(tenant.quota.images.map(|n| n as i64))
            .bind(serde_json::to_string(&tenant.signing_keys).map_err(Error::internal)?)
            .bind(tenant.version as i64)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if $crate::tenancy::is_unique_violation(&e) => Err(Error::conflict(
                    Code::TenantExists,
                    format!("a tenant named {:?} exists", tenant.name),
                )),
                Err(e) => Err(db(e)),
                Ok(_) => tx.commit().await.map_err(db),
            }
        }

        async fn tenants(&self) -> Result<Vec<TenantRecord>> {
            let sql = format!(
                "SELECT {} FROM tenants ORDER BY created_at, id",
                $crate::tenancy::TENANT_COLUMNS
            );
            let mut tx = self.scoped(Scope::AllTenants).await?;
            let rows = sqlx::query(&sql).fetch_all(&mut *tx).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            rows.iter().map($crate::tenancy::tenant_from_row).collect()
        }

        async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
            let sql = format!(
                "SELECT {} FROM tenants WHERE id = $1",
                $crate::tenancy::TENANT_COLUMNS
            );
            let row = self.row_by(Scope::AllTenants, &sql, id.as_str()).await?;
            row.as_ref().map($crate::tenancy::tenant_from_row).transpose()
        }

        async fn update_tenant(
            &self,
            tenant: &TenantRecord,
        ) -> Result<imgd_core::model::TenantWrite> {
            use imgd_core::model::TenantWrite;
            let mut tx = self.scoped(Scope::AllTenants).await?;
            // Compare-and-set on the version the record was read at: a write in between makes
            // this one match no row instead of silently undoing it.
            let updated = sqlx::query(
                "UPDATE tenants SET name = $3, disabled = $4, delivery = $5, quota_bytes = $6,
                   quota_images = $7, signing_keys = $8, version = version + 1
                 WHERE id = $1 AND version = $2
                 RETURNING version",
            )
            .bind(tenant.id.as_str())
            .bind(tenant.version as i64)
            .bind(&tenant.name)
            .bind(tenant.disabled)
            .bind(tenant.delivery.name())
            .bind(tenant.quota.bytes.map(|b| b as i64))
            .bind(tenant.quota.images.map(|n| n as i64))
            .bind(serde_json::to_string(&tenant.signing_keys).map_err(Error::internal)?)
            .fetch_optional(&mut *tx)
            .await;
            let outcome = match updated {
                Err(e) if $crate::tenancy::is_unique_violation(&e) => {
                    return Err(Error::conflict(
                        Code::TenantExists,
                        format!("a tenant named {:?} exists", tenant.name),
                    ));
                }
                Err(e) => return Err(db(e)),
                Ok(Some(row)) => TenantWrite::Written($crate::tenancy::to_u64(row.get("version"))),
                Ok(None) => {
                    let exists = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
                        .bind(tenant.id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db)?;
                    if exists.is_some() {
                        TenantWrite::Stale
                    } else {
                        TenantWrite::Missing
                    }
                }
            };
            tx.commit().await.map_err(db)?;
            Ok(outcome)
        }

        async fn api_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>> {
            let scope = tenant.map_or(Scope::AllTenants, Scope::Tenant);
            let mut tx = self.scoped(scope).await?;
            let rows = sqlx::query(
                "SELECT * FROM api_keys WHERE ($1 IS NULL OR tenant_id = $1)
                 ORDER BY created_at DESC, id DESC",
            )
            .bind(tenant.map(TenantId::as_str))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            rows.iter().map($crate::tenancy::key_from_row).collect()
        }

        async fn revoke_api_key(&self, tenant: Option<&TenantId>, id: &str) -> Result<bool> {
            let scope = tenant.map_or(Scope::AllTenants, Scope::Tenant);
            let mut tx = self.scoped(scope).await?;
            let done = sqlx::query(
                "UPDATE api_keys SET revoked = $3 WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)",
            )
            .bind(id)
            .bind(tenant.map(TenantId::as_str))
            .bind(true)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(done.rows_affected() == 1)
        }

        async fn put_preset(
            &self,
            tenant: &TenantId,
            name: &str,
            options: &str,
        ) -> Result<PresetRecord> {
            // Two writers of one preset may pick the same next version; the loser retries.
            for _ in 0..5 {
                let mut tx = self.scoped(Scope::Tenant(tenant)).await?;
                let inserted = sqlx::query(
                    "INSERT INTO presets (tenant_id, name, version, options, created_at)
                     SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4
                       FROM presets WHERE tenant_id = $1 AND name = $2
                     RETURNING version",
                )
                .bind(tenant.as_str())
                .bind(name)
                .bind(options)
                .bind(imgd_core::model::now_millis())
                .fetch_one(&mut *tx)
                .await;
                let version: i64 = match inserted {
                    Err(e) if $crate::tenancy::is_unique_violation(&e) => continue,
                    Err(e) => return Err(db(e)),
                    Ok(row) => row.get("version"),
                };
                sqlx::query(
                    "INSERT INTO preset_heads (tenant_id, name, active_version) VALUES ($1, $2, $3)
                     ON CONFLICT (tenant_id, name) DO UPDATE SET active_version = excluded.active_version",
                )
                .bind(tenant.as_str())
                .bind(name)
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                let preset = Self::preset_rows(&mut tx, tenant, Some(name)).await?.pop();
                tx.commit().await.map_err(db)?;
                return preset
                    .ok_or_else(|| Error::internal("a preset vanished inside its transaction"));
            }
            Err(Error::conflict(
                Code::PresetBusy,
                "the preset is being changed by other requests; retry",
            ))
        }

        async fn preset(&self, tenant: &TenantId, name: &str) -> Result<Option<PresetRecord>> {
            let mut tx = self.scoped(Scope::Tenant(tenant)).await?;
            let preset = Self::preset_rows(&mut tx, tenant, Some(name)).await?.pop();
            tx.commit().await.map_err(db)?;
            Ok(preset)
        }

        async fn presets(&self, tenant: &TenantId) -> Result<Vec<PresetRecord>> {
            let mut tx = self.scoped(Scope::Tenant(tenant)).await?;
            let presets = Self::preset_rows(&mut tx, tenant, None).await?;
            tx.commit().await.map_err(db)?;
            Ok(presets)
        }

        async fn activate_preset(
            &self,
            tenant: &TenantId,
            name: &str,
            version: Option<u64>,
        ) -> Result<Option<PresetRecord>> {
            let mut tx = self.scoped(Scope::Tenant(tenant)).await?;
            let Some(mut preset) = Self::preset_rows(&mut tx, tenant, Some(name)).await?.pop() else {
                return Ok(None);
            };
            let target = match version {
                Some(v) if preset.versions.iter().any(|p| p.version == v) => v,
                Some(_) => return Err(Error::NotFound("preset version")),
                None => preset
                    .versions
                    .iter()
                    .map(|p| p.version)
                    .filter(|v| *v < preset.active_version)
                    .max()
                    .ok_or_else(|| {
                        Error::conflict(
                            Code::NoPreviousVersion,
                            "the active version is the preset's oldest",
                        )
                    })?,
            };
            // Compare-and-set on the version read above: a concurrent switch makes this one
            // fail rather than silently undo it.
            let done = sqlx::query(
                "UPDATE preset_heads SET active_version = $3
                 WHERE tenant_id = $1 AND name = $2 AND active_version = $4",
            )
            .bind(tenant.as_str())
            .bind(name)
            .bind(target as i64)
            .bind(preset.active_version as i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() != 1 {
                return Err(Error::conflict(
                    Code::PresetBusy,
                    "the preset changed during the switch; retry",
                ));
            }
            tx.commit().await.map_err(db)?;
            preset.active_version = target;
            Ok(Some(preset))
        }

        async fn delete_preset(&self, tenant: &TenantId, name: &str) -> Result<bool> {
            let mut tx = self.scoped(Scope::Tenant(tenant)).await?;
            let done = sqlx::query("DELETE FROM preset_heads WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query("DELETE FROM presets WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(done.rows_affected() == 1)
        }
        }
        };
    };
}

pub(crate) use impl_tenancy_repo;
