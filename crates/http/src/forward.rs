//! Owner routing: a node asked for a variant that placement gives to another node forwards the
//! request to that owner's internal endpoint and streams the answer back, so each variant is
//! rendered and kept hot on one node. If the owner cannot be reached within the forward timeout
//! (dead, partitioned), does not answer within a render's time budget, or fails with a 5xx, the
//! node serves the variant itself: the cluster-wide render lock still makes that render happen
//! once. Connecting is what detects a dead owner; a live owner busy rendering is waited for,
//! since falling back would only queue on the same lock.
//!
//! Peers authenticate with the shared cluster secret as a bearer token; a forwarded request is
//! never forwarded again, so nodes that briefly disagree about membership cannot loop.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use axum::response::Response;
use http_body_util::{BodyExt, Empty};
use hyper::body::Body as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use imgd_core::id::VariantKey;
use imgd_core::port::{Member, Placement};

/// Request headers that change the owner's answer and so travel with a forward.
const FORWARDED_REQUEST_HEADERS: &[HeaderName] = &[
    header::ACCEPT,
    header::RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_RANGE,
];

/// The client's address as the node it reached saw it, so the owner charges the right
/// per-client render budget. Trusted only on the authenticated internal route.
pub const CLIENT_HEADER: &str = "x-imgd-client";

/// Response headers relayed from the owner; hop-by-hop ones stay behind.
const RELAYED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    "cache-control",
    "vary",
    "x-content-type-options",
    "x-imgd-cache",
    "x-imgd-node",
    "x-imgd-animation",
];

/// Bodies up to this size are read whole before relaying; larger ones stream through.
const RELAY_WHOLE_BYTES: u64 = 256 * 1024;

/// Why a forward did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("the owner did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the owner could not be reached: {0}")]
    Unreachable(String),
    #[error("the owner failed with {0}")]
    OwnerFailed(u16),
}

/// This node's place in the cluster, as the HTTP layer needs it.
pub struct ClusterRoute {
    node_id: Arc<str>,
    /// `node_id` as a header value, built once: it goes on every variant response.
    node_header: HeaderValue,
    placement: Arc<dyn Placement>,
    /// The `Authorization` header peers send, built once, and the digest of the cluster secret
    /// peers are checked against; `None` when the node runs alone (no internal endpoint).
    secret: Option<(HeaderValue, blake3::Hash)>,
    /// hyper's pooled HTTP/1 client, without reqwest's layer over it: a forward is a GET with
    /// a few headers to a known peer, and per request reqwest parsed a URL, built a header map
    /// and boxed its body and futures.
    client: Client<HttpConnector, Empty<Bytes>>,
    /// Longest wait for the owner's response headers: its render budget plus a margin.
    answer_timeout: Duration,
    forwarded: metrics::Counter,
    fell_back: metrics::Counter,
}

impl ClusterRoute {
    /// Routing for node `node_id` over `placement`, authenticating peers with `secret`;
    /// `connect_timeout` decides that an owner is gone, `answer_timeout` that it is stuck.
    pub fn new(
        node_id: &str,
        placement: Arc<dyn Placement>,
        secret: Option<&str>,
        connect_timeout: Duration,
        answer_timeout: Duration,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // The idle timeout needs a timer to run on.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let secret = secret.map(|s| {
            let mut bearer = HeaderValue::from_str(&format!("Bearer {s}"))
                .unwrap_or(HeaderValue::from_static("Bearer -"));
            bearer.set_sensitive(true);
            (bearer, blake3::hash(s.as_bytes()))
        });
        ClusterRoute {
            node_id: node_id.into(),
            node_header: HeaderValue::from_str(node_id)
                .unwrap_or(HeaderValue::from_static("unnamed")),
            placement,
            secret,
            client,
            answer_timeout,
            forwarded: metrics::counter!("imgd_forwards_total", "outcome" => "forwarded"),
            fell_back: metrics::counter!("imgd_forwards_total", "outcome" => "rendered_locally"),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node's id as a header value (`x-imgd-node`, `x-imgd-forwarded-by`).
    pub fn node_header(&self) -> &HeaderValue {
        &self.node_header
    }

    /// The placement in use (for `/readyz`).
    pub fn placement(&self) -> &dyn Placement {
        self.placement.as_ref()
    }

    /// The owner of `key` when it is another node.
    pub fn owner_elsewhere(&self, key: &VariantKey) -> Option<Member> {
        self.secret.as_ref()?;
        self.placement
            .owner(key.as_str())
            .filter(|owner| owner.id != self.node_id)
    }

    /// True when the request carries the cluster secret (compared in constant time, as
    /// digests).
    pub fn is_peer(&self, headers: &HeaderMap) -> bool {
        let Some((_, expected)) = &self.secret else {
            return false;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| blake3::hash(token.as_bytes()) == *expected)
    }

    /// Asks `owner` for the variant on behalf of `client` and relays its answer (status,
    /// caching headers, streamed body). Errors mean "serve it yourself".
    pub async fn forward(
        &self,
        owner: &Member,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
        client: Option<&str>,
    ) -> Result<Response, ForwardError> {
        let outcome = self.try_forward(owner, path, method, headers, client).await;
        match &outcome {
            Ok(_) => self.forwarded.increment(1),
            Err(_) => self.fell_back.increment(1),
        }
        outcome
    }

    async fn try_forward(
        &self,
        owner: &Member,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
        client: Option<&str>,
    ) -> Result<Response, ForwardError> {
        let (bearer, _) = self.secret.as_ref().expect("forwarding needs a secret");
        let uri = Uri::try_from(format!("{}/internal/v1/i/{path}", owner.url))
            .map_err(|e| ForwardError::Unreachable(format!("owner URL: {e}")))?;
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::AUTHORIZATION, bearer.clone());
        if let Some(client) = client {
            request = request.header(CLIENT_HEADER, client);
        }
        for name in FORWARDED_REQUEST_HEADERS {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value.clone());
            }
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| ForwardError::Unreachable(e.to_string()))?;
        let answer = tokio::time::timeout(self.answer_timeout, self.client.request(request))
            .await
            .map_err(|_| ForwardError::Timeout(self.answer_timeout))?
            .map_err(|e| ForwardError::Unreachable(e.to_string()))?;
        let status = answer.status();
        if status.is_server_error() {
            return Err(ForwardError::OwnerFailed(status.as_u16()));
        }
        let mut response = Response::builder().status(status);
        for name in RELAYED_RESPONSE_HEADERS {
            if let Some(value) = answer.headers().get(*name) {
                response = response.header(*name, value.clone());
            }
        }
        let response = response.header("x-imgd-forwarded-by", self.node_header.clone());
        // Small bodies (most variants) are relayed whole: one write instead of a polled stream,
        // the same trade delivery makes for in-memory variants. Large ones stream.
        let body = answer.into_body();
        let body = match body.size_hint().exact() {
            Some(len) if len <= RELAY_WHOLE_BYTES => Body::from(
                body.collect()
                    .await
                    .map_err(|e| ForwardError::Unreachable(e.to_string()))?
                    .to_bytes(),
            ),
            _ => Body::new(body),
        };
        Ok(response.body(body).expect("relayed headers are valid"))
    }
}
