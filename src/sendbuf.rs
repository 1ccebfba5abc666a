//! Bytes queued for clients' sockets: what a response body has handed the HTTP server that the
//! client has not taken yet. hyper queues up to 64 KiB of body per connection (and what it
//! queues pins the buffers it is sliced from), so 2,000 clients that stop reading would pin
//! some 130 MB that no budget counted. Here every connection reports what its client takes
//! ([`SendMeter`], fed by the connection's writes), and a streamed body hands on its next chunk
//! only while all connections together queue less than `server.max_send_buffers`
//! ([`SendBuffers`]), or while its own connection has nothing queued: a client that reads is
//! never stalled by the others, and one that does not holds at most one chunk. A body that
//! waits is not polled for more, so its fill stops reading the origin: backpressure, not
//! buffering.

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

/// The limit shared by the connections of one accept loop.
#[derive(Debug)]
pub(crate) struct SendBuffers {
    /// Bytes queued now, across connections.
    used: AtomicU64,
    /// `server.max_send_buffers` (an event loop's share of it).
    max: u64,
}

impl SendBuffers {
    pub(crate) fn new(max: u64) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicU64::new(0),
            max,
        })
    }

    fn has_room(&self) -> bool {
        self.used.load(Ordering::Relaxed) < self.max
    }

    /// Bytes queued now, across connections.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// One connection's queued bytes.
#[derive(Debug)]
pub(crate) struct SendMeter {
    /// Handed on by metered bodies less taken by the client. Below zero when the client took
    /// bytes no metered body counted (response heads, bodies of known length); a body clamps
    /// it at zero as it hands a chunk on.
    unsent: AtomicI64,
    /// The body waiting for the client to take some bytes.
    waker: AtomicWaker,
    /// The loop's limit, which holds the positive part of `unsent`.
    limit: Arc<SendBuffers>,
}

impl SendMeter {
    pub(crate) fn new(limit: Arc<SendBuffers>) -> Arc<Self> {
        Arc::new(Self {
            unsent: AtomicI64::new(0),
            waker: AtomicWaker::new(),
            limit,
        })
    }

    /// The client took `n` bytes (called by the connection's writes).
    pub(crate) fn took(&self, n: usize) {
        let n = n as i64;
        let before = self.unsent.fetch_sub(n, Ordering::Relaxed);
        let freed = before.clamp(0, n);
        if freed > 0 {
            self.limit.used.fetch_sub(freed as u64, Ordering::Relaxed);
            self.waker.wake();
        }
    }

    /// A body handed on `n` bytes.
    fn queued(&self, n: usize) {
        let n = n as i64;
        let _ = self
            .unsent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.max(0) + n));
        self.limit.used.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// May a body hand on another chunk now?
    fn may_queue(&self) -> bool {
        self.unsent.load(Ordering::Relaxed) <= 0 || self.limit.has_room()
    }
}

impl Drop for SendMeter {
    fn drop(&mut self) {
        // The connection is gone, and with it what it still queued.
        let left = self.unsent.load(Ordering::Relaxed).max(0);
        self.limit.used.fetch_sub(left as u64, Ordering::Relaxed);
    }
}

/// A response body that hands on chunks only as [`SendMeter::may_queue`] allows.
pub(crate) struct Metered<B> {
    inner: B,
    meter: Arc<SendMeter>,
}

impl<B> Metered<B> {
    pub(crate) fn new(inner: B, meter: Arc<SendMeter>) -> Self {
        Self { inner, meter }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Metered<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if !self.meter.may_queue() {
            self.meter.waker.register(cx.waker());
            // The client may have taken bytes between the check and the registration.
            if !self.meter.may_queue() {
                return Poll::Pending;
            }
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &polled
            && let Some(d) = f.data_ref()
        {
            self.meter.queued(d.len());
        }
        polled
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
    use futures_util::FutureExt;
    use http_body_util::BodyExt;

    #[test]
    fn a_connection_queues_one_chunk_once_the_limit_is_reached() {
        let limit = SendBuffers::new(10);
        let (slow, fast) = (SendMeter::new(limit.clone()), SendMeter::new(limit.clone()));
        let chunks = || {
            http_body_util::StreamBody::new(futures_util::stream::iter((0..3).map(|_| {
                Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"0123456789ab")))
            })))
        };
        let mut a = Metered::new(chunks(), slow.clone());
        let mut b = Metered::new(chunks(), fast.clone());
        let next = |m: &mut Metered<_>| m.frame().now_or_never().is_some();
        // The slow client's first chunk passes the limit ...
        assert!(next(&mut a));
        assert_eq!(limit.used(), 12);
        // ... then it waits, while another connection still gets a chunk, one at a time.
        assert!(!next(&mut a));
        assert!(next(&mut b));
        assert!(!next(&mut b));
        // A client that takes its bytes gets the next chunk; one that does not keeps waiting.
        fast.took(12);
        assert!(next(&mut b));
        assert!(!next(&mut a));
        slow.took(20); // its chunk and a response head
        assert_eq!(limit.used(), 12, "the fast one's second chunk");
        assert!(next(&mut a));
        drop((a, b, slow, fast));
        assert_eq!(limit.used(), 0, "what a closed connection queued is freed");
    }
}
