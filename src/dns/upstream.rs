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
//! DNS over HTTPS lives in [`super::doh`]; its connections are kept here, across reloads.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};
use tracing::{info, warn};

use super::doh::DohConnections;
use crate::config::{Strategy, UpstreamServer, UpstreamSettings};

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

/// The TLS client settings for `tls://` upstreams: the built-in Mozilla roots (webpki-roots,
/// so a router without a CA bundle works) plus the CAs in `ca_file`, TLS 1.2 and 1.3 with
/// the ring provider, ALPN "dot" (RFC 7858).
pub fn tls_client_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{shown} is not a PEM certificate file: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("{shown}: unusable CA certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "{shown} holds no certificate; it should hold one or more \"-----BEGIN CERTIFICATE-----\" blocks"
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"dot".to_vec()];
    Ok(Arc::new(config))
}

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

/// Upper bounds, in seconds, of the upstream latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Upstream latency and failures, for `/metrics`: atomics for the totals, and per upstream
/// (one short lock per exchange, which already costs a socket) answers and failures.
#[derive(Debug, Default)]
pub struct UpstreamMetrics {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    errors: AtomicU64,
    by_upstream: Mutex<HashMap<String, UpstreamCounts>>,
}

/// What one upstream did, since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamCounts {
    /// Exchanges it answered (any response code).
    pub answers: u64,
    /// Exchanges that failed or timed out.
    pub failures: u64,
}

impl UpstreamMetrics {
    fn count(&self, server: &UpstreamServer, ok: bool) {
        let mut map = self
            .by_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let counts = map.entry(server.to_string()).or_default();
        if ok {
            counts.answers += 1;
        } else {
            counts.failures += 1;
        }
    }

