//! Every request, observed once: a panic becomes the JSON 500 (and the connection lives on),
//! `http_server_request_duration_seconds` gets one observation by method, route template
//! (`/i/{id}/{options}`, never the raw path, which would give every image its own series) and
//! status, and a 5xx is logged.
//!
//! One hand-written layer instead of tower-http's catch-panic and trace layers plus a metrics
//! middleware: each of those wrapped the response future again, and the three together cost
//! about 5% of a cached variant's CPU time (perf, `bench/load.sh`'s request).
//!
//! - [`track`]: the router's outermost middleware (route template from `MatchedPath`).
//! - [`observed`] with a [`RouteMetrics`]: the same, for the delivery lane, whose routes are
//!   known in advance and whose histogram handles are registered once, not looked up per
//!   request.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::FutureExt;
use imgd_core::Code;
use metrics::Histogram;

use crate::error::error_response;

const DURATION: &str = "http_server_request_duration_seconds";

/// The router's outermost middleware.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = answer_or_500(next.run(request)).await;
    let status = response.status();
    log_answer(&method, &route, status, started);
    metrics::histogram!(DURATION, "method" => method_label(&method), "route" => route, "status" => status_label(status))
        .record(started.elapsed().as_secs_f64());
    response
}

/// Histogram handles of one route template, registered on first use of each (method, status).
pub struct RouteMetrics {
    route: &'static str,
    handles: [[OnceLock<Histogram>; STATUS_LABELS.len()]; METHOD_LABELS.len()],
}

impl RouteMetrics {
    pub const fn new(route: &'static str) -> Self {
        RouteMetrics {
            route,
            handles: [const { [const { OnceLock::new() }; STATUS_LABELS.len()] };
                METHOD_LABELS.len()],
        }
    }

    fn record(&self, method: &Method, status: StatusCode, seconds: f64) {
        let (m, s) = (method_index(method), status_index(status));
        self.handles[m][s]
            .get_or_init(|| {
                metrics::histogram!(DURATION, "method" => METHOD_LABELS[m], "route" => self.route, "status" => STATUS_LABELS[s])
            })
            .record(seconds);
    }
}

/// Runs `answer` as [`track`] runs a routed request, for a route known in advance.
pub async fn observed(
    metrics: &RouteMetrics,
    method: &Method,
    answer: impl Future<Output = Response>,
) -> Response {
    let started = Instant::now();
    let response = answer_or_500(answer).await;
    metrics.record(method, response.status(), started.elapsed().as_secs_f64());
    log_answer(method, metrics.route, response.status(), started);
    response
}

/// The answer, or the JSON 500 if producing it panicked.
async fn answer_or_500(answer: impl Future<Output = Response>) -> Response {
    AssertUnwindSafe(answer)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            tracing::error!(panic = panic_message(&*panic), "a request handler panicked");
            error_response(Code::Internal, "internal error".into())
        })
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

/// Server errors at `error`; everything at `debug` (off by default: a disabled event costs a
/// branch).
fn log_answer(method: &Method, route: &str, status: StatusCode, started: Instant) {
    if status.is_server_error() {
        tracing::error!(%method, route, status = status.as_u16(), latency = ?started.elapsed(), "server error");
    } else {
        tracing::debug!(%method, route, status = status.as_u16(), latency = ?started.elapsed(), "answered");
    }
}

/// Static labels for the methods imgd routes, so the hot path does not allocate.
const METHOD_LABELS: [&str; 8] = [
    "GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "OTHER",
];

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::PUT => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

fn method_label(method: &Method) -> &'static str {
    METHOD_LABELS[method_index(method)]
}

/// Static labels for the statuses imgd answers; anything else by class.
const STATUS_LABELS: [&str; 24] = [
    "200", "201", "204", "206", "207", "304", "400", "401", "403", "404", "405", "408", "413",
    "415", "416", "422", "429", "431", "500", "503", "2xx", "3xx", "4xx", "5xx",
];

fn status_index(status: StatusCode) -> usize {
    match status.as_u16() {
        200 => 0,
        201 => 1,
        204 => 2,
        206 => 3,
        207 => 4,
        304 => 5,
        400 => 6,
        401 => 7,
        403 => 8,
        404 => 9,
        405 => 10,
        408 => 11,
        413 => 12,
        415 => 13,
        416 => 14,
        422 => 15,
        429 => 16,
        431 => 17,
        500 => 18,
        503 => 19,
        other if other < 300 => 20,
        other if other < 400 => 21,
        other if other < 500 => 22,
        _ => 23,
    }
}

fn status_label(status: StatusCode) -> &'static str {
    STATUS_LABELS[status_index(status)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_get_their_own_label_or_their_class() {
        let label = |code| status_label(StatusCode::from_u16(code).unwrap());
        assert_eq!(label(200), "200");
        assert_eq!(label(304), "304");
        assert_eq!(label(431), "431");
        assert_eq!(label(503), "503");
        assert_eq!(label(202), "2xx");
        assert_eq!(label(302), "3xx");
        assert_eq!(label(418), "4xx");
        assert_eq!(label(502), "5xx");
        for (index, label) in STATUS_LABELS[..20].iter().enumerate() {
            let status = StatusCode::from_u16(label.parse().unwrap()).unwrap();
            assert_eq!(status_index(status), index, "{label}");
        }
        assert_eq!(method_label(&Method::HEAD), "HEAD");
        assert_eq!(method_label(&Method::TRACE), "OTHER");
    }

    #[tokio::test]
    async fn a_panic_is_the_json_500_and_is_counted() {
        static ROUTE: RouteMetrics = RouteMetrics::new("/test/panic");
        let response = observed(&ROUTE, &Method::GET, async { panic!("boom") }).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal");
        assert!(
            ROUTE.handles[0][status_index(StatusCode::INTERNAL_SERVER_ERROR)]
                .get()
                .is_some(),
            "the 500 registered its histogram"
        );
    }
}
