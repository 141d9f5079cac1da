//! The Prometheus endpoint: `GET /metrics` on `[metrics] listen` (loopback by default).
//!
//! Values are read at scrape time from the counters the query path already keeps, and encoded
//! with `prometheus-client`; nothing extra happens per query. Labels are profiles, categories
//! and results — never a name or an address.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::dns::cache::AnswerCache;
use crate::dns::upstream::UpstreamMetrics;
use crate::reload::ReloadMetrics;
use crate::runtime::SharedRuntime;
use crate::stats::{Collector, TOTALS};

/// Everything the endpoint reads.
#[derive(Clone)]
pub struct Sources {
    /// Counts by profile, category and result.
    pub collector: Arc<Collector>,
    /// The runtime (list entries per category).
    pub runtime: SharedRuntime,
    /// The answer cache (entries held).
    pub cache: Arc<AnswerCache>,
    /// Upstream latency and errors.
    pub upstream: Arc<UpstreamMetrics>,
    /// Reload outcome.
    pub reload: Arc<ReloadMetrics>,
}

/// One scrape's values, owned, so the encoder needs no locks.
#[derive(Debug)]
struct Snapshot {
    results: Vec<(&'static str, u64)>,
    blocked: Vec<(String, String, u64)>,
    list_entries: Vec<(String, u64)>,
    cache_entries: u64,
    upstream_buckets: Vec<(f64, u64)>,
    upstream_sum: f64,
    upstream_count: u64,
    upstream_errors: u64,
    by_upstream: Vec<(String, crate::dns::upstream::UpstreamCounts)>,
    generation: u64,
    last_reload_ok: bool,
    feed: Option<FeedFacts>,
}

/// The feed's condition, read from `state_dir/feed/` at scrape time.
#[derive(Debug)]
struct FeedFacts {
    /// The sequence the running lists come from (0: baseline).
    serving: u64,
    /// fresh / stale / expired / clock-unsynced / baseline.
    freshness: &'static str,
    /// Unix seconds of the last confirmed check (0: never).
    last_success: i64,
    /// Failures by kind since the state directory was made.
    failures: Vec<(String, u64)>,
}

fn feed_facts(runtime: &crate::runtime::Runtime) -> Option<FeedFacts> {
    runtime.config.feed.as_ref()?;
    let root = crate::feed::snapshot::feed_root(&runtime.config.server.state_dir);
    let state = crate::feed::snapshot::FeedState::read(&root).ok().flatten();
    let attempts = crate::feed::run::Attempts::read(&root);
    let now = jiff::Timestamp::now();
    let serving = match runtime.feed {
        crate::runtime::FeedInUse::Snapshot { sequence, .. } => sequence,
        _ => 0,
    };
    Some(FeedFacts {
        serving,
        freshness: crate::feed::status::freshness(state.as_ref(), &attempts, now).as_str(),
        last_success: attempts.last_success_at.map_or(0, |t| t.as_second()),
        failures: attempts.failures.into_iter().collect(),
    })
}

impl Sources {
    fn snapshot(&self) -> Snapshot {
        let counts = self.collector.since_start();
        let mut blocked: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for ((profile, category, _client), n) in counts.blocked {
            *blocked.entry((profile, category)).or_insert(0) += n;
        }
        let runtime = self.runtime.load();
        let (buckets, sum, count) = self.upstream.histogram();
        Snapshot {
            results: TOTALS.iter().copied().zip(counts.totals).collect(),
            blocked: blocked.into_iter().map(|((p, c), n)| (p, c, n)).collect(),
            list_entries: runtime
                .lists
                .names_per_category()
                .into_iter()
                .map(|(c, n)| (c.to_string(), n as u64))
                .collect(),
            cache_entries: self.cache.len() as u64,
            upstream_buckets: buckets,
            upstream_sum: sum,
            upstream_count: count,
            upstream_errors: self.upstream.errors(),
            by_upstream: self.upstream.by_upstream(),
            generation: self.reload.generation.load(Ordering::Relaxed),
            last_reload_ok: self.reload.last_ok.load(Ordering::Relaxed),
            feed: feed_facts(&runtime),
        }
    }

