//! Tenants: creation, settings (delivery policy, quota, disabled), usage, signing keys, and the
//! delivery admission check that applies a tenant's policy to a `/i/...` request.
//!
//! Records are cached for a short TTL (`record_cache_ttl`, 2 s by default) because every
//! authenticated request and every delivery consults its tenant; a change made on one node is
//! seen by the others within that TTL, and at once on the node that made it.
//!
//! Every change is a read-modify-write made safe by the tenant's version: the write applies only
//! if nobody wrote since the read, else it starts over on the fresh row (a bounded number of
//! times), so a PATCH cannot bring back a key a concurrent retirement removed, nor one rotation
//! drop the key another just showed. A client may make its PATCH conditional on the version it
//! read (`If-Match`).
//!
//! Signing secrets are sealed under the KEK at the repo boundary: records in here hold them open,
//! records in the repo sealed ([`crate::service::sealing`]).

use crate::Code;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::id::{TenantId, random_bytes};
use crate::model::{
    DeliveryPolicy, Quota, SigningKey, TenantRecord, TenantWrite, Usage, now_millis,
};
use crate::port::MetadataRepo;
use crate::service::sealing::{self, Kek};
use crate::service::signing;
use crate::{Error, Result};

/// Active signing keys a tenant may hold at once: the new one and the one being rotated out.
pub const MAX_SIGNING_KEYS: usize = 2;

/// How many times a change is tried against a tenant that others keep changing meanwhile. Each
/// failed try means another change succeeded, so this many concurrent changers always get
/// through; beyond that a caller gets 409 `tenant_busy`.
pub const WRITE_ATTEMPTS: usize = 16;

/// What `PATCH /v1/tenants/{id}` may change; absent fields stay as they are.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub delivery: Option<DeliveryPolicy>,
    pub disabled: Option<bool>,
    pub quota: Option<Quota>,
}

impl TenantPatch {
    /// True when the patch touches what only an admin may set (an owner may set the policy).
    pub fn needs_admin(&self) -> bool {
        self.name.is_some() || self.disabled.is_some() || self.quota.is_some()
    }
}

/// Tenants and their settings.
pub struct TenantService {
    repo: Arc<dyn MetadataRepo>,
    cache: Cache<TenantId, Arc<TenantRecord>>,
    kek: Arc<Kek>,
}

/// Checks a tenant name: 1 to 64 of `[A-Za-z0-9._-]`, so it is safe in paths, logs and CLIs.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            Code::InvalidName,
            "a tenant name is 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'",
        ))
    }
}

fn new_signing_key() -> SigningKey {
    SigningKey {
        id: format!("sk_{}", hex::encode(random_bytes::<6>())),
        secret: hex::encode(random_bytes::<32>()),
        created_at: now_millis(),
    }
}

fn unix_seconds() -> u64 {
    (now_millis().max(0) / 1000) as u64
}

impl TenantService {
    /// Tenants over `repo`, cached for `ttl`, signing secrets sealed under `kek`.
    pub fn new(repo: Arc<dyn MetadataRepo>, ttl: Duration, kek: Arc<Kek>) -> Self {
        TenantService {
            repo,
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            kek,
        }
    }

    /// The record as the repo keeps it: every signing secret sealed for its tenant and key.
    fn sealed(&self, tenant: &TenantRecord) -> TenantRecord {
        let mut stored = tenant.clone();
        for key in &mut stored.signing_keys {
            let place = sealing::signing_key_place(&tenant.id, &key.id);
            key.secret = self.kek.seal(&place, &key.secret);
        }
        stored
    }

    /// A record from the repo with its signing secrets opened. A plaintext secret (written
    /// before sealing existed, sealed by [`TenantService::seal_plaintext_secrets`] at start) is
    /// taken as it is.
    fn opened(&self, mut tenant: TenantRecord) -> Result<TenantRecord> {
        for key in &mut tenant.signing_keys {
            if sealing::is_sealed(&key.secret) {
                let place = sealing::signing_key_place(&tenant.id, &key.id);
                key.secret = self.kek.open(&place, &key.secret)?;
            }
        }
        Ok(tenant)
    }

