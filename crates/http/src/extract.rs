//! Extractors: the caller's API key (checked against its rate allowance), and query strings parsed into our own error codes (axum's
//! rejections are plain text, which would break the JSON error contract).

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use imgd_core::Error;
use imgd_core::model::Role;
use imgd_core::port::RateDecision;
use imgd_core::service::auth::Principal;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a `/v1` route.
pub struct Caller(pub Principal);

impl Caller {
    /// Fails with `forbidden` unless the caller's role covers `required`.
    pub fn require(&self, required: Role) -> Result<&Principal, ApiError> {
        if self.0.role.allows(required) {
            Ok(&self.0)
        } else {
            Err(Error::Forbidden.into())
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(Error::Unauthorized)?;
        let principal = state.auth.authenticate(secret).await?;
        if let Some(rate) = state.api_rate {
            let key = format!("api-key:{}", principal.key_id);
            if let RateDecision::Limited { retry_after } = state.limiter.check(&key, rate).await? {
                return Err(Error::RateLimited { retry_after }.into());
            }
        }
        Ok(Caller(principal))
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
