//! `/v1/keys`: API keys. An owner manages its tenant's keys of any role but admin (an admin key
//! is "not found" to it, like another tenant's); an admin any key. The secret is returned once,
//! at creation.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imgd_core::id::TenantId;
use imgd_core::model::{ApiKeyRecord, Role};
use imgd_core::service::auth::NewKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams};
use crate::openapi::ApiErrors;
use crate::state::AppState;
use crate::view::rfc3339;

type ApiResult<T> = Result<T, ApiError>;

/// A role, least to most: reader (read metadata), writer (upload, tag, delete), owner (the
/// tenant's keys, presets, policy), admin (everything).
#[derive(Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleView {
    Admin,
    Owner,
    Writer,
    Reader,
}

impl From<RoleView> for Role {
    fn from(r: RoleView) -> Self {
        match r {
            RoleView::Admin => Role::Admin,
            RoleView::Owner => Role::Owner,
            RoleView::Writer => Role::Writer,
            RoleView::Reader => Role::Reader,
        }
    }
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => RoleView::Admin,
            Role::Owner => RoleView::Owner,
            Role::Writer => RoleView::Writer,
            Role::Reader => RoleView::Reader,
        }
    }
}

/// `POST /v1/keys` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    #[schema(pattern = "^(default|t_[0-9a-f]{16})$")]
    pub tenant_id: String,
    pub role: RoleView,
    /// A label for people: 1 to 100 printable characters.
    #[schema(pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]{1,100}$")]
    pub name: Option<String>,
}

/// An API key, without its secret.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    /// Public; also the prefix of the secret (`imgd_{id}_...`).
    pub id: String,
    pub name: Option<String>,
    pub tenant_id: String,
    pub role: RoleView,
    pub created_at: String,
    pub revoked: bool,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(k: &ApiKeyRecord) -> Self {
        KeyView {
            id: k.id.clone(),
            name: k.name.clone(),
            tenant_id: k.tenant.to_string(),
            role: k.role.into(),
            created_at: rfc3339(k.created_at),
            revoked: k.revoked,
        }
    }
}

/// A new key: `key` is the secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct IssuedKeyView {
    pub id: String,
    pub key: String,
    pub name: Option<String>,
    pub tenant_id: String,
    pub role: RoleView,
    pub created_at: String,
}

/// Keys the caller may see.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// Create a key.
#[utoipa::path(post, path = "/v1/keys", tag = "keys",
    security(("bearer" = ["owner"])),
    request_body = KeyRequest,
    responses((status = 201, body = IssuedKeyView), ApiErrors))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<KeyRequest>,
) -> ApiResult<Response> {
    let new = NewKey {
        tenant_id: TenantId::parse(&body.tenant_id)?,
        role: body.role.into(),
        name: body.name,
    };
    let issued = state.auth.create_key(&caller.0, new).await?;
    let record = &issued.record;
    let view = IssuedKeyView {
        id: record.id.clone(),
        key: issued.secret.clone(),
        name: record.name.clone(),
        tenant_id: record.tenant.to_string(),
        role: record.role.into(),
        created_at: rfc3339(record.created_at),
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// List keys: the caller's tenant's non-admin keys, or every key for an admin.
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    security(("bearer" = ["owner"])),
    responses((status = 200, body = KeyList), ApiErrors))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<KeyList>> {
    let keys = state.auth.list_keys(&caller.0).await?;
    Ok(Json(KeyList {
        keys: keys.iter().map(KeyView::from).collect(),
    }))
}

/// Revoke a key the caller may list; it stops authenticating at once. Any other key is 404.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    security(("bearer" = ["owner"])),
    params(crate::openapi::params::KeyPath),
    responses((status = 204, description = "Revoked"), ApiErrors))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    state.auth.revoke_key(&caller.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
