//! What handlers can reach. Trait objects and `Arc`s, not generics, so the router type stays
//! simple whatever adapters the composition root picked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use imgd_core::port::RateLimiter;
use imgd_core::service::Ports;
use imgd_core::service::auth::AuthService;
use imgd_core::service::catalog::CatalogService;
use imgd_core::service::delivery::DeliveryService;
use imgd_core::service::ingest::IngestService;
use imgd_core::service::tenancy::TenantService;

use crate::forward::ClusterRoute;
use crate::middleware::access::ApiLimits;
use metrics_exporter_prometheus::PrometheusHandle;

/// Shared state of the HTTP adapter: one `Arc`, because axum clones the state several times per
/// request and a struct of a dozen `Arc`s made those clones and drops 6% of a cached GET's CPU
/// (perf, bench/load.sh).
#[derive(Clone)]
pub struct AppState(Arc<AppServices>);

impl AppState {
    /// Wraps the services.
    pub fn new(services: AppServices) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppServices;

    fn deref(&self) -> &AppServices {
        &self.0
    }
}

/// The services handlers reach.
pub struct AppServices {
    pub ports: Ports,
    pub auth: Arc<AuthService>,
    pub ingest: Arc<IngestService>,
    pub catalog: Arc<CatalogService>,
    pub delivery: Arc<DeliveryService>,
    pub tenants: Arc<TenantService>,
    /// Who owns which variant, and how to reach them.
    pub cluster: ClusterRoute,
    /// Request allowances (Redis-backed in a cluster, so they hold across nodes).
    pub limiter: Arc<dyn RateLimiter>,
    /// The `/v1` rates per client address and per key.
    pub api_limits: ApiLimits,
    /// The header a trusted proxy puts the client address in (`x-forwarded-for`); `None` to
    /// use the peer address.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// Renders `/metrics`; `None` when metrics are off.
    pub metrics: Option<PrometheusHandle>,
    /// Prefix for absolute URLs in responses (`https://img.example.com`); empty for relative.
    pub public_url: Arc<str>,
    /// Set when shutdown begins, so `/readyz` sends load balancers elsewhere while in-flight
    /// requests finish.
    pub draining: Arc<AtomicBool>,
}

impl AppServices {
    /// True once graceful shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
