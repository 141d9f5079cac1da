//! HTTP(S) downloads for the feed and list sources: every body capped, every request bounded in
//! time, redirects limited and never downgraded from HTTPS, conditional GETs by ETag, and host
//! names resolved through kidsafe's own upstreams rather than the system resolver (which on a
//! router is kidsafe itself, so it would ask itself while it has no lists).
//!
//! Nothing here trusts what it downloads: callers verify signatures and hashes. Bodies are read
//! chunk by chunk so an endless or oversized body is cut at the cap, not buffered whole.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use crate::config::UpstreamSettings;
use crate::dns::upstream::{Forwarder, Question};

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 3;

/// How long a connection (TCP + TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server may stay silent in the middle of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The address asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, if it gave one in seconds.
        retry_after: Option<Duration>,
    },
    /// The body (or its decompressed form) is larger than allowed.
    #[error("{url}: more than {limit} bytes; refused")]
    TooLarge {
        /// The address asked.
        url: String,
        /// The cap.
        limit: u64,
    },
    /// The whole request took longer than allowed (a stalled or dripping server).
    #[error("{url}: no complete answer within {}s", .after.as_secs())]
    Timeout {
        /// The address asked.
        url: String,
        /// The deadline.
        after: Duration,
    },
    /// Connection, TLS, DNS or protocol failure.
    #[error("{url}: {message}")]
    Transport {
        /// The address asked.
        url: String,
        /// What went wrong, with its causes.
        message: String,
    },
}

impl FetchError {
    /// The server's requested pause, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short stable tag for counters and status.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Status { .. } => "http_status",
            Self::TooLarge { .. } => "too_large",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
        }
    }
}

/// What a conditional GET brought.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the copy named by the ETag sent is still current.
    NotModified,
    /// A full body.
    Body {
        /// The bytes, at most the cap.
        bytes: Vec<u8>,
        /// The server's ETag, for the next conditional GET.
        etag: Option<String>,
    },
}

/// Where the resolver finds the upstreams to ask: read at each lookup, so a reload's new
/// upstreams are used at once.
pub type UpstreamSource =
    Arc<dyn Fn() -> (UpstreamSettings, Option<Arc<rustls::ClientConfig>>) + Send + Sync>;

/// An HTTP client for feed and source downloads.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    /// A client trusting the Mozilla roots plus `ca_file`, resolving names through `upstreams`.
    pub fn new(
        ca_file: Option<&std::path::Path>,
        upstreams: UpstreamSource,
    ) -> Result<Self, String> {
        let tls = crate::dns::upstream::tls_client_config(ca_file)?;
        let mut tls = Arc::unwrap_or_clone(tls);
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let resolver = UpstreamResolver {
            upstreams,
            forwarder: Arc::new(Forwarder::new(16)),
        };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .dns_resolver(Arc::new(resolver))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let downgrade = attempt
                    .previous()
                    .last()
                    .is_some_and(|prev| prev.scheme() == "https")
                    && attempt.url().scheme() != "https";
                if downgrade {
                    attempt.error("refused a redirect from https:// to http://")
                } else if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
                } else {
                    attempt.follow()
                }
            }))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("kidsafe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))?;
        Ok(Self { client })
    }

    /// GETs `url` (with `If-None-Match: etag` when given), taking at most `max_bytes` of body,
    /// all within `deadline`.
    pub async fn get(
        &self,
        url: &str,
        etag: Option<&str>,
        max_bytes: u64,
        deadline: Duration,
    ) -> Result<Fetched, FetchError> {
        self.get_with_progress(url, etag, max_bytes, deadline, None)
            .await
    }

    /// [`Fetcher::get`], telling `progress` the bytes received so far after each chunk.
    pub async fn get_with_progress(
        &self,
        url: &str,
        etag: Option<&str>,
        max_bytes: u64,
        deadline: Duration,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<Fetched, FetchError> {
        let until = Instant::now() + deadline;
        let work = self.get_inner(url, etag, max_bytes, progress);
        match tokio::time::timeout_at(until, work).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                url: url.to_string(),
                after: deadline,
            }),
        }
    }

    async fn get_inner(
        &self,
        url: &str,
        etag: Option<&str>,
        max_bytes: u64,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<Fetched, FetchError> {
        let transport = |e: reqwest::Error| FetchError::Transport {
            url: url.to_string(),
            message: chain(&e),
        };
        let mut request = self.client.get(url);
        if let Some(tag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, tag);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                retry_after,
            });
        }
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit: max_bytes,
        };
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        let new_etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let capacity = response.content_length().unwrap_or(0).min(max_bytes);
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
            if let Some(progress) = progress {
                progress(bytes.len() as u64);
            }
        }
        Ok(Fetched::Body {
            bytes,
            etag: new_etag,
        })
    }
}

/// An error and its causes on one line (reqwest's own message omits the interesting part).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Looks host names up (A and AAAA) through the configured upstreams.
struct UpstreamResolver {
    upstreams: UpstreamSource,
    forwarder: Arc<Forwarder>,
}

impl reqwest::dns::Resolve for UpstreamResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (settings, tls) = (self.upstreams)();
        let forwarder = Arc::clone(&self.forwarder);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = lookup(&forwarder, &settings, tls.as_ref(), &host).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

async fn lookup(
    forwarder: &Forwarder,
    settings: &UpstreamSettings,
    tls: Option<&Arc<rustls::ClientConfig>>,
    host: &str,
) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let name = Name::from_ascii(host).map_err(|e| format!("\"{host}\": {e}"))?;
    let mut found = Vec::new();
    let mut last_error = None;
    for qtype in [RecordType::A, RecordType::AAAA] {
        let question = Question {
            name: name.clone(),
            qtype,
            dnssec_ok: false,
            checking_disabled: false,
        };
        match forwarder.resolve(settings, tls, &question).await {
            Ok(message) => found.extend(message.answers.iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })),
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    if found.is_empty() {
        let why = last_error.unwrap_or_else(|| "no address records".to_string());
        return Err(format!("cannot resolve {host} through the upstreams: {why}").into());
    }
    Ok(found)
}
