//! `/v1/presets`: a tenant's named variant options, versioned. Every `PUT` adds a version and
//! makes it active; `activate` and `rollback` switch the active version in one update, so a
//! bad preset is undone in one call. Changes reach this node's delivery at once and other nodes
//! within the record cache TTL.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use imgd_core::Code;
use imgd_core::Error;
use imgd_core::id::TenantId;
use imgd_core::model::PresetRecord;
use imgd_core::transform::Presets;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams};
use crate::openapi::ApiErrors;
use crate::state::AppState;
use crate::view::rfc3339;

type ApiResult<T> = Result<T, ApiError>;

/// `PUT /v1/presets/{name}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresetOptions {
    /// Variant options as in `/i/{id}/{options}`, without preset names.
    #[schema(example = "w=300,h=300,fit=cover,f=webp")]
    pub options: String,
}

/// `POST /v1/presets/{name}/activate` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateVersion {
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_u64)]
    #[serde(deserialize_with = "crate::extract::whole_number")]
    pub version: u64,
}

/// One version.
#[derive(Serialize, ToSchema)]
pub struct PresetVersionView {
    pub version: u64,
    pub options: String,
    pub created_at: String,
}

/// A preset: its active version and history.
#[derive(Serialize, ToSchema)]
pub struct PresetView {
    pub name: String,
    pub active_version: u64,
    /// The active version's options.
    pub options: String,
    /// Oldest first.
    pub versions: Vec<PresetVersionView>,
}

impl From<&PresetRecord> for PresetView {
    fn from(p: &PresetRecord) -> Self {
        PresetView {
            name: p.name.clone(),
            active_version: p.active_version,
            options: p.active_options().unwrap_or_default().to_owned(),
            versions: p
                .versions
                .iter()
                .map(|v| PresetVersionView {
                    version: v.version,
                    options: v.options.clone(),
                    created_at: rfc3339(v.created_at),
                })
                .collect(),
        }
    }
}

/// The tenant's presets.
#[derive(Serialize, ToSchema)]
pub struct PresetList {
    pub presets: Vec<PresetView>,
}

fn checked_name(name: &str) -> Result<&str, ApiError> {
    if Presets::is_valid_name(name) {
        Ok(name)
    } else {
        Err(Error::invalid(
            Code::InvalidPreset,
            "a preset name is 1 to 64 of A-Z, a-z, 0-9, '_' and '-'",
        )
        .into())
    }
}

fn changed(
    state: &AppState,
    tenant: &TenantId,
    preset: Option<PresetRecord>,
) -> ApiResult<Json<PresetView>> {
    state.delivery.forget_presets(tenant);
    let preset = preset.ok_or(Error::NotFound("preset"))?;
    Ok(Json(PresetView::from(&preset)))
}

/// List the tenant's presets.
#[utoipa::path(get, path = "/v1/presets", tag = "presets",
    security(("bearer" = ["reader"])),
    responses((status = 200, body = PresetList), ApiErrors))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<PresetList>> {
    let presets = state.ports.repo.presets(&caller.0.tenant).await?;
    Ok(Json(PresetList {
        presets: presets.iter().map(PresetView::from).collect(),
    }))
}

/// One preset with its versions.
#[utoipa::path(get, path = "/v1/presets/{name}", tag = "presets",
    security(("bearer" = ["reader"])),
    params(crate::openapi::params::PresetPath),
    responses((status = 200, body = PresetView), ApiErrors))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<PresetView>> {
    let preset = state
        .ports
        .repo
        .preset(&caller.0.tenant, checked_name(&name)?)
        .await?
        .ok_or(Error::NotFound("preset"))?;
    Ok(Json(PresetView::from(&preset)))
}

/// Add a version of the preset (creating it) and make it active.
#[utoipa::path(put, path = "/v1/presets/{name}", tag = "presets",
    security(("bearer" = ["owner"])),
    params(crate::openapi::params::PresetPath),
    request_body = PresetOptions,
    responses((status = 200, body = PresetView), ApiErrors))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<PresetOptions>,
) -> ApiResult<Json<PresetView>> {
    let name = checked_name(&name)?;
    state.delivery.validate_preset_options(&body.options)?;
    let tenant = &caller.0.tenant;
    let preset = state
        .ports
        .repo
        .put_preset(tenant, name, &body.options)
        .await?;
    changed(&state, tenant, Some(preset))
}

/// Make `version` the active one.
#[utoipa::path(post, path = "/v1/presets/{name}/activate", tag = "presets",
    security(("bearer" = ["owner"])),
    params(crate::openapi::params::PresetPath),
    request_body = ActivateVersion,
    responses((status = 200, body = PresetView), ApiErrors))]
pub async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<ActivateVersion>,
) -> ApiResult<Json<PresetView>> {
    let tenant = &caller.0.tenant;
    let preset = state
        .ports
        .repo
        .activate_preset(tenant, checked_name(&name)?, Some(body.version))
        .await?;
    changed(&state, tenant, preset)
}

/// Roll back to the newest version older than the active one.
#[utoipa::path(post, path = "/v1/presets/{name}/rollback", tag = "presets",
    security(("bearer" = ["owner"])),
    params(crate::openapi::params::PresetPath),
    responses((status = 200, body = PresetView), ApiErrors))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<PresetView>> {
    let tenant = &caller.0.tenant;
    let preset = state
        .ports
        .repo
        .activate_preset(tenant, checked_name(&name)?, None)
        .await?;
    changed(&state, tenant, preset)
}

/// Delete the preset and its history.
#[utoipa::path(delete, path = "/v1/presets/{name}", tag = "presets",
    security(("bearer" = ["owner"])),
    params(crate::openapi::params::PresetPath),
    responses((status = 204, description = "Deleted"), ApiErrors))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
) -> ApiResult<StatusCode> {
    let tenant = &caller.0.tenant;
    if !state
        .ports
        .repo
        .delete_preset(tenant, checked_name(&name)?)
        .await?
    {
        return Err(Error::NotFound("preset").into());
    }
    state.delivery.forget_presets(tenant);
    Ok(StatusCode::NO_CONTENT)
}
