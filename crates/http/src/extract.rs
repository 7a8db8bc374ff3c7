//! Extractors: the caller the access gate admitted, and query strings parsed into our own error codes (axum's
//! rejections are plain text, which would break the JSON error contract).

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
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Error::invalid("invalid_json", e.to_string()).into())
    }
}
