//! Forwarding to the upstream resolvers.
//!
//! Every upstream query is built fresh from the validated question: a new random ID, a new
//! socket with a kernel-chosen port, RD set, our own EDNS (1232 bytes, the client's DO bit) and
//! nothing of the client's (no ECS, no cookies, no trailing bytes). Upstreams are tried in order
//! within one overall deadline; a truncated UDP answer is fetched again over TCP. The number of
//! upstream queries in flight is capped, so a flood of unique names cannot exhaust sockets.
//!
//! Health: an upstream that times out or cannot be reached is marked down and skipped, so the
//! next queries go straight to the next one instead of spending their deadline on it. After a
//! back-off (1 s, doubling to 60 s) one query probes it again; an answer brings it back. When
//! every upstream is down they are all tried anyway: a guess is better than certain failure.
//!
//! Order: `failover` tries the upstreams in the order written. `fastest` keeps a smoothed
//! round-trip time per upstream (an EWMA of its answers' latency) and tries the quickest first;
//! one query in [`EXPLORE_EVERY`] goes to another one first, and an estimate older than
//! [`STALE_ESTIMATE`] is measured again, so an upstream that got faster is noticed. An
//! upstream that has never answered counts as fastest until measured.
//!
//! Files: [`transport`] (one exchange over UDP, TCP, TLS), [`doh`] (DNS over HTTPS, its
//! connections kept across reloads), [`health`] (down marks, back-off, the order to ask in),
//! [`metrics`] (counts and latency for /metrics), [`tls`] (client TLS settings), [`probe`]
//! (`kidsafe check --probe`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub mod doh;
pub mod health;
pub mod metrics;
pub mod probe;
pub mod tls;
pub mod transport;

use crate::config::UpstreamSettings;
use doh::DohConnections;
use health::Health;
pub use metrics::{LATENCY_BUCKETS, UpstreamCounts, UpstreamMetrics};
pub use tls::{TlsSetupError, tls_client_config, tls_for};
use transport::exchange;

/// The EDNS payload size we advertise upstream (the DNS Flag Day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;
/// The largest UDP answer we read.
const UDP_BUFFER: usize = 4096;
/// How long a failed upstream is skipped at first; doubled after each failed probe.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest an upstream is skipped before it is probed again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// With `strategy = "fastest"`, one query in this many tries another upstream first.
pub const EXPLORE_EVERY: u64 = 32;
/// With `strategy = "fastest"`, a round-trip estimate older than this is measured again.
pub const STALE_ESTIMATE: Duration = Duration::from_secs(60);
/// Weight of a new sample in the smoothed round-trip time (TCP's 1/8 reacts too slowly to a
/// resolver that just became slow; 1/4 follows it within a few answers).
const RTT_GAIN: f64 = 0.25;

/// Why no upstream answer could be had.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Too many upstream queries in flight.
    #[error("too many upstream queries in flight")]
    Busy,
    /// No upstream answered within the deadline.
    #[error("no upstream answered in time")]
    Timeout,
    /// Every upstream failed; the last error.
    #[error("upstream failed: {0}")]
    Failed(String),
}

/// What to ask.
#[derive(Debug, Clone)]
pub struct Question {
    /// The name (as the client asked it, lower-cased).
    pub name: Name,
    /// The type.
    pub qtype: RecordType,
    /// The client's DO bit.
    pub dnssec_ok: bool,
    /// The client's CD bit.
    pub checking_disabled: bool,
}

/// Sends questions to upstreams; shared by all queries, across reloads.
#[derive(Debug, Clone)]
pub struct Forwarder {
    slots: Arc<Semaphore>,
    metrics: Arc<UpstreamMetrics>,
    health: Arc<Health>,
    doh: Arc<DohConnections>,
    /// Queries forwarded, for choosing which ones explore under `fastest`.
    asked: Arc<AtomicU64>,
}

impl Forwarder {
    /// A forwarder allowing `max_in_flight` upstream queries at once.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
            metrics: Arc::default(),
            health: Arc::default(),
            doh: Arc::default(),
            asked: Arc::default(),
        }
    }

    /// The smoothed round-trip time of `server`'s answers, if any was measured.
    pub fn srtt(&self, server: SocketAddr) -> Option<Duration> {
        self.health.srtt(server)
    }

    /// DoH connections held (one per DoH upstream in use).
    pub fn doh_connections(&self) -> usize {
        self.doh.len()
    }

    /// Whether `server` is marked down (for `/metrics` and tests).
    pub fn is_down(&self, server: SocketAddr) -> bool {
        self.health.is_down(server)
    }

    /// Its latency and error counters.
    pub fn metrics(&self) -> Arc<UpstreamMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Resolves `question` through the upstreams in `settings`, in order, within its timeout.
    /// An upstream that answers SERVFAIL or REFUSED is passed over while others remain; the last
    /// one's answer is relayed as it is. `tls` is the client config for `tls://` upstreams.
    pub async fn resolve(
        &self,
        settings: &UpstreamSettings,
        tls: Option<&Arc<rustls::ClientConfig>>,
        question: &Question,
    ) -> Result<Message, UpstreamError> {
        let _slot = self.slots.try_acquire().map_err(|_| UpstreamError::Busy)?;
        let start = Instant::now();
        let deadline = start + settings.timeout;
        let explore =
            self.asked.fetch_add(1, Ordering::Relaxed) % EXPLORE_EVERY == EXPLORE_EVERY - 1;
        let picked = self
            .health
            .pick(&settings.servers, start, settings.strategy, explore);
        let servers = picked.iter().filter_map(|i| settings.servers.get(*i));
        let count = picked.len();
        let mut last_error = UpstreamError::Timeout;
        for (i, server) in servers.enumerate() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Share what is left fairly among the upstreams not yet tried.
            let left = u32::try_from(count - i).unwrap_or(1);
            let attempt_deadline = now + (deadline - now) / left;
            let result = exchange(server, tls, &self.doh, question, attempt_deadline).await;
            // Any answer, even SERVFAIL for this one name, shows the upstream is alive.
            self.health
                .record(server.addr(), result.is_ok(), Instant::now(), now.elapsed());
            self.metrics.count(server, result.is_ok());
            match &result {
                Ok(_) => self.metrics.observe(now.elapsed()),
                Err(_) => {
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            match result {
                Ok(message) => {
                    let failed = matches!(
                        message.metadata.response_code,
                        ResponseCode::ServFail | ResponseCode::Refused
                    );
                    if !failed || i + 1 == count {
                        return Ok(message);
                    }
                    last_error = UpstreamError::Failed(format!(
                        "upstream answered {}",
                        message.metadata.response_code
                    ));
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }
}

#[cfg(test)]
mod tests;
