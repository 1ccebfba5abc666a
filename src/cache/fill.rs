//! Request coalescing with a streaming fill.
//!
//! The first request for a missing key becomes the *leader*: it starts one origin fetch (run by
//! a task of its own, so the fill outlives the client that started it) and the body is appended
//! here chunk by chunk. Every request for the same key that arrives meanwhile joins as a
//! *follower* and reads the same chunks as they arrive: nobody waits for the whole body, and
//! the origin sees one request.
//!
//! Memory is bounded twice over. Bytes retained for storing count against a shared in-flight
//! budget; when it is full, or the body outgrows `max_object_size`, the fill stops retaining
//! (it will not be stored), closes its door to new followers and keeps only a window of chunks
//! that the slowest current reader has not yet read, slowing the origin read to that reader's
//! pace. A fill that ends in an error ends every reader's body in that error, so nobody takes a
//! truncated body for a complete one. Dropping the writer without finishing counts as an error,
//! so no outcome leaves a key locked.
//!
//! A writer may *hold back* a small body: readers are woken once, when the head, the whole body
//! and its end are all there, rather than once for each. On a miss that saves the waiting client
//! connections two wake-ups (each a pass through the HTTP server's connection loop), and they
//! answer with one buffer of known length ([`FillReader::whole`]).

use super::key::{CacheKey, VaryValues};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::{Notify, watch};

/// Chunks kept for the slowest reader once a fill no longer retains its body, taken from the
/// in-flight budget while it has room ...
const WINDOW_BYTES: usize = 1 << 20;
/// ... and this much, outside it, once it has none: memory beyond the budget stays bounded by
/// this per fill.
const MIN_WINDOW_BYTES: usize = 64 << 10;

/// Why a fill produced no (complete) body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FillError {
    /// The origin failed; `status` is what a client without a response should get, and
    /// `reason` what it may be told (the fill logs the cause).
    #[error("{reason}")]
    Upstream { status: u16, reason: &'static str },
    #[error("timed out waiting for the fill")]
    Timeout,
    #[error("fill abandoned")]
    Abandoned,
    /// This reader fell a whole window behind a fill that does not keep its body, and held the
    /// others up past the idle timeout: it was dropped so they could go on.
    #[error("client too slow for a shared download")]
    TooSlow,
}

impl FillError {
    pub fn status(&self) -> StatusCode {
        match self {
            FillError::Upstream { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            FillError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            FillError::Abandoned => StatusCode::BAD_GATEWAY,
            FillError::TooSlow => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// Bytes of bodies being filled, across all fills.
#[derive(Debug)]
pub struct InflightBudget {
    used: AtomicU64,
    max: u64,
}

impl InflightBudget {
    pub fn new(max: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            max,
        }
    }

    fn try_reserve(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.max).then_some(u + n)
            })
            .is_ok()
    }

    fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn is_full(&self) -> bool {
        self.used() >= self.max
    }
}

/// The response head every reader of a fill sends, plus what the leader learned about it.
#[derive(Debug)]
pub struct FillHead<M> {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// May requests other than the leader use this response? (It is storable for all.)
    pub shareable: bool,
    /// Caller-defined facts (cache status, freshness) passed through to followers.
    pub meta: M,
}

struct State<M> {
    head: Option<Arc<FillHead<M>>>,
    chunks: VecDeque<Bytes>,
    /// Absolute index of `chunks[0]`.
    first: usize,
    end: Option<Result<(), FillError>>,
    /// Next absolute chunk index of each registered reader; `None` once it left.
    readers: Vec<Option<usize>>,
    /// Readers dropped for being too slow (by slot).
    evicted: Vec<bool>,
    /// Still keeping every chunk (the body may be stored).
    retain: bool,
    /// Bytes reserved from the in-flight budget.
    reserved: u64,
    /// Bytes currently in `chunks`.
    held: usize,
}

