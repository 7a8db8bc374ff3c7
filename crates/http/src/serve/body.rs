//! Request-body deadlines. A body that delivers nothing for `timeout`, or less than
//! `min_bytes_per_sec` over each `timeout` of waiting, ends with a [`BodyTimeout`] error; the
//! request then answers 408 `request_timeout` (see `super::RequestService`).
//!
//! Only time spent waiting for the client counts. While the handler is busy with a chunk
//! (writing it to disk, hashing), the client is held back by flow control and is not to blame,
//! and a chunk that was already buffered when the handler asks again is never late.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// How slowly a request body may arrive.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// The longest wait for the next chunk; also the window the minimum rate is measured over.
    pub timeout: Duration,
    /// Bytes per second of waiting a body must average over each window; 0: no minimum.
    pub min_bytes_per_sec: u64,
}

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
pub enum BodyTimeout {
    #[error("the request body stalled")]
    Stalled,
    #[error("the request body arrived slower than the minimum rate")]
    TooSlow,
}

/// A request body that fails with [`BodyTimeout`] when the client stalls or trickles.
pub(super) struct TimedBody<B> {
    inner: B,
    limits: BodyLimits,
    /// Set on failure, so the request's answer becomes 408 whatever the handler made of the error.
    expired: Arc<AtomicBool>,
    /// Created on the first wait: most bodies (GETs, small JSON) never need one.
    timer: Option<Pin<Box<Sleep>>>,
    /// Start of the current wait for data.
    wait_started: Option<Instant>,
    /// Start of the part of the current wait that counts in the current window.
    window_mark: Option<Instant>,
    /// Waiting time of finished waits in the current window, and the bytes received in it.
    window_waited: Duration,
    window_bytes: u64,
}

impl<B> TimedBody<B> {
    pub(super) fn new(inner: B, limits: BodyLimits, expired: Arc<AtomicBool>) -> Self {
        TimedBody {
            inner,
            limits,
            expired,
            timer: None,
            wait_started: None,
            window_mark: None,
            window_waited: Duration::ZERO,
            window_bytes: 0,
        }
    }

    fn waited(&self, now: Instant) -> Duration {
        self.window_waited + self.window_mark.map_or(Duration::ZERO, |mark| now - mark)
    }

    /// Judges a window once it holds `timeout` of waiting, then starts the next one.
    fn check_rate(&mut self, now: Instant) -> Result<(), BodyTimeout> {
        let waited = self.waited(now);
        if self.limits.min_bytes_per_sec == 0 || waited < self.limits.timeout {
            return Ok(());
        }
        if (self.window_bytes as f64) < self.limits.min_bytes_per_sec as f64 * waited.as_secs_f64()
        {
            return Err(BodyTimeout::TooSlow);
        }
        self.window_waited = Duration::ZERO;
        self.window_bytes = 0;
        if self.window_mark.is_some() {
            self.window_mark = Some(now);
        }
        Ok(())
    }

    /// The next deadline while waiting, or the error if one has passed.
    fn check_wait(&mut self, now: Instant) -> Result<Instant, BodyTimeout> {
        let timeout = self.limits.timeout;
        let stall_at = *self.wait_started.get_or_insert(now) + timeout;
        if now >= stall_at {
            return Err(BodyTimeout::Stalled);
        }
        let mark = *self.window_mark.get_or_insert(now);
        self.check_rate(now)?;
        if self.limits.min_bytes_per_sec == 0 {
            return Ok(stall_at);
        }
        let window_end = self.window_mark.unwrap_or(mark) + (timeout - self.window_waited);
        Ok(stall_at.min(window_end))
    }

    fn stop_waiting(&mut self, now: Instant) {
        if let Some(mark) = self.window_mark.take() {
            self.window_waited += now - mark;
        }
        self.wait_started = None;
    }

    fn fail(&mut self, why: BodyTimeout) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        self.expired.store(true, Ordering::SeqCst);
        Poll::Ready(Some(Err(why.into())))
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            let now = Instant::now();
            this.stop_waiting(now);
            if let Some(Ok(frame)) = &frame {
                if let Some(data) = frame.data_ref() {
                    this.window_bytes += data.len() as u64;
                }
                // A body that is complete is never too slow.
                if !this.inner.is_end_stream()
                    && let Err(why) = this.check_rate(now)
                {
                    return this.fail(why);
                }
            }
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        loop {
            let deadline = match this.check_wait(Instant::now()) {
                Ok(deadline) => deadline,
                Err(why) => return this.fail(why),
            };
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            timer.as_mut().reset(deadline);
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
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
    use futures::StreamExt;
    use futures::channel::mpsc;

    const LIMITS: BodyLimits = BodyLimits {
        timeout: Duration::from_secs(10),
        min_bytes_per_sec: 1024,
    };

    type Chunks = mpsc::UnboundedSender<Result<Bytes, std::io::Error>>;

    /// A body fed by hand, timed, read as a stream; and its `expired` flag.
    fn timed(
        limits: BodyLimits,
    ) -> (
        Chunks,
        impl futures::Stream<Item = Result<Bytes, axum::Error>>,
        Arc<AtomicBool>,
    ) {
        let (tx, rx) = mpsc::unbounded();
        let expired = Arc::new(AtomicBool::new(false));
        let body = TimedBody::new(axum::body::Body::from_stream(rx), limits, expired.clone());
        (tx, axum::body::Body::new(body).into_data_stream(), expired)
    }

    fn send(tx: &Chunks, n: usize) {
        tx.unbounded_send(Ok(Bytes::from(vec![0u8; n]))).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_timeout() {
        let (tx, mut body, expired) = timed(LIMITS);
        send(&tx, 10);
        assert_eq!(body.next().await.unwrap().unwrap().len(), 10);
        let started = Instant::now();
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), LIMITS.timeout);
        assert!(format!("{err:#}").contains("stalled"), "{err:#}");
        assert!(expired.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_minimum_rate_fails_after_one_window() {
        let (tx, mut body, expired) = timed(LIMITS);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if tx.unbounded_send(Ok(Bytes::from(vec![0u8; 100]))).is_err() {
                    return;
                }
            }
        });
        let started = Instant::now();
        let mut received = 0;
        let err = loop {
            match body.next().await.unwrap() {
                Ok(chunk) => received += chunk.len(),
                Err(e) => break e,
            }
        };
        assert!(format!("{err:#}").contains("minimum rate"), "{err:#}");
        assert_eq!(started.elapsed(), LIMITS.timeout);
        assert_eq!(
            received, 900,
            "nine chunks, the tenth second closes the window"
        );
        assert!(expired.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_and_a_slow_reader_pass() {
        let (tx, mut body, expired) = timed(LIMITS);
        // 2 KiB/s for 30 s: above the minimum in every window.
        tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                send(&tx, 2048);
            }
        });
        let mut received = 0;
        while let Some(chunk) = body.next().await {
            received += chunk.unwrap().len();
            if received == 2048 * 10 {
                // The handler is busy for a long time; buffered chunks are not late.
                tokio::time::sleep(LIMITS.timeout * 3).await;
            }
        }
        assert_eq!(received, 2048 * 30);
        assert!(!expired.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_minimum_rate_only_stalls_count() {
        let limits = BodyLimits {
            min_bytes_per_sec: 0,
            ..LIMITS
        };
        let (tx, mut body, _) = timed(limits);
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(limits.timeout - Duration::from_secs(1)).await;
                send(&tx, 1);
            }
        });
        let mut received = 0;
        while let Some(chunk) = body.next().await {
            received += chunk.unwrap().len();
        }
        assert_eq!(received, 5);
    }
}
