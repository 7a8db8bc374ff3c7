//! The domain error. Adapters translate their own errors into it at their boundary; the HTTP
//! edge maps each case once to a status and the stable code returned by [`Error::code`].

use std::time::Duration;

/// Result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a use case, as a client or operator needs to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A request field or option is malformed or out of range; `code` is stable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The upload is larger than the configured byte limit.
    #[error("upload exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    /// The bytes are not an image format imgd accepts (sniffed, never trusted from names).
    #[error("{0}")]
    UnsupportedFormat(String),
    /// The image declares more pixels than allowed (decompression-bomb guard).
    #[error("image has {pixels} pixels, the limit is {limit}")]
    TooManyPixels { pixels: u64, limit: u64 },
    /// The animation has more frames than allowed.
    #[error("animation has {frames} frames, the limit is {limit}")]
    TooManyFrames { frames: u64, limit: u64 },
    /// Processing the image would need more memory than the whole budget allows, so it could
    /// never run, however idle the server.
    #[error(
        "processing this image would need about {needed_mib} MiB, the memory budget is {budget_mib} MiB"
    )]
    TooLargeToProcess { needed_mib: u64, budget_mib: u64 },
    /// The bytes claim to be an image but cannot be decoded.
    #[error("image cannot be decoded: {0}")]
    CorruptImage(String),
    /// No credentials, or credentials that match no active key.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The credentials are valid but do not allow this operation.
    #[error("this key may not perform this operation")]
    Forbidden,
    /// The request conflicts with the current state (a name taken, the caller's own key).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The client made the change conditional on a version (`If-Match`) that is no longer the
    /// current one; nothing changed.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Storing this would take the tenant past its quota; nothing was stored.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The tenant is disabled: its keys and its images are refused.
    #[error("the tenant is disabled")]
    TenantDisabled,
    /// A delivery URL's signature is missing, expired or wrong; `code` is stable.
    #[error("{message}")]
    SignatureRejected { code: &'static str, message: String },
    /// The render queue is full; the client should retry after the given delay.
    #[error("the server is busy rendering, retry later")]
    Overloaded { retry_after: Duration },
    /// The caller used up its request allowance; it may retry after the given delay.
    #[error("too many requests, retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// A render exceeded its time budget.
    #[error("rendering took longer than the time budget")]
    RenderTimeout,
    /// Nobody waits for the job any more (the client left); it stopped early.
    #[error("the request was abandoned by its client")]
    Cancelled,
    /// A render panicked; only this request fails.
    #[error("rendering failed")]
    RenderFailed,
    /// A backend (database, store) does not answer.
    #[error("a backend is unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected backend failure; the message is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Internal`] from anything displayable.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::Internal(cause.to_string())
    }

    /// The stable snake_case code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not_found",
            Error::Invalid { code, .. } => code,
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedFormat(_) => "unsupported_format",
            Error::TooManyPixels { .. } => "too_many_pixels",
            Error::TooManyFrames { .. } => "too_many_frames",
            Error::TooLargeToProcess { .. } => "image_too_large",
            Error::CorruptImage(_) => "corrupt_image",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden => "forbidden",
            Error::Conflict { code, .. } => code,
            Error::PreconditionFailed(_) => "precondition_failed",
            Error::QuotaExceeded(_) => "quota_exceeded",
            Error::TenantDisabled => "tenant_disabled",
            Error::SignatureRejected { code, .. } => code,
            Error::Overloaded { .. } => "overloaded",
            Error::RateLimited { .. } => "rate_limited",
            Error::RenderTimeout => "render_timeout",
            Error::Cancelled => "cancelled",
            Error::RenderFailed => "render_failed",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(format!("io: {e}"))
    }
}
