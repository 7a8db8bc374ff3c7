//! Serving the router over TCP, with connection hygiene. `axum::serve` runs hyper without a
//! timer, so without any of the limits below: this is our own accept loop on hyper-util.
//!
//! - [`serve`]: accept (TCP_NODELAY), cap open connections, serve HTTP/1.1 and h2c on each; on
//!   shutdown stop accepting, let connections finish within the grace period, then drop them.
//! - [`Handler`]: what answers: the router, behind the delivery lane ([`crate::lane`]).
//! - `watchdog`: per-connection deadlines: the request head, keep-alive idleness, a stuck send.
//! - [`body`]: per-request body deadlines: a stall or a trickle ends the request with 408.
//!
//! Request-level limits (upload size, rate limits, render budget) are the router's, not this
//! module's.

pub mod body;
mod watchdog;

use imgd_core::Code;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use self::body::{BodyLimits, TimedBody};
use self::watchdog::{Activity, Handling, Sending, WatchedIo};
use crate::error::{ErrorBody, error_response};
use crate::lane::DeliveryLane;

/// How much each connection may take, from `[server]` in the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// A connection's first request head must arrive within this of the accept, and a later
    /// head within this of its first byte.
    pub header_read_timeout: Duration,
    /// How long a connection may wait for its next request, or for a reader to take a response.
    pub idle_timeout: Duration,
    /// How slowly a request body may arrive.
    pub body: BodyLimits,
    /// The largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
    /// Open connections; one more gets a canned 503 `overloaded` and is closed.
    pub max_connections: usize,
}

/// Refused connections answered at once; more are closed without an answer.
const REFUSALS_AT_ONCE: usize = 64;
/// How long a refused connection's answer waits for the request to begin.
const REFUSAL_WAIT: Duration = Duration::from_millis(500);
/// The longest a refused connection is kept to deliver its answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// What answers requests: the router, behind the delivery lane when there is one.
#[derive(Clone)]
pub struct Handler {
    router: Router,
    lane: Option<DeliveryLane>,
}

impl From<Router> for Handler {
    fn from(router: Router) -> Self {
        Handler { router, lane: None }
    }
}

impl Handler {
    /// `lane` answers the delivery requests it takes before the router sees them.
    pub fn with_lane(mut self, lane: DeliveryLane) -> Self {
        self.lane = Some(lane);
        self
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains: no new connections,
/// open ones finish their requests (idle ones close at once) for up to `grace`, then are
/// dropped.
pub async fn serve(
    listener: TcpListener,
    handler: impl Into<Handler>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let handler = handler.into();
    let builder = Arc::new(builder(&limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let overloaded = overloaded_answer();
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let connection = Connection {
                            peer,
                            handler: handler.clone(),
                            limits,
                            stopping: stopping.clone(),
                            _slot: slot,
                        };
                        connections.spawn(connection.run(tcp, builder.clone()));
                    }
                    Err(_) => refuse(tcp, &refusals, overloaded.clone()),
                }
            }
        }
    }
    drop(listener);
    stop.send_replace(());
    tracing::info!(open = connections.len(), "draining connections");
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            ?grace,
            open = connections.len(),
            "grace period over, dropping unfinished requests"
        );
    }
    connections.shutdown().await;
}

/// hyper, configured from the limits.
fn builder(limits: &ConnectionLimits) -> Builder<TokioExecutor> {
    // hyper answers a head that does not fit its read buffer with a bare 431 before any service
    // runs. At twice the limit, heads a little over it reach `head_size` and get the JSON 431;
    // the buffer also bounds each body read, and hyper wants at least 8 KiB.
    let hard_limit = limits.max_header_bytes.saturating_mul(2).max(8192);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog times request heads; hyper's timer would also cut keep-alive idleness short.
        .header_read_timeout(None)
        .max_buf_size(hard_limit);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(hard_limit).unwrap_or(u32::MAX));
    builder
}

