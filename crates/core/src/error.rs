//! The domain error. Adapters translate their own errors into it at their boundary; each case
//! has the stable [`Code`] returned by [`Error::code`], whose row in [`crate::code`] gives the
//! status the HTTP edge answers with.

use std::time::Duration;

use crate::Code;

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
    Invalid { code: Code, message: String },
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
    Conflict { code: Code, message: String },
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
    SignatureRejected { code: Code, message: String },
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
    pub fn invalid(code: Code, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(code: Code, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Internal`] from anything displayable.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::Internal(cause.to_string())
    }

    /// The stable code clients can match on.
    pub fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NotFound,
            Error::Invalid { code, .. }
            | Error::Conflict { code, .. }
            | Error::SignatureRejected { code, .. } => *code,
            Error::PayloadTooLarge { .. } => Code::PayloadTooLarge,
            Error::UnsupportedFormat(_) => Code::UnsupportedFormat,
            Error::TooManyPixels { .. } => Code::TooManyPixels,
            Error::TooManyFrames { .. } => Code::TooManyFrames,
            Error::TooLargeToProcess { .. } => Code::ImageTooLarge,
            Error::CorruptImage(_) => Code::CorruptImage,
            Error::Unauthorized => Code::Unauthorized,
            Error::Forbidden => Code::Forbidden,
            Error::PreconditionFailed(_) => Code::PreconditionFailed,
            Error::QuotaExceeded(_) => Code::QuotaExceeded,
            Error::TenantDisabled => Code::TenantDisabled,
            Error::Overloaded { .. } => Code::Overloaded,
            Error::RateLimited { .. } => Code::RateLimited,
            Error::RenderTimeout => Code::RenderTimeout,
            Error::Cancelled => Code::Cancelled,
            Error::RenderFailed => Code::RenderFailed,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(format!("io: {e}"))
    }
}
