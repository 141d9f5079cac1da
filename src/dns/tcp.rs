//! kidsafe's own TCP loop (RFC 7766): accept, read length-prefixed queries, answer each through
//! the same [`Handler`] as UDP, write the answers back as they are ready.
//!
//! hickory-server's TCP listener cannot cap its connections, and every open connection holds a
//! task and buffers: a client opening thousands of idle connections would exhaust the daemon.
//! So here:
//! - at most `server.tcp_connections` connections are open at once; one past the limit is
//!   accepted and closed at once (the client sees the close and retries, over UDP or
//!   elsewhere), and refusals are logged at most once a minute, as a count, never an address;
//! - a connection with no query for `server.tcp_idle_timeout`, and no answer still owed, is
//!   closed;
//! - queries may be pipelined: each is answered on its own as soon as it can be, in any order
//!   (the ID tells them apart), at most [`PIPELINE`] at once per connection;
//! - a client that stops reading its answers cannot hold its slot: writing an answer, and
//!   waiting for a pipeline slot while answers pile up unread, each get `tcp_idle_timeout`,
//!   then the connection is closed (before, 8 such connections from one child's laptop held
//!   every slot and ~3 MB of kernel buffers each, for as long as it liked);
//! - a connection is closed after [`MAX_QUERIES_PER_CONNECTION`] queries, once their answers
//!   are written;
//! - a client outside `server.allow_clients` is closed at accept, never served.
//!
//! Both limits are read from the runtime in force, so a reload changes them for the next
//! connection and the next wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hickory_server::net::xfer::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Handler;
use super::request::respond;

/// Most queries of one connection being answered at once; the next waits to be read.
pub const PIPELINE: usize = 32;

/// The longest TCP query read (the same limit as a UDP query datagram): anything longer is
/// not a query kidsafe answers, and the connection is closed before it is read.
pub const MAX_QUERY: usize = 4096;
/// Queries one connection may send; then its answers are written and it is closed (RFC 7766
/// lets a server close; stub resolvers reconnect). Bounds what one connection can make the
/// daemon do without a pause, far above what a real client sends on one connection.
pub const MAX_QUERIES_PER_CONNECTION: usize = 10_000;

/// Refused connections are logged at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Connections open and refused, shared by every TCP listener of a daemon.
#[derive(Debug, Default)]
pub struct TcpStats {
    open: AtomicUsize,
    outside: AtomicU64,
    refused: AtomicU64,
    refused_unlogged: AtomicU64,
    last_log: std::sync::Mutex<Option<Instant>>,
}

impl TcpStats {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections closed at accept since start because the client is outside
    /// `allow_clients`.
    pub fn outside(&self) -> u64 {
        self.outside.load(Ordering::Relaxed)
    }

    /// Connections refused since start because `tcp_connections` were open.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Takes one of `limit` connection slots, or `None` when all are in use.
    fn admit(self: &Arc<Self>, limit: usize) -> Option<OpenConnection> {
        let mut open = self.open.load(Ordering::Relaxed);
        loop {
            if open >= limit {
                return None;
            }
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(OpenConnection(Arc::clone(self))),
                Err(now) => open = now,
            }
        }
    }

    fn note_refused(&self, limit: usize) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.refused_unlogged.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let Ok(mut last) = self.last_log.try_lock() else {
            return; // another refusal is logging right now
        };
        if last.is_some_and(|at| now.saturating_duration_since(at) < REFUSAL_LOG_EVERY) {
            return;
        }
        *last = Some(now);
        let refused = self.refused_unlogged.swap(0, Ordering::Relaxed);
        warn!(
            refused,
            limit, "TCP connections refused: server.tcp_connections are all open"
        );
    }
}

