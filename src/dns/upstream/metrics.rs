//! What `/metrics` reads of the upstreams: answers and failures per upstream, latency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::config::UpstreamServer;

/// Upper bounds, in seconds, of the upstream latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Upstream latency and failures, for `/metrics`: atomics for the totals, and per upstream
/// (one short lock per exchange, which already costs a socket) answers and failures.
#[derive(Debug, Default)]
pub struct UpstreamMetrics {
    pub(super) buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    pub(super) sum_micros: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) by_upstream: Mutex<HashMap<String, UpstreamCounts>>,
}

/// What one upstream did, since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamCounts {
    /// Exchanges it answered (any response code).
    pub answers: u64,
    /// Exchanges that failed or timed out.
    pub failures: u64,
}

impl UpstreamMetrics {
    pub(super) fn count(&self, server: &UpstreamServer, ok: bool) {
        let mut map = self
            .by_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let counts = map.entry(server.to_string()).or_default();
        if ok {
            counts.answers += 1;
        } else {
            counts.failures += 1;
        }
    }

    /// Answers and failures by upstream (as written in canonical form, e.g.
    /// `udp://9.9.9.9:53`), sorted by upstream.
    pub fn by_upstream(&self) -> Vec<(String, UpstreamCounts)> {
        let map = self
            .by_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// One upstream's counts (zero if it was never asked).
    pub fn of(&self, server: &UpstreamServer) -> UpstreamCounts {
        let map = self
            .by_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&server.to_string()).copied().unwrap_or_default()
    }

    pub(super) fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative buckets (upper bound, count), the sum in seconds, and the count.
    pub fn histogram(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut cumulative = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, cell) in self.buckets.iter().enumerate() {
            cumulative += cell.load(Ordering::Relaxed);
            let bound = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            out.push((bound, cumulative));
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (out, sum, cumulative)
    }

    /// Exchanges that failed or timed out.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
