//! imgd-core: the domain of imgd, free of any framework or engine.
//!
//! - [`id`]: typed identifiers (`ImageId`, `ContentHash`, `VariantKey`, `TenantId`).
//! - [`format`]: image formats and magic-byte sniffing.
//! - [`transform`]: the variant language (`w=400,f=webp`) parsed into a typed, canonical spec.
//! - [`model`]: records the ports exchange (images, variants, API keys).
//! - [`error`]: the one domain error, each case with a stable [`code::Code`].
//! - [`code`]: the table of stable error codes: name, HTTP status, meaning.
//! - [`port`]: traits the adapters implement (blob store, metadata repo, locks, imaging).
//! - [`service`]: use cases (ingest, catalog, delivery, auth) and the bounded render pool.
//!
//! Nothing here knows about HTTP, SQL or a particular codec; the composition root in the `imgd`
//! binary picks the adapters.

pub mod code;
pub mod error;
pub mod format;
pub mod id;
pub mod model;
pub mod port;
pub mod service;
pub mod transform;

pub use code::Code;
pub use error::{Error, Result};
