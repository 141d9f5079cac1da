//! DNS over HTTPS upstreams (RFC 8484): POST `application/dns-message` over HTTP/2 and TLS.
//!
//! The HTTP/2 side is hickory-net's own DoH client ([`HttpsClientStream`], the one
//! hickory-resolver uses), on the same rustls settings as DoT (built-in roots plus
//! `tls_ca_file`) with ALPN `h2`. Unlike DoT, where a connection per exchange is cheap enough,
//! a DoH connection is kept per upstream and shared: every query is one HTTP/2 stream on it, so
//! a burst of cache misses costs one TLS handshake, not one each.
//!
//! Invariants: one connection slot per DoH upstream used (at most `MAX_SLOTS`: past it the
//! map starts afresh); a connection that fails an exchange is dropped from its slot, and the
//! exchange is tried once more on a fresh connection if it had been reused (a server may close
//! an idle HTTP/2 connection at any time; that is not a sign the upstream is down). The
//! answer must match the question, with ID 0 as RFC 8484 recommends for caching.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hickory_net::h2::HttpsClientStream;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::xfer::{DnsRequestSender, FirstAnswer};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message};

use super::transport::matching_answer;
use super::{Question, UpstreamError};
use crate::config::UpstreamServer;

/// One upstream's connection, and the TLS settings it was made with (a reload that changes
/// `tls_ca_file` must not keep using a connection verified under the old roots).
type Slot = Arc<tokio::sync::Mutex<Option<(Arc<rustls::ClientConfig>, HttpsClientStream)>>>;

/// Connection slots kept before they are all dropped: far more than any config has DoH
/// upstreams, so only a long history of reloads that changed them reaches it.
const MAX_SLOTS: usize = 32;

/// The shared HTTP/2 connections to DoH upstreams, by upstream.
#[derive(Default)]
pub struct DohConnections {
    slots: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for DohConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DohConnections").finish_non_exhaustive()
    }
}

impl DohConnections {
    /// Connections made so far and still held (for tests: reuse means this stays at one).
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no connection slot exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, server: &UpstreamServer) -> Slot {
        let key = server.to_string();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if !slots.contains_key(&key) && slots.len() >= MAX_SLOTS {
            // Reloads replaced the upstreams many times over: start afresh (the upstreams still
            // configured reconnect on their next query).
            slots.clear();
        }
        Arc::clone(slots.entry(key).or_default())
    }

    /// One query to a DoH upstream. The caller bounds it with the deadline.
    pub async fn exchange(
        &self,
        server: &UpstreamServer,
        config: &Arc<rustls::ClientConfig>,
        query: Message,
        question: &Question,
    ) -> Result<Message, UpstreamError> {
        let UpstreamServer::Https { addr, name, path } = server else {
            return Err(UpstreamError::Failed("not a DoH upstream".into()));
        };
        let slot = self.slot(server);
        let mut last = UpstreamError::Failed("no DoH connection".into());
        for _ in 0..2 {
            // Hold the slot while connecting, so a burst of misses makes one connection.
            let (stream, reused) = {
                let mut held = slot.lock().await;
                match held.as_ref() {
                    Some((made_with, stream)) if Arc::ptr_eq(made_with, config) => {
                        (stream.clone(), true)
                    }
                    _ => {
                        let stream = connect(*addr, name, path, config).await?;
                        *held = Some((Arc::clone(config), stream.clone()));
                        (stream, false)
                    }
                }
            };
            match send(stream, query.clone(), question).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    // Drop the broken connection (unless another query already replaced it).
                    let mut held = slot.lock().await;
                    if held.as_ref().is_some_and(|(c, _)| Arc::ptr_eq(c, config)) {
                        *held = None;
                    }
                    last = e;
                    if !reused {
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

async fn connect(
    addr: std::net::SocketAddr,
    name: &str,
    path: &str,
    config: &Arc<rustls::ClientConfig>,
) -> Result<HttpsClientStream, UpstreamError> {
    // The DoT settings say ALPN "dot"; DoH speaks HTTP/2.
    let mut h2 = (**config).clone();
    h2.alpn_protocols = vec![b"h2".to_vec()];
    HttpsClientStream::builder(Arc::new(h2), TokioRuntimeProvider::new())
        .build(addr, Arc::from(name), Arc::from(path))
        .await
        .map_err(|e| UpstreamError::Failed(format!("DoH connection: {e}")))
}

async fn send(
    mut stream: HttpsClientStream,
    query: Message,
    question: &Question,
) -> Result<Message, UpstreamError> {
    let request = DnsRequest::new(query, DnsRequestOptions::default());
    let response = stream
        .send_message(request)
        .first_answer()
        .await
        .map_err(|e| UpstreamError::Failed(format!("DoH: {e}")))?;
    // The client sends ID 0 (RFC 8484 §4.1); the answer must carry it back.
    matching_answer(response.as_buffer(), 0, question)
        .ok_or_else(|| UpstreamError::Failed("DoH upstream sent a mismatched answer".into()))
}