/// One connection slot; given back when dropped.
struct OpenConnection(Arc<TcpStats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one TCP listener until `shutdown`; then stops reading queries and lets each
/// connection finish writing the answers it owes (the caller bounds that with the drain).
pub async fn serve(
    listener: TcpListener,
    handler: Arc<Handler>,
    stats: Arc<TcpStats>,
    shutdown: CancellationToken,
) {
    // A JoinSet, not a tracker: if the caller gives up on the drain and drops this future,
    // every connection goes with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, src)) = accepted else {
            // Out of file descriptors and the like: pause rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if !handler.client_allowed(src.ip()) {
            // Outside allow_clients: nothing to serve, so nothing to hold open.
            drop(stream);
            stats.outside.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (limit, idle) = handler.tcp_limits();
        let Some(slot) = stats.admit(limit) else {
            // Closing at once frees the descriptor; the client sees the connection end.
            drop(stream);
            stats.note_refused(limit);
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            src,
            Arc::clone(&handler),
            idle,
            shutdown.clone(),
            slot,
        ));
    }
    while connections.join_next().await.is_some() {}
}

/// Reads queries until the client closes, goes idle, misbehaves or the daemon stops; writes
/// each answer when it is ready.
async fn connection(
    stream: TcpStream,
    src: SocketAddr,
    handler: Arc<Handler>,
    idle: Duration,
    shutdown: CancellationToken,
    _slot: OpenConnection,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (answers, mut to_write) = mpsc::channel::<Vec<u8>>(PIPELINE);
    let pipeline = Arc::new(Semaphore::new(PIPELINE));
    // Cancelled when the client stops taking its answers: the reader stops too.
    let stuck = CancellationToken::new();
    let stuck_reader = stuck.clone();
    let write = async move {
        while let Some(answer) = to_write.recv().await {
            let Ok(len) = u16::try_from(answer.len()) else {
                continue; // cannot happen: answers are encoded within 65535 bytes
            };
            let mut framed = Vec::with_capacity(answer.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&answer);
            if !matches!(
                tokio::time::timeout(idle, writer.write_all(&framed)).await,
                Ok(Ok(()))
            ) {
                stuck.cancel();
                return;
            }
        }
        let _ = writer.shutdown().await;
    };
    let read = async move {
        for _ in 0..MAX_QUERIES_PER_CONNECTION {
            // A slot frees when an answer is written: a client that does not read gets no
            // more than `idle` to start again.
            let permit = tokio::select! {
                biased;
                _ = stuck_reader.cancelled() => return,
                p = tokio::time::timeout(idle, Arc::clone(&pipeline).acquire_owned()) => match p {
                    Ok(Ok(permit)) => permit,
                    _ => return,
                },
            };
            let mut len = [0u8; 2];
            // Idle: no query arriving while no answer is owed. While answers are owed the
            // client is waiting on us, not idle.
            let first = loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = stuck_reader.cancelled() => return,
                    r = tokio::time::timeout(idle, reader.read_u8()) => match r {
                        Ok(Ok(byte)) => break byte,
                        Ok(Err(_)) => return, // closed or reset
                        Err(_) => {
                            // Answers owed: permits held besides this loop's own.
                            let owed = PIPELINE - pipeline.available_permits() > 1;
                            if !owed {
                                return; // idle
                            }
                        }
                    },
                }
            };
            len[0] = first;
            // The rest of a message must follow promptly, or the connection is dropped.
            let rest = async {
                len[1] = reader.read_u8().await?;
                let size = usize::from(u16::from_be_bytes(len));
                if size > MAX_QUERY {
                    // A query is one question and at most an OPT record: a few hundred bytes.
                    // A longer one is not read into memory; RFC 7766 lets us close.
                    return Err(std::io::Error::other("query too long"));
                }
                let mut raw = vec![0u8; size];
                reader.read_exact(&mut raw).await?;
                Ok::<_, std::io::Error>(raw)
            };
            let raw = match tokio::time::timeout(idle, rest).await {
                Ok(Ok(raw)) => raw,
                _ => return,
            };
            if raw.len() < 12 {
                return; // not a DNS message: RFC 7766 lets us close
            }
            let (handler, answers) = (Arc::clone(&handler), answers.clone());
            tokio::spawn(async move {
                if let Some(bytes) = respond(&handler, raw, src, Protocol::Tcp).await {
                    let _ = answers.send(bytes).await;
                }
                drop(permit);
            });
        }
    };
    // The writer ends when the reader and every answer task have dropped their senders.
    tokio::join!(read, write);
}
