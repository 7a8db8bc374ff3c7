//! Route handlers, one file per resource.
//!
//! - [`images`]: `/v1/images` upload, list, get, patch, delete.
//! - [`delivery`]: `/i/{id}` originals and `/i/{id}/{options}` variants.
//! - [`ops`]: `/livez`, `/readyz`, `/metrics`.

pub mod delivery;
pub mod images;
pub mod ops;
