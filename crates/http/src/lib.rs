//! imgd-http: the axum adapter. Handlers extract, call one use case, and shape the response;
//! nothing here decides policy.
//!
//! - [`router`]: the route table and middleware stack.
//! - [`lane`]: cached-image delivery answered ahead of the router, by the same functions.
//! - [`state`]: [`AppState`], the services handlers reach.
//! - [`routes`]: one file per resource.
//! - [`error`]: the one mapping from domain error to status and JSON body.
//! - [`extract`]: the bearer-key extractor and query parsing.
//! - [`conditional`]: ETag, `If-None-Match`, `If-Modified-Since` and `Range` for delivery.
//! - [`forward`]: owner routing of variant requests between cluster nodes.
//! - [`view`]: JSON views of domain records.
//! - [`middleware`]: the `/v1` access gate (limits, keys, tenants, roles) and request metrics.
//! - [`openapi`]: the OpenAPI document's fixed parts and the shared error responses.
//! - [`serve`]: the accept loop: connection limits, header, idle and body timeouts, draining.

pub mod conditional;
pub mod error;
pub mod extract;
pub mod forward;
pub mod lane;
pub mod middleware;
pub mod openapi;
pub mod router;
pub mod routes;
pub mod serve;
pub mod state;
pub mod view;

pub use forward::ClusterRoute;
pub use lane::DeliveryLane;
pub use router::router;
pub use state::{AppServices, AppState};
