//! An origin pool: a site's upstream servers behind one `Origin`. Each request goes to one
//! server chosen by the site's balancing mode among those that are healthy (backups only when
//! no primary is), waits for a slot under the server's `max_connections`, and is tried once more
//! when its connection failed before any answer, within the retry budget. Passive ejection and
//! active checks keep failing servers out.

mod balance;
mod budget;
mod health;

use super::{OriginError, OriginRequest, OriginResponse, ServedBy, SetupError, Upstream};
use crate::{
    clock::Clock,
    config::{Balance, HealthCheckConfig, OriginConfig, OriginServerConfig},
};
use balance::{Candidate, hash_bytes};
use budget::RetryBudget;
use futures_util::StreamExt;
use health::{Health, Outcome, Passive};
use http::Method;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One server of a pool.
struct Server {
    /// Its URL as configured: names it in logs and in the access log.
    url: Arc<str>,
    upstream: Upstream,
    weight: u32,
    backup: bool,
    /// `max_connections` slots; a request holds one until its body is read or dropped.
    slots: Arc<Semaphore>,
    /// Requests in progress (least-outstanding reads it).
    outstanding: Arc<AtomicUsize>,
    health: Health,
    /// For consistent hashing: from its URL, so it is the same on every node.
    id: u64,
}

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
}

pub(crate) struct Pool {
    servers: Vec<Server>,
    /// Indexes of the primaries, then of the backups, each in interleaved weighted order.
    primaries: Tier,
    backups: Tier,
    balance: Balance,
    /// Advances per request: round-robin's cursor, least-outstanding's tie-breaker.
    turn: AtomicUsize,
    passive: Passive,
    queue_timeout: Duration,
    budget: RetryBudget,
    retry_non_idempotent: bool,
    clock: Clock,
}

/// The servers of one tier (primaries or backups) and their round-robin order.
struct Tier {
    members: Vec<usize>,
    /// Positions in `members`, interleaved by weight.
    order: Vec<usize>,
}

impl Pool {
    /// A pool of `servers` (at least one); `loops` event loops each get their own connection
    /// pool per server. Active health checks, if configured, run on the current runtime.
    pub(crate) fn new(
        servers: &[OriginServerConfig],
        settings: PoolSettings<'_>,
        cfg: &OriginConfig,
        loops: usize,
        clock: Clock,
    ) -> Result<Arc<Self>, SetupError> {
        if servers.is_empty() {
            return Err(SetupError::Missing);
        }
        let built = servers
            .iter()
            .map(|s| {
                Ok(Server {
                    url: Arc::from(s.url.as_str()),
                    upstream: Upstream::new(&s.url, settings.host, cfg, loops)?,
                    weight: s.weight,
                    backup: s.backup,
                    slots: Arc::new(Semaphore::new(s.max_connections)),
                    outstanding: Arc::new(AtomicUsize::new(0)),
                    health: Health::default(),
                    id: hash_bytes(&[s.url.as_bytes()]),
                })
            })
            .collect::<Result<Vec<_>, SetupError>>()?;
        let tier = |backup: bool| {
            let members: Vec<usize> = (0..built.len())
                .filter(|&i| built[i].backup == backup)
                .collect();
            let weights: Vec<u32> = members.iter().map(|&i| built[i].weight).collect();
            Tier {
                order: balance::schedule(&weights),
                members,
            }
        };
        let pool = Arc::new(Self {
            primaries: tier(false),
            backups: tier(true),
            servers: built,
            balance: settings.balance,
            turn: AtomicUsize::new(0),
            // As at nginx, a lone server is never ejected: that would only turn its 502s
            // into 503s and keep it out after it recovers.
            passive: Passive {
                after: if servers.len() > 1 {
                    settings.eject_after
                } else {
                    0
                },
                for_: settings.eject_for,
            },
            queue_timeout: settings.queue_timeout,
            budget: RetryBudget::new(settings.retry_budget),
            retry_non_idempotent: settings.retry_non_idempotent,
            clock,
        });
        if let Some(check) = settings.health_check {
            spawn_checks(&pool, check.clone(), settings.host.map(str::to_owned))?;
        }
        Ok(pool)
    }

