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
    /// Conflicts with current state: a name taken, the caller's own key, or the tenant's quota
    /// reached (`quota_exceeded`).
    #[response(status = 409)]
    Conflict(ErrorSchema),
    /// The upload or body is larger than the configured limit.
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

/// Path parameters, with the patterns the server accepts, so generated clients and fuzzers
/// know a malformed id from a missing one.
pub mod params {
    use utoipa::IntoParams;

    /// An image id.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)] // documentation only
    pub struct ImagePath {
        /// 32 lowercase hex digits.
        #[param(pattern = "^[0-9a-f]{32}$")]
        pub id: String,
    }

    /// A tenant id.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)]
    pub struct TenantPath {
        /// `default`, or `t_` and 16 lowercase hex digits.
        #[param(pattern = "^(default|t_[0-9a-f]{16})$")]
        pub id: String,
    }

    /// A tenant's signing key.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)]
    pub struct SigningKeyPath {
        #[param(pattern = "^(default|t_[0-9a-f]{16})$")]
        pub id: String,
        #[param(pattern = "^sk_[0-9a-f]{12}$")]
        pub key_id: String,
    }

    /// An API key id.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)]
    pub struct KeyPath {
        #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
        pub id: String,
    }

    /// A preset name.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)]
    pub struct PresetPath {
        #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
        pub name: String,
    }
}
