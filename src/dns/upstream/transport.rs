//! One exchange with one upstream: a fresh query over UDP (TCP when truncated), TCP, TLS or
//! HTTPS, and the check that the answer is the one asked for.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::DNSClass;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use super::*;
use crate::config::UpstreamServer;

/// One exchange with one upstream: UDP first and TCP when the UDP answer is truncated, TCP
/// only, TLS, or HTTPS.
pub(super) async fn exchange(
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

pub(super) fn build_query(id: u16, question: &Question) -> Message {
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

pub(super) async fn exchange_udp(
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

pub(super) async fn exchange_tcp(
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
pub(super) async fn exchange_tls(
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
pub(super) async fn exchange_stream<S>(
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
