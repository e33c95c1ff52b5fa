//! Admission control for the public search path, for the exam-period peak:
//! a bounded number of searches run at once, a bounded number wait briefly
//! for a turn, and everything beyond that is refused at once with 503 and
//! `Retry-After` rather than left waiting. Each client address also has a
//! rate limit, since bots, not students, make the worst peaks.
//!
//! Staff and circulation routes are not behind this gate: a flood of
//! catalogue searches never slows the circulation desk.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

/// The limits, with defaults computed from the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Searches running at once. Each uses one thread of the search pool.
    pub max_concurrent: usize,
    /// Searches that may wait for a turn; more are refused at once.
    pub queue: usize,
    /// The longest a search waits for a turn before it is refused.
    pub queue_wait: Duration,
    /// Searches per second each client address may make (0: no limit).
    pub per_client_per_second: u32,
    /// How many a client may make at once above that rate.
    pub per_client_burst: u32,
    /// Addresses of reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Limits {
    /// Defaults for a machine with `cores` cores: two searches per core at
    /// once (a search alternates between index and database), four per core
    /// waiting at most 50 ms (so a refusal comes well within 100 ms), and
    /// 20 searches a second per client with bursts of 40 (a library
    /// terminal room behind one address stays well below that).
    pub fn for_cores(cores: usize) -> Limits {
        let cores = cores.max(1);
        Limits {
            max_concurrent: 2 * cores,
            queue: 4 * cores,
            queue_wait: Duration::from_millis(50),
            per_client_per_second: 20,
            per_client_burst: 40,
            trusted_proxies: Vec::new(),
        }
    }

    /// Defaults for this machine.
    pub fn for_this_machine() -> Limits {
        Limits::for_cores(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Every turn is taken and the queue is full, or the wait ran out.
    Busy,
    /// This client is over its rate; it may try again after this long.
    RateLimited(Duration),
}

/// Counters for health and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct AdmissionStats {
    /// Searches running now.
    pub running: usize,
    /// Searches waiting for a turn now.
    pub waiting: usize,
    /// Searches admitted since start.
    pub admitted: u64,
    /// Refused with 503 since start.
    pub refused_busy: u64,
    /// Refused with 429 since start.
    pub refused_rate: u64,
    /// The limits in force.
    pub max_concurrent: usize,
    /// Queue length in force.
    pub queue: usize,
}

/// The gate: turns, a queue, and per-client rates.
pub struct Admission {
    limits: Limits,
    turns: Arc<Semaphore>,
    waiting: AtomicUsize,
    clients: Option<DefaultKeyedRateLimiter<IpAddr>>,
    admitted: AtomicU64,
    refused_busy: AtomicU64,
    refused_rate: AtomicU64,
}

impl Admission {
    /// A gate with these limits.
    pub fn new(limits: Limits) -> Admission {
        let clients = NonZeroU32::new(limits.per_client_per_second).map(|rate| {
            let burst = NonZeroU32::new(limits.per_client_burst.max(1)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Admission {
            turns: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            clients,
            admitted: AtomicU64::new(0),
            refused_busy: AtomicU64::new(0),
            refused_rate: AtomicU64::new(0),
            limits,
        }
    }

    /// Admits a request from `client`: a turn, held until the permit is
    /// dropped, or the reason it is refused.
    pub async fn admit(&self, client: IpAddr) -> Result<OwnedSemaphorePermit, Refusal> {
        if let Some(clients) = &self.clients
            && let Err(not_until) = clients.check_key(&client)
        {
            self.refused_rate.fetch_add(1, Ordering::Relaxed);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Refusal::RateLimited(wait));
        }
        let permit = match Arc::clone(&self.turns).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Take a place in the queue, if there is one.
                let place = self
                    .waiting
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                        (w < self.limits.queue).then_some(w + 1)
                    });
                if place.is_err() {
                    self.refused_busy.fetch_add(1, Ordering::Relaxed);
                    return Err(Refusal::Busy);
                }
                let turn = tokio::time::timeout(
                    self.limits.queue_wait,
                    Arc::clone(&self.turns).acquire_owned(),
                )
                .await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                match turn {
                    Ok(Ok(p)) => p,
                    _ => {
                        self.refused_busy.fetch_add(1, Ordering::Relaxed);
                        return Err(Refusal::Busy);
                    }
                }
            }
        };
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(permit)
    }

    /// Forgets clients that have been quiet long enough to be at full
    /// allowance again, so the table of addresses stays small.
    pub fn forget_quiet_clients(&self) {
        if let Some(clients) = &self.clients {
            clients.retain_recent();
        }
    }

    /// Counters now.
    pub fn stats(&self) -> AdmissionStats {
        let max = self.limits.max_concurrent.max(1);
        AdmissionStats {
            running: max - self.turns.available_permits(),
            waiting: self.waiting.load(Ordering::Acquire),
            admitted: self.admitted.load(Ordering::Relaxed),
            refused_busy: self.refused_busy.load(Ordering::Relaxed),
            refused_rate: self.refused_rate.load(Ordering::Relaxed),
            max_concurrent: max,
            queue: self.limits.queue,
        }
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy,
    /// the last address it added to `X-Forwarded-For`.
    pub(crate) fn client_of(&self, request: &Request) -> IpAddr {
        let peer = request
            .extensions()
            .get::<ConnectInfo<crate::listener::Peer>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip());
        if !self.limits.trusted_proxies.contains(&peer) {
            return peer;
        }
        request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(peer)
    }
}

