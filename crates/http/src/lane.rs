//! The delivery lane: `GET`/`HEAD /i/{id}` and `/i/{id}/{options}`, the requests a CDN and
//! browsers send most, answered without the router.
//!
//! The router holds the same two routes and calls the same functions
//! ([`delivery::answer_original`], [`delivery::answer_variant`]); the lane only skips what
//! routing costs per request: matching, the URL parameters map, the extractors' copies of the
//! URI and headers, and the layered response futures. That was about 15% of a cached variant's
//! CPU time (perf on `bench/load.sh`'s request). [`observed`] gives lane answers what the
//! router's outer middleware gives routed ones: the panic guard, the duration histogram under
//! the route template, the server-error log.
//!
//! Only plain shapes take the lane: one or two non-empty segments after `/i/` and no
//! percent-escapes. Anything else (other methods, `%2C`, a third segment) goes to the router,
//! which decodes, routes and refuses exactly as before.

use std::net::SocketAddr;

use axum::http::request::Parts;
use axum::http::{Method, Request};
use axum::response::{IntoResponse, Response};

use crate::middleware::observe::{RouteMetrics, observed};
use crate::routes::delivery::{self, Asked};
use crate::state::AppState;

static ORIGINAL: RouteMetrics = RouteMetrics::new("/i/{id}");
static VARIANT: RouteMetrics = RouteMetrics::new("/i/{id}/{options}");

/// Answers delivery requests ahead of the router.
#[derive(Clone)]
pub struct DeliveryLane {
    state: AppState,
}

/// Which delivery route a path takes.
#[derive(Debug, PartialEq, Eq)]
enum Shape<'a> {
    Original(&'a str),
    Variant(&'a str, &'a str),
}

impl<'a> Shape<'a> {
    /// The route of `path`, when it is a plain delivery path the router would match the same
    /// way and decode to the same parameters.
    fn of(path: &'a str) -> Option<Shape<'a>> {
        let rest = path.strip_prefix("/i/")?;
        if rest.contains('%') {
            return None;
        }
        let mut segments = rest.split('/');
        let id = segments.next().filter(|s| !s.is_empty())?;
        match (segments.next(), segments.next()) {
            (None, _) => Some(Shape::Original(id)),
            (Some(options), None) if !options.is_empty() => Some(Shape::Variant(id, options)),
            _ => None,
        }
    }
}

impl DeliveryLane {
    pub fn new(state: AppState) -> Self {
        DeliveryLane { state }
    }

    /// True when the lane answers `request`; the router answers the rest.
    pub(crate) fn takes<B>(request: &Request<B>) -> bool {
        matches!(*request.method(), Method::GET | Method::HEAD)
            && Shape::of(request.uri().path()).is_some()
    }

    /// The answer to a request [`takes`](Self::takes) accepted. A body (GET has none worth
    /// reading) is not read, as the routed handlers do not read one.
    pub(crate) async fn answer(&self, request: Parts, peer: SocketAddr) -> Response {
        let asked = Asked {
            method: &request.method,
            uri: &request.uri,
            headers: &request.headers,
            peer: Some(peer),
        };
        let state = &self.state;
        match Shape::of(request.uri.path()) {
            Some(Shape::Variant(id, options)) => {
                observed(&VARIANT, asked.method, async {
                    delivery::answer_variant(state, id, options, &asked)
                        .await
                        .into_response()
                })
                .await
            }
            Some(Shape::Original(id)) => {
                observed(&ORIGINAL, asked.method, async {
                    delivery::answer_original(state, id, &asked)
                        .await
                        .into_response()
                })
                .await
            }
            // `takes` said yes: unreachable, and the router's answer if it ever is not.
            None => crate::error::error_response(imgd_core::Code::NotFound, "no such route".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_delivery_paths_take_the_lane() {
        assert_eq!(Shape::of("/i/abc"), Some(Shape::Original("abc")));
        assert_eq!(
            Shape::of("/i/abc/w=400,f=webp"),
            Some(Shape::Variant("abc", "w=400,f=webp"))
        );
        for routed in [
            "/i/",
            "/i//w=1",
            "/i/abc/",
            "/i/abc/w=1/more",
            "/i/abc/w=1%2Cf=webp",
            "/i",
            "/internal/v1/i/abc/w=1",
            "/v1/images",
        ] {
            assert_eq!(Shape::of(routed), None, "{routed}");
        }
    }

    #[test]
    fn only_get_and_head_take_the_lane() {
        let request = |method: Method| {
            Request::builder()
                .method(method)
                .uri("/i/abc/w=1")
                .body(())
                .unwrap()
        };
        assert!(DeliveryLane::takes(&request(Method::GET)));
        assert!(DeliveryLane::takes(&request(Method::HEAD)));
        assert!(!DeliveryLane::takes(&request(Method::POST)));
        assert!(!DeliveryLane::takes(&request(Method::DELETE)));
    }
}
