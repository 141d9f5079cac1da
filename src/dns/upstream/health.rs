//! Health and order: down marks with back-off and probes, smoothed round-trip times, and the
//! order the upstreams of one query are asked in (failover or fastest).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::*;
use crate::config::{Strategy, UpstreamServer};

/// What is known about one upstream's health.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HealthState {
    /// Consecutive failed exchanges.
    failures: u32,
    /// While down: when the next probe may go.
    retry_at: Option<Instant>,
    /// Smoothed round-trip time of its answers, seconds (None until one is measured).
    srtt: Option<f64>,
    /// When `srtt` was last measured, or a new measure claimed by a query.
    measured_at: Option<Instant>,
    /// The next answer replaces `srtt` instead of being smoothed into it: it is a new look at
    /// an upstream not used for a while (explored, or its estimate stale), whose old estimate
    /// says nothing about now.
    remeasure: bool,
}

/// Health of every upstream seen, by address (so it survives reloads that keep the address).
#[derive(Debug, Default)]
pub(super) struct Health {
    states: Mutex<HashMap<SocketAddr, HealthState>>,
}

impl Health {
    /// The indices of the upstreams to try, in order: those up, and those down whose probe is
    /// due (the probe is claimed, so concurrent queries do not all probe a dead upstream). All
    /// of them when none qualifies.
    ///
    /// With [`Strategy::Fastest`] the list is reordered: probes of down upstreams and
    /// upstreams due for a new measure first (the measure is claimed, so one query takes it),
    /// then by smoothed round-trip time; with `explore`, the best is swapped with another.
    pub(super) fn pick(
        &self,
        servers: &[UpstreamServer],
        now: Instant,
        strategy: Strategy,
        explore: bool,
    ) -> Vec<usize> {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let mut picked = Vec::with_capacity(servers.len());
        // (index, sort key): 0.0 for probes and due measures, else the estimate.
        let mut keyed = Vec::with_capacity(servers.len());
        for (i, server) in servers.iter().enumerate() {
            let state = states.entry(server.addr()).or_default();
            match state.retry_at {
                None => {
                    picked.push(i);
                    let due = state
                        .measured_at
                        .is_some_and(|at| now.saturating_duration_since(at) >= STALE_ESTIMATE);
                    if due && strategy == Strategy::Fastest {
                        state.measured_at = Some(now);
                        state.remeasure = true;
                        keyed.push((i, -1.0));
                    } else {
                        keyed.push((i, state.srtt.unwrap_or(0.0)));
                    }
                }
                Some(at) if at <= now => {
                    state.retry_at = Some(now + backoff(state.failures));
                    picked.push(i);
                    keyed.push((i, -1.0));
                }
                Some(_) => {}
            }
        }
        // Forget upstreams no longer configured, so the map is bounded by the config.
        if states.len() > servers.len() * 2 {
            states.retain(|addr, _| servers.iter().any(|s| s.addr() == *addr));
        }
        if picked.is_empty() {
            return (0..servers.len()).collect();
        }
        if strategy == Strategy::Failover || keyed.len() < 2 {
            return picked;
        }
        // Stable: equal estimates keep the order written.
        keyed.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut order: Vec<usize> = keyed.into_iter().map(|(i, _)| i).collect();
        if explore {
            let other = 1 + rand::random_range(0..order.len() - 1);
            order.swap(0, other);
            if let Some(state) = servers
                .get(order[0])
                .and_then(|s| states.get_mut(&s.addr()))
            {
                state.remeasure = true;
            }
        }
        order
    }

    pub(super) fn record(&self, server: SocketAddr, ok: bool, now: Instant, rtt: Duration) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let state = states.entry(server).or_default();
        if ok {
            if state.retry_at.is_some() {
                info!(upstream = %server, "upstream answers again");
            }
            let sample = rtt.as_secs_f64();
            let srtt = match state.srtt {
                Some(old) if !state.remeasure => old + RTT_GAIN * (sample - old),
                _ => sample,
            };
            *state = HealthState {
                srtt: Some(srtt),
                measured_at: Some(now),
                ..HealthState::default()
            };
        } else {
            state.failures = state.failures.saturating_add(1);
            // A timeout is a round trip too: an upstream that keeps failing is not fastest.
            let sample = rtt.as_secs_f64();
            state.srtt = Some(state.srtt.map_or(sample, |old| old.max(sample)));
            if state.retry_at.is_none() {
                warn!(upstream = %server, "upstream not answering; skipping it until a probe succeeds");
            }
            state.retry_at = Some(now + backoff(state.failures));
        }
    }

    /// Whether `server` is currently skipped.
    pub(super) fn is_down(&self, server: SocketAddr) -> bool {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.get(&server).is_some_and(|s| s.retry_at.is_some())
    }

    /// The smoothed round-trip time of `server`, if measured.
    pub(super) fn srtt(&self, server: SocketAddr) -> Option<Duration> {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states
            .get(&server)
            .and_then(|s| s.srtt)
            .map(Duration::from_secs_f64)
    }
}

pub(super) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}
