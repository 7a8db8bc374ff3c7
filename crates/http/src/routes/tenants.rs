//! `/v1/tenants`: tenants (admin), and a tenant's own settings, usage and signing keys (its
//! owner, or an admin).
//!
//! A tenant's `ETag` is its settings' version: `GET` returns it, and a `PATCH` with
//! `If-Match: "N"` applies only while the tenant is still at version N (412
//! `precondition_failed` otherwise, as for any If-Match that names no current version), so a
//! client's read-modify-write cannot undo someone else's. Without `If-Match` a PATCH applies its
//! fields to the latest version.

use axum::Json;
use axum::extract::State;
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use imgd_core::Error;
use imgd_core::model::{DeliveryPolicy, Quota, SigningKey, TenantRecord, Usage};
use imgd_core::service::tenancy::TenantPatch;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams};
use crate::openapi::ApiErrors;
use crate::state::AppState;
use crate::view::rfc3339;

type ApiResult<T> = Result<T, ApiError>;

/// `POST /v1/tenants` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`, unique.
    #[schema(example = "acme", pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
}

/// `PATCH /v1/tenants/{id}` body; absent fields stay. An owner may set `delivery`; the rest
/// needs an admin.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantChanges {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: Option<String>,
    pub delivery: Option<DeliveryView>,
    pub disabled: Option<bool>,
    #[serde(default, deserialize_with = "quota_object")]
    pub quota: Option<QuotaView>,
}

/// A quota given as a JSON object only (serde would also take `[bytes, images]`).
fn quota_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<QuotaView>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None => Ok(None),
        Some(v) if v.is_object() => serde_json::from_value(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(_) => Err(serde::de::Error::custom("quota must be an object")),
    }
}

/// Who may fetch the tenant's images from `/i/...` without a key.
#[derive(Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryView {
    Public,
    Signed,
    PresetsOnly,
}

impl From<DeliveryView> for DeliveryPolicy {
    fn from(v: DeliveryView) -> Self {
        match v {
            DeliveryView::Public => DeliveryPolicy::Public,
            DeliveryView::Signed => DeliveryPolicy::Signed,
            DeliveryView::PresetsOnly => DeliveryPolicy::PresetsOnly,
        }
    }
}

impl From<DeliveryPolicy> for DeliveryView {
    fn from(p: DeliveryPolicy) -> Self {
        match p {
            DeliveryPolicy::Public => DeliveryView::Public,
            DeliveryPolicy::Signed => DeliveryView::Signed,
            DeliveryPolicy::PresetsOnly => DeliveryView::PresetsOnly,
        }
    }
}

/// Storage limits; `null` is unlimited.
#[derive(Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaView {
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    #[serde(default, deserialize_with = "crate::extract::whole_number_opt")]
    pub bytes: Option<u64>,
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    #[serde(default, deserialize_with = "crate::extract::whole_number_opt")]
    pub images: Option<u64>,
}

/// What a tenant stores now.
#[derive(Serialize, ToSchema)]
pub struct UsageView {
    pub bytes: u64,
    pub images: u64,
}

impl From<Usage> for UsageView {
    fn from(u: Usage) -> Self {
        UsageView {
            bytes: u.bytes,
            images: u.images,
        }
    }
}

impl From<Quota> for QuotaView {
    fn from(q: Quota) -> Self {
        QuotaView {
            bytes: q.bytes,
            images: q.images,
        }
    }
}

/// A signing key without its secret.
#[derive(Serialize, ToSchema)]
pub struct SigningKeyView {
    pub id: String,
    pub created_at: String,
}

/// A new signing key: the secret is shown this once.
#[derive(Serialize, ToSchema)]
pub struct IssuedSigningKey {
    pub id: String,
    /// 64 hex digits; HMAC-SHA256 key for `sig`.
    pub secret: String,
    pub created_at: String,
}

/// A tenant.
#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    pub delivery: DeliveryView,
    pub quota: QuotaView,
    pub usage: UsageView,
    /// Active signing keys, newest (the one `POST /v1/sign` uses) first.
    pub signing_keys: Vec<SigningKeyView>,
    pub created_at: String,
}

impl From<&SigningKey> for SigningKeyView {
    fn from(k: &SigningKey) -> Self {
        SigningKeyView {
            id: k.id.clone(),
            created_at: rfc3339(k.created_at),
        }
    }
}

impl From<&TenantRecord> for TenantView {
    fn from(t: &TenantRecord) -> Self {
        TenantView {
            id: t.id.to_string(),
            name: t.name.clone(),
            disabled: t.disabled,
            delivery: t.delivery.into(),
            quota: t.quota.into(),
            usage: t.usage.into(),
            signing_keys: t.signing_keys.iter().map(Into::into).collect(),
            created_at: rfc3339(t.created_at),
        }
    }
}

/// The tenant's `ETag`: its version, quoted (a strong validator of its settings; usage is a live
/// counter outside it).
fn etag(tenant: &TenantRecord) -> [(axum::http::HeaderName, HeaderValue); 1] {
    let value = HeaderValue::from_str(&format!("\"{}\"", tenant.version))
        .expect("a quoted number is a valid header value");
    [(ETAG, value)]
}

