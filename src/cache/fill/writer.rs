//! The writing side of a fill: the one task that reads the origin's body into it.

use super::{Fill, FillError, FillHead, Fills, State, table::FillKey};
use bytes::{Bytes, BytesMut};
use std::{collections::VecDeque, sync::Arc, time::Duration};

/// Chunks kept for the slowest reader once a fill no longer retains its body, taken from the
/// in-flight budget while it has room ...
pub(super) const WINDOW_BYTES: usize = 1 << 20;
/// ... or this much from it, once it has less ...
const MIN_WINDOW_BYTES: usize = 64 << 10;
/// ... or, once it has none, a single piece ahead of the slowest reader, outside it: the
/// origin is then read no faster than that reader takes each piece, and what a fill holds
/// beyond the budget is one piece. A fill that no longer retains copies the origin's chunks into pieces of at most this
/// size: a chunk is a slice of the origin connection's read buffer (up to 400 KiB), which
/// holding it for a slow reader would pin whole.
pub(super) const PIECE_BYTES: usize = 8 << 10;

/// The writing side of a fill. Dropping it unfinished ends the fill with an error.
pub(crate) struct FillWriter<M> {
    /// The fill it writes.
    fill: Arc<Fill<M>>,
    /// The table and key it is joined under, until it leaves the table; `None` for a solo fill.
    table: Option<(Arc<Fills<M>>, FillKey)>,
    /// A body growing past this stops being retained (unbounded until `set_max_object_size`).
    max_object_size: usize,
    /// `finish` was called: dropping the writer then ends nothing in an error.
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
    pub(super) fn new(fill: Arc<Fill<M>>, table: Option<(Arc<Fills<M>>, FillKey)>) -> Self {
        FillWriter {
            fill,
            table,
            max_object_size: usize::MAX,
            finished: false,
            held_back: false,
            outgrew: false,
            window: None,
        }
    }

    pub(crate) fn fill(&self) -> &Arc<Fill<M>> {
        &self.fill
    }

    /// Bodies beyond this are not retained (and so not stored).
    pub(crate) fn set_max_object_size(&mut self, n: usize) {
        self.max_object_size = n;
    }

    /// From now on readers are woken only by [`FillWriter::publish`] or the end. For bodies
    /// that fit the reader window: a held-back fill never waits on its readers.
    pub(crate) fn hold_back(&mut self) {
        self.held_back = true;
    }

    /// Wakes readers for what a held-back fill has so far; later changes wake them as usual.
    pub(crate) fn publish(&mut self) {
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
    pub(crate) fn leave_table(&mut self) {
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
    pub(crate) fn set_head(
        &mut self,
        head: FillHead<M>,
        content_length: Option<u64>,
    ) -> Arc<FillHead<M>> {
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
    pub(crate) fn reserve(&mut self, len: u64) -> bool {
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
    pub(crate) fn outgrew_object_size(&self) -> bool {
        self.outgrew
    }

    /// Is the body still being retained for storing?
    pub(crate) fn retaining(&self) -> bool {
        self.fill.lock().retain
    }

    /// Appends a chunk. Waits while a non-retaining fill is a window ahead of its slowest
    /// reader; fails with `Abandoned` when no reader is left and nothing will be stored.
    pub(crate) async fn push(
        &mut self,
        chunk: Bytes,
        idle_timeout: Duration,
    ) -> Result<(), FillError> {
        if self.window.is_some() || !self.fill.lock().retain {
            self.window();
            // Not retaining: pieces of exact size, each waiting its turn. All are copied before
            // the first waits, so the origin's buffer is free again at once (hyper reads into
            // it in place rather than allocating another while this one is held).
            let pieces: Vec<Bytes> = chunk
                .chunks(PIECE_BYTES)
                .map(Bytes::copy_from_slice)
                .collect();
            drop(chunk);
            for piece in pieces {
                self.push_one(piece, idle_timeout).await?;
            }
            return Ok(());
        }
        // Retained for storing: an exact-size copy too, for the same reason. The stored body
        // is one copy either way (a single chunk is stored as it is, see `concat`).
        self.push_one(Bytes::copy_from_slice(&chunk), idle_timeout)
            .await
    }

    async fn push_one(&mut self, chunk: Bytes, idle_timeout: Duration) -> Result<(), FillError> {
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
                // No window: one piece outside the budget, so the origin is read at the
                // reader's pace rather than not at all.
                if st.held <= window.max(PIECE_BYTES) {
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

    /// The window of a fill that no longer retains its body: [`WINDOW_BYTES`] or
    /// [`MIN_WINDOW_BYTES`] reserved from the in-flight budget (released with the rest at the
    /// end), or none when the budget has no room (one piece at a time, see [`PIECE_BYTES`]).
    /// Irrelevant while retaining.
    fn window(&mut self) -> usize {
        if let Some(w) = self.window {
            return w;
        }
        let mut st = self.fill.lock();
        if st.retain {
            return WINDOW_BYTES;
        }
        let w = [WINDOW_BYTES, MIN_WINDOW_BYTES]
            .into_iter()
            .find(|&w| self.fill.budget.try_reserve(w as u64))
            .unwrap_or(0);
        st.reserved += w as u64;
        self.window = Some(w);
        w
    }

    /// The whole body, once the origin has sent all of it, if it was retained. Store it before
    /// calling [`FillWriter::finish`], so that a request arriving meanwhile finds either this
    /// fill or the stored object, never neither. While held back, no reader has read a chunk:
    /// they are given this one buffer instead of the origin's chunks.
    pub(crate) fn retained_body(&self) -> Option<Bytes> {
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
    pub(crate) fn finish(&mut self, result: Result<(), FillError>) {
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
    pub(crate) fn done(mut self) {
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

/// One contiguous buffer of exactly the body's size. A single chunk is one already: `push`
/// copied it out of the origin connection's read buffer, which storing a slice would pin.
fn concat(chunks: &VecDeque<Bytes>, len: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks[0].clone();
    }
    let mut b = BytesMut::with_capacity(len);
    for c in chunks {
        b.extend_from_slice(c);
    }
    b.freeze()
}
