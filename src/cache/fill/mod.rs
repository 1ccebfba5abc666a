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
//! answer with one buffer of known length (`FillReader::whole`).

mod budget;
mod reader;
mod table;
#[cfg(test)]
mod tests;
mod writer;

pub use budget::InflightBudget;
pub(crate) use reader::FillReader;
pub(crate) use table::{Fills, Joined};
pub(crate) use writer::FillWriter;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{Notify, watch};

/// Why a fill produced no (complete) body.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FillError {
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
    pub(crate) fn status(&self) -> StatusCode {
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

/// The response head every reader of a fill sends, plus what the leader learned about it.
#[derive(Debug)]
pub(crate) struct FillHead<M> {
    /// The status every reader answers with.
    pub(crate) status: StatusCode,
    /// The headers every reader answers with (empty when `meta` carries a whole object instead).
    pub(crate) headers: HeaderMap,
    /// May requests other than the leader use this response? (It is storable for all.)
    pub(crate) shareable: bool,
    /// Caller-defined facts (cache status, freshness) passed through to followers.
    pub(crate) meta: M,
}

struct State<M> {
    /// The response head, once the writer has published it; readers wait for it first.
    head: Option<Arc<FillHead<M>>>,
    /// Body chunks: all of them while retaining, else the window the slowest reader still needs.
    chunks: VecDeque<Bytes>,
    /// Absolute index of `chunks[0]`.
    first: usize,
    /// How the body ended, once it has: cleanly, or the error every reader's body ends in.
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
pub(crate) struct Fill<M> {
    /// What the writer and the readers share, under one short lock.
    state: Mutex<State<M>>,
    /// Bumped on every change readers care about.
    changed: watch::Sender<u64>,
    /// Signalled when a reader moves on (wakes a writer held back by the window).
    progress: Notify,
    /// Where the fill's reservations come from; what is still reserved goes back when it drops.
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
    pub(crate) fn reader(self: &Arc<Self>, idle_timeout: Duration) -> Option<FillReader<M>> {
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
