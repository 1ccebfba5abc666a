//! A log sink that costs the request path one short, mostly uncontended lock per line and no
//! system call: lines gather in a shared buffer that a background thread writes out in one go
//! every few milliseconds (or sooner when it fills up). A channel per line would wake the
//! writer thread, a futex system call, on every request. When the sink falls behind by more
//! than the buffer cap, lines are dropped and counted rather than blocking requests.

use std::{
    io::{self, Write},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};
use tracing_subscriber::fmt::MakeWriter;

/// How often buffered lines are written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A fuller buffer wakes the writer early.
const WAKE_AT: usize = 256 << 10;
/// Beyond this, lines are dropped.
const CAP: usize = 8 << 20;

struct Shared {
    /// Lines waiting for the writer thread, which swaps the whole buffer out.
    buf: Mutex<Vec<u8>>,
    /// Wakes the writer thread early: the buffer passed `WAKE_AT`, or the guard is stopping it.
    wake: Condvar,
    /// Set by the guard on drop: the thread writes what is left and ends.
    stop: AtomicBool,
    /// Lines refused since the last write, reported in a line of their own.
    dropped: AtomicU64,
    /// Set by [`BatchWriter::reopen`]: the thread opens the log file again (after logrotate
    /// moved it away) before its next write.
    reopen: AtomicBool,
}

/// The `MakeWriter` given to tracing-subscriber.
#[derive(Clone)]
pub(crate) struct BatchWriter {
    /// The buffer lines go to, shared with the writer thread.
    shared: Arc<Shared>,
}

/// Stops the writer thread and writes what is left when dropped.
pub(crate) struct BatchGuard {
    /// How the guard tells the writer thread to stop.
    shared: Arc<Shared>,
    /// Joined on drop, so that every line is written before the process exits.
    thread: Option<thread::JoinHandle<()>>,
}

impl BatchWriter {
    /// Starts the writer thread over `sink`, which [`BatchWriter::reopen`] replaces with
    /// `reopen()`'s answer (for a file: the same path opened again).
    pub(crate) fn new(
        mut sink: Box<dyn Write + Send>,
        mut reopen: Option<Reopen>,
    ) -> (Self, BatchGuard) {
        let shared = Arc::new(Shared {
            buf: Mutex::new(Vec::with_capacity(64 << 10)),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = thread::Builder::new()
            .name("edgecache-log".into())
            .spawn(move || {
                let mut out = Vec::with_capacity(64 << 10);
                loop {
                    let stopping = {
                        let guard = s.buf.lock().unwrap_or_else(|p| p.into_inner());
                        let (mut guard, _) = s
                            .wake
                            .wait_timeout_while(guard, FLUSH_EVERY, |b| {
                                b.len() < WAKE_AT
                                    && !s.stop.load(Ordering::Acquire)
                                    && !s.reopen.load(Ordering::Acquire)
                            })
                            .unwrap_or_else(|p| p.into_inner());
                        std::mem::swap(&mut *guard, &mut out);
                        s.stop.load(Ordering::Acquire)
                    };
                    if !out.is_empty() {
                        let _ = sink.write_all(&out).and_then(|()| sink.flush());
                        out.clear();
                    }
                    // What was buffered before the signal went to the old file; what comes
                    // after goes to the new one.
                    if s.reopen.swap(false, Ordering::AcqRel)
                        && let Some(open) = reopen.as_mut()
                    {
                        match open() {
                            Ok(new) => sink = new,
                            Err(e) => {
                                let _ = writeln!(
                                    sink,
                                    "edgecache: cannot reopen the log file ({e}); still writing to the old one"
                                );
                            }
                        }
                    }
                    let dropped = s.dropped.swap(0, Ordering::Relaxed);
                    if dropped > 0 {
                        let _ = writeln!(
                            sink,
                            "edgecache: {dropped} log lines dropped (log sink too slow)"
                        );
                    }
                    if stopping {
                        break;
                    }
                }
            })
            .expect("spawn the log writer thread");
        let guard = BatchGuard {
            shared: shared.clone(),
            thread: Some(thread),
        };
        (Self { shared }, guard)
    }
}

/// Opens the log's sink again: the file at the configured path, anew.
pub(crate) type Reopen = Box<dyn FnMut() -> io::Result<Box<dyn Write + Send>> + Send>;

impl BatchWriter {
    /// Asks the writer thread to reopen its sink (SIGUSR1, as nginx does, so logrotate can
    /// move the file away). Returns at once; the thread does it before its next write.
    pub(crate) fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        let _guard = self.shared.buf.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.wake.notify_one();
    }
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One log line being formatted; it joins the shared buffer when dropped.
pub(crate) struct Line {
    /// The buffer the line joins when dropped.
    shared: Arc<Shared>,
    /// The line so far: tracing-subscriber writes it in pieces, and it joins the buffer whole.
    line: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        append(&self.shared, &self.line);
    }
}

impl BatchWriter {
    /// Appends whole lines to the buffer (one short lock, no allocation).
    pub(crate) fn append(&self, lines: &[u8]) {
        append(&self.shared, lines);
    }
}

fn append(shared: &Shared, lines: &[u8]) {
    if lines.is_empty() {
        return;
    }
    let mut buf = shared.buf.lock().unwrap_or_else(|p| p.into_inner());
    if buf.len() + lines.len() > CAP {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let before = buf.len();
    buf.extend_from_slice(lines);
    // Once, when the threshold is crossed: not on every line until the writer gets the lock.
    if before < WAKE_AT && buf.len() >= WAKE_AT {
        shared.wake.notify_one();
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            shared: self.shared.clone(),
            line: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order_and_the_guard_flushes() {
        let sink = Sink::default();
        let (w, guard) = BatchWriter::new(Box::new(sink.clone()), None);
        for i in 0..1000 {
            let mut l = w.make_writer();
            write!(l, "line {i}").unwrap();
            l.write_all(b"\n").unwrap();
        }
        drop(guard);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[999], "line 999");
    }

    #[test]
    fn reopening_sends_later_lines_to_the_new_sink_and_a_failure_keeps_the_old() {
        let (old, new) = (Sink::default(), Sink::default());
        let next = std::sync::Mutex::new(vec![Ok(new.clone()), Err(io::Error::other("gone"))]);
        let open: Reopen = Box::new(move || {
            let n = next.lock().unwrap().remove(0)?;
            Ok(Box::new(n) as Box<dyn Write + Send>)
        });
        let (w, guard) = BatchWriter::new(Box::new(old.clone()), Some(open));
        let line = |w: &BatchWriter, t: &str| w.append(format!("{t}\n").as_bytes());
        let text = |s: &Sink| String::from_utf8(s.0.lock().unwrap().clone()).unwrap();
        line(&w, "before");
        w.reopen();
        // The thread takes the request within one flush period; wait for it, bounded.
        for _ in 0..200 {
            if text(&old).contains("before") && !w.shared.reopen.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        line(&w, "after");
        w.reopen();
        for _ in 0..200 {
            if !w.shared.reopen.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        line(&w, "still");
        drop(guard);
        assert_eq!(text(&old), "before\n");
        let new = text(&new);
        assert!(new.starts_with("after\n"), "{new}");
        assert!(new.contains("cannot reopen the log file (gone)"), "{new}");
        assert!(new.ends_with("still\n"), "{new}");
    }
}
