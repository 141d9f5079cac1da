//! One raw message in, its encoded answer out: the request/response plumbing the UDP loop
//! ([`super::udp`]) and the TCP loop ([`super::tcp`]) share. The [`Handler`] writes its answer
//! into a [`Capture`] instead of a socket, so each loop sends the bytes its own way.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;

use super::Handler;

/// An answer's bytes, or why it could not be encoded.
pub type Encoded = Result<Vec<u8>, String>;

/// What a [`Capture`] was sent: how many answers, and the last one.
#[derive(Debug, Default)]
pub struct Sent {
    /// Answers the handler sent (one, for every request it answers).
    pub count: usize,
    /// The last of them, encoded.
    pub last: Option<Encoded>,
}

/// A [`ResponseHandler`] that keeps the encoded answer instead of sending it. The serving loops
/// use it, and so do the handler's unit tests and the fuzz harness, which also look at how
/// many answers were sent and at answers that failed to encode.
#[derive(Clone, Default)]
pub struct Capture {
    sent: Arc<Mutex<Sent>>,
    /// For TCP: answers up to 65535 bytes, never truncated.
    stream: bool,
}

impl Capture {
    /// A capture for a stream transport (TCP): no UDP size limit.
    pub fn for_stream() -> Self {
        Self {
            sent: Arc::default(),
            stream: true,
        }
    }

    /// The encoded answer, if one was produced.
    pub fn take(&self) -> Option<Vec<u8>> {
        self.sent
            .lock()
            .ok()
            .and_then(|mut sent| sent.last.take())
            .and_then(Result::ok)
    }

    /// Everything sent so far, taken out.
    pub fn take_sent(&self) -> Sent {
        self.sent
            .lock()
            .map(|mut sent| std::mem::take(&mut *sent))
            .unwrap_or_default()
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
        let result = response.destructive_emit(&mut encoder);
        let Ok(mut sent) = self.sent.lock() else {
            return result.map_err(NetError::from);
        };
        sent.count += 1;
        match result {
            Ok(info) => {
                sent.last = Some(Ok(bytes));
                Ok(info)
            }
            Err(e) => {
                let text = e.to_string();
                sent.last = Some(Err(text.clone()));
                Err(NetError::from(text))
            }
        }
    }
}

/// The answer to one raw message (a datagram, or a TCP message without its length), or
/// `None` when it gets no answer (a response, dropped by admission control). A message whose
/// header parses but whose body does not gets FORMERR, and so does a query whose header
/// alone says it is not one: records in the answer or authority section, or more than one
/// additional record (the OPT) — those are refused before anything is parsed or kept.
pub async fn respond(
    handler: &Handler,
    raw: Vec<u8>,
    src: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let mut head = [0u8; 12];
    head.copy_from_slice(raw.get(..12)?);
    if not_a_plain_query(&head) {
        return formerr(&head);
    }
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

/// Whether a QUERY's header carries sections a query never has (ANCOUNT or NSCOUNT not 0,
/// ARCOUNT above 1). Other opcodes (NOTIFY carries an answer) are judged by the handler.
fn not_a_plain_query(head: &[u8; 12]) -> bool {
    let opcode = (head[2] >> 3) & 0x0f;
    let count = |at: usize| u16::from_be_bytes([head[at], head[at + 1]]);
    opcode == 0 && (count(6) != 0 || count(8) != 0 || count(10) > 1)
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