    /// Reads the tenant, lets `change` edit it and writes it back if nobody wrote in between;
    /// otherwise starts over on the fresh row. With `expected`, the version read must be one of
    /// those (`If-Match`), else `PreconditionFailed`. Returns the written record (cached at once
    /// on this node) and what `change` returned; an error from `change` aborts.
    async fn modify<T>(
        &self,
        id: &TenantId,
        expected: Option<&[u64]>,
        mut change: impl FnMut(&mut TenantRecord) -> Result<T>,
    ) -> Result<(TenantRecord, T)> {
        for _ in 0..WRITE_ATTEMPTS {
            let stored = self
                .repo
                .tenant(id)
                .await?
                .ok_or(Error::NotFound("tenant"))?;
            let mut tenant = self.opened(stored)?;
            if expected.is_some_and(|versions| !versions.contains(&tenant.version)) {
                return Err(Error::PreconditionFailed(
                    "the tenant changed since the version in If-Match; read it again".into(),
                ));
            }
            let outcome = change(&mut tenant)?;
            match self.repo.update_tenant(&self.sealed(&tenant)).await? {
                TenantWrite::Written(version) => {
                    tenant.version = version;
                    self.cache.insert(id.clone(), Arc::new(tenant.clone()));
                    return Ok((tenant, outcome));
                }
                // Someone wrote since the read: start over on what they wrote.
                TenantWrite::Stale => continue,
                TenantWrite::Missing => return Err(Error::NotFound("tenant")),
            }
        }
        Err(Error::conflict(
            Code::TenantBusy,
            "the tenant is being changed by other requests; retry",
        ))
    }

    /// Creates a tenant with the public policy, no quota and one signing key.
    pub async fn create(&self, name: &str) -> Result<TenantRecord> {
        validate_name(name)?;
        let tenant = TenantRecord {
            id: TenantId::generate(),
            name: name.to_owned(),
            disabled: false,
            delivery: DeliveryPolicy::Public,
            quota: Quota::default(),
            usage: Usage::default(),
            signing_keys: vec![new_signing_key()],
            created_at: now_millis(),
            version: 1,
        };
        self.repo.create_tenant(&self.sealed(&tenant)).await?;
        Ok(tenant)
    }

    /// Every tenant.
    pub async fn list(&self) -> Result<Vec<TenantRecord>> {
        let tenants = self.repo.tenants().await?;
        tenants.into_iter().map(|t| self.opened(t)).collect()
    }

    /// The tenant, fresh from the repo.
    pub async fn get(&self, id: &TenantId) -> Result<TenantRecord> {
        let stored = self
            .repo
            .tenant(id)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        let tenant = self.opened(stored)?;
        self.cache.insert(id.clone(), Arc::new(tenant.clone()));
        Ok(tenant)
    }

    /// The tenant from the short-lived cache (for per-request checks).
    pub async fn cached(&self, id: &TenantId) -> Result<Arc<TenantRecord>> {
        if let Some(tenant) = self.cache.get(id) {
            return Ok(tenant);
        }
        Ok(Arc::new(self.get(id).await?))
    }

    /// Applies `patch`; given `expected` (`If-Match`), only while the tenant is at one of those
    /// versions (`PreconditionFailed` otherwise, and for an empty list). The default tenant holds
    /// the bootstrap admin key and cannot be disabled.
    pub async fn update(
        &self,
        id: &TenantId,
        patch: TenantPatch,
        expected: Option<&[u64]>,
    ) -> Result<TenantRecord> {
        if let Some(name) = &patch.name {
            validate_name(name)?;
        }
        if patch.disabled == Some(true) && *id == TenantId::default_tenant() {
            return Err(Error::conflict(
                Code::DefaultTenant,
                "the default tenant holds the admin key and cannot be disabled",
            ));
        }
        let (tenant, ()) = self
            .modify(id, expected, |tenant| {
                let patch = patch.clone();
                if let Some(name) = patch.name {
                    tenant.name = name;
                }
                if let Some(delivery) = patch.delivery {
                    tenant.delivery = delivery;
                }
                if let Some(disabled) = patch.disabled {
                    tenant.disabled = disabled;
                }
                if let Some(quota) = patch.quota {
                    tenant.quota = quota;
                }
                Ok(())
            })
            .await?;
        Ok(tenant)
    }