/// The middleware: admits or refuses, then runs the request holding its turn.
pub async fn gate(State(gate): State<Arc<Admission>>, request: Request, next: Next) -> Response {
    let client = gate.client_of(&request);
    match gate.admit(client).await {
        Ok(turn) => {
            let response = next.run(request).await;
            drop(turn);
            response
        }
        Err(Refusal::Busy) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the catalogue is busy; try again in a moment",
            Duration::from_secs(1),
        ),
        Err(Refusal::RateLimited(wait)) => refused(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many searches from this address; slow down",
            wait,
        ),
    }
}

fn refused(status: StatusCode, code: &'static str, message: &str, wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = ApiError::new(status, code, message).into_response();
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, queue: usize, wait_ms: u64) -> Limits {
        Limits {
            max_concurrent: max,
            queue,
            queue_wait: Duration::from_millis(wait_ms),
            per_client_per_second: 0,
            per_client_burst: 0,
            trusted_proxies: Vec::new(),
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[tokio::test]
    async fn beyond_the_turns_and_the_queue_a_request_is_refused_at_once() {
        let gate = Arc::new(Admission::new(limits(1, 1, 60_000)));
        let first = gate.admit(A).await.expect("a free turn");
        // The second waits in the queue …
        let second = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.admit(A).await.map(drop) }
        });
        while gate.stats().waiting == 0 {
            tokio::task::yield_now().await;
        }
        // … and the third finds the queue full and is refused without waiting.
        assert_eq!(gate.admit(B).await.err(), Some(Refusal::Busy));
        drop(first);
        assert_eq!(second.await.expect("task"), Ok(()));
        let stats = gate.stats();
        assert_eq!(
            (
                stats.admitted,
                stats.refused_busy,
                stats.running,
                stats.waiting
            ),
            (2, 1, 0, 0)
        );
        // Served normally as soon as the load is gone.
        assert!(gate.admit(B).await.is_ok());
    }

    #[tokio::test]
    async fn a_queued_request_is_refused_when_its_wait_runs_out() {
        let gate = Admission::new(limits(1, 4, 20));
        let _held = gate.admit(A).await.expect("a free turn");
        let started = std::time::Instant::now();
        assert_eq!(gate.admit(B).await.err(), Some(Refusal::Busy));
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(
            gate.stats().waiting,
            0,
            "the place in the queue is given back"
        );
    }

    #[tokio::test]
    async fn each_client_address_has_its_own_rate() {
        let mut l = limits(8, 8, 50);
        l.per_client_per_second = 1;
        l.per_client_burst = 2;
        let gate = Admission::new(l);
        assert!(gate.admit(A).await.is_ok());
        assert!(gate.admit(A).await.is_ok());
        match gate.admit(A).await {
            Err(Refusal::RateLimited(wait)) => {
                assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1))
            }
            other => panic!("expected a rate refusal, got {other:?}"),
        }
        assert!(
            gate.admit(B).await.is_ok(),
            "another address is not held back"
        );
        assert_eq!(gate.stats().refused_rate, 1);
    }

    #[test]
    fn defaults_follow_the_cores() {
        let l = Limits::for_cores(8);
        assert_eq!((l.max_concurrent, l.queue), (16, 32));
        assert!(l.queue_wait < Duration::from_millis(100));
    }
}
