//! Middleware.
//!
//! - [`access`]: the `/v1` gate: rate limits, authentication, tenant and role checks.
//! - [`observe`]: every request once: panics to the JSON 500, the duration histogram by method,
//!   route template and status, server errors logged.

pub mod access;
pub mod observe;
