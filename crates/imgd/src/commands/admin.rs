//! `imgd admin`: tenants and keys for operators, against the same metadata store the server
//! uses (SQLite in the data dir, or `IMGD_DATABASE_URL`), so it works before the first key
//! exists and while the server runs. Output is JSON, one object per line, for scripts.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use imgd_core::id::TenantId;
use imgd_core::model::Role;
use imgd_core::service::auth::{AuthService, NewKey, Principal};
use imgd_core::service::sealing::{self, Kek};
use imgd_core::service::tenancy::TenantService;
use serde_json::json;

use crate::cli::{AdminCommand, KeyCommand, ServeArgs, TenantCommand};
use crate::config::Config;

/// The operator acting through the CLI: an admin of the default tenant.
fn operator() -> Principal {
    Principal {
        key_id: "cli".into(),
        tenant: TenantId::default_tenant(),
        role: Role::Admin,
    }
}

/// The metadata store and the services over it, with the server's secret key (KEK), checked.
struct Store {
    repo: Arc<dyn imgd_core::port::MetadataRepo>,
    auth: AuthService,
    kek: Arc<Kek>,
}

async fn open(store: &ServeArgs) -> Result<Store> {
    let config = Config::load(&store.overrides(), std::env::vars())?;
    let repo = crate::app::open_metadata(&config).await?;
    let kek = Arc::new(crate::app::open_secret_key(&config)?);
    sealing::check_key(repo.as_ref(), &kek)
        .await
        .context("checking the secret key")?;
    repo.ensure_tenant(&TenantId::default_tenant(), "default")
        .await
        .context("creating the default tenant")?;
    let auth = AuthService::open(repo.clone(), &kek).await?;
    Ok(Store { repo, auth, kek })
}

/// Runs an `admin` subcommand.
pub async fn run(command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::Tenant(TenantCommand::Create { name, store }) => {
            let Store { repo, kek, .. } = open(&store).await?;
            let tenants = TenantService::new(repo, Duration::ZERO, kek);
            let t = tenants.create(&name).await?;
            let key = &t.signing_keys[0];
            println!(
                "{}",
                json!({"id": t.id, "name": t.name, "delivery": t.delivery.name(),
                       "signing_key": {"id": key.id, "secret": key.secret}})
            );
        }
        AdminCommand::Tenant(TenantCommand::List { store }) => {
            let Store { repo, .. } = open(&store).await?;
            for t in repo.tenants().await? {
                println!(
                    "{}",
                    json!({"id": t.id, "name": t.name, "disabled": t.disabled,
                           "delivery": t.delivery.name(),
                           "usage": {"bytes": t.usage.bytes, "images": t.usage.images}})
                );
            }
        }
        AdminCommand::Key(KeyCommand::Create {
            tenant,
            role,
            name,
            store,
        }) => {
            let Store { repo, auth, .. } = open(&store).await?;
            let Some(role) = Role::from_name(&role) else {
                bail!("unknown role {role:?}: admin, owner, writer or reader");
            };
            let tenant_id = match TenantId::parse(&tenant) {
                Ok(id) => id,
                Err(_) => repo
                    .tenants()
                    .await?
                    .into_iter()
                    .find(|t| t.name == tenant)
                    .map(|t| t.id)
                    .with_context(|| format!("no tenant with id or name {tenant:?}"))?,
            };
            let new = NewKey {
                tenant_id,
                role,
                name,
            };
            let issued = auth.create_key(&operator(), new).await?;
            let r = &issued.record;
            println!(
                "{}",
                json!({"id": r.id, "key": issued.secret, "role": r.role.name(),
                       "tenant_id": r.tenant, "name": r.name})
            );
        }
        AdminCommand::Key(KeyCommand::Revoke { id, store }) => {
            let Store { repo, .. } = open(&store).await?;
            if !repo.revoke_api_key(None, &id).await? {
                bail!("no key {id:?}");
            }
            println!("{}", json!({"id": id, "revoked": true}));
        }
    }
    Ok(())
}
