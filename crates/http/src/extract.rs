//! Extractors: the caller the access gate admitted, and path parameters and query strings parsed into our own error codes (axum's
//! rejections are plain text, which would break the JSON error contract).

use imgd_core::Code;
use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use imgd_core::Error;
use imgd_core::id::TenantId;
use imgd_core::model::Role;
use imgd_core::service::auth::Principal;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a `/v1` route, as the access gate admitted it (the gate has
/// already checked the role the route declares).
pub struct Caller(pub Principal);

impl Caller {
    /// True when the caller is an admin, who may act on any tenant.
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }

    /// The tenant a `/v1/tenants/{id}` route names, if the caller may act on it: an admin on
    /// any, everyone else on their own. Another tenant is "not found", as an image would be.
    pub fn tenant_in_reach(&self, id: &str) -> Result<TenantId, ApiError> {
        let id = TenantId::parse(id)?;
        if self.is_admin() || id == self.0.tenant {
            Ok(id)
        } else {
            Err(Error::NotFound("tenant").into())
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Only the gate inserts a principal; a route outside it has no caller.
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| Error::Unauthorized.into())
    }
}

/// Query parameters as a map; repeated keys keep the last value.
pub fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Comma-separated tags from a query or form value.
pub fn split_tags(raw: Option<&String>) -> Vec<String> {
    raw.map(|s| {
        s.split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().to_owned())
            .collect()
    })
    .unwrap_or_default()
}

/// The largest JSON body read (the router lifts axum's default limit for uploads).
const MAX_JSON_BYTES: usize = 1024 * 1024;

/// A JSON request body, refused with our own codes (`invalid_json`, including unknown fields,
/// which every body type denies so nothing is set by mass assignment).
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let _ = state;
        let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BYTES)
            .await
            .map_err(|_| Error::PayloadTooLarge {
                limit: MAX_JSON_BYTES as u64,
            })?;
        let invalid = |e: serde_json::Error| Error::invalid(Code::InvalidJson, e.to_string());
        // Every body is an object: serde would also take a struct as an array of its fields.
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
        if !value.is_object() {
            return Err(Error::invalid(Code::InvalidJson, "the body must be a JSON object").into());
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| invalid(e).into())
    }
}

/// A JSON number that is a whole, non-negative value within `u64`, written as `5` or `5.0`
/// (JSON Schema's "integer" admits both; serde's `u64` only the first).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::Deserialize;
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9_007_199_254_740_991.0)
                .map(|f| f as u64)
        })
        .filter(|v| *v <= 9_007_199_254_740_991)
        .ok_or_else(|| {
            serde::de::Error::custom(format!("{n} is not a whole number from 0 to 2^53-1"))
        })
}

/// [`whole_number`] for optional fields (`null` or absent is `None`).
pub fn whole_number_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] u64);
    use serde::Deserialize;
    Ok(Option::<Whole>::deserialize(d)?.map(|w| w.0))
}

/// Path parameters as axum's `Path` decodes them, refused with our own `not_found` instead of
/// axum's plain-text 400 when they do not decode: a `%` escape that is not UTF-8 names no image,
/// tenant, key or preset.
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(params)| PathParams(params))
            .map_err(|_| Error::NotFound("route").into())
    }
}