    /// Adds a new signing key, which signs from now on; the previous newest stays valid for URLs
    /// already handed out, and anything older is retired. The key returned is the one written:
    /// a concurrent rotation can only push it to second place, never lose it.
    pub async fn rotate_signing_key(&self, id: &TenantId) -> Result<(TenantRecord, SigningKey)> {
        self.modify(id, None, |tenant| {
            let key = new_signing_key();
            tenant.signing_keys.insert(0, key.clone());
            tenant.signing_keys.truncate(MAX_SIGNING_KEYS);
            Ok(key)
        })
        .await
    }

    /// Retires one signing key: URLs it signed stop working. The last key cannot go (a signed
    /// tenant would then serve nothing); rotate first.
    pub async fn retire_signing_key(&self, id: &TenantId, key_id: &str) -> Result<TenantRecord> {
        let (tenant, ()) = self
            .modify(id, None, |tenant| {
                let before = tenant.signing_keys.len();
                tenant.signing_keys.retain(|k| k.id != key_id);
                if tenant.signing_keys.len() == before {
                    return Err(Error::NotFound("signing key"));
                }
                if tenant.signing_keys.is_empty() {
                    return Err(Error::conflict(
                        Code::LastSigningKey,
                        "a tenant keeps at least one signing key; rotate before retiring this one",
                    ));
                }
                Ok(())
            })
            .await?;
        Ok(tenant)
    }

    /// Seals the signing secrets an earlier version stored in plaintext, tenant by tenant (each a
    /// versioned write, so it is safe while other nodes run). Returns how many tenants it
    /// rewrote; run at start, before serving.
    pub async fn seal_plaintext_secrets(&self) -> Result<usize> {
        let mut rewritten = 0;
        for tenant in self.repo.tenants().await? {
            if tenant
                .signing_keys
                .iter()
                .all(|k| sealing::is_sealed(&k.secret))
            {
                continue;
            }
            // Every write seals every secret, so writing the tenant back unchanged is enough.
            self.modify(&tenant.id, None, |_| Ok(())).await?;
            rewritten += 1;
        }
        Ok(rewritten)
    }

    /// A signed URL path (`/i/...?exp=...&sig=...`) for `path`, valid for `expires_in`.
    pub async fn sign(&self, id: &TenantId, path: &str, expires_in: Duration) -> Result<String> {
        validate_signable(path)?;
        let tenant = self.get(id).await?;
        let key = tenant
            .signing_keys
            .first()
            .ok_or_else(|| Error::conflict(Code::NoSigningKey, "the tenant has no signing key"))?;
        let secret = hex::decode(&key.secret).map_err(Error::internal)?;
        Ok(signing::sign(
            path,
            unix_seconds().saturating_add(expires_in.as_secs()),
            &secret,
        ))
    }

