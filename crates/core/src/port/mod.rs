//! Ports: the traits adapters implement. Each has an embedded implementation and, later, a
//! cluster one; a shared contract suite runs against all of them.
//!
//! - [`blob`]: content-addressed bytes (`BlobStore`).
//! - [`metadata`]: records (`MetadataRepo`, and `TenancyRepo` for tenants, keys, presets).
//! - [`lock`]: keyed mutual exclusion (`LockManager`).
//! - [`imaging`]: the CPU pipeline (`Imaging`), synchronous by design.
//! - [`placement`]: which node owns a key (`Placement`).
//! - [`limit`]: keyed GCRA rate limits (`RateLimiter`).

pub mod blob;
pub mod imaging;
pub mod limit;
pub mod lock;
pub mod metadata;
pub mod placement;

pub use blob::{
    BlobEntry, BlobKey, BlobPage, BlobRead, BlobStat, BlobStore, ByteRange, MAX_LIST_PAGE,
    MAX_PARTS, MultipartUpload, ORIGINALS_PREFIX, PartTag, PendingUpload, STAGING_PREFIX,
    VARIANTS_PREFIX,
};
pub use imaging::{Imaging, IngestLimits, Inspection, JobControl, Rendered, SourceFacts};
pub use limit::{Rate, RateDecision, RateLimiter};
pub use lock::{LockGuard, LockManager};
pub use metadata::{MetadataRepo, TenancyRepo};
pub use placement::{Member, Placement};
