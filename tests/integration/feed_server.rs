//! A real HTTP/1.1 server on 127.0.0.1 for the feed tests: it serves a directory (a published
//! feed) with ETags and 304s, counts requests per path, and misbehaves on request the way real
//! servers and networks do (errors, stalls, captive portals, oversized and endless bodies).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the server does for one path instead of serving the file.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `Retry-After: secs` when given).
    Status(u16, Option<u64>),
    /// Accept, read the request, never answer.
    Stall,
    /// Send the headers (no length) and a few bytes of the body, then stall: a slow drip.
    StallMidBody,
    /// 200 with an HTML page, as a hotel Wi-Fi login does.
    CaptivePortal,
    /// 200 without a length, streaming zeros until the client hangs up.
    Endless,
    /// A redirect to this location.
    Redirect(String),
}

#[derive(Default)]
struct Shared {
    faults: HashMap<String, Fault>,
    hits: HashMap<String, usize>,
}

/// The server. Dropping it stops it.
pub struct FeedServer {
    pub addr: SocketAddr,
    https: bool,
    shared: Arc<Mutex<Shared>>,
    stop: CancellationToken,
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FeedServer {
    /// Serves `root` over HTTP on an ephemeral loopback port.
    pub async fn start(root: PathBuf) -> Self {
        Self::start_with(root, None).await
    }

    /// Serves `root` over HTTPS with `tls` (see `encrypted::test_server_tls`).
    pub async fn start_tls(root: PathBuf, tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(root, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(root: PathBuf, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = CancellationToken::new();
        let tls_flag = tls.is_some();
        let (s, r, st) = (Arc::clone(&shared), root, stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = st.cancelled() => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (s, r, st) = (Arc::clone(&s), r.clone(), st.clone());
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            let work = async move {
                                match tls {
                                    Some(acceptor) => {
                                        if let Ok(stream) = acceptor.accept(stream).await {
                                            serve(stream, s, r).await;
                                        }
                                    }
                                    None => serve(stream, s, r).await,
                                }
                            };
                            tokio::select! {
                                () = st.cancelled() => {}
                                () = work => {}
                            }
                        });
                    }
                }
            }
        });
        Self {
            addr,
            https: tls_flag,
            shared,
            stop,
        }
    }

    /// The feed's URL.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// Makes `path` (e.g. "manifest.json") misbehave.
    pub fn fault(&self, path: &str, fault: Fault) {
        self.lock().faults.insert(path.to_string(), fault);
    }

    /// Serves every path normally again.
    pub fn heal(&self) {
        self.lock().faults.clear();
    }

    /// Requests for `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.lock().hits.get(path).copied().unwrap_or(0)
    }

    /// Requests for any path starting with `prefix`.
    pub fn hits_under(&self, prefix: &str) -> usize {
        self.lock()
            .hits
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Forgets the counts.
    pub fn reset_hits(&self) {
        self.lock().hits.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("server state")
    }
}

async fn serve(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    shared: Arc<Mutex<Shared>>,
    root: PathBuf,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let if_none_match = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("if-none-match"))
        .map(|(_, v)| v.trim().to_string());
    let fault = {
        let mut s = shared.lock().expect("server state");
        *s.hits.entry(path.clone()).or_default() += 1;
        s.faults.get(&path).cloned()
    };
    let response = match fault {
        Some(Fault::Status(code, retry_after)) => {
            let extra = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            reply(code, &extra, b"server error\n")
        }
        Some(Fault::Stall) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Some(Fault::StallMidBody) => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n#nfeed/1 ")
                .await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Some(Fault::CaptivePortal) => reply(
            200,
            "Content-Type: text/html\r\n",
            b"<!DOCTYPE html><html><head><title>Hotel Wi-Fi</title></head><body><form>Room number <input name=room></form></body></html>\n",
        ),
        Some(Fault::Endless) => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await;
            let zeros = vec![b'0'; 64 * 1024];
            while stream.write_all(&zeros).await.is_ok() {}
            return;
        }
        Some(Fault::Redirect(to)) => reply(302, &format!("Location: {to}\r\n"), b""),
        None => match std::fs::read(root.join(&path)) {
            Ok(bytes) => {
                let etag = format!("\"{:x}-{}\"", fnv(&bytes), bytes.len());
                if if_none_match.as_deref() == Some(etag.as_str()) {
                    reply(304, &format!("ETag: {etag}\r\n"), b"")
                } else {
                    reply(200, &format!("ETag: {etag}\r\n"), &bytes)
                }
            }
            Err(_) => reply(404, "", b"not found\n"),
        },
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

fn reply(code: u16, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        302 => "Found",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        if code == 304 { 0 } else { body.len() }
    )
    .into_bytes();
    if code != 304 {
        out.extend_from_slice(body);
    }
    out
}

/// A cheap content hash for ETags.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
