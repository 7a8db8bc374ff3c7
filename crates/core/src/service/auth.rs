//! API keys: secrets are shown once and stored only as HMAC-SHA256 under a server-wide pepper,
//! so a leaked database does not leak usable keys, even for a weak operator-chosen key.
//!
//! The pepper lives in the metadata store (created by the first node to start), so every node of
//! a cluster hashes alike, sealed under the KEK ([`crate::service::sealing`]): a copy of the
//! database alone does not allow testing guesses of a weak key against its hash.
//!
//! Generated keys read `imgd_{id}_{secret}`: the id is public (it is how a key is listed and
//! revoked, and how its row is found), the secret is 192 random bits. An operator-chosen admin
//! key has no id inside it and is found by its hash instead.

use crate::Code;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::id::{TenantId, random_bytes};
use crate::model::{ApiKeyRecord, Role, now_millis};
use crate::port::MetadataRepo;
use crate::service::sealing::{self, Kek};
use crate::{Error, Result};

/// The setting that holds the pepper, sealed.
const PEPPER_SETTING: &str = "api_key_pepper";

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

/// A new key as created: the secret appears here once and is never stored.
#[derive(Debug)]
pub struct IssuedKey {
    pub record: ApiKeyRecord,
    pub secret: String,
}

/// What a caller asks for when creating a key.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub tenant_id: TenantId,
    pub role: Role,
    pub name: Option<String>,
}