/// One fill in progress, shared by its writer and readers.
pub struct Fill<M> {
    state: Mutex<State<M>>,
    /// Bumped on every change readers care about.
    changed: watch::Sender<u64>,
    /// Signalled when a reader moves on (wakes a writer held back by the window).
    progress: Notify,
    budget: Arc<InflightBudget>,
}

impl<M> Fill<M> {
    fn new(budget: Arc<InflightBudget>) -> Self {
        Self {
            state: Mutex::new(State {
                head: None,
                chunks: VecDeque::new(),
                first: 0,
                end: None,
                readers: Vec::new(),
                evicted: Vec::new(),
                retain: true,
                reserved: 0,
                held: 0,
            }),
            changed: watch::channel(0).0,
            progress: Notify::new(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<M>> {
        // A panic while holding the lock cannot leave the state half-updated in a way readers
        // could misread (every update is a single assignment), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Registers a reader, or `None` if the fill already dropped chunks it would need.
    pub fn reader(self: &Arc<Self>, idle_timeout: Duration) -> Option<FillReader<M>> {
        let mut st = self.lock();
        if st.first > 0 {
            return None;
        }
        st.readers.push(Some(0));
        st.evicted.push(false);
        let slot = st.readers.len() - 1;
        drop(st);
        Some(FillReader {
            fill: self.clone(),
            slot,
            next: 0,
            rx: self.changed.subscribe(),
            idle_timeout,
        })
    }
}

impl<M> Drop for Fill<M> {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        self.budget.release(st.reserved);
    }
}

/// A reader of one fill: the head, then the body chunk by chunk.
pub struct FillReader<M> {
    fill: Arc<Fill<M>>,
    slot: usize,
    next: usize,
    rx: watch::Receiver<u64>,
    idle_timeout: Duration,
}

impl<M> FillReader<M> {
    /// Waits (at most `timeout`) for the response head. A fill that has already failed is an
    /// error here even if its head is in: nothing has gone to this reader's client yet, so it
    /// can answer with an error status rather than a head and a cut body.
    pub async fn head(&mut self, timeout: Duration) -> Result<Arc<FillHead<M>>, FillError> {
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
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, FillError>> {
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
    pub fn whole(&self) -> Option<Bytes> {
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
    pub fn into_stream(
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

/// The fills in progress, by key. Joining is how coalescing happens.
pub struct Fills<M> {
    map: Mutex<HashMap<FillKey, Arc<Fill<M>>>>,
    budget: Arc<InflightBudget>,
}

/// A fill is shared by requests for the same URL and, once the URL's Vary names are known, the
/// same normalised values for them.
pub type FillKey = (CacheKey, VaryValues);

/// The result of [`Fills::join`].
pub enum Joined<M> {
    /// This request fetches; it must drive the writer to the end.
    Leader(FillWriter<M>),
    /// Another request is fetching; read its fill.
    Follower(Arc<Fill<M>>),
}

impl<M> Fills<M> {
    pub fn new(budget: Arc<InflightBudget>) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            budget,
        }
    }

    pub fn budget(&self) -> &Arc<InflightBudget> {
        &self.budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FillKey, Arc<Fill<M>>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the fill for `key`, or starts one.
    pub fn join(self: &Arc<Self>, key: FillKey) -> Joined<M> {
        let mut map = self.lock();
        if let Some(f) = map.get(&key) {
            return Joined::Follower(f.clone());
        }
        let fill = Arc::new(Fill::new(self.budget.clone()));
        map.insert(key.clone(), fill.clone());
        Joined::Leader(FillWriter {
            fill,
            table: Some((self.clone(), key)),
            max_object_size: usize::MAX,
            finished: false,
            held_back: false,
            outgrew: false,
            window: None,
        })
    }

    /// A fill nobody can join: for requests that must not wait on others but may still store.
    pub fn solo(&self) -> FillWriter<M> {
        FillWriter {
            fill: Arc::new(Fill::new(self.budget.clone())),
            table: None,
            max_object_size: usize::MAX,
            finished: false,
            held_back: false,
            outgrew: false,
            window: None,
        }
    }

    /// Number of fills in progress (for tests and stats).
    pub fn in_progress(&self) -> usize {
        self.lock().len()
    }
}

/// The writing side of a fill. Dropping it unfinished ends the fill with an error.
pub struct FillWriter<M> {
    fill: Arc<Fill<M>>,
    table: Option<(Arc<Fills<M>>, FillKey)>,
    max_object_size: usize,
    finished: bool,
    /// Readers are not woken until [`FillWriter::publish`] or the end (see the module docs).
    held_back: bool,
    /// The body grew past `max_object_size` while streaming.
    outgrew: bool,
    /// Bytes kept ahead of the slowest reader once not retaining, fixed at the first chunk
    /// pushed after retention ended (see [`WINDOW_BYTES`]).
    window: Option<usize>,
}

impl<M> FillWriter<M> {
    pub fn fill(&self) -> &Arc<Fill<M>> {
        &self.fill
    }

    /// Bodies beyond this are not retained (and so not stored).
    pub fn set_max_object_size(&mut self, n: usize) {
        self.max_object_size = n;
    }

    /// From now on readers are woken only by [`FillWriter::publish`] or the end. For bodies
    /// that fit the reader window: a held-back fill never waits on its readers.
    pub fn hold_back(&mut self) {
        self.held_back = true;
    }

    /// Wakes readers for what a held-back fill has so far; later changes wake them as usual.
    pub fn publish(&mut self) {
        if std::mem::take(&mut self.held_back) {
            self.fill.bump();
        }
    }

    fn notify(&self) {
        if !self.held_back {
            self.fill.bump();
        }
    }

    /// Takes the fill out of the table now, before publishing: whoever comes next starts a
    /// fill of their own (or finds what this one stored) instead of joining this one.
    pub fn leave_table(&mut self) {
        self.close_door();
    }

    /// Takes the fill out of the table: later requests start their own.
    fn close_door(&mut self) {
        if let Some((table, key)) = self.table.take() {
            let mut map = table.lock();
            if map.get(&key).is_some_and(|f| Arc::ptr_eq(f, &self.fill)) {
                map.remove(&key);
            }
        }
    }

    /// Publishes the head. An unshareable head closes the door at once: followers already
    /// waiting see `shareable == false` and fetch for themselves. A body announced larger than
    /// `max_object_size` (or refused by [`FillWriter::reserve`]) is never retained, and the door
    /// closes too.
    pub fn set_head(&mut self, head: FillHead<M>, content_length: Option<u64>) -> Arc<FillHead<M>> {
        let shareable = head.shareable;
        let head = Arc::new(head);
        let retain = {
            let mut st = self.fill.lock();
            st.head = Some(head.clone());
            if !shareable || content_length.is_some_and(|n| n > self.max_object_size as u64) {
                st.retain = false;
            }
            st.retain
        };
        // A fill that will not be stored takes no newcomers: they would gain little and could
        // be held to the pace of a slow reader already on it.
        if !retain {
            self.close_door();
        }
        self.notify();
        head
    }

    /// Reserves a body of known length up front. `false` (and the fill stops retaining) when it
    /// exceeds `max_object_size` or the in-flight budget: decided before the head goes out, so
    /// the response can say it will not be stored.
    pub fn reserve(&mut self, len: u64) -> bool {
        let mut st = self.fill.lock();
        if !st.retain {
            return false;
        }
        let fits = len <= self.max_object_size as u64 && self.fill.budget.try_reserve(len);
        if fits {
            st.reserved += len;
        } else {
            st.retain = false;
        }
        fits
    }

    /// Did the body grow past `max_object_size` while streaming (so it was not retained)?
    pub fn outgrew_object_size(&self) -> bool {
        self.outgrew
    }

    /// Is the body still being retained for storing?
    pub fn retaining(&self) -> bool {
        self.fill.lock().retain
    }

    /// Appends a chunk. Waits while a non-retaining fill is a window ahead of its slowest
    /// reader; fails with `Abandoned` when no reader is left and nothing will be stored.
    pub async fn push(&mut self, chunk: Bytes, idle_timeout: Duration) -> Result<(), FillError> {
        let n = chunk.len();
        let mut drop_retention = false;
        {
            let mut st = self.fill.lock();
            if st.retain {
                // Reserve what exceeds an up-front reservation (see `reserve`), if any.
                let need = (st.held + n) as u64;
                let more = need.saturating_sub(st.reserved);
                if st.held + n > self.max_object_size {
                    drop_retention = true;
                    self.outgrew = true;
                } else if more > 0 && !self.fill.budget.try_reserve(more) {
                    drop_retention = true;
                } else {
                    st.reserved += more;
                }
            }
            if drop_retention {
                st.retain = false;
                self.fill.budget.release(st.reserved);
                st.reserved = 0;
            }
            st.held += n;
            st.chunks.push_back(chunk);
        }
        if drop_retention {
            self.close_door();
        }
        self.notify();
        let window = self.window();
        loop {
            let notified = self.fill.progress.notified();
            {
                let mut st = self.fill.lock();
                if st.retain {
                    return Ok(());
                }
                trim(&mut st);
                if !st.readers.iter().any(Option::is_some) {
                    return Err(FillError::Abandoned);
                }
                if st.held <= window {
                    return Ok(());
                }
            }
            if tokio::time::timeout(idle_timeout, notified).await.is_err() {
                // Nobody moved for a whole idle timeout: drop the slowest readers rather than
                // failing everyone; if they were the only ones, the loop above gives up.
                let mut st = self.fill.lock();
                let slowest = st.readers.iter().flatten().copied().min();
                for i in 0..st.readers.len() {
                    if st.readers[i].is_some() && st.readers[i] == slowest {
                        st.readers[i] = None;
                        st.evicted[i] = true;
                    }
                }
                drop(st);
                self.fill.bump();
            }
        }
    }

    /// The window of a fill that no longer retains its body: [`WINDOW_BYTES`] reserved from
    /// the in-flight budget (released with the rest at the end), or [`MIN_WINDOW_BYTES`] when
    /// the budget has no room. Irrelevant while retaining.
    fn window(&mut self) -> usize {
        if let Some(w) = self.window {
            return w;
        }
        let mut st = self.fill.lock();
        if st.retain {
            return WINDOW_BYTES;
        }
        let w = if self.fill.budget.try_reserve(WINDOW_BYTES as u64) {
            st.reserved += WINDOW_BYTES as u64;
            WINDOW_BYTES
        } else {
            MIN_WINDOW_BYTES
        };
        self.window = Some(w);
        w
    }

    /// The whole body, once the origin has sent all of it, if it was retained. Store it before
    /// calling [`FillWriter::finish`], so that a request arriving meanwhile finds either this
    /// fill or the stored object, never neither. While held back, no reader has read a chunk:
    /// they are given this one buffer instead of the origin's chunks.
    pub fn retained_body(&self) -> Option<Bytes> {
        let mut st = self.fill.lock();
        if !st.retain {
            return None;
        }
        let body = concat(&st.chunks, st.held);
        // Only while no reader has read a chunk: one that had would find its place in the
        // new list past the end, and take the rest of the body for its end.
        let unread = st.first == 0 && st.readers.iter().flatten().all(|&n| n == 0);
        if self.held_back && unread {
            st.chunks.clear();
            st.chunks.push_back(body.clone());
        }
        Some(body)
    }

    /// Ends the fill: readers see the end of the body, or the error.
    pub fn finish(&mut self, result: Result<(), FillError>) {
        {
            let mut st = self.fill.lock();
            st.end = Some(result);
            // The body now counts against the store (if kept) or is on its way out to readers.
            self.fill.budget.release(st.reserved);
            st.reserved = 0;
        }
        self.finished = true;
        self.held_back = false;
        self.fill.bump();
    }

    /// Takes the fill out of the table; late joiners now go to the store.
    pub fn done(mut self) {
        self.close_door();
    }
}

impl<M> Drop for FillWriter<M> {
    fn drop(&mut self) {
        if !self.finished {
            let mut st = self.fill.lock();
            st.end.get_or_insert(Err(FillError::Abandoned));
            drop(st);
            self.fill.bump();
        }
        self.close_door();
    }
}

/// Drops chunks every live reader has read (window mode only).
fn trim<M>(st: &mut State<M>) {
    let min = st
        .readers
        .iter()
        .flatten()
        .copied()
        .min()
        .unwrap_or(usize::MAX);
    while st.first < min && !st.chunks.is_empty() {
        if let Some(c) = st.chunks.pop_front() {
            st.held -= c.len();
        }
        st.first += 1;
    }
}

/// One contiguous buffer of exactly the body's size. A single chunk is copied too: it is a
/// slice of the origin connection's read buffer, which storing it would pin.
fn concat(chunks: &VecDeque<Bytes>, len: usize) -> Bytes {
    if chunks.len() == 1 {
        return Bytes::copy_from_slice(&chunks[0]);
    }
    let mut b = BytesMut::with_capacity(len);
    for c in chunks {
        b.extend_from_slice(c);
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fills(budget: u64) -> Arc<Fills<()>> {
        Arc::new(Fills::new(Arc::new(InflightBudget::new(budget))))
    }

    fn key(p: &str) -> FillKey {
        (CacheKey::new("s", "h", p), VaryValues::default())
    }

    fn head(shareable: bool) -> FillHead<()> {
        FillHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            shareable,
            meta: (),
        }
    }

    const T: Duration = Duration::from_secs(5);

    /// Starts the fill for `p`, which must be new.
    fn lead(f: &Arc<Fills<()>>, p: &str) -> FillWriter<()> {
        match f.join(key(p)) {
            Joined::Leader(w) => w,
            Joined::Follower(_) => panic!("{p} already has a fill"),
        }
    }

    /// Polls `fut` once: is it still waiting?
    async fn pending<F: std::future::Future>(fut: &mut std::pin::Pin<&mut F>) -> bool {
        std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
    }

    #[tokio::test]
    async fn a_held_back_fill_wakes_its_readers_once_with_one_buffer() {
        let f = fills(1 << 20);
        let mut w = lead(&f, "/a");
        let mut r = w.fill().reader(T).unwrap();
        let stored = {
            let mut waiting = std::pin::pin!(r.head(T));
            assert!(pending(&mut waiting).await);
            w.hold_back();
            w.set_head(head(true), Some(6));
            w.push(Bytes::from_static(b"abc"), T).await.unwrap();
            w.push(Bytes::from_static(b"def"), T).await.unwrap();
            // Head and body are in, but the waiting reader has not been woken for them.
            assert!(pending(&mut waiting).await);
            let stored = w.retained_body().unwrap();
            w.finish(Ok(()));
            assert!(!pending(&mut waiting).await);
            stored
        };
        // It answers with the very buffer that was stored, not the origin's two chunks.
        let whole = r.whole().expect("the fill ended with one buffer");
        assert_eq!(whole, "abcdef");
        assert_eq!(whole.as_ptr(), stored.as_ptr());
        // A fill that is not held back wakes readers as things arrive, and streams its chunks.
        let mut w = lead(&f, "/b");
        let mut r = w.fill().reader(T).unwrap();
        {
            let mut waiting = std::pin::pin!(r.head(T));
            assert!(pending(&mut waiting).await);
            w.set_head(head(true), Some(6));
            assert!(!pending(&mut waiting).await);
        }
        w.push(Bytes::from_static(b"abc"), T).await.unwrap();
        w.push(Bytes::from_static(b"def"), T).await.unwrap();
        w.retained_body().unwrap();
        w.finish(Ok(()));
        assert!(r.whole().is_none(), "two chunks are streamed, not joined");
        assert_eq!(r.next_chunk().await.unwrap().unwrap(), "abc");
    }

    /// The interleaving behind short bodies under load: a follower that finds the head of a
    /// held-back fill already set reads the first chunk before the fill joins its chunks into
    /// the stored buffer. It must still get every byte, then the end.
    #[tokio::test]
    async fn a_reader_that_read_from_a_held_back_fill_still_gets_every_byte() {
        let f = fills(1 << 20);
        let mut w = lead(&f, "/a");
        w.hold_back();
        w.set_head(head(true), Some(6));
        w.push(Bytes::from_static(b"abc"), T).await.unwrap();
        let Joined::Follower(fill) = f.join(key("/a")) else {
            panic!("the fill takes followers")
        };
        let mut late = fill.reader(T).unwrap();
        late.head(T).await.unwrap();
        assert!(late.whole().is_none(), "not ended yet");
        assert_eq!(late.next_chunk().await.unwrap().unwrap(), "abc");
        w.push(Bytes::from_static(b"def"), T).await.unwrap();
        assert_eq!(w.retained_body().unwrap(), "abcdef");
        w.finish(Ok(()));
        let mut rest = Vec::new();
        while let Some(c) = late.next_chunk().await {
            rest.extend_from_slice(&c.unwrap());
        }
        assert_eq!(rest, b"def", "the reader's body ended short");
    }

    #[tokio::test]
    async fn an_unstored_fill_keeps_its_window_in_the_budget_or_a_small_one_outside() {
        let f = fills(4 << 20);
        let mut w = lead(&f, "/a");
        let _reader = w.fill().reader(T).unwrap();
        w.set_max_object_size(10);
        w.set_head(head(true), None);
        w.push(Bytes::from(vec![0u8; 1000]), T).await.unwrap();
        assert!(!w.retaining());
        assert_eq!(
            f.budget().used(),
            WINDOW_BYTES as u64,
            "the window is budgeted"
        );
        w.finish(Ok(()));
        assert_eq!(f.budget().used(), 0);

        // No room in the budget: a small window outside it, which a slow reader fills.
        let f = fills(1000);
        let mut w = lead(&f, "/b");
        let mut r = w.fill().reader(T).unwrap();
        w.set_max_object_size(10);
        w.set_head(head(true), None);
        let chunk = Bytes::from(vec![0u8; 16 << 10]);
        for _ in 0..4 {
            w.push(chunk.clone(), T).await.unwrap();
        }
        assert_eq!(f.budget().used(), 0);
        {
            let mut more = std::pin::pin!(w.push(chunk.clone(), T));
            assert!(
                pending(&mut more).await,
                "a window ahead of the reader: it waits"
            );
            r.head(T).await.unwrap();
            r.next_chunk().await.unwrap().unwrap();
            r.next_chunk().await.unwrap().unwrap();
            tokio::time::timeout(T, more).await.unwrap().unwrap();
        }
        w.finish(Ok(()));
    }

    #[tokio::test]
    async fn followers_stream_the_leaders_body() {
        let f = fills(1 << 20);
        let mut w = lead(&f, "/a");
        let Joined::Follower(fill) = f.join(key("/a")) else {
            panic!()
        };
        let mut r = fill.reader(T).unwrap();
        w.set_head(head(true), None);
        assert_eq!(r.head(T).await.unwrap().status, 200);
        w.push(Bytes::from_static(b"hel"), T).await.unwrap();
        assert_eq!(r.next_chunk().await.unwrap().unwrap(), "hel");
        w.push(Bytes::from_static(b"lo"), T).await.unwrap();
        assert_eq!(w.retained_body().unwrap(), "hello");
        w.finish(Ok(()));
        w.done();
        assert_eq!(r.next_chunk().await.unwrap().unwrap(), "lo");
        assert!(r.next_chunk().await.is_none());
        assert_eq!(f.in_progress(), 0);
        assert_eq!(f.budget().used(), 0);
    }

    #[tokio::test]
    async fn an_abandoned_writer_fails_readers_and_frees_the_key() {
        let f = fills(1 << 20);
        let mut w = lead(&f, "/a");
        let mut r = w.fill().reader(T).unwrap();
        let mut late = w.fill().reader(T).unwrap();
        w.set_head(head(true), None);
        r.head(T).await.unwrap();
        w.push(Bytes::from_static(b"par"), T).await.unwrap();
        drop(w);
        // A reader already answering its client gets what came, then the error.
        assert_eq!(r.next_chunk().await.unwrap().unwrap(), "par");
        assert!(matches!(
            r.next_chunk().await,
            Some(Err(FillError::Abandoned))
        ));
        // One that had not sent its head yet gets the error instead of a head.
        assert!(matches!(late.head(T).await, Err(FillError::Abandoned)));
        assert!(matches!(f.join(key("/a")), Joined::Leader(_)));
    }

    #[tokio::test]
    async fn a_full_budget_stops_retention_and_closes_the_door() {
        let f = fills(4);
        let mut w = lead(&f, "/a");
        let mut r = w.fill().reader(T).unwrap();
        w.set_head(head(true), None);
        w.push(Bytes::from_static(b"abc"), T).await.unwrap();
        assert!(w.retaining());
        w.push(Bytes::from_static(b"def"), T).await.unwrap();
        assert!(!w.retaining());
        assert_eq!(f.budget().used(), 0);
        assert!(
            matches!(f.join(key("/a")), Joined::Leader(_)),
            "door closed"
        );
        assert!(w.retained_body().is_none(), "not retained, not stored");
        w.finish(Ok(()));
        r.head(T).await.unwrap();
        assert_eq!(r.next_chunk().await.unwrap().unwrap(), "abc");
        assert_eq!(r.next_chunk().await.unwrap().unwrap(), "def");
        assert!(r.next_chunk().await.is_none());
    }

    #[tokio::test]
    async fn window_mode_trims_and_gives_up_without_readers() {
        let f = fills(1 << 30);
        let mut w = lead(&f, "/big");
        w.set_max_object_size(10);
        let r = w.fill().reader(T).unwrap();
        w.set_head(head(true), Some(100));
        assert!(!w.retaining());
        w.push(Bytes::from_static(b"0123456789"), T).await.unwrap();
        drop(r);
        assert!(matches!(
            w.push(Bytes::from_static(b"x"), T).await,
            Err(FillError::Abandoned)
        ));
    }

    #[tokio::test]
    async fn a_reader_that_stalls_a_windowed_fill_is_dropped_not_everyone() {
        let f = fills(1 << 30);
        let mut w = lead(&f, "/big");
        w.set_max_object_size(10);
        let mut fast = w.fill().reader(T).unwrap();
        let mut slow = w.fill().reader(T).unwrap();
        w.set_head(head(true), Some(4 << 20));
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while let Some(c) = fast.next_chunk().await {
                n += c.unwrap().len();
            }
            n
        });
        let chunk = Bytes::from(vec![0u8; 64 << 10]);
        for _ in 0..64 {
            w.push(chunk.clone(), Duration::from_millis(100))
                .await
                .unwrap();
        }
        w.finish(Ok(()));
        assert_eq!(
            reader.await.unwrap(),
            4 << 20,
            "the fast reader got every byte"
        );
        slow.head(T).await.unwrap();
        let mut saw_error = false;
        while let Some(c) = slow.next_chunk().await {
            if let Err(e) = c {
                assert!(matches!(e, FillError::TooSlow));
                saw_error = true;
                break;
            }
        }
        assert!(
            saw_error,
            "the stalled reader's body ends in an error, never cleanly"
        );
    }

    #[tokio::test]
    async fn unshareable_heads_close_the_door() {
        let f = fills(1 << 20);
        let mut w = lead(&f, "/p");
        w.set_head(head(false), None);
        assert!(matches!(f.join(key("/p")), Joined::Leader(_)));
    }
}
