//! kidsafe's own UDP loop: receive, answer, send, with no hop in between.
//!
//! hickory-server's UDP path spawns a task per datagram and hands every answer to a channel
//! that a writer task drains; measured here, that costs a quarter of a core's queries. Most
//! queries (blocks, cache hits, refusals) need no waiting at all, so this loop polls each
//! answer once in place and sends it straight away; only an answer that must wait for an
//! upstream becomes a task. Answers are produced by the same [`Handler`] as over TCP (served by
//! [`super::tcp`]), through a [`ResponseHandler`] that captures the encoded bytes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Handler;

/// The largest query datagram read (queries are small; a longer one is truncated and fails
/// to parse, which is the right answer to it).
const MAX_QUERY: usize = 4096;

/// A [`ResponseHandler`] that keeps the encoded answer instead of sending it.
#[derive(Clone, Default)]
pub struct Capture {
    slot: Arc<Mutex<Option<Vec<u8>>>>,
    /// For TCP: answers up to 65535 bytes, never truncated.
    stream: bool,
}

impl Capture {
    /// A capture for a stream transport (TCP): no UDP size limit.
    pub fn for_stream() -> Self {
        Self {
            slot: Arc::default(),
            stream: true,
        }
    }

    /// The encoded answer, if one was produced.
    pub fn take(&self) -> Option<Vec<u8>> {
        self.slot.lock().ok().and_then(|mut slot| slot.take())
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // RFC 6891: without EDNS a UDP answer is at most 512 bytes; with it, what the OPT says
        // (the handler never advertises more than 1232). Records that do not fit set TC.
        // Over TCP the only limit is the 16-bit length prefix.
        let max = if self.stream {
            u16::MAX
        } else {
            response.edns().map_or(512, |e| e.max_payload().max(512))
        };
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response.destructive_emit(&mut encoder)?;
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(bytes);
        }
        Ok(info)
    }
}

/// The answer to one raw message (a datagram, or a TCP message without its length), or
/// `None` when it gets no answer (a response, dropped by admission control). A message whose
/// header parses but whose body does not gets FORMERR.
pub async fn respond(
    handler: &Handler,
    raw: Vec<u8>,
    src: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let mut head = [0u8; 12];
    head.copy_from_slice(raw.get(..12)?);
    match Request::from_bytes(raw, src, protocol) {
        Ok(request) => {
            if request.metadata.message_type == MessageType::Response {
                return None; // never answer responses: that is how reflection loops start
            }
            let capture = match protocol {
                Protocol::Udp => Capture::default(),
                _ => Capture::for_stream(),
            };
            handler.admit_and_answer(&request, capture.clone()).await;
            capture.take()
        }
        Err(_) => formerr(&head),
    }
}

/// FORMERR for a datagram whose header parses but whose body does not.
fn formerr(raw: &[u8]) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(raw)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let mut metadata = Metadata::response_from_request(&header.metadata);
    metadata.response_code = ResponseCode::FormErr;
    let reply = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut bytes = Vec::with_capacity(12);
    reply.emit(&mut BinEncoder::new(&mut bytes)).ok()?;
    Some(bytes)
}

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