/// The versions `If-Match` accepts: `None` without the header or for `*` (the tenant exists,
/// which the lookup checks anyway); otherwise the versions its strong entity tags name (`"3"`).
/// A weak tag never matches (RFC 9110 13.1.1 compares strongly), nor does anything that is not
/// one of our tags, so a header naming no current version fails the precondition.
fn if_match(headers: &HeaderMap) -> Option<Vec<u64>> {
    let value = headers.get(IF_MATCH)?.to_str().unwrap_or("").trim();
    if value == "*" {
        return None;
    }
    let version = |tag: &str| {
        let digits = tag.trim().strip_prefix('"')?.strip_suffix('"')?;
        let ours = !digits.is_empty() && digits.len() <= 19;
        (ours && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u64>().ok())
            .flatten()
    };
    Some(value.split(',').filter_map(version).collect())
}

/// Every tenant.
#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

/// A tenant's usage against its quota.
#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    pub tenant_id: String,
    pub usage: UsageView,
    pub quota: QuotaView,
}

/// Create a tenant (public delivery, no quota, one signing key).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    security(("bearer" = ["admin"])),
    request_body = NewTenant,
    responses((status = 201, body = TenantView), ApiErrors))]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<NewTenant>,
) -> ApiResult<Response> {
    let tenant = state.tenants.create(&body.name).await?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&tenant))).into_response())
}

/// List every tenant.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    security(("bearer" = ["admin"])),
    responses((status = 200, body = TenantList), ApiErrors))]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<TenantList>> {
    let tenants = state.tenants.list().await?;
    Ok(Json(TenantList {
        tenants: tenants.iter().map(TenantView::from).collect(),
    }))
}

/// One tenant: the caller's own, or any for an admin. Its `ETag` is its version, for `If-Match`.
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants",
    security(("bearer" = ["owner"])),
    params(crate::openapi::params::TenantPath),
    responses(
        (status = 200, body = TenantView, headers(
            ("ETag" = String, description = "The tenant's version, quoted; send it back as If-Match")
        )),
        ApiErrors))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Response> {
    let tenant = state.tenants.get(&caller.tenant_in_reach(&id)?).await?;
    Ok((etag(&tenant), Json(TenantView::from(&tenant))).into_response())
}

/// Change a tenant: `delivery` (owner or admin); `name`, `disabled`, `quota` (admin). With
/// `If-Match`, only if the tenant is still at that version.
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "tenants",
    security(("bearer" = ["owner"])),
    params(
        crate::openapi::params::TenantPath,
        ("If-Match" = Option<String>, Header, nullable = false,
            description = "An ETag from GET (or several, or *): change the tenant only while it is \
                at that version; 412 otherwise"),
    ),
    request_body = TenantChanges,
    responses(
        (status = 200, body = TenantView, headers(
            ("ETag" = String, description = "The tenant's new version, quoted")
        )),
        (status = 412, body = crate::openapi::ErrorSchema,
            description = "If-Match names no current version (`precondition_failed`); nothing changed"),
        ApiErrors))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<TenantChanges>,
) -> ApiResult<Response> {
    let id = caller.tenant_in_reach(&id)?;
    let expected = if_match(&headers);
    let patch = TenantPatch {
        name: body.name,
        delivery: body.delivery.map(Into::into),
        disabled: body.disabled,
        quota: body.quota.map(|q| Quota {
            bytes: q.bytes,
            images: q.images,
        }),
    };
    if patch.needs_admin() && !caller.is_admin() {
        return Err(Error::Forbidden.into());
    }
    let tenant = state
        .tenants
        .update(&id, patch, expected.as_deref())
        .await?;
    Ok((etag(&tenant), Json(TenantView::from(&tenant))).into_response())
}

/// A tenant's usage and quota.
#[utoipa::path(get, path = "/v1/tenants/{id}/usage", tag = "tenants",
    security(("bearer" = ["reader"])),
    params(crate::openapi::params::TenantPath),
    responses((status = 200, body = UsageReport), ApiErrors))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<UsageReport>> {
    let tenant = state.tenants.get(&caller.tenant_in_reach(&id)?).await?;
    Ok(Json(UsageReport {
        tenant_id: tenant.id.to_string(),
        usage: tenant.usage.into(),
        quota: tenant.quota.into(),
    }))
}

/// Add a signing key, which signs from now on. The previous newest stays valid; older ones are
/// retired (two are active at most).
#[utoipa::path(post, path = "/v1/tenants/{id}/signing-keys", tag = "tenants",
    security(("bearer" = ["owner"])),
    params(crate::openapi::params::TenantPath),
    responses((status = 201, body = IssuedSigningKey), ApiErrors))]
pub async fn rotate_signing_key(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Response> {
    let (_, key) = state
        .tenants
        .rotate_signing_key(&caller.tenant_in_reach(&id)?)
        .await?;
    let issued = IssuedSigningKey {
        id: key.id,
        secret: key.secret,
        created_at: rfc3339(key.created_at),
    };
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// Retire a signing key: URLs it signed stop working. The last key cannot be retired.
#[utoipa::path(delete, path = "/v1/tenants/{id}/signing-keys/{key_id}", tag = "tenants",
    security(("bearer" = ["owner"])),
    params(crate::openapi::params::SigningKeyPath),
    responses((status = 204, description = "Retired"), ApiErrors))]
pub async fn retire_signing_key(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, key_id)): PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .tenants
        .retire_signing_key(&caller.tenant_in_reach(&id)?, &key_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