/// A failed `accept`: the peer's problem (it left before we took it) or ours (out of file
/// descriptors), which a busy loop would only make worse.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::error!(error = %e, "accept failed, pausing for a second");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Answers a connection past `max_connections` with a canned 503 and closes it. The answer
/// is one small write on a fresh socket, so it is cheap; but each costs a task for up to
/// `REFUSAL_LINGER`, so past `REFUSALS_AT_ONCE` of them a flood is closed at once, unanswered:
/// answering it would cost more than the answer is worth.
fn refuse(mut tcp: TcpStream, refusals: &Arc<Semaphore>, answer: Bytes) {
    metrics::counter!("imgd_connections_refused_total").increment(1);
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            // An HTTP client takes a response that arrives before its request for a protocol
            // error (hyper's "unexpected message"), so answer once the request has begun.
            let mut sink = [0u8; 2048];
            let _ = tokio::time::timeout(REFUSAL_WAIT, tcp.read(&mut sink)).await;
            tcp.write_all(&answer).await?;
            tcp.shutdown().await?;
            // Read the rest of what the client sent: closing with unread bytes resets the
            // connection, and the reset can destroy the answer before the client has read it.
            while tcp.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// The whole HTTP/1.1 response a refused connection gets.
fn overloaded_answer() -> Bytes {
    let body = serde_json::to_string(&ErrorBody {
        code: Code::Overloaded.as_str(),
        message: "too many open connections, retry later".into(),
    })
    .unwrap_or_default();
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// One accepted connection, holding its slot until it ends.
struct Connection {
    peer: SocketAddr,
    handler: Handler,
    limits: ConnectionLimits,
    stopping: watch::Receiver<()>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves the connection until the client or hyper closes it, or the watchdog does.
    async fn run(mut self, tcp: TcpStream, builder: Arc<Builder<TokioExecutor>>) {
        let limits = &self.limits;
        let activity = Activity::new(limits.header_read_timeout, limits.idle_timeout);
        let service = RequestService {
            handler: self.handler.clone(),
            peer: self.peer,
            activity: activity.clone(),
            limits: *limits,
        };
        let io = TokioIo::new(WatchedIo::new(tcp, activity.clone()));
        let mut conn = pin!(builder.serve_connection(io, service));
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.peer, error = %e, "connection failed");
                    }
                    return;
                }
                () = activity.expired() => {
                    tracing::debug!(peer = %self.peer, "closing a connection past its deadline");
                    return;
                }
                _ = self.stopping.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Each request of a connection: the head-size check, the delivery lane or else body deadlines,
/// `ConnectInfo` and the router, and the watchdog's bookkeeping.
#[derive(Clone)]
struct RequestService {
    handler: Handler,
    peer: SocketAddr,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
}

impl hyper::service::Service<Request<Incoming>> for RequestService {
    type Response = Response<SentBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let h1 = request.version() < Version::HTTP_2;
        let handling: Handling = self.activity.request_started(!h1);
        let max_header_bytes = self.limits.max_header_bytes;
        let oversized = head_size(&request) > max_header_bytes;
        let head = request.method() == Method::HEAD;
        let peer = self.peer;
        if !oversized
            && let Some(lane) = &self.handler.lane
            && DeliveryLane::takes(&request)
        {
            // No body deadline, `ConnectInfo` or router: the lane reads no body and is handed
            // the peer.
            let lane = lane.clone();
            let (parts, _body) = request.into_parts();
            return Box::pin(async move {
                let response = lane.answer(parts, peer).await;
                Ok(sent(response, head, handling.respond()))
            });
        }
        let expired = Arc::new(AtomicBool::new(false));
        let body_limits = self.limits.body;
        let timed = expired.clone();
        let mut request = request.map(|body| Body::new(TimedBody::new(body, body_limits, timed)));
        // What `into_make_service_with_connect_info` would add: per-client limits read it.
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = self.handler.router.clone();
        Box::pin(async move {
            let response = if oversized {
                refusal(
                    h1,
                    Code::HeadersTooLarge,
                    format!("the request head is larger than {max_header_bytes} bytes"),
                )
            } else {
                let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
                // The handler saw the body fail and answered as it could (400, or anything):
                // the client was too slow, and that is the answer.
                if expired.load(Ordering::SeqCst) {
                    tracing::debug!(%peer, "request body too slow, answering 408");
                    refusal(
                        h1,
                        Code::RequestTimeout,
                        "the request body stalled or arrived too slowly".into(),
                    )
                } else {
                    response
                }
            };
            Ok(sent(response, head, handling.respond()))
        })
    }
}