    /// Answers and failures by upstream (as written in canonical form, e.g.
    /// `udp://9.9.9.9:53`), sorted by upstream.
    pub fn by_upstream(&self) -> Vec<(String, UpstreamCounts)> {
        let map = self
            .by_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// One upstream's counts (zero if it was never asked).
    pub fn of(&self, server: &UpstreamServer) -> UpstreamCounts {
        let map = self
            .by_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&server.to_string()).copied().unwrap_or_default()
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative buckets (upper bound, count), the sum in seconds, and the count.
    pub fn histogram(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut cumulative = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, cell) in self.buckets.iter().enumerate() {
            cumulative += cell.load(Ordering::Relaxed);
            let bound = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            out.push((bound, cumulative));
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (out, sum, cumulative)
    }

    /// Exchanges that failed or timed out.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// What is known about one upstream's health.
#[derive(Debug, Clone, Copy, Default)]
struct HealthState {
    /// Consecutive failed exchanges.
    failures: u32,
    /// While down: when the next probe may go.
    retry_at: Option<Instant>,
    /// Smoothed round-trip time of its answers, seconds (None until one is measured).
    srtt: Option<f64>,
    /// When `srtt` was last measured, or a new measure claimed by a query.
    measured_at: Option<Instant>,
    /// The next answer replaces `srtt` instead of being smoothed into it: it is a new look at
    /// an upstream not used for a while (explored, or its estimate stale), whose old estimate
    /// says nothing about now.
    remeasure: bool,
}

/// Health of every upstream seen, by address (so it survives reloads that keep the address).
#[derive(Debug, Default)]
struct Health {
    states: Mutex<HashMap<SocketAddr, HealthState>>,
}

impl Health {
    /// The indices of the upstreams to try, in order: those up, and those down whose probe is
    /// due (the probe is claimed, so concurrent queries do not all probe a dead upstream). All
    /// of them when none qualifies.
    ///
    /// With [`Strategy::Fastest`] the list is reordered: probes of down upstreams and
    /// upstreams due for a new measure first (the measure is claimed, so one query takes it),
    /// then by smoothed round-trip time; with `explore`, the best is swapped with another.
    fn pick(
        &self,
        servers: &[UpstreamServer],
        now: Instant,
        strategy: Strategy,
        explore: bool,
    ) -> Vec<usize> {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let mut picked = Vec::with_capacity(servers.len());
        // (index, sort key): 0.0 for probes and due measures, else the estimate.
        let mut keyed = Vec::with_capacity(servers.len());
        for (i, server) in servers.iter().enumerate() {
            let state = states.entry(server.addr()).or_default();
            match state.retry_at {
                None => {
                    picked.push(i);
                    let due = state
                        .measured_at
                        .is_some_and(|at| now.saturating_duration_since(at) >= STALE_ESTIMATE);
                    if due && strategy == Strategy::Fastest {
                        state.measured_at = Some(now);
                        state.remeasure = true;
                        keyed.push((i, -1.0));
                    } else {
                        keyed.push((i, state.srtt.unwrap_or(0.0)));
                    }
                }
                Some(at) if at <= now => {
                    state.retry_at = Some(now + backoff(state.failures));
                    picked.push(i);
                    keyed.push((i, -1.0));
                }
                Some(_) => {}
            }
        }
        // Forget upstreams no longer configured, so the map is bounded by the config.
        if states.len() > servers.len() * 2 {
            states.retain(|addr, _| servers.iter().any(|s| s.addr() == *addr));
        }
        if picked.is_empty() {
            return (0..servers.len()).collect();
        }
        if strategy == Strategy::Failover || keyed.len() < 2 {
            return picked;
        }
        // Stable: equal estimates keep the order written.
        keyed.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut order: Vec<usize> = keyed.into_iter().map(|(i, _)| i).collect();
        if explore {
            let other = 1 + rand::random_range(0..order.len() - 1);
            order.swap(0, other);
            if let Some(state) = servers
                .get(order[0])
                .and_then(|s| states.get_mut(&s.addr()))
            {
                state.remeasure = true;
            }
        }
        order
    }

    fn record(&self, server: SocketAddr, ok: bool, now: Instant, rtt: Duration) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let state = states.entry(server).or_default();
        if ok {
            if state.retry_at.is_some() {
                info!(upstream = %server, "upstream answers again");
            }
            let sample = rtt.as_secs_f64();
            let srtt = match state.srtt {
                Some(old) if !state.remeasure => old + RTT_GAIN * (sample - old),
                _ => sample,
            };
            *state = HealthState {
                srtt: Some(srtt),
                measured_at: Some(now),
                ..HealthState::default()
            };
        } else {
            state.failures = state.failures.saturating_add(1);
            // A timeout is a round trip too: an upstream that keeps failing is not fastest.
            let sample = rtt.as_secs_f64();
            state.srtt = Some(state.srtt.map_or(sample, |old| old.max(sample)));
            if state.retry_at.is_none() {
                warn!(upstream = %server, "upstream not answering; skipping it until a probe succeeds");
            }
            state.retry_at = Some(now + backoff(state.failures));
        }
    }

    /// Whether `server` is currently skipped.
    fn is_down(&self, server: SocketAddr) -> bool {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.get(&server).is_some_and(|s| s.retry_at.is_some())
    }

    /// The smoothed round-trip time of `server`, if measured.
    fn srtt(&self, server: SocketAddr) -> Option<Duration> {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states
            .get(&server)
            .and_then(|s| s.srtt)
            .map(Duration::from_secs_f64)
    }
}

fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
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

/// One exchange with one upstream: UDP first and TCP when the UDP answer is truncated, TCP
/// only, TLS, or HTTPS.
async fn exchange(
    server: &UpstreamServer,
    tls: Option<&Arc<rustls::ClientConfig>>,
    doh: &DohConnections,
    question: &Question,
    deadline: Instant,
) -> Result<Message, UpstreamError> {
    let id: u16 = rand::random();
    let query = build_query(id, question);
    let request = query
        .to_vec()
        .map_err(|e| UpstreamError::Failed(format!("cannot encode query: {e}")))?;
    let server = match server {
        UpstreamServer::Udp(addr) => *addr,
        UpstreamServer::Tcp(addr) => {
            return timeout_at(deadline, exchange_tcp(*addr, &request, id, question))
                .await
                .map_err(|_| UpstreamError::Timeout)?;
        }
        UpstreamServer::Tls { addr, name } => {
            let config = tls.ok_or_else(|| {
                UpstreamError::Failed("no TLS client configuration was built".into())
            })?;
            let work = exchange_tls(*addr, name, config, &request, id, question);
            return timeout_at(deadline, work)
                .await
                .map_err(|_| UpstreamError::Timeout)?;
        }
        UpstreamServer::Https { .. } => {
            let config = tls.ok_or_else(|| {
                UpstreamError::Failed("no TLS client configuration was built".into())
            })?;
            let work = doh.exchange(server, config, query, question);
            return timeout_at(deadline, work)
                .await
                .map_err(|_| UpstreamError::Timeout)?;
        }
    };
    let answer = timeout_at(deadline, exchange_udp(server, &request, id, question))
        .await
        .map_err(|_| UpstreamError::Timeout)??;
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    timeout_at(deadline, exchange_tcp(server, &request, id, question))
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

fn build_query(id: u16, question: &Question) -> Message {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = question.checking_disabled;
    let mut query = Query::query(question.name.clone(), question.qtype);
    query.set_query_class(DNSClass::IN);
    message.add_query(query);
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns.set_dnssec_ok(question.dnssec_ok);
    message.set_edns(edns);
    message
}

async fn exchange_udp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    question: &Question,
) -> Result<Message, UpstreamError> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let io = |e: std::io::Error| UpstreamError::Failed(e.to_string());
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    // A connected socket only receives datagrams from the upstream's address and port.
    socket.connect(server).await.map_err(io)?;
    socket.send(request).await.map_err(io)?;
    let mut buf = [0u8; UDP_BUFFER];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        // Anything that is not the answer to our question is ignored, not trusted.
        if let Some(answer) = buf.get(..n).and_then(|b| matching_answer(b, id, question)) {
            return Ok(answer);
        }
    }
}

