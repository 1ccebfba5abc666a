//! The text access log's short path: [`super::access`] formats each line straight into a
//! per-thread buffer after a cached timestamp, and appends it to the batch writer under one
//! short lock. Going through a tracing event instead (the fmt layer visiting fields, then the
//! message formatted again, a writer allocated per line) would be a large share of a small HIT.
//! `RUST_LOG` still governs it: `RUST_LOG=info,edgecache::access=off` silences it.

use super::writer::BatchWriter;
use crate::numfmt::push_padded;
use std::{
    cell::RefCell,
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

/// The target access lines are logged under (and filtered by).
pub(crate) const TARGET: &str = "edgecache::access";

static SINK: OnceLock<BatchWriter> = OnceLock::new();

/// Sends text access lines to `writer` from now on.
pub(super) fn install(writer: BatchWriter) {
    let _ = SINK.set(writer);
}

thread_local! {
    /// The formatted second, reused for every line within it.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    /// The second in Apache's format, `[10/Oct/2000:13:55:36 +0000]`, reused likewise.
    static CLF_SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    /// The line being built; its allocation is reused.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes one line, `fill` giving what follows the timestamp and target. Does nothing unless a
/// text log is installed and the target is enabled.
pub(crate) fn write(fill: impl FnOnce(&mut String)) {
    with_line(|line, now| {
        SECOND.with(|s| {
            let mut s = s.borrow_mut();
            if s.0 != now.as_secs() {
                *s = (now.as_secs(), civil(now.as_secs()));
            }
            line.push_str(&s.1);
        });
        line.push('.');
        push_padded(line, u64::from(now.subsec_micros()), 6);
        line.push_str("Z  INFO ");
        line.push_str(TARGET);
        line.push_str(": ");
        fill(line);
    });
}

/// Writes one bare line (no timestamp or target of the log's own: an Apache combined line),
/// `fill` given the line and the time in brackets. The same conditions as [`write`].
pub(crate) fn write_bare(fill: impl FnOnce(&mut String, &str)) {
    with_line(|line, now| {
        CLF_SECOND.with(|s| {
            let mut s = s.borrow_mut();
            if s.0 != now.as_secs() {
                *s = (now.as_secs(), clf(now.as_secs()));
            }
            fill(line, &s.1);
        });
    });
}

/// Builds a line in this thread's buffer (`fill` given it and the time since the epoch) and
/// appends it with its newline, if a text log is installed and the target is enabled.
fn with_line(fill: impl FnOnce(&mut String, std::time::Duration)) {
    let Some(sink) = SINK.get() else { return };
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    #[allow(clippy::disallowed_methods)] // a log line's timestamp is wall time, not a decision
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        fill(&mut line, now);
        line.push('\n');
        sink.append(line.as_bytes());
    });
}

/// `[DD/Mon/YYYY:HH:MM:SS +0000]` for seconds since the epoch.
fn clf(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = ymd(secs);
    let rem = secs % 86_400;
    format!(
        "[{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000]",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for seconds since the epoch.
fn civil(secs: u64) -> String {
    let (y, m, d) = ymd(secs);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month (1-12) and day of the month (UTC) for seconds since the epoch.
fn ymd(secs: u64) -> (i64, i64, i64) {
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::{civil, clf};

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), "1970-01-01T00:00:00");
        assert_eq!(civil(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(civil(1_795_642_645), "2026-11-25T21:37:25");
        assert_eq!(clf(1_795_642_645), "[25/Nov/2026:21:37:25 +0000]");
        assert_eq!(clf(951_782_400), "[29/Feb/2000:00:00:00 +0000]");
    }
}
