//! `POST /v1/sign`: a signed delivery URL for the caller's tenant, signed with its newest key.

use imgd_core::Code;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use imgd_core::Error;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody};
use crate::openapi::ApiErrors;
use crate::state::AppState;

/// The longest validity a URL may be signed for: a year.
const MAX_EXPIRES_IN: u64 = 365 * 24 * 3600;

/// `POST /v1/sign` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// `/i/{id}` or `/i/{id}/{options}`, percent-encoded as it will be requested.
    #[schema(
        example = "/i/0123456789abcdef0123456789abcdef/w=100",
        pattern = "^/i/[0-9a-f]{32}(/[^/?#]+)?$"
    )]
    pub path: String,
    /// Seconds the URL stays valid (1 to 31536000); 3600 when absent.
    #[schema(minimum = 1, maximum = 31536000)]
    #[serde(default, deserialize_with = "crate::extract::whole_number_opt")]
    pub expires_in: Option<u64>,
}

/// A signed URL.
#[derive(Serialize, ToSchema)]
pub struct SignedUrl {
    /// Absolute when the server has a `public_url`, else a path with its query.
    pub url: String,
}

/// Sign a delivery URL.
#[utoipa::path(post, path = "/v1/sign", tag = "signing",
    security(("bearer" = ["reader"])),
    request_body = SignRequest,
    responses((status = 200, body = SignedUrl), ApiErrors))]
pub async fn sign(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<SignRequest>,
) -> Result<Json<SignedUrl>, ApiError> {
    let expires_in = body.expires_in.unwrap_or(3600);
    if !(1..=MAX_EXPIRES_IN).contains(&expires_in) {
        return Err(Error::invalid(
            Code::InvalidExpiry,
            format!("expires_in must be 1 to {MAX_EXPIRES_IN} seconds"),
        )
        .into());
    }
    // Only the caller's own images: a URL for another tenant's would not verify anyway, and
    // answering 404 keeps "does this id exist elsewhere" unanswerable.
    let id = body
        .path
        .strip_prefix("/i/")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| {
            Error::invalid(
                Code::InvalidPath,
                "path must be /i/{id} or /i/{id}/{options}, without a query",
            )
        })?;
    state
        .catalog
        .get(&caller.0.tenant, &imgd_core::id::ImageId::parse(id)?)
        .await?;
    let signed = state
        .tenants
        .sign(
            &caller.0.tenant,
            &body.path,
            Duration::from_secs(expires_in),
        )
        .await?;
    Ok(Json(SignedUrl {
        url: format!("{}{signed}", state.public_url),
    }))
}
