//! The reading side of a fill: one per request that serves it.

use super::{Fill, FillError, FillHead};
use bytes::Bytes;
use std::{sync::Arc, time::Duration};
use tokio::sync::watch;

/// A reader of one fill: the head, then the body chunk by chunk.
pub(crate) struct FillReader<M> {
    /// The fill it reads.
    pub(super) fill: Arc<Fill<M>>,
    /// This reader's place in the fill's list of readers.
    pub(super) slot: usize,
    /// The next chunk it reads, by absolute index.
    pub(super) next: usize,
    /// Wakes it when the fill changes (head, chunk, end, a reader evicted).
    pub(super) rx: watch::Receiver<u64>,
    /// Longest wait for the next chunk before the body fails with `FillError::Timeout`.
    pub(super) idle_timeout: Duration,
}

impl<M> FillReader<M> {
    /// Waits (at most `timeout`) for the response head. A fill that has already failed is an
    /// error here even if its head is in: nothing has gone to this reader's client yet, so it
    /// can answer with an error status rather than a head and a cut body.
    pub(crate) async fn head(&mut self, timeout: Duration) -> Result<Arc<FillHead<M>>, FillError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let st = self.fill.lock();
                if let Some(Err(e)) = &st.end {
                    return Err(e.clone());
                }
                if let Some(h) = &st.head {
                    return Ok(h.clone());
                }
                if let Some(Ok(())) = &st.end {
                    return Err(FillError::Abandoned);
                }
            }
            match tokio::time::timeout_at(deadline, self.rx.changed()).await {
                Err(_) => return Err(FillError::Timeout),
                Ok(Err(_)) => return Err(FillError::Abandoned),
                Ok(Ok(())) => {}
            }
        }
    }

    /// The next body chunk; `None` at a clean end, `Some(Err)` if the body is cut short.
    pub(crate) async fn next_chunk(&mut self) -> Option<Result<Bytes, FillError>> {
        loop {
            {
                let mut st = self.fill.lock();
                // Chunks this reader still needed are gone: never let that pass as an end.
                if st.evicted[self.slot] || self.next < st.first {
                    return Some(Err(FillError::TooSlow));
                }
                if self.next - st.first < st.chunks.len() {
                    let c = st.chunks[self.next - st.first].clone();
                    self.next += 1;
                    st.readers[self.slot] = Some(self.next);
                    let windowed = !st.retain;
                    drop(st);
                    if windowed {
                        self.fill.progress.notify_one();
                    }
                    return Some(Ok(c));
                }
                match &st.end {
                    Some(Ok(())) => return None,
                    Some(Err(e)) => return Some(Err(e.clone())),
                    None => {}
                }
            }
            match tokio::time::timeout(self.idle_timeout, self.rx.changed()).await {
                Err(_) => return Some(Err(FillError::Timeout)),
                Ok(Err(_)) => return Some(Err(FillError::Abandoned)),
                Ok(Ok(())) => {}
            }
        }
    }

    /// The whole body in one buffer, if the fill has ended cleanly and this reader has read
    /// nothing yet and the body is one chunk (a held-back fill that was stored, or a small one).
    pub(crate) fn whole(&self) -> Option<Bytes> {
        let st = self.fill.lock();
        if self.next != 0 || st.first != 0 || !matches!(st.end, Some(Ok(()))) {
            return None;
        }
        match st.chunks.len() {
            0 => Some(Bytes::new()),
            1 => Some(st.chunks[0].clone()),
            _ => None,
        }
    }

    /// The body as a stream for an HTTP response; an error cuts the client connection.
    pub(crate) fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, FillError>> + Send + 'static
    where
        M: Send + Sync + 'static,
    {
        futures_util::stream::unfold(
            self,
            |mut r| async move { r.next_chunk().await.map(|c| (c, r)) },
        )
    }

    /// Bytes `start..=end` of the body as a stream: the chunks before them are read past
    /// without waiting on anyone, the stream ends after `end` (dropping the reader: the fill
    /// goes on for the cache and the other readers). An error cuts it, as in `into_stream`.
    pub(crate) fn into_range_stream(
        self,
        start: u64,
        end: u64,
    ) -> impl futures_util::Stream<Item = Result<Bytes, FillError>> + Send + 'static
    where
        M: Send + Sync + 'static,
    {
        // The reader, and the body offset of the next chunk it reads (past `end`: done).
        futures_util::stream::unfold((self, 0u64), move |(mut r, mut at)| async move {
            loop {
                if at > end {
                    return None;
                }
                let chunk = match r.next_chunk().await? {
                    Ok(c) => c,
                    Err(e) => return Some((Err(e), (r, u64::MAX))),
                };
                let (from, to) = (at, at + chunk.len() as u64);
                at = to;
                if to <= start {
                    continue;
                }
                let lo = start.saturating_sub(from) as usize;
                let hi = ((end + 1).min(to) - from) as usize;
                return Some((Ok(chunk.slice(lo..hi)), (r, at)));
            }
        })
    }
}

impl<M> Drop for FillReader<M> {
    fn drop(&mut self) {
        let mut st = self.fill.lock();
        if let Some(s) = st.readers.get_mut(self.slot) {
            *s = None;
        }
        drop(st);
        self.fill.progress.notify_one();
    }
}
