//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` declarations and
//! served at `/openapi.json`. Each `/v1` operation declares the one role it needs as the scope of
//! its `bearer` security requirement; the access gate enforces exactly that (see
//! [`crate::middleware::access::RouteRoles`]), so the document cannot drift from behaviour.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The error body every non-2xx JSON answer carries.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only; the body is built by `error::error_response`
pub struct ErrorSchema {
    /// Stable, snake_case: match on this, not on the message.
    #[schema(example = "not_found")]
    code: String,
    /// For people; may change between versions.
    message: String,
}

/// The error answers any `/v1` operation may give.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ApiErrors {
    /// A malformed body, query or option.
    #[response(status = 400)]
    BadRequest(ErrorSchema),
    /// No key, or a key that is unknown or revoked.
    #[response(status = 401)]
    Unauthorized(ErrorSchema),
    /// The key's role does not allow this, or its tenant is disabled.
    #[response(status = 403)]
    Forbidden(ErrorSchema),
    /// No such thing in the caller's tenant (another tenant's look the same).
    #[response(status = 404)]
    NotFound(ErrorSchema),
    /// The method is not defined on this path.
    #[response(status = 405)]
    MethodNotAllowed(ErrorSchema),
    /// Conflicts with current state (a name taken, the caller's own key).
    #[response(status = 409)]
    Conflict(ErrorSchema),
    /// The upload is too large, or the tenant's quota is reached (`quota_exceeded`).
    #[response(status = 413)]
    TooLarge(ErrorSchema),
    /// Not an image format imgd accepts.
    #[response(status = 415)]
    UnsupportedFormat(ErrorSchema),
    /// An image that cannot be decoded or exceeds pixel or frame limits.
    #[response(status = 422)]
    Unprocessable(ErrorSchema),
    /// A rate limit; see `Retry-After` and `RateLimit`.
    #[response(status = 429)]
    TooManyRequests(ErrorSchema),
    /// A backend does not answer; retry.
    #[response(status = 503)]
    Unavailable(ErrorSchema),
}

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document's fixed parts; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "imgd",
        description = "Store images and serve them, original or transformed. Every /v1 \
            operation needs `Authorization: Bearer KEY`; its security scope names the least \
            role that may call it (admin > owner > writer > reader).",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorSchema)),
    tags(
        (name = "images", description = "A tenant's images"),
        (name = "tenants", description = "Tenants, their policy, quota and signing keys"),
        (name = "keys", description = "API keys"),
        (name = "presets", description = "A tenant's named, versioned variant options"),
        (name = "signing", description = "Signed delivery URLs"),
    )
)]
pub struct ApiDoc;
