//! kidsafe's own UDP loop: receive, answer, send, with no hop in between.
//!
//! hickory-server's UDP path spawns a task per datagram and hands every answer to a channel
//! that a writer task drains; measured here, that costs a quarter of a core's queries. Most
//! queries (blocks, cache hits, refusals) need no waiting at all, so this loop polls each
//! answer once in place and sends it straight away; only an answer that must wait for an
//! upstream becomes a task. Answers are produced by the same [`Handler`] as over TCP (served by
//! [`super::tcp`]), through `super::request`, which captures the encoded bytes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Waker};

use hickory_server::net::xfer::Protocol;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Handler;
use super::request::respond;

/// The largest query datagram read (queries are small; a longer one is truncated and fails
/// to parse, which is the right answer to it).
const MAX_QUERY: usize = 4096;

/// Whether an answer may be sent to `src` (hickory-server's rule: never port 0, never an
/// unspecified or broadcast address).
fn answerable(src: SocketAddr) -> bool {
    src.port() != 0
        && !src.ip().is_unspecified()
        && !matches!(src.ip(), std::net::IpAddr::V4(v4) if v4.is_broadcast())
}

/// Serves one UDP socket until `shutdown`, then lets the answers still waiting on upstreams
/// finish.
pub async fn serve(socket: UdpSocket, handler: Arc<Handler>, shutdown: CancellationToken) {
    let socket = Arc::new(socket);
    let waiting = TaskTracker::new();
    let mut buf = vec![0u8; MAX_QUERY];
    loop {
        let received = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let Ok((n, src)) = received else {
            // ICMP errors surface here on some systems; the socket itself is still fine.
            continue;
        };
        if n < 12 || !answerable(src) {
            continue;
        }
        let raw = buf[..n].to_vec();
        let (handler, socket) = (Arc::clone(&handler), Arc::clone(&socket));
        // Unconstrained: this first poll runs inside the receive loop's task, whose cooperative
        // budget would otherwise make a ready answer look pending.
        let mut answer = Box::pin(tokio::task::unconstrained(async move {
            if let Some(bytes) = respond(&handler, raw, src, Protocol::Udp).await {
                // A UDP send almost never has to wait; when it must, wait properly.
                match socket.try_send_to(&bytes, src) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let _ = socket.send_to(&bytes, src).await;
                    }
                    _ => {}
                }
            }
        }));
        // Blocks, cache hits and refusals finish here and now; only upstream waits are tasks.
        // A no-op waker is enough for the first poll: a future still pending is handed to the
        // runtime, whose first poll registers the real waker.
        let polled = answer
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        if polled.is_pending() {
            waiting.spawn(answer);
        }
    }
    waiting.close();
    waiting.wait().await;
}
