//! Connection deadlines: how long a connection may take to send a request head, sit idle between
//! requests, or make no progress while a response is sent. One [`Activity`] per connection, fed
//! by [`WatchedIo`] (bytes moved) and by the request service ([`Activity::request_started`]).
//!
//! hyper's own `header_read_timeout` stays off: it also runs while a keep-alive connection waits
//! for its next request, which would make the idle timeout the header timeout, and it does not
//! cover the protocol sniffing that happens before hyper sees the connection. The deadlines
//! follow Go's `net/http`: the first request head must arrive within the header timeout of the
//! accept; after a response, the connection may idle for the idle timeout, and once the next
//! head begins it has the header timeout to finish it.
//!
//! Not here: request bodies ([`super::body`]), which are timed per request.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a connection is doing, and since when; decides its deadline.
pub(super) struct Activity {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<State>,
    /// Woken when the deadline may have moved earlier (a head began, the last request ended).
    changed: Notify,
}

struct State {
    accepted: Instant,
    /// The last time bytes were read or written.
    last_io: Instant,
    /// When the connection last became idle: no handler running, no response being sent.
    idle_since: Instant,
    /// When the first byte of the next request head arrived while idle (HTTP/1 only).
    head_started: Option<Instant>,
    /// Handlers running (several at once over HTTP/2).
    handling: usize,
    /// Responses handlers returned whose bodies are still being sent.
    sending: usize,
    /// A request head has arrived on this connection.
    served: bool,
    /// HTTP/2: bytes read while idle are frames (pings, window updates), not a request head.
    h2: bool,
}

impl Activity {
    pub(super) fn new(header_read_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Activity {
            header_read_timeout,
            idle_timeout,
            state: Mutex::new(State {
                accepted: now,
                last_io: now,
                idle_since: now,
                head_started: None,
                handling: 0,
                sending: 0,
                served: false,
                h2: false,
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection is to be closed, given what it is doing; `None` while a handler runs
    /// (a handler's own limits apply then: body timeouts, render budget).
    fn deadline(&self) -> Option<Instant> {
        let s = self.state();
        if s.handling > 0 {
            None
        } else if s.sending > 0 {
            // A reader that takes nothing for this long is not coming back.
            Some(s.last_io + self.idle_timeout)
        } else if !s.served {
            Some(s.accepted + self.header_read_timeout)
        } else {
            match s.head_started {
                Some(started) if !s.h2 => Some(started + self.header_read_timeout),
                _ => Some(s.idle_since + self.idle_timeout),
            }
        }
    }

    /// Resolves once the connection is past its deadline.
    pub(super) async fn expired(&self) {
        loop {
            let changed = self.changed.notified();
            match self.deadline() {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = changed => {}
                },
                None => changed.await,
            }
        }
    }

    fn read(&self) {
        let now = Instant::now();
        let mut s = self.state();
        s.last_io = now;
        if s.served && s.handling == 0 && s.sending == 0 && s.head_started.is_none() {
            s.head_started = Some(now);
            drop(s);
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.state().last_io = Instant::now();
    }

    /// A request head has arrived; the returned guard marks its handler as running.
    pub(super) fn request_started(self: &Arc<Self>, h2: bool) -> Handling {
        let mut s = self.state();
        s.served = true;
        s.h2 |= h2;
        s.handling += 1;
        s.head_started = None;
        Handling(self.clone())
    }

    /// Counts down `handling` or `sending`; the last one out starts the idle clock.
    fn finish(&self, count: fn(&mut State) -> &mut usize) {
        let mut s = self.state();
        let n = count(&mut s);
        *n = n.saturating_sub(1);
        if s.handling == 0 && s.sending == 0 {
            s.idle_since = Instant::now();
            s.head_started = None;
        }
        drop(s);
        self.changed.notify_one();
    }
}

/// A running handler; dropped when it returns or is cancelled.
pub(super) struct Handling(Arc<Activity>);

impl Handling {
    /// The handler returned: its response body is now being sent until the guard drops.
    pub(super) fn respond(self) -> Sending {
        self.0.state().sending += 1;
        Sending(self.0.clone())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.finish(|s| &mut s.handling);
    }
}

/// A response body being sent; hyper drops it when the body is done or the connection is gone.
pub(super) struct Sending(Arc<Activity>);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.finish(|s| &mut s.sending);
    }
}

/// The socket, reporting each read and write to the connection's [`Activity`].
pub(super) struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> WatchedIo<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>) -> Self {
        WatchedIo { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    async fn expires_after(activity: &Activity) -> Duration {
        let started = Instant::now();
        activity.expired().await;
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_head_is_due_within_the_header_timeout_of_the_accept() {
        let activity = Activity::new(HEAD, IDLE);
        activity.read();
        assert_eq!(expires_after(&activity).await, HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn a_keep_alive_connection_idles_for_the_idle_timeout_then_has_the_header_timeout() {
        let activity = Activity::new(HEAD, IDLE);
        activity.request_started(false).respond();
        // Idle: only the idle timeout applies, not the (shorter) header timeout.
        assert_eq!(expires_after(&activity).await, IDLE);

        let activity = Activity::new(HEAD, IDLE);
        activity.request_started(false).respond();
        tokio::time::sleep(Duration::from_secs(30)).await;
        activity.read(); // the next head begins
        assert_eq!(expires_after(&activity).await, HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_while_idle_do_not_start_a_head() {
        let activity = Activity::new(HEAD, IDLE);
        activity.request_started(true).respond();
        tokio::time::sleep(Duration::from_secs(30)).await;
        activity.read();
        assert_eq!(
            expires_after(&activity).await,
            IDLE - Duration::from_secs(30)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_handler_holds_the_connection_and_a_stuck_send_does_not() {
        let activity = Activity::new(HEAD, IDLE);
        let handling = activity.request_started(false);
        let watch = activity.clone();
        let waiter = tokio::spawn(async move { expires_after(&watch).await });
        tokio::time::sleep(IDLE * 3).await;
        assert!(!waiter.is_finished(), "no deadline while the handler runs");
        let sending = handling.respond();
        activity.wrote();
        tokio::time::sleep(Duration::from_secs(20)).await;
        activity.wrote(); // progress pushes the deadline
        assert_eq!(
            waiter.await.unwrap(),
            IDLE * 3 + Duration::from_secs(20) + IDLE
        );
        drop(sending);
    }
}