    /// The exposition text of one scrape.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("kidsafe");
        registry.register_collector(Box::new(self.snapshot()));
        let mut out = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

impl PromCollector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "queries",
                "Queries answered, by result.",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in &self.results {
                ConstCounter::new(*n)
                    .encode(family.encode_family(&labels(&[("result", result)]))?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "blocked",
                "Blocked queries, by profile and category.",
                None,
                MetricType::Counter,
            )?;
            for (profile, category, n) in &self.blocked {
                let set = labels(&[("profile", profile), ("category", category)]);
                ConstCounter::new(*n).encode(family.encode_family(&set)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "list_entries",
                "Names listed, by category.",
                None,
                MetricType::Gauge,
            )?;
            for (category, n) in &self.list_entries {
                ConstGauge::new(*n as i64)
                    .encode(family.encode_family(&labels(&[("category", category)]))?)?;
            }
        }
        ConstGauge::new(self.cache_entries as i64).encode(encoder.encode_descriptor(
            "cache_entries",
            "Answers held in the cache.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(self.upstream_errors).encode(encoder.encode_descriptor(
            "upstream_errors",
            "Upstream exchanges that failed or timed out.",
            None,
            MetricType::Counter,
        )?)?;
        {
            let mut family = encoder.encode_descriptor(
                "upstream_answers",
                "Upstream exchanges answered, by upstream (its configured address).",
                None,
                MetricType::Counter,
            )?;
            for (upstream, counts) in &self.by_upstream {
                ConstCounter::new(counts.answers)
                    .encode(family.encode_family(&labels(&[("upstream", upstream)]))?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "upstream_failures",
                "Upstream exchanges that failed or timed out, by upstream.",
                None,
                MetricType::Counter,
            )?;
            for (upstream, counts) in &self.by_upstream {
                ConstCounter::new(counts.failures)
                    .encode(family.encode_family(&labels(&[("upstream", upstream)]))?)?;
            }
        }
        encoder
            .encode_descriptor(
                "upstream_latency_seconds",
                "Time for an upstream answer.",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                self.upstream_sum,
                self.upstream_count,
                &self.upstream_buckets,
                None,
            )?;
        ConstGauge::new(i64::try_from(self.generation).unwrap_or(i64::MAX)).encode(
            encoder.encode_descriptor(
                "reload_generation",
                "Generation of config and lists being served (1 at start).",
                None,
                MetricType::Gauge,
            )?,
        )?;
        ConstGauge::new(i64::from(self.last_reload_ok)).encode(encoder.encode_descriptor(
            "reload_last_success",
            "1 if the last reload succeeded (or none was tried), 0 if it failed.",
            None,
            MetricType::Gauge,
        )?)?;
        if let Some(feed) = &self.feed {
            ConstGauge::new(i64::try_from(feed.serving).unwrap_or(i64::MAX)).encode(
                encoder.encode_descriptor(
                    "feed_sequence",
                    "Sequence of the feed snapshot being served (0: the baseline lists).",
                    None,
                    MetricType::Gauge,
                )?,
            )?;
            {
                let mut family = encoder.encode_descriptor(
                    "feed_state",
                    "1 for the feed's current state (fresh, stale, expired, clock-unsynced, baseline).",
                    None,
                    MetricType::Gauge,
                )?;
                for state in ["fresh", "stale", "expired", "clock-unsynced", "baseline"] {
                    ConstGauge::new(i64::from(state == feed.freshness))
                        .encode(family.encode_family(&labels(&[("state", state)]))?)?;
                }
            }
            ConstGauge::new(feed.last_success).encode(encoder.encode_descriptor(
                "feed_last_success_timestamp_seconds",
                "When the feed was last confirmed current (0: never).",
                None,
                MetricType::Gauge,
            )?)?;
            let mut family = encoder.encode_descriptor(
                "feed_failures",
                "Failed feed updates, by kind (bad_signature, rollback, timeout, ...).",
                None,
                MetricType::Counter,
            )?;
            for (kind, n) in &feed.failures {
                ConstCounter::new(*n).encode(family.encode_family(&labels(&[("kind", kind)]))?)?;
            }
        }
        Ok(())
    }
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, sources: Sources, shutdown: CancellationToken) {
    loop {
        let (mut stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    warn!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let mut request = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let first = request.split(|b| *b == b'\n').next().unwrap_or_default();
            let (status, body, kind) =
                if first.starts_with(b"GET /metrics ") || first.starts_with(b"GET /metrics\r") {
                    (
                        "200 OK",
                        sources.render(),
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                } else {
                    (
                        "404 Not Found",
                        "only /metrics is served here\n".to_string(),
                        "text/plain; charset=utf-8",
                    )
                };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