async fn exchange_tcp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    question: &Question,
) -> Result<Message, UpstreamError> {
    let io = |e: std::io::Error| UpstreamError::Failed(e.to_string());
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    exchange_stream(&mut stream, request, id, question).await
}

/// DNS over TLS (RFC 7858): a TLS 1.2+ session to `server`, whose certificate must be valid
/// for `name`, then the TCP framing. One connection per exchange: simple and stateless, at the
/// cost of a handshake per cache miss.
async fn exchange_tls(
    server: SocketAddr,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
    request: &[u8],
    id: u16,
    question: &Question,
) -> Result<Message, UpstreamError> {
    let io = |e: std::io::Error| UpstreamError::Failed(e.to_string());
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|e| UpstreamError::Failed(format!("bad TLS name: {e}")))?;
    let tcp = TcpStream::connect(server).await.map_err(io)?;
    let mut stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| UpstreamError::Failed(format!("TLS: {e}")))?;
    let answer = exchange_stream(&mut stream, request, id, question).await;
    // Best effort close_notify; the answer is already in hand.
    let _ = stream.shutdown().await;
    answer
}

/// Writes one length-prefixed query on `stream` and reads one length-prefixed answer.
async fn exchange_stream<S>(
    stream: &mut S,
    request: &[u8],
    id: u16,
    question: &Question,
) -> Result<Message, UpstreamError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let io = |e: std::io::Error| UpstreamError::Failed(e.to_string());
    let len =
        u16::try_from(request.len()).map_err(|_| UpstreamError::Failed("query too long".into()))?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.map_err(io)?;
    matching_answer(&buf, id, question).ok_or_else(|| {
        UpstreamError::Failed("upstream sent a mismatched answer over a stream".into())
    })
}

