//! An origin pool: a site's upstream servers behind one `Origin`. Each request goes to one
//! server chosen by the site's balancing mode among those that are healthy (backups only when
//! no primary is), waits for a slot under the server's `max_connections`, and is tried once more
//! when its connection failed before any answer, within the retry budget. Passive ejection and
//! active checks keep failing servers out. A server named by host name is a member per address
//! of the name, re-resolved as its record TTL runs out (see `dns`).

mod balance;
mod budget;
mod dns;
mod health;
mod members;

use super::{OriginError, OriginRequest, OriginResponse, ServedBy, SetupError};
use crate::{
    clock::Clock,
    config::{Balance, HealthCheckConfig, OriginConfig, OriginServerConfig},
};
use balance::{Candidate, hash_bytes};
use budget::RetryBudget;
pub(crate) use dns::{Hickory, Resolve, TtlBounds};
use futures_util::StreamExt;
use health::{Outcome, Passive};
use http::Method;
pub(crate) use members::names_a_host;
use members::{Build, Entry, Members};
use std::net::IpAddr;
use std::sync::{
    Arc, Mutex, RwLock,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};
use std::time::{Duration, SystemTime};

/// What a pool does besides choosing (`[[site]]` keys).
pub(crate) struct PoolSettings<'a> {
    pub(crate) balance: Balance,
    pub(crate) health_check: Option<&'a HealthCheckConfig>,
    pub(crate) eject_after: u32,
    pub(crate) eject_for: Duration,
    pub(crate) queue_timeout: Duration,
    pub(crate) retry_budget: f64,
    pub(crate) retry_non_idempotent: bool,
    /// Host header sent upstream instead of the client's (`origin_host`).
    pub(crate) host: Option<&'a str>,
    /// `origin_sni`: the TLS name of https servers, when not their URL's host.
    pub(crate) sni: Option<&'a str>,
    /// `origin_ca_file`'s certificates: the only roots https servers are verified against.
    pub(crate) roots: Option<Arc<[reqwest::Certificate]>>,
}

/// One pool member's health, as the status page shows it.
#[derive(Debug, Clone)]
pub(crate) struct ServerHealth {
    /// The server's label (its URL, and the address a name resolved to).
    pub(crate) server: String,
    /// Takes requests now: not ejected, passing its checks.
    pub(crate) healthy: bool,
    /// Used only when every primary is down.
    pub(crate) backup: bool,
    /// Requests in progress.
    pub(crate) outstanding: usize,
}

/// The resolver of origin names and how long its answers are kept, shared by every pool.
#[derive(Clone)]
pub(crate) struct Dns {
    pub(crate) resolver: Arc<dyn Resolve>,
    pub(crate) bounds: TtlBounds,
}

pub(crate) struct Pool {
    /// The servers as configured.
    entries: Vec<Entry>,
    /// Who is in the pool now; replaced whole when a name's addresses change.
    members: RwLock<Arc<Members>>,
    /// What building new members needs.
    build: Build,
    /// Set when a server is named by host name.
    names: Option<Names>,
    balance: Balance,
    /// Advances per request: round-robin's cursor, least-outstanding's tie-breaker.
    turn: AtomicUsize,
    passive: Passive,
    queue_timeout: Duration,
    budget: RetryBudget,
    retry_non_idempotent: bool,
    clock: Clock,
}

/// The resolution of a pool's host names.
struct Names {
    dns: Dns,
    /// The last good addresses of each entry (`None` for an IP literal).
    answers: Mutex<Vec<Option<Vec<IpAddr>>>>,
    /// When the answers are to be asked again.
    next: Mutex<SystemTime>,
    /// A re-resolution is under way (one at a time).
    refreshing: AtomicBool,
    /// Held while resolving, so that requests waiting for a first answer wait for one.
    lock: tokio::sync::Mutex<()>,
}

