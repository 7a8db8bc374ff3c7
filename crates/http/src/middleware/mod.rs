//! Middleware.
//!
//! - [`metrics`]: `http_server_request_duration_seconds` by method, route template and status.

pub mod metrics;
