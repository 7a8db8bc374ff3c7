//! Every stable error code imgd answers with, in one table (meilisearch's single error-code table):
//! the snake_case name clients match on, the HTTP status it always comes with, and what it means.
//! The domain [`crate::Error`] carries a [`Code`]; the HTTP edge reads the status from here, and a
//! test renders this table into the README, so the documented codes are exactly these.
//!
//! A status number is the one piece of HTTP here: it is part of a code's public contract, and
//! writing it beside the code keeps each code's contract in one row.

/// Declares [`Code`] and its table from rows of `Variant = "name", status, "meaning";`.
macro_rules! codes {
    ($($variant:ident = $name:literal, $status:literal, $meaning:literal;)*) => {
        /// A stable error code. Variants are the table's rows; see the module docs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The snake_case name in `{"code": ...}`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The HTTP status every answer with this code has.
            pub fn status(self) -> u16 {
                match self { $(Code::$variant => $status,)* }
            }

            /// What the code means, for the README's table.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning,)* }
            }
        }
    };
}

codes! {
    InvalidName = "invalid_name", 400, "a tenant name is not 1 to 64 of `A-Za-z0-9._-`, or a key name not 1 to 100 printable characters";
    InvalidPath = "invalid_path", 400, "the path to sign is not `/i/{id}` or `/i/{id}/{options}` without a query";
    InvalidExpiry = "invalid_expiry", 400, "`expires_in` is outside the seconds a signature may live";
    InvalidPreset = "invalid_preset", 400, "a preset's name is not 1 to 64 of `A-Za-z0-9_-`, or its options do not parse";
    InvalidOption = "invalid_option", 400, "a variant option is unknown or malformed";
    OptionOutOfRange = "option_out_of_range", 400, "a variant option is outside its range (`w=99999`)";
    DuplicateOption = "duplicate_option", 400, "a variant option is given twice";
    UnknownPreset = "unknown_preset", 400, "a variant names a preset that does not exist";
    EmptyUpload = "empty_upload", 400, "the upload has no bytes";
    InvalidTag = "invalid_tag", 400, "a tag is not made of `A-Za-z0-9_.:-` within its length, or there are too many tags";
    InvalidJson = "invalid_json", 400, "the body is not the JSON the route takes (unknown fields included)";
    InvalidLimit = "invalid_limit", 400, "a listing's `limit` is not a number in its range";
    InvalidCursor = "invalid_cursor", 400, "a listing's `cursor` is malformed";
    MalformedMultipart = "malformed_multipart", 400, "the multipart body does not parse";
    MissingFile = "missing_file", 400, "the multipart body has no `file` part";
    UnknownField = "unknown_field", 400, "the multipart body has a part imgd does not take";
    TooManyParts = "too_many_parts", 400, "more files in one multipart request than allowed";
    MetadataTooLarge = "metadata_too_large", 400, "the image's `metadata` is over its byte limit";
    BodyReadFailed = "body_read_failed", 400, "the request body could not be read to its end";
    InvalidMetadata = "invalid_metadata", 400, "`metadata` is not a JSON object";
    AvifTooLarge = "avif_too_large", 400, "AVIF output past `render.max_avif_pixels` (ask for WebP)";
    GifTooLarge = "gif_too_large", 400, "GIF output past `render.max_gif_pixels` (ask for WebP)";
    Unauthorized = "unauthorized", 401, "no API key, or one that matches no active key (with `WWW-Authenticate`)";
    Forbidden = "forbidden", 403, "the key's role may not do this";
    TenantDisabled = "tenant_disabled", 403, "the tenant is disabled: its keys and its images are refused";
    SignatureRequired = "signature_required", 403, "the tenant serves signed URLs only and this one has no `exp` and `sig`";
    SignatureExpired = "signature_expired", 403, "the signed URL has expired";
    SignatureInvalid = "signature_invalid", 403, "the URL's signature is not valid";
    NotFound = "not_found", 404, "no such image, variant, tenant, key, preset or route (also for malformed ids)";
    MethodNotAllowed = "method_not_allowed", 405, "the route does not take this method (with `Allow`)";
    RequestTimeout = "request_timeout", 408, "the request body stalled or arrived below the minimum rate; the connection closes";
    QuotaExceeded = "quota_exceeded", 409, "storing this would take the tenant past its quota; nothing was stored";
    TenantExists = "tenant_exists", 409, "a tenant of that name exists";
    TenantBusy = "tenant_busy", 409, "the tenant is being changed by other requests; retry";
    KeyInUse = "key_in_use", 409, "a key cannot revoke itself";
    DefaultTenant = "default_tenant", 409, "the default tenant cannot be disabled";
    LastSigningKey = "last_signing_key", 409, "a signed tenant keeps at least one signing key";
    NoSigningKey = "no_signing_key", 409, "the tenant has no signing key to sign with";
    NoPreviousVersion = "no_previous_version", 409, "the preset has no earlier version to roll back to";
    PresetBusy = "preset_busy", 409, "the preset is being changed by other requests; retry";
    PreconditionFailed = "precondition_failed", 412, "`If-Match` names a version that is no longer the current one; nothing changed";
    PayloadTooLarge = "payload_too_large", 413, "the upload is over `limits.max_upload_bytes`";
    UnsupportedFormat = "unsupported_format", 415, "not a JPEG, PNG, GIF, WebP, AVIF or HEIC (text, HTML, SVG...), sniffed from the bytes; AVIF and HEIC only in builds with the `heif` feature";
    RangeNotSatisfiable = "range_not_satisfiable", 416, "the `Range` lies outside the bytes";
    TooManyPixels = "too_many_pixels", 422, "the image declares more pixels than `limits.max_pixels`";
    TooManyFrames = "too_many_frames", 422, "the animation has more frames than `limits.max_frames`";
    CorruptImage = "corrupt_image", 422, "the bytes claim a format but do not decode (also a JPEG of more than 100 scans)";
    ImageTooLarge = "image_too_large", 422, "processing it would need more memory than the whole `limits.memory_budget_mb`";
    RateLimited = "rate_limited", 429, "the caller used its allowance (with `Retry-After`, `RateLimit` and `RateLimit-Policy`)";
    HeadersTooLarge = "headers_too_large", 431, "the request head is over `server.max_header_bytes`";
    RenderFailed = "render_failed", 500, "a render panicked; only this request failed";
    Internal = "internal", 500, "a bug or an unexpected backend failure; the cause is logged, never shown";
    Overloaded = "overloaded", 503, "the render queue is full or the memory budget taken (with `Retry-After`)";
    RenderTimeout = "render_timeout", 503, "the render took longer than `render.timeout_secs`";
    Unavailable = "unavailable", 503, "the database or the store does not answer";
    Cancelled = "cancelled", 503, "the client left before the answer (never seen by anyone)";
    BadStore = "bad_store", 500, "startup: the store URL does not parse";
    BadDatabaseUrl = "bad_database_url", 500, "startup: the database URL is neither empty (SQLite) nor postgres://";
    BadRedisUrl = "bad_redis_url", 500, "startup: the Redis URL does not parse";
    InvalidSecretKey = "invalid_secret_key", 500, "startup: the secret key is not 32 bytes in hex or base64";
    SecretKeyMismatch = "secret_key_mismatch", 500, "startup: the secret key is not the one the database's secrets were sealed with";
}

impl Code {
    /// True for codes only a starting process reports (configuration), never a request.
    pub fn is_startup(self) -> bool {
        self.meaning().starts_with("startup:")
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets tests and callers compare a code with its wire name.
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_statuses_are_errors() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name} is not snake_case"
            );
            assert!((400..600).contains(&code.status()), "{name}");
            assert!(!code.meaning().is_empty(), "{name} says nothing");
        }
    }
}