/// Parses `bytes` and returns it only if it answers exactly our question with our ID.
pub(super) fn matching_answer(bytes: &[u8], id: u16, question: &Question) -> Option<Message> {
    let message = Message::from_vec(bytes).ok()?;
    let header = &message.metadata;
    if header.id != id || header.message_type != MessageType::Response {
        return None;
    }
    let [query] = message.queries.as_slice() else {
        return None;
    };
    let same = query.query_type() == question.qtype
        && query.query_class() == DNSClass::IN
        && query.name().eq_ignore_root(&question.name);
    same.then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_failed_upstream_is_skipped_then_probed_once_with_growing_backoff() {
        let health = Health::default();
        let a: SocketAddr = "127.0.0.1:5301".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:5302".parse().expect("addr");
        let servers = [UpstreamServer::Udp(a), UpstreamServer::Udp(b)];
        let (a_and_b, only_b) = (vec![0, 1], vec![1]);
        let t0 = Instant::now();
        assert_eq!(
            health.pick(&servers, t0, Strategy::Failover, false),
            a_and_b
        );
        health.record(a, false, t0, MS);
        assert!(health.is_down(a));
        assert_eq!(
            health.pick(&servers, t0, Strategy::Failover, false),
            only_b.clone(),
            "skipped while down"
        );
        // After the back-off one query probes it; the next ones do not pile on.
        let t1 = t0 + FIRST_BACKOFF;
        assert_eq!(
            health.pick(&servers, t1, Strategy::Failover, false),
            a_and_b.clone()
        );
        assert_eq!(
            health.pick(&servers, t1, Strategy::Failover, false),
            only_b.clone()
        );
        // The probe fails: the wait doubles.
        health.record(a, false, t1, MS);
        assert_eq!(
            health.pick(&servers, t1 + FIRST_BACKOFF, Strategy::Failover, false),
            only_b.clone()
        );
        assert_eq!(
            health.pick(&servers, t1 + 2 * FIRST_BACKOFF, Strategy::Failover, false),
            a_and_b.clone(),
            "probed after twice the first back-off"
        );
        // An answer brings it back at once.
        health.record(a, true, t1 + 2 * FIRST_BACKOFF, MS);
        assert!(!health.is_down(a));
        assert_eq!(
            health.pick(&servers, t1 + 2 * FIRST_BACKOFF, Strategy::Failover, false),
            a_and_b.clone()
        );
        // When everything is down, everything is tried.
        health.record(a, false, t1, MS);
        health.record(b, false, t1, MS);
        assert_eq!(
            health.pick(&servers, t1, Strategy::Failover, false),
            a_and_b.clone()
        );
        assert_eq!(backoff(100), MAX_BACKOFF);
    }

    #[test]
    fn fastest_orders_by_smoothed_rtt_explores_and_remeasures_stale_estimates() {
        let health = Health::default();
        let slow: SocketAddr = "127.0.0.1:5311".parse().expect("addr");
        let fast: SocketAddr = "127.0.0.1:5312".parse().expect("addr");
        let servers = [UpstreamServer::Udp(slow), UpstreamServer::Udp(fast)];
        let pick = |at, explore| health.pick(&servers, at, Strategy::Fastest, explore);
        let t0 = Instant::now();
        // Unmeasured: the order written.
        assert_eq!(pick(t0, false), vec![0, 1]);
        health.record(slow, true, t0, Duration::from_millis(80));
        health.record(fast, true, t0, Duration::from_millis(5));
        assert_eq!(pick(t0, false), vec![1, 0], "the fast one first");
        assert_eq!(
            pick(t0, true),
            vec![0, 1],
            "exploring tries the other first"
        );
        // And its answer is a new measure, not one sample smoothed into an old estimate:
        // a slow upstream that recovered wins at once.
        health.record(slow, true, t0, Duration::from_millis(1));
        assert_eq!(pick(t0, false), vec![0, 1]);
        health.record(slow, true, t0, Duration::from_millis(80));
        health.record(slow, true, t0, Duration::from_millis(80));
        health.record(slow, true, t0, Duration::from_millis(80));
        health.record(slow, true, t0, Duration::from_millis(80));
        assert_eq!(pick(t0, false), vec![1, 0], "smoothed again after that");
        // The EWMA follows a change within a few answers, without jumping on one.
        health.record(fast, true, t0, Duration::from_millis(200));
        assert_eq!(
            pick(t0, false),
            vec![1, 0],
            "one slow answer does not demote it"
        );
        assert!(health.srtt(fast).expect("measured") < Duration::from_millis(60));
        for _ in 0..4 {
            health.record(fast, true, t0, Duration::from_millis(200));
        }
        assert_eq!(pick(t0, false), vec![0, 1], "a lasting slowdown does");
        for _ in 0..8 {
            health.record(fast, true, t0, Duration::from_millis(5));
        }
        assert_eq!(pick(t0, false), vec![1, 0]);
        // A stale estimate is measured again by one query, not by all of them.
        let later = t0 + STALE_ESTIMATE;
        health.record(fast, true, later, Duration::from_millis(5));
        assert_eq!(
            pick(later, false),
            vec![0, 1],
            "the slow one is re-measured"
        );
        assert_eq!(pick(later, false), vec![1, 0], "by one query only");
        // Failover ignores round-trip times.
        assert_eq!(
            health.pick(&servers, later, Strategy::Failover, false),
            vec![0, 1]
        );
    }
}
