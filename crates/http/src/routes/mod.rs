//! Route handlers, one file per resource.
//!
//! - [`images`]: `/v1/images` upload, list, get, patch, delete.
//! - [`tenants`]: `/v1/tenants`, their settings, usage and signing keys.
//! - [`keys`]: API keys under `/v1/keys`.
//! - [`presets`]: `/v1/presets`, versioned.
//! - [`sign`]: signed delivery URLs from `POST /v1/sign`.
//! - [`delivery`]: `/i/{id}` originals and `/i/{id}/{options}` variants, under each tenant's
//!   delivery policy.
//! - [`ops`]: `/livez`, `/readyz`, `/metrics`.

pub mod delivery;
pub mod images;
pub mod keys;
pub mod ops;
pub mod presets;
pub mod sign;
pub mod tenants;