/// The response as hyper sends it, counted as sending until hyper is done with its body. Both
/// paths (lane and router) end here, so both get the same last touches: an answer to `HEAD`
/// keeps its length and loses its body (hyper writes none on HTTP/1 but would send it as DATA
/// on HTTP/2, which clients reject), and a 304 names no length (RFC 9110 8.6: it would be the
/// 200's).
fn sent(mut response: Response<Body>, head: bool, sending: Sending) -> Response<SentBody> {
    if response.status() == StatusCode::NOT_MODIFIED {
        response.headers_mut().remove(header::CONTENT_LENGTH);
    } else if head
        && !response.headers().contains_key(header::CONTENT_LENGTH)
        && let Some(len) = hyper::body::Body::size_hint(response.body()).exact()
    {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if head {
        *response.body_mut() = Body::empty();
    }
    response.map(|body| SentBody {
        inner: body,
        _sending: sending,
    })
}

/// An error answer after which an HTTP/1 connection closes: the request body, if any, is
/// left unread.
fn refusal(h1: bool, code: Code, message: String) -> Response<Body> {
    let mut response = error_response(code, message);
    if h1 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// About the size of a request head on the wire (HTTP/2: decompressed): the request line and
/// each header line.
fn head_size<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    let line = request.method().as_str().len()
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len())
        + "  HTTP/1.1\r\n".len();
    request.headers().iter().fold(line, |size, (name, value)| {
        size + name.as_str().len() + value.len() + ": \r\n".len()
    })
}

/// A response body that keeps the connection counted as sending until hyper is done with it.
struct SentBody {
    inner: Body,
    _sending: Sending,
}

impl hyper::body::Body for SentBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn json(response: Response<Body>) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The codes are a public contract, like those in `error.rs`.
    #[tokio::test]
    async fn errors_born_here_have_stable_codes_and_the_json_shape() {
        let timeout = refusal(true, Code::RequestTimeout, "x".into());
        assert_eq!(timeout.status(), 408);
        assert_eq!(timeout.headers()[header::CONNECTION], "close");
        assert_eq!(
            json(timeout).await,
            serde_json::json!({"code": "request_timeout", "message": "x"})
        );
        let too_large = refusal(false, Code::HeadersTooLarge, "y".into());
        assert_eq!(too_large.status(), 431);
        assert!(
            !too_large.headers().contains_key(header::CONNECTION),
            "HTTP/2 has no Connection header"
        );
        assert_eq!(json(too_large).await["code"], "headers_too_large");

        let answer = overloaded_answer();
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("\r\nretry-after: 1\r\n") && head.contains("\r\nconnection: close"));
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "overloaded");
    }

    /// Serves `router` on 127.0.0.1 with the default limits; the sender starts the drain.
    async fn spawn(
        router: Router,
        grace: Duration,
    ) -> (
        String,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body: BodyLimits {
                timeout: Duration::from_secs(30),
                min_bytes_per_sec: 1024,
            },
            max_header_bytes: 16384,
            max_connections: 16,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let server = tokio::spawn(serve(listener, router, limits, shutdown, grace));
        (base, stop, server)
    }

    #[tokio::test]
    async fn handlers_see_the_peer_address_and_in_flight_requests_finish_on_shutdown() {
        let router = Router::new().route(
            "/",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                peer.to_string()
            }),
        );
        let (base, stop, server) = spawn(router, Duration::from_secs(10)).await;
        let request = tokio::spawn(reqwest::get(base.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().starts_with("127.0.0.1:"));
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns once drained")
            .unwrap();
        assert!(reqwest::get(base).await.is_err(), "no longer accepting");
    }

    #[tokio::test]
    async fn requests_still_running_after_the_grace_period_are_dropped() {
        let router = Router::new().route(
            "/",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        );
        let (base, stop, server) = spawn(router, Duration::from_millis(200)).await;
        let request = tokio::spawn(reqwest::get(base));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns after the grace period")
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            request.await.unwrap().is_err(),
            "the connection was dropped"
        );
    }

    #[test]
    fn head_size_counts_the_request_line_and_header_lines() {
        let request = Request::get("/i/abc?x=1")
            .header("host", "example")
            .header("x-long", "a".repeat(100))
            .body(())
            .unwrap();
        // "GET /i/abc?x=1 HTTP/1.1\r\n" + "host: example\r\n" + "x-long: a..a\r\n"
        assert_eq!(head_size(&request), 25 + 15 + 110);
    }
}
