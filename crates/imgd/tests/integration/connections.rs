//! Connection hygiene over real sockets (127.0.0.1 only): half-sent heads, idle keep-alive
//! connections, oversized heads, stalled uploads and the connection cap, plus h2c still served.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{ADMIN_KEY, TestServer, error_code};

/// Room for a loaded two-core machine on top of each configured timeout.
const SLACK: Duration = Duration::from_secs(4);

async fn connect(server: &TestServer) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    TcpStream::connect(addr).await.unwrap()
}

/// How the server ended a connection.
#[derive(Debug, PartialEq)]
enum Closed {
    /// A FIN: `read` returned 0.
    Eof,
    /// A RST: `read` failed with ECONNRESET.
    Reset,
}

/// Reads until the server closes the connection, failing after `within`; returns what was
/// received and how it ended.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> (Vec<u8>, Closed) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) => return Closed::Eof,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Closed::Reset,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("still open after {within:?}"));
    (received, closed)
}

/// Reads one response with a `content-length` body; returns its head and body.
async fn read_response(tcp: &mut TcpStream) -> (String, Vec<u8>) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed mid-response");
        received.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(received[..head_end].to_vec()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("content-length")
        .trim()
        .parse()
        .unwrap();
    while received.len() < head_end + length {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed mid-body");
        received.extend_from_slice(&buf[..n]);
    }
    (head, received[head_end..].to_vec())
}

/// A complete keep-alive request for `/livez`, answered 200.
async fn served(tcp: &mut TcpStream) {
    tcp.write_all(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(tcp).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// Whether the connection is still open, without waiting.
fn still_open(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(tcp.try_read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

#[tokio::test]
async fn half_sent_heads_are_closed_after_the_header_timeout_while_others_are_served() {
    let timeout = Duration::from_secs(1);
    let server = TestServer::start_with(&[("IMGD_SERVER__HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        // Taken before connecting, so never later than the server's accept.
        let connecting = Instant::now();
        let mut tcp = connect(&server).await;
        tcp.write_all(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push((connecting, tcp));
    }
    let response = server.get("/livez").await;
    assert_eq!(
        response.status(),
        200,
        "a normal client is served meanwhile"
    );

    let closes = slow.into_iter().map(|(connected, mut tcp)| async move {
        let (received, closed) = read_until_closed(&mut tcp, timeout + SLACK).await;
        (connected.elapsed(), received, closed)
    });
    let results = futures::future::join_all(closes).await;
    let (mut eof, mut reset, mut latest) = (0, 0, Duration::ZERO);
    for (after, received, closed) in results {
        assert!(received.is_empty(), "closed without an answer");
        assert!(
            after >= timeout,
            "closed after {after:?}, before the timeout"
        );
        latest = latest.max(after);
        match closed {
            Closed::Eof => eof += 1,
            Closed::Reset => reset += 1,
        }
    }
    assert_eq!(eof + reset, 200);
    println!(
        "200 half-sent heads closed: {eof} with FIN, {reset} with RST, the last {latest:?} after connecting"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(&[
        ("IMGD_SERVER__HEADER_READ_TIMEOUT_SECS", "1"),
        ("IMGD_SERVER__IDLE_TIMEOUT_SECS", "3"),
    ])
    .await;
    let mut idle = connect(&server).await;
    // Taken before the request: the server's idle clock starts when it has written the answer,
    // which is after this and before the client has read it (measured after the read, the wait
    // came out at 2.998 s on a loaded machine).
    let idle_from = Instant::now();
    served(&mut idle).await;
    // A second connection is served, then begins its next head and stops half-way.
    let mut slow = connect(&server).await;
    served(&mut slow).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    slow.write_all(b"GET /livez HTTP/1.1\r\nHo").await.unwrap();

    // Twice the header timeout later: the begun head has been cut off, the idle connection
    // has not (idleness is not a slow head).
    tokio::time::sleep_until((idle_from + Duration::from_secs(2)).into()).await;
    let (received, closed) = read_until_closed(&mut slow, Duration::from_millis(200)).await;
    assert!(received.is_empty(), "closed without an answer ({closed:?})");
    assert!(still_open(&idle), "closed before the idle timeout");

    let (received, _) = read_until_closed(&mut idle, SLACK).await;
    let after = idle_from.elapsed();
    assert!(received.is_empty());
    assert!(after >= Duration::from_secs(3), "closed after {after:?}");
    println!("idle keep-alive connection closed after {after:?}");
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let server = TestServer::start().await; // max_header_bytes = 16384
    // A little over the limit: the JSON answer.
    let response = server
        .client
        .get(server.url("/livez"))
        .header("x-big", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (431, "headers_too_large".into())
    );

    // 64 KiB: past hyper's read buffer (twice the limit), hyper answers a bare 431 and closes
    // with the rest of the head unread.
    let mut tcp = connect(&server).await;
    let head = format!(
        "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    // The server may close before the whole head is written.
    let _ = tcp.write_all(head.as_bytes()).await;
    let (received, closed) = read_until_closed(&mut tcp, SLACK).await;
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text:?} ({closed:?})"
    );
    println!("64 KiB head: {:?} then {closed:?}", text.lines().next());
}

#[tokio::test]
async fn a_stalled_upload_gets_408_and_the_connection_closes() {
    let server = TestServer::start_with(&[("IMGD_SERVER__BODY_TIMEOUT_SECS", "1")]).await;
    let mut tcp = connect(&server).await;
    let started = Instant::now();
    let head = format!(
        "POST /v1/images HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(b"0123456789").await.unwrap();

    let (received, closed) = read_until_closed(&mut tcp, Duration::from_secs(1) + SLACK).await;
    let after = started.elapsed();
    assert!(after >= Duration::from_secs(1), "ended after {after:?}");
    let text = String::from_utf8_lossy(&received);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(
        head.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("\r\nconnection: close"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["code"], "request_timeout");
    println!("stalled upload: 408 after {after:?}, then {closed:?}");
    assert!(
        server.files_under("tmp/uploads").is_empty(),
        "the partial upload is not left in staging"
    );
}

#[tokio::test]
async fn past_max_connections_a_connection_gets_503_and_a_freed_slot_serves_again() {
    let server = TestServer::start_with(&[("IMGD_SERVER__MAX_CONNECTIONS", "5")]).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut tcp = connect(&server).await;
        served(&mut tcp).await;
        held.push(tcp);
    }

    // The sixth: a canned 503, then the server closes.
    let t = Instant::now();
    let mut sixth = connect(&server).await;
    let (received, closed) = read_until_closed(&mut sixth, SLACK).await;
    println!("silent sixth connection answered after {:?}", t.elapsed());
    let text = String::from_utf8_lossy(&received);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nretry-after: 1\r\n"), "{head}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["code"], "overloaded");
    assert_eq!(closed, Closed::Eof);
    // A real client that sends its request at once reads the same answer.
    let response = reqwest::Client::new()
        .get(server.url("/livez"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(error_code(response).await, (503, "overloaded".into()));

    drop(held);
    let freed = Instant::now();
    loop {
        let response = reqwest::Client::new()
            .get(server.url("/livez"))
            .send()
            .await;
        if response.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            freed.elapsed() < SLACK,
            "no slot freed after closing the five"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn h2c_is_served() {
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client.get(server.url("/livez")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    // Through the `/v1` gate too, which reads the peer address for per-client limits.
    let response = client
        .get(server.url("/v1/images"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
