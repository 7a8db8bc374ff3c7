//! Middleware.
//!
//! - [`access`]: the `/v1` gate: rate limits, authentication, tenant and role checks.
//! - [`metrics`]: `http_server_request_duration_seconds` by method, route template and status.

pub mod access;
pub mod metrics;