    /// The server for the next attempt, skipping `tried` ones; backups only when no primary
    /// can be used.
    fn pick(&self, affinity: u64, tried: &[usize]) -> Option<usize> {
        let now = self.clock.now();
        if let [only] = self.servers.as_slice() {
            // A pool of one, the common case: nothing to balance, nothing to allocate.
            return (tried.is_empty() && only.health.usable(now)).then_some(0);
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        [&self.primaries, &self.backups]
            .into_iter()
            .find_map(|tier| {
                let candidates: Vec<Candidate> = tier
                    .members
                    .iter()
                    .map(|&i| {
                        let s = &self.servers[i];
                        Candidate {
                            weight: s.weight,
                            outstanding: s.outstanding.load(Ordering::Relaxed),
                            usable: !tried.contains(&i) && s.health.usable(now),
                            id: s.id,
                        }
                    })
                    .collect();
                balance::pick(self.balance, &candidates, &tier.order, turn, affinity)
                    .map(|k| tier.members[k])
            })
    }

    /// Sends `req` to a server of the pool, and once more to another (or, for a keep-alive
    /// connection the server had closed, to the same one on a fresh connection) if the first
    /// failed before any answer and the request may be repeated.
    pub(crate) async fn fetch(
        &self,
        mut req: OriginRequest,
    ) -> Result<OriginResponse, OriginError> {
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
            let Some(i) = self.pick(affinity, &tried) else {
                return Err(last.unwrap_or(OriginError::Unavailable("no origin server available")));
            };
            let server = &self.servers[i];
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
                    server
                        .health
                        .record(outcome, self.passive, now, &server.url);
                    let body =
                        std::mem::replace(&mut r.body, futures_util::stream::empty().boxed());
                    r.body = body
                        .map(move |chunk| {
                            let _held = &lease;
                            chunk
                        })
                        .boxed();
                    r.served_by = Some(ServedBy {
                        server: server.url.clone(),
                        retried,
                    });
                    return Ok(r);
                }
                Err(e) => {
                    drop(lease);
                    if e.is_origins_fault() {
                        server
                            .health
                            .record(Outcome::Failed, self.passive, now, &server.url);
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
                    tracing::debug!(server = &*server.url, error = %e, "retrying origin request");
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

impl Server {
    /// A slot under `max_connections`, waited for at most `wait`; it is released when the
    /// lease (held by the response body) is dropped.
    async fn lease(&self, wait: Duration) -> Option<Lease> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(wait, self.slots.clone().acquire_owned())
                .await
                .ok()?
                .ok()?,
        };
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            _permit: permit,
            outstanding: self.outstanding.clone(),
        })
    }
}

/// A request's hold on a server: a slot and a count in `outstanding`.
struct Lease {
    _permit: OwnedSemaphorePermit,
    outstanding: Arc<AtomicUsize>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// RFC 9110 section 9.2.2: a request that may be sent twice with the effect of once.
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Starts one task per server that checks it every `interval` while the pool lives.
fn spawn_checks(
    pool: &Arc<Pool>,
    check: HealthCheckConfig,
    host: Option<String>,
) -> Result<(), SetupError> {
    let client = reqwest::Client::builder()
        .timeout(check.timeout.0)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(SetupError::Client)?;
    for i in 0..pool.servers.len() {
        let weak = Arc::downgrade(pool);
        let (client, check, host) = (client.clone(), check.clone(), host.clone());
        let url = format!(
            "{}{}",
            pool.servers[i].url.trim_end_matches('/'),
            check.path
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(check.interval.0);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = weak.upgrade() else { return };
                let mut rb = client.get(&url);
                if let Some(h) = &host {
                    rb = rb.header(http::header::HOST, h);
                }
                let passed = match rb.send().await {
                    Ok(r) if check.status == 0 => {
                        r.status().is_success() || r.status().is_redirection()
                    }
                    Ok(r) => r.status().as_u16() == check.status,
                    Err(_) => false,
                };
                let s = &pool.servers[i];
                s.health.record_check(
                    passed,
                    check.healthy_threshold,
                    check.unhealthy_threshold,
                    &s.url,
                );
            }
        });
    }
    Ok(())
}
