//! API keys: secrets are shown once and stored only as HMAC-SHA256 under a server-wide pepper,
//! so a leaked database does not leak usable keys, even for a weak operator-chosen key.
//!
//! The pepper lives in the metadata store (created by the first node to start), so every node of
//! a cluster hashes alike. Roles and tenants beyond the bootstrap admin arrive with tenancy.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::id::{TenantId, random_bytes};
use crate::model::{ApiKeyRecord, Role, now_millis};
use crate::port::MetadataRepo;
use crate::{Error, Result};

/// The id of the key made from `IMGD_ADMIN_KEY` or generated on first start.
pub const BOOTSTRAP_KEY_ID: &str = "bootstrap-admin";

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub tenant: TenantId,
    pub role: Role,
}

/// What [`AuthService::bootstrap_admin`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// The configured key is now the admin key.
    Configured,
    /// An admin key already existed; nothing changed.
    Existing,
    /// A new key was generated; the caller must hand it to the operator once.
    Generated(String),
}

/// Authenticates bearer keys.
pub struct AuthService {
    repo: Arc<dyn MetadataRepo>,
    pepper: Vec<u8>,
}

impl AuthService {
    /// Loads (or creates) the key pepper.
    pub async fn open(repo: Arc<dyn MetadataRepo>) -> Result<Self> {
        let pepper = repo
            .setting_or_init("api_key_pepper", &hex::encode(random_bytes::<32>()))
            .await?;
        let pepper = hex::decode(pepper).map_err(Error::internal)?;
        Ok(AuthService { repo, pepper })
    }

    /// The stored form of a secret.
    pub fn hash_secret(&self, secret: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.pepper).expect("HMAC takes any key length");
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Makes sure an admin key exists: the configured one if given (replacing an older one), else
    /// the one stored before, else a freshly generated one.
    pub async fn bootstrap_admin(&self, configured: Option<&str>) -> Result<Bootstrap> {
        let tenant = TenantId::default_tenant();
        self.repo.ensure_tenant(&tenant, "default").await?;
        let (secret, outcome) = match configured {
            Some(secret) if !secret.is_empty() => (secret.to_owned(), Bootstrap::Configured),
            _ if self.repo.api_key(BOOTSTRAP_KEY_ID).await?.is_some() => {
                return Ok(Bootstrap::Existing);
            }
            _ => {
                let secret = format!("imgd_{}", hex::encode(random_bytes::<24>()));
                (secret.clone(), Bootstrap::Generated(secret))
            }
        };
        let record = ApiKeyRecord {
            id: BOOTSTRAP_KEY_ID.to_owned(),
            tenant,
            role: Role::Admin,
            secret_hash: self.hash_secret(&secret),
            created_at: now_millis(),
            revoked: false,
        };
        let already = |found: Option<ApiKeyRecord>| {
            found.is_some_and(|k| k.id == BOOTSTRAP_KEY_ID && !k.revoked)
        };
        if already(self.repo.api_key_by_hash(&record.secret_hash).await?) {
            return Ok(outcome);
        }
        if let Err(e) = self.repo.put_api_key(&record).await {
            // Several cluster nodes starting at once race to write the same configured key; the
            // loser finds the winner's row.
            if !already(self.repo.api_key_by_hash(&record.secret_hash).await?) {
                return Err(e);
            }
        }
        Ok(outcome)
    }

    /// Resolves a bearer secret to its principal. The lookup is by keyed hash, so the database
    /// compares digests, never secrets, and timing reveals nothing about the secret.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        if secret.is_empty() || secret.len() > 256 {
            return Err(Error::Unauthorized);
        }
        let key = self
            .repo
            .api_key_by_hash(&self.hash_secret(secret))
            .await?
            .ok_or(Error::Unauthorized)?;
        if key.revoked {
            return Err(Error::Unauthorized);
        }
        Ok(Principal {
            key_id: key.id,
            tenant: key.tenant,
            role: key.role,
        })
    }
}
