//! Sockets and the serving loop: binds every `listen` address for UDP and TCP, serves them
//! with our [`Handler`], and runs until told to stop.
//!
//! Binding is separate from serving so that the daemon can fail fast (and tests can learn the
//! ephemeral port) before anything answers. UDP and TCP are served by kidsafe's own loops
//! ([`crate::dns::udp`], [`crate::dns::tcp`]: hickory-server's TCP listener cannot cap its
//! connections); both call the same handler. On Linux each address gets one UDP socket per
//! worker thread with `SO_REUSEPORT`, so the kernel spreads queries across cores without a
//! shared lock.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use std::sync::Arc;

use crate::dns::tcp::TcpStats;
use crate::dns::{Handler, tcp, udp};

/// The `listen` addresses that are not addresses of this machine (so `run` would fail with
/// "Cannot assign requested address"): each specific address is tried with a UDP socket on
/// an ephemeral port, which sends nothing. Wildcards (`0.0.0.0`, `::`) always pass.
pub fn foreign_listen_addresses(listen: &[SocketAddr]) -> Vec<SocketAddr> {
    listen
        .iter()
        .filter(|addr| !addr.ip().is_unspecified())
        .filter(|addr| {
            matches!(
                UdpSocket::bind(SocketAddr::new(addr.ip(), 0)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable
            )
        })
        .copied()
        .collect()
}

/// Kernel receive buffer asked for on UDP sockets, to ride out bursts (capped by `rmem_max`).
const UDP_RECV_BUFFER: usize = 4 << 20;
/// TCP accept backlog.
const TCP_BACKLOG: i32 = 1024;
/// How long a stop waits for queries in flight (an upstream exchange is bounded by
/// `upstream.timeout`, 2 s by default); well inside the unit's `TimeoutStopSec`.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Why the daemon could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listen address could not be bound.
    #[error(
        "cannot listen on {addr} ({proto}): {source}; is another DNS server running there, or does binding port 53 need CAP_NET_BIND_SERVICE?"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// "udp" or "tcp".
        proto: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server stopped on its own.
    #[error("DNS server failed: {0}")]
    Serve(String),
}

/// Bound but not yet serving sockets.
#[derive(Debug)]
pub struct Listeners {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
}

impl Listeners {
    /// Binds every address for UDP (`udp_per_addr` sockets each) and TCP. Port 0 picks one
    /// free port and uses it for both protocols.
    pub fn bind(listen: &[SocketAddr], udp_per_addr: usize) -> Result<Self, ServeError> {
        let mut out = Self {
            udp: Vec::new(),
            tcp: Vec::new(),
            addrs: Vec::new(),
        };
        for wanted in listen {
            let (udp, tcp, addr) = bind_pair(*wanted, udp_per_addr.max(1))?;
            out.udp.extend(udp);
            out.tcp.push(tcp);
            out.addrs.push(addr);
        }
        Ok(out)
    }

    /// The addresses actually bound (ports resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

fn bind_pair(
    wanted: SocketAddr,
    udp_count: usize,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), ServeError> {
    // With port 0 the kernel may hand out a UDP port whose TCP twin is taken: retry a few times.
    let attempts = if wanted.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let first = bind_udp(wanted, udp_count > 1)?;
        let addr = first.local_addr().map_err(|source| ServeError::Bind {
            addr: wanted,
            proto: "udp",
            source,
        })?;
        match bind_tcp(addr) {
            Ok(tcp) => {
                let mut udp = vec![first];
                for _ in 1..udp_count {
                    udp.push(bind_udp(addr, true)?);
                }
                return Ok((udp, tcp, addr));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ServeError::Serve("no port could be bound".into())))
}

fn socket_for(addr: SocketAddr, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_udp(addr: SocketAddr, reuse_port: bool) -> Result<UdpSocket, ServeError> {
    let err = |source| ServeError::Bind {
        addr,
        proto: "udp",
        source,
    };
    let socket = socket_for(addr, Type::DGRAM, Protocol::UDP).map_err(err)?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(err)?;
    }
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.bind(&addr.into()).map_err(err)?;
    Ok(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let err = |source| ServeError::Bind {
        addr,
        proto: "tcp",
        source,
    };
    let socket = socket_for(addr, Type::STREAM, Protocol::TCP).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(TCP_BACKLOG).map_err(err)?;
    Ok(socket.into())
}

/// Serves DNS on `listeners` until `shutdown` is cancelled, then stops accepting and lets
/// queries in flight finish (for at most [`DRAIN_GRACE`]). TCP limits
/// (`server.tcp_connections`, `server.tcp_idle_timeout`) are read from the runtime in force.
/// Must run inside a tokio runtime.
pub async fn serve(
    handler: Handler,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let in_flight = handler.in_flight();
    let handler = Arc::new(handler);
    let io = |e: std::io::Error| ServeError::Serve(e.to_string());
    let mut udp_loops = Vec::with_capacity(listeners.udp.len());
    for socket in listeners.udp {
        let socket = tokio::net::UdpSocket::from_std(socket).map_err(io)?;
        udp_loops.push(tokio::spawn(udp::serve(
            socket,
            Arc::clone(&handler),
            shutdown.clone(),
        )));
    }
    let tcp_stats = Arc::new(TcpStats::default());
    let mut tcp_loops = Vec::with_capacity(listeners.tcp.len());
    for listener in listeners.tcp {
        tcp_loops.push(tokio::spawn(tcp::serve(
            tokio::net::TcpListener::from_std(listener).map_err(io)?,
            Arc::clone(&handler),
            Arc::clone(&tcp_stats),
            shutdown.clone(),
        )));
    }
    for addr in &listeners.addrs {
        info!(%addr, "listening (udp and tcp)");
    }
    shutdown.cancelled().await;
    info!(
        in_flight = in_flight.len(),
        "stopping: no new queries accepted, finishing those in flight"
    );
    // The loops have stopped reading; the sockets stay open for the answers. New requests are
    // dropped (the handler sees the tracker closed), admitted ones finish.
    in_flight.close();
    if tokio::time::timeout(DRAIN_GRACE, in_flight.wait())
        .await
        .is_err()
    {
        warn!(
            abandoned = in_flight.len(),
            "queries still in flight after the drain grace period; stopping anyway"
        );
    }
    for udp_loop in udp_loops {
        let _ = udp_loop.await;
    }
    // A TCP client that stopped reading could hold its connection's writer forever: what is
    // not written within a second of the drain is abandoned.
    for tcp_loop in tcp_loops {
        let abort = tcp_loop.abort_handle();
        if tokio::time::timeout(Duration::from_secs(1), tcp_loop)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    Ok(())
}