/// Compares two equal-purpose digests without an early exit.
fn digests_match(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The id inside a generated secret (`imgd_{12 hex}_{...}`).
fn embedded_id(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix("imgd_")?;
    let (id, tail) = rest.split_once('_')?;
    (id.len() == 12 && !tail.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Authenticates bearer keys.
pub struct AuthService {
    repo: Arc<dyn MetadataRepo>,
    pepper: Vec<u8>,
}

impl AuthService {
    /// Loads (or creates) the key pepper, opening it with `kek`. A plaintext pepper from before
    /// sealing is sealed in place (compare-and-set, so nodes starting together agree).
    pub async fn open(repo: Arc<dyn MetadataRepo>, kek: &Kek) -> Result<Self> {
        let place = sealing::setting_place(PEPPER_SETTING);
        let fresh = kek.seal(&place, &hex::encode(random_bytes::<32>()));
        let mut stored = repo.setting_or_init(PEPPER_SETTING, &fresh).await?;
        if !sealing::is_sealed(&stored) {
            let sealed = kek.seal(&place, &stored);
            if repo
                .replace_setting(PEPPER_SETTING, &stored, &sealed)
                .await?
            {
                tracing::info!(
                    "sealed the API-key pepper stored in plaintext by an earlier version"
                );
            }
            // Ours, or the one a concurrent start sealed first: the same pepper either way.
            stored = repo.setting_or_init(PEPPER_SETTING, &fresh).await?;
        }
        let pepper = hex::decode(kek.open(&place, &stored)?).map_err(Error::internal)?;
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
            name: Some("bootstrap admin".to_owned()),
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
        let hash = self.hash_secret(secret);
        let key = match embedded_id(secret) {
            Some(id) => self
                .repo
                .api_key(id)
                .await?
                .filter(|k| digests_match(&k.secret_hash, &hash)),
            None => self.repo.api_key_by_hash(&hash).await?,
        }
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

impl AuthService {
    /// Issues a key for `caller`: an admin for any tenant and role, an owner for its own tenant
    /// and any role but admin. Another tenant is "not found" to an owner, as everywhere else.
    pub async fn create_key(&self, caller: &Principal, new: NewKey) -> Result<IssuedKey> {
        if caller.role != Role::Admin {
            if new.tenant_id != caller.tenant {
                return Err(Error::NotFound("tenant"));
            }
            if new.role == Role::Admin {
                return Err(Error::Forbidden);
            }
        }
        if let Some(name) = &new.name
            && (name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                Code::InvalidName,
                "a key name is 1 to 100 printable characters",
            ));
        }
        if self.repo.tenant(&new.tenant_id).await?.is_none() {
            return Err(Error::NotFound("tenant"));
        }
        let id = hex::encode(random_bytes::<6>());
        let secret = format!("imgd_{id}_{}", hex::encode(random_bytes::<24>()));
        let record = ApiKeyRecord {
            id,
            name: new.name,
            tenant: new.tenant_id,
            role: new.role,
            secret_hash: self.hash_secret(&secret),
            created_at: now_millis(),
            revoked: false,
        };
        self.repo.put_api_key(&record).await?;
        Ok(IssuedKey { record, secret })
    }

    /// True when `caller` may see and manage `key`: an admin any key; anyone else only the
    /// non-admin keys of its own tenant (an admin key is as invisible to an owner as another
    /// tenant's key, so an owner cannot lock the operators out).
    fn manages(caller: &Principal, key: &ApiKeyRecord) -> bool {
        caller.role == Role::Admin || (key.tenant == caller.tenant && key.role != Role::Admin)
    }

    /// The keys `caller` may see: every key for an admin, its tenant's non-admin keys for an
    /// owner.
    pub async fn list_keys(&self, caller: &Principal) -> Result<Vec<ApiKeyRecord>> {
        let scope = (caller.role != Role::Admin).then_some(&caller.tenant);
        let mut keys = self.repo.api_keys(scope).await?;
        keys.retain(|k| Self::manages(caller, k));
        Ok(keys)
    }

    /// Revokes a key `caller` may see ([`AuthService::list_keys`]); any other is "not found",
    /// exactly like a missing one. The caller's own key is refused: revoking it would lock the
    /// caller out mid-session (use another key, or the CLI).
    pub async fn revoke_key(&self, caller: &Principal, id: &str) -> Result<()> {
        if id == caller.key_id {
            return Err(Error::conflict(
                Code::KeyInUse,
                "a key cannot revoke itself; use another key",
            ));
        }
        // A key's tenant and role never change after creation, so checking them before the
        // (tenant-scoped) revocation leaves no window.
        let visible = self
            .repo
            .api_key(id)
            .await?
            .is_some_and(|k| Self::manages(caller, &k));
        let scope = (caller.role != Role::Admin).then_some(&caller.tenant);
        if visible && self.repo.revoke_api_key(scope, id).await? {
            Ok(())
        } else {
            Err(Error::NotFound("key"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_carry_their_id_and_others_do_not() {
        assert_eq!(embedded_id("imgd_0123456789ab_ffff"), Some("0123456789ab"));
        for other in [
            "imgd_0123456789ab_",
            "imgd_0123_ff",
            "imgd_xyz",
            "secret",
            "imgd_0123456789abff",
        ] {
            assert_eq!(embedded_id(other), None, "{other}");
        }
    }

    #[test]
    fn owners_manage_only_their_tenants_non_admin_keys() {
        let principal = |tenant: &str, role| Principal {
            key_id: "caller".into(),
            tenant: TenantId::new(tenant),
            role,
        };
        let key = |tenant: &str, role| ApiKeyRecord {
            id: "k".into(),
            name: None,
            tenant: TenantId::new(tenant),
            role,
            secret_hash: String::new(),
            created_at: 0,
            revoked: false,
        };
        let owner = principal("a", Role::Owner);
        assert!(AuthService::manages(&owner, &key("a", Role::Owner)));
        assert!(AuthService::manages(&owner, &key("a", Role::Reader)));
        assert!(!AuthService::manages(&owner, &key("a", Role::Admin)));
        assert!(!AuthService::manages(&owner, &key("b", Role::Reader)));
        let admin = principal("a", Role::Admin);
        assert!(AuthService::manages(&admin, &key("b", Role::Admin)));
    }

    #[test]
    fn digests_compare_whole() {
        assert!(digests_match("abcd", "abcd"));
        assert!(!digests_match("abcd", "abce"));
        assert!(!digests_match("abcd", "abc"));
    }
}