    /// Applies the tenant's delivery policy to a request for `path` with `query`.
    /// `presets_only_ok` says whether the request names presets only (an unsigned request that
    /// does passes under `presets_only`). On success, the signed URL's expiry (Unix seconds)
    /// when the request was admitted by its signature, so caches keep it no longer.
    pub fn admit(
        tenant: &TenantRecord,
        path: &str,
        query: Option<&str>,
        presets_only_ok: bool,
    ) -> Result<Option<u64>> {
        if tenant.disabled {
            return Err(Error::TenantDisabled);
        }
        let expiry = signing::signed_expiry(query);
        let unsigned = !query.is_some_and(|q| q.split('&').any(|p| p.starts_with("sig=")));
        match tenant.delivery {
            DeliveryPolicy::Public => return Ok(None),
            DeliveryPolicy::PresetsOnly if unsigned && presets_only_ok => return Ok(None),
            DeliveryPolicy::Signed | DeliveryPolicy::PresetsOnly => {}
        }
        let secrets: Vec<Vec<u8>> = tenant
            .signing_keys
            .iter()
            .filter_map(|k| hex::decode(&k.secret).ok())
            .collect();
        let keys: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).collect();
        signing::verify(path, query, &keys, unix_seconds())
            .map(|()| expiry)
            .map_err(|rejection| Error::SignatureRejected {
                code: rejection.code(),
                message: match rejection {
                    signing::Rejection::Missing => "this image needs a signed URL (exp and sig)",
                    signing::Rejection::Expired => "the signed URL has expired",
                    signing::Rejection::Invalid => "the URL's signature is not valid",
                }
                .to_owned(),
            })
    }
}

/// Only delivery paths can be signed: `/i/{id}` or `/i/{id}/{options}`, without a query.
fn validate_signable(path: &str) -> Result<()> {
    let rest = path.strip_prefix("/i/").unwrap_or("");
    let ok = !rest.is_empty()
        && rest.split('/').count() <= 2
        && !rest.split('/').any(str::is_empty)
        && !path.contains(['?', '#', ' ']);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            Code::InvalidPath,
            "path must be /i/{id} or /i/{id}/{options}, without a query",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(delivery: DeliveryPolicy) -> TenantRecord {
        TenantRecord {
            id: TenantId::generate(),
            name: "t".into(),
            disabled: false,
            delivery,
            quota: Quota::default(),
            usage: Usage::default(),
            signing_keys: vec![new_signing_key()],
            created_at: 0,
            version: 1,
        }
    }

    fn signed(t: &TenantRecord, path: &str) -> String {
        let secret = hex::decode(&t.signing_keys[0].secret).unwrap();
        signing::sign(path, unix_seconds() + 60, &secret)
    }

    #[test]
    fn each_policy_admits_what_it_says() {
        let path = "/i/00/w=10";
        for (policy, unsigned, preset_unsigned) in [
            (DeliveryPolicy::Public, true, true),
            (DeliveryPolicy::Signed, false, false),
            (DeliveryPolicy::PresetsOnly, false, true),
        ] {
            let t = tenant(policy);
            assert_eq!(
                TenantService::admit(&t, path, None, false).is_ok(),
                unsigned
            );
            assert_eq!(
                TenantService::admit(&t, path, None, true).is_ok(),
                preset_unsigned
            );
            let url = signed(&t, path);
            let (p, q) = url.split_once('?').unwrap();
            assert!(
                TenantService::admit(&t, p, Some(q), false).is_ok(),
                "{policy:?}"
            );
        }
    }

    #[test]
    fn a_presets_only_url_with_a_bad_signature_is_refused_not_waved_through() {
        let t = tenant(DeliveryPolicy::PresetsOnly);
        let err = TenantService::admit(&t, "/i/00/thumb", Some("exp=9999999999&sig=00"), true)
            .unwrap_err();
        assert_eq!(err.code(), "signature_invalid");
    }

    #[test]
    fn a_disabled_tenant_serves_nothing() {
        let mut t = tenant(DeliveryPolicy::Public);
        t.disabled = true;
        assert_eq!(
            TenantService::admit(&t, "/i/00", None, false)
                .unwrap_err()
                .code(),
            "tenant_disabled"
        );
    }

    #[test]
    fn only_delivery_paths_are_signable() {
        for good in ["/i/abc", "/i/abc/w=10,f=webp"] {
            assert!(validate_signable(good).is_ok(), "{good}");
        }
        for bad in ["/v1/keys", "/i/", "/i/a/b/c", "/i/a?x=1", "i/a", "/i//w=1"] {
            assert!(validate_signable(bad).is_err(), "{bad}");
        }
    }
}