impl Names {
    fn due(&self, now: SystemTime) -> bool {
        now >= *self.next.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Pool {
    /// A pool of `servers` (at least one); `loops` event loops each get their own connection
    /// pool per member. Host names are resolved now (a name that cannot be is logged and
    /// asked again later); active health checks, if configured, run on the current runtime.
    pub(crate) async fn new(
        servers: &[OriginServerConfig],
        settings: PoolSettings<'_>,
        cfg: &OriginConfig,
        loops: usize,
        clock: Clock,
        dns: Option<Dns>,
    ) -> Result<Arc<Self>, SetupError> {
        if servers.is_empty() {
            return Err(SetupError::Missing);
        }
        let entries = servers
            .iter()
            .map(|s| Entry::new(s, settings.sni))
            .collect::<Result<Vec<_>, _>>()?;
        let build = Build {
            origin: cfg.clone(),
            loops,
            host: settings.host.map(str::to_owned),
            roots: settings.roots.clone(),
        };
        let names = dns
            .filter(|_| entries.iter().any(|e| e.name.is_some()))
            .map(|dns| Names {
                dns,
                answers: Mutex::new(
                    entries
                        .iter()
                        .map(|e| e.name.as_ref().map(|_| Vec::new()))
                        .collect(),
                ),
                next: Mutex::new(SystemTime::UNIX_EPOCH),
                refreshing: AtomicBool::new(false),
                lock: tokio::sync::Mutex::new(()),
            });
        let initial = match &names {
            Some(n) => n.answers.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            None => Vec::new(),
        };
        let members = Members::build(&entries, &initial, None, &build)?;
        let pool = Arc::new(Self {
            entries,
            members: RwLock::new(Arc::new(members)),
            build,
            names,
            balance: settings.balance,
            turn: AtomicUsize::new(0),
            passive: Passive {
                after: settings.eject_after,
                for_: settings.eject_for,
            },
            queue_timeout: settings.queue_timeout,
            budget: RetryBudget::new(settings.retry_budget),
            retry_non_idempotent: settings.retry_non_idempotent,
            clock,
        });
        pool.resolve().await;
        if let Some(check) = settings.health_check {
            spawn_checks(&pool, check.clone());
        }
        Ok(pool)
    }

    /// Each member's label, whether it takes requests now, whether it is a backup, and its
    /// requests in progress: for the status page.
    pub(crate) fn health(&self, now: SystemTime) -> Vec<ServerHealth> {
        self.members()
            .servers
            .iter()
            .map(|s| ServerHealth {
                server: s.label.to_string(),
                healthy: s.health.usable(now),
                backup: s.backup,
                outstanding: s.outstanding.load(std::sync::atomic::Ordering::Relaxed),
            })
            .collect()
    }

    /// The members now.
    fn members(&self) -> Arc<Members> {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The members for a request: if the names' answers have run out, they are asked again
    /// in the background (this request goes to the last good addresses), or waited for when
    /// there are none yet.
    async fn current(self: &Arc<Self>) -> Arc<Members> {
        if let Some(names) = &self.names
            && names.due(self.clock.now())
        {
            if self.members().servers.is_empty() {
                self.resolve().await;
            } else if !names.refreshing.swap(true, Ordering::AcqRel) {
                let pool = self.clone();
                tokio::spawn(async move {
                    // Cleared however the task ends (a panic, a runtime shutting down).
                    struct Done(Arc<Pool>);
                    impl Drop for Done {
                        fn drop(&mut self) {
                            if let Some(n) = &self.0.names {
                                n.refreshing.store(false, Ordering::Release);
                            }
                        }
                    }
                    let done = Done(pool);
                    done.0.resolve().await;
                });
            }
        }
        self.members()
    }

    /// Resolves the pool's host names if their answers are due, and rebuilds the members if
    /// an address changed. A name that cannot be resolved keeps its last good addresses (and
    /// is asked again after `dns_min_ttl`).
    async fn resolve(&self) {
        let Some(names) = &self.names else { return };
        let _one = names.lock.lock().await;
        if !names.due(self.clock.now()) {
            return;
        }
        let lookups = self.entries.iter().map(|e| async {
            match &e.name {
                Some(name) => Some(names.dns.resolver.lookup(name).await),
                None => None,
            }
        });
        let results = futures_util::future::join_all(lookups).await;
        let bounds = names.dns.bounds;
        let mut keep = bounds.max;
        let mut changed = false;
        // Worked on as a copy, kept only once members are built from it: a build that fails
        // is tried again, rather than the new answer taken as already in place.
        let answers = {
            let mut answers = names
                .answers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for ((entry, result), last) in self.entries.iter().zip(results).zip(answers.iter_mut())
            {
                let (Some(result), Some(last), Some(name)) = (result, last.as_mut(), &entry.name)
                else {
                    continue;
                };
                match result {
                    Ok(answer) => {
                        keep = keep.min(bounds.clamp(answer.ttl));
                        if *last != answer.addrs {
                            tracing::info!(
                                name = name.as_str(),
                                addresses = ?answer.addrs,
                                ttl_s = answer.ttl.as_secs(),
                                "origin name resolved"
                            );
                            *last = answer.addrs;
                            changed = true;
                        }
                    }
                    Err(error) => {
                        keep = keep.min(bounds.min);
                        tracing::warn!(
                            name = name.as_str(),
                            %error,
                            kept = ?last,
                            "cannot resolve origin name; keeping its last addresses"
                        );
                    }
                }
            }
            answers
        };
        *names.next.lock().unwrap_or_else(|p| p.into_inner()) = self.clock.now() + keep;
        if !changed {
            return;
        }
        let old = self.members();
        match Members::build(&self.entries, &answers, Some(&old), &self.build) {
            Ok(m) => {
                *self.members.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(m);
                *names.answers.lock().unwrap_or_else(|p| p.into_inner()) = answers;
            }
            Err(error) => {
                tracing::error!(%error, "cannot set up origin pool members");
                *names.next.lock().unwrap_or_else(|p| p.into_inner()) =
                    self.clock.now() + bounds.min;
            }
        }
    }

    /// Passive ejection as it applies to `members`: as at nginx, a lone server is never
    /// ejected (that would only turn its 502s into 503s and keep it out after it recovers).
    fn passive_for(&self, members: &Members) -> Passive {
        if members.servers.len() > 1 {
            self.passive
        } else {
            Passive {
                after: 0,
                ..self.passive
            }
        }
    }

    /// The member for the next attempt, skipping `tried` ones; backups only when no primary
    /// can be used.
    fn pick(&self, members: &Members, affinity: u64, tried: &[usize]) -> Option<usize> {
        let now = self.clock.now();
        if let [only] = members.servers.as_slice() {
            // A pool of one, the common case: nothing to balance, nothing to allocate.
            return (tried.is_empty() && only.health.usable(now)).then_some(0);
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        [&members.primaries, &members.backups]
            .into_iter()
            .find_map(|tier| {
                let candidate = |&i: &usize| {
                    let s = &members.servers[i];
                    Candidate {
                        weight: s.weight,
                        outstanding: s.outstanding.load(Ordering::Relaxed),
                        usable: !tried.contains(&i) && s.health.usable(now),
                        id: s.id,
                    }
                };
                // Most pools are small: their candidates are listed on the stack.
                let mut stack = [Candidate::NONE; 16];
                let heap: Vec<Candidate>;
                let candidates: &[Candidate] = if tier.members.len() <= stack.len() {
                    for (slot, i) in stack.iter_mut().zip(&tier.members) {
                        *slot = candidate(i);
                    }
                    &stack[..tier.members.len()]
                } else {
                    heap = tier.members.iter().map(candidate).collect();
                    &heap
                };
                balance::pick(self.balance, candidates, &tier.order, turn, affinity)
                    .map(|k| tier.members[k])
            })
    }

    /// Sends `req` to a server of the pool, and once more to another (or, for a keep-alive
    /// connection the server had closed, to the same one on a fresh connection) if the first
    /// failed before any answer and the request may be repeated.
    pub(crate) async fn fetch(
        self: &Arc<Self>,
        mut req: OriginRequest,
    ) -> Result<OriginResponse, OriginError> {
        let members = self.current().await;
        let passive = self.passive_for(&members);
        let now = self.clock.now();
        self.budget.request(now);
        let repeatable =
            req.body.is_none() && (is_idempotent(&req.method) || self.retry_non_idempotent);
        let affinity = match self.balance {
            Balance::ConsistentHash => {
                let host = req.headers.get(http::header::HOST).map(|h| h.as_bytes());
                hash_bytes(&[host.unwrap_or_default(), req.path_and_query.as_bytes()])
            }
            _ => 0,
        };
        let mut tried: Vec<usize> = Vec::new();
        let mut retried = false;
        let mut last: Option<OriginError> = None;
        loop {
            let Some(i) = self.pick(&members, affinity, &tried) else {
                return Err(last.unwrap_or(OriginError::Unavailable("no origin server available")));
            };
            let server = &members.servers[i];
            let Some(lease) = server.lease(self.queue_timeout).await else {
                // Full for all of `queue_timeout`: the next server, if there is one.
                tried.push(i);
                last = Some(OriginError::Unavailable("origin servers busy"));
                continue;
            };
            let attempt = OriginRequest {
                method: req.method.clone(),
                path_and_query: req.path_and_query.clone(),
                headers: if repeatable && !retried {
                    req.headers.clone()
                } else {
                    std::mem::take(&mut req.headers)
                },
                body: req.body.take(),
                event_loop: req.event_loop,
            };
            let result = server.upstream.fetch(attempt).await;
            let now = self.clock.now();
            match result {
                Ok(mut r) => {
                    let outcome = if r.status.is_server_error() {
                        Outcome::Failed
                    } else {
                        Outcome::Ok
                    };
                    server.health.record(outcome, passive, now, &server.label);
                    let body =
                        std::mem::replace(&mut r.body, futures_util::stream::empty().boxed());
                    r.body = body
                        .map(move |chunk| {
                            let _held = &lease;
                            chunk
                        })
                        .boxed();
                    r.served_by = Some(ServedBy {
                        server: server.label.clone(),
                        retried,
                    });
                    return Ok(r);
                }
                Err(e) => {
                    drop(lease);
                    if e.is_origins_fault() {
                        server
                            .health
                            .record(Outcome::Failed, passive, now, &server.label);
                    }
                    // A kept-alive connection the server had closed is everyday churn, not a
                    // sign of a failing pool: its one retry is outside the budget.
                    let closed = matches!(e, OriginError::Closed(_));
                    let again = e.before_any_answer()
                        && repeatable
                        && !retried
                        && (closed || self.budget.try_retry(now));
                    if !again {
                        return Err(e);
                    }
                    tracing::debug!(server = &*server.label, error = %e, "retrying origin request");
                    retried = true;
                    // A keep-alive connection the server had closed says nothing about the
                    // server: try it again on a fresh one. A refused connection does.
                    if !closed {
                        tried.push(i);
                    }
                    last = Some(e);
                }
            }
        }
    }
}

/// RFC 9110 section 9.2.2: a request that may be sent twice with the effect of once.
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Starts the pool's health checks: every `interval`, each member is checked at once (and
/// the pool's names re-resolved if their answers are due), while the pool lives.
fn spawn_checks(pool: &Arc<Pool>, check: HealthCheckConfig) {
    let weak = Arc::downgrade(pool);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(check.interval.0);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(pool) = weak.upgrade() else { return };
            pool.resolve().await;
            let members = pool.members();
            let checks = members
                .servers
                .iter()
                .map(|s| s.upstream.check(&check.path, check.timeout.0, check.status));
            let passed = futures_util::future::join_all(checks).await;
            for (s, passed) in members.servers.iter().zip(passed) {
                s.health.record_check(
                    passed,
                    check.healthy_threshold,
                    check.unhealthy_threshold,
                    &s.label,
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use dns::Answer;
    use futures_util::future::BoxFuture;
    use std::collections::VecDeque;

    /// Answers from a script, counting the lookups.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<Answer, String>>>,
        lookups: AtomicUsize,
    }

    impl Resolve for Scripted {
        fn lookup<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Answer, String>> {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            let next = self.answers.lock().unwrap().pop_front();
            Box::pin(async move { next.unwrap_or_else(|| Err("no more answers".into())) })
        }
    }

    fn answer(addrs: &[&str], ttl: u64) -> Result<Answer, String> {
        Ok(Answer {
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            ttl: Duration::from_secs(ttl),
        })
    }

    async fn pool(
        script: Vec<Result<Answer, String>>,
        clock: &Clock,
    ) -> (Arc<Pool>, Arc<Scripted>) {
        pool_of(
            &["http://app.internal:8080", "http://192.0.2.9:8080"],
            script,
            clock,
        )
        .await
    }

    async fn pool_of(
        urls: &[&str],
        script: Vec<Result<Answer, String>>,
        clock: &Clock,
    ) -> (Arc<Pool>, Arc<Scripted>) {
        let resolver = Arc::new(Scripted {
            answers: Mutex::new(script.into()),
            lookups: AtomicUsize::new(0),
        });
        let servers: Vec<_> = urls.iter().map(|u| OriginServerConfig::single(u)).collect();
        let settings = PoolSettings {
            balance: Balance::RoundRobin,
            health_check: None,
            eject_after: 5,
            eject_for: Duration::from_secs(10),
            queue_timeout: Duration::from_secs(1),
            retry_budget: 0.2,
            retry_non_idempotent: false,
            host: None,
            sni: None,
            roots: None,
        };
        let dns = Dns {
            resolver: resolver.clone(),
            bounds: TtlBounds {
                min: Duration::from_secs(5),
                max: Duration::from_secs(600),
            },
        };
        let p = Pool::new(
            &servers,
            settings,
            &OriginConfig::default(),
            1,
            clock.clone(),
            Some(dns),
        )
        .await
        .unwrap();
        (p, resolver)
    }

    fn labels(p: &Pool) -> Vec<String> {
        p.members().labels().into_iter().map(String::from).collect()
    }

    #[tokio::test]
    async fn every_address_of_a_name_is_a_member_until_its_ttl_runs_out() {
        let clock = Clock::wall();
        let (p, dns) = pool(
            vec![
                answer(&["10.0.0.1", "10.0.0.2"], 30),
                answer(&["10.0.0.2", "10.0.0.3"], 30),
            ],
            &clock,
        )
        .await;
        assert_eq!(
            labels(&p),
            [
                "http://app.internal:8080(10.0.0.1)",
                "http://app.internal:8080(10.0.0.2)",
                "http://192.0.2.9:8080",
            ]
        );
        let kept = p.members().servers[1].clone();
        // Within the TTL the name is not asked again, however often the pool is used.
        clock.advance(Duration::from_secs(29));
        for _ in 0..10 {
            p.current().await;
        }
        assert_eq!(dns.lookups.load(Ordering::Relaxed), 1);
        // Past it, it is, and the members follow the new answer; the one whose address stayed
        // is the same member (its health and connections carry over).
        clock.advance(Duration::from_secs(2));
        p.resolve().await;
        assert_eq!(dns.lookups.load(Ordering::Relaxed), 2);
        assert_eq!(
            labels(&p),
            [
                "http://app.internal:8080(10.0.0.2)",
                "http://app.internal:8080(10.0.0.3)",
                "http://192.0.2.9:8080",
            ]
        );
        assert!(Arc::ptr_eq(&kept, &p.members().servers[0]));
    }

    #[tokio::test]
    async fn a_failed_re_resolution_keeps_the_last_good_answer_and_asks_again_soon() {
        let clock = Clock::wall();
        let (p, dns) = pool(
            vec![
                answer(&["10.0.0.1"], 3600),
                Err("SERVFAIL".into()),
                answer(&["10.0.0.4"], 60),
            ],
            &clock,
        )
        .await;
        // A TTL above dns_max_ttl is cut to it.
        clock.advance(Duration::from_secs(599));
        p.resolve().await;
        assert_eq!(dns.lookups.load(Ordering::Relaxed), 1);
        clock.advance(Duration::from_secs(2));
        p.resolve().await;
        assert_eq!(dns.lookups.load(Ordering::Relaxed), 2);
        assert_eq!(labels(&p)[0], "http://app.internal:8080(10.0.0.1)");
        // After a failure the name is asked again after dns_min_ttl, not the full TTL.
        clock.advance(Duration::from_secs(6));
        p.resolve().await;
        assert_eq!(dns.lookups.load(Ordering::Relaxed), 3);
        assert_eq!(labels(&p)[0], "http://app.internal:8080(10.0.0.4)");
    }

    #[tokio::test]
    async fn a_name_without_an_answer_yet_is_waited_for_only_when_nothing_else_is_there() {
        let clock = Clock::wall();
        // Beside another server: requests go there, and the name is asked again behind them.
        let (p, dns) = pool(
            vec![Err("NXDOMAIN".into()), answer(&["10.0.0.8"], 0)],
            &clock,
        )
        .await;
        assert_eq!(labels(&p), ["http://192.0.2.9:8080"]);
        clock.advance(Duration::from_secs(5));
        assert_eq!(p.current().await.servers.len(), 1);
        for _ in 0..100 {
            if p.members().servers.len() == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(p.members().servers.len(), 2);
        assert_eq!(dns.lookups.load(Ordering::Relaxed), 2);
        // Alone: a request waits for the answer rather than fail with no server at all.
        let (p, dns) = pool_of(
            &["http://app.internal:8080"],
            vec![Err("NXDOMAIN".into()), answer(&["10.0.0.8"], 0)],
            &clock,
        )
        .await;
        assert!(p.members().servers.is_empty());
        clock.advance(Duration::from_secs(5));
        assert_eq!(p.current().await.servers.len(), 1);
        assert_eq!(dns.lookups.load(Ordering::Relaxed), 2);
    }
}
