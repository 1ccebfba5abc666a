//! A server's health as the pool sees it: passive (the answers real requests get) and active
//! (its health check). Each change is logged once, when it happens.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// What counts against a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// An answer that is not a 5xx.
    Ok,
    /// A connection error, a timeout, a broken answer, or a 5xx.
    Failed,
}

/// How ejection works for the pool (`[[site]] eject_after`, `eject_for`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Passive {
    /// Failures in a row that eject; 0 never ejects.
    pub(super) after: u32,
    /// How long an ejected server is left alone.
    pub(super) for_: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// Requests that failed in a row.
    failures: u32,
    /// Left alone until then (passive ejection).
    ejected_until: Option<SystemTime>,
    /// Failing its active check (taken out until it passes `healthy_threshold` in a row).
    check_down: bool,
    /// Active checks passed / failed in a row.
    check_passes: u32,
    check_fails: u32,
}

/// One server's health.
#[derive(Debug, Default)]
pub(super) struct Health {
    state: Mutex<State>,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May it be sent requests at `now`? An ejection that has run its time lets requests
    /// through again: the next one decides (a failure ejects it again at once).
    pub(super) fn usable(&self, now: SystemTime) -> bool {
        let st = self.lock();
        !st.check_down && st.ejected_until.is_none_or(|t| now >= t)
    }

    /// Records a request's outcome; `server` names it in the log.
    pub(super) fn record(&self, outcome: Outcome, passive: Passive, now: SystemTime, server: &str) {
        let mut st = self.lock();
        match outcome {
            Outcome::Ok => {
                if st.ejected_until.take().is_some() {
                    tracing::info!(server, "origin server answers again: back in the pool");
                }
                st.failures = 0;
            }
            Outcome::Failed => {
                st.failures = st.failures.saturating_add(1);
                let due = passive.after > 0 && st.failures >= passive.after;
                let out = st.ejected_until.is_some_and(|t| now < t);
                if due && !out {
                    let again = st.ejected_until.is_some();
                    st.ejected_until = Some(now + passive.for_);
                    if !again {
                        tracing::warn!(
                            server,
                            failures = st.failures,
                            for_secs = passive.for_.as_secs_f64(),
                            "origin server ejected from the pool"
                        );
                    }
                }
            }
        }
    }

    /// Records an active check's result against the pool's thresholds.
    pub(super) fn record_check(&self, passed: bool, healthy: u32, unhealthy: u32, server: &str) {
        let mut st = self.lock();
        if passed {
            st.check_fails = 0;
            st.check_passes = st.check_passes.saturating_add(1);
            if st.check_down && st.check_passes >= healthy {
                st.check_down = false;
                st.ejected_until = None;
                st.failures = 0;
                tracing::info!(server, "origin server passes its health check: in the pool");
            } else if !st.check_down && st.ejected_until.is_some() && st.check_passes >= healthy {
                // An ejected server whose check passes comes back before its back-off ends.
                st.ejected_until = None;
                st.failures = 0;
                tracing::info!(
                    server,
                    "origin server passes its health check: back in the pool"
                );
            }
        } else {
            st.check_passes = 0;
            st.check_fails = st.check_fails.saturating_add(1);
            if !st.check_down && st.check_fails >= unhealthy {
                st.check_down = true;
                tracing::warn!(
                    server,
                    "origin server fails its health check: out of the pool"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSIVE: Passive = Passive {
        after: 3,
        for_: Duration::from_secs(10),
    };

    #[test]
    fn failures_in_a_row_eject_for_the_back_off_and_a_success_restores() {
        let h = Health::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        for _ in 0..2 {
            h.record(Outcome::Failed, PASSIVE, t0, "s");
        }
        h.record(Outcome::Ok, PASSIVE, t0, "s");
        h.record(Outcome::Failed, PASSIVE, t0, "s");
        h.record(Outcome::Failed, PASSIVE, t0, "s");
        assert!(h.usable(t0), "the success broke the run");
        h.record(Outcome::Failed, PASSIVE, t0, "s");
        assert!(!h.usable(t0));
        assert!(!h.usable(t0 + Duration::from_secs(9)));
        let later = t0 + Duration::from_secs(10);
        assert!(h.usable(later), "tried again after the back-off");
        h.record(Outcome::Failed, PASSIVE, later, "s");
        assert!(!h.usable(later), "one more failure ejects it again");
        let after = later + Duration::from_secs(10);
        h.record(Outcome::Ok, PASSIVE, after, "s");
        h.record(Outcome::Failed, PASSIVE, after, "s");
        assert!(h.usable(after), "a success starts the count over");
        let never = Passive {
            after: 0,
            ..PASSIVE
        };
        let h = Health::default();
        for _ in 0..100 {
            h.record(Outcome::Failed, never, t0, "s");
        }
        assert!(h.usable(t0));
    }

    #[test]
    fn active_checks_take_out_and_bring_back_by_their_thresholds() {
        let h = Health::default();
        let t0 = SystemTime::UNIX_EPOCH;
        h.record_check(false, 2, 2, "s");
        assert!(h.usable(t0));
        h.record_check(false, 2, 2, "s");
        assert!(!h.usable(t0));
        h.record_check(true, 2, 2, "s");
        assert!(!h.usable(t0));
        h.record_check(true, 2, 2, "s");
        assert!(h.usable(t0));
        // A passing check ends a passive ejection early.
        for _ in 0..3 {
            h.record(Outcome::Failed, PASSIVE, t0, "s");
        }
        assert!(!h.usable(t0));
        h.record_check(true, 1, 2, "s");
        assert!(h.usable(t0));
    }
}
