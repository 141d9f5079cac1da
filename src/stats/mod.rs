//! Category statistics that respect children's privacy: counts, never names.
//!
//! What is counted: blocked queries per (profile, category) — and per configured client *name*
//! when `[stats] by_client = true` — plus totals of queries answered, blocked, forwarded,
//! answered from cache and failed. The recording API takes indices into the runtime's own tables
//! and an [`Outcome`]; it has no parameter that could carry a queried name or a client address,
//! so it cannot store what it is never given.
//!
//! - [`Counters`] (here): one matrix of atomics per runtime; recording is one relaxed add.
//! - [`Collector`] (here): drains every runtime's counters into hourly rows and keeps running
//!   totals for Prometheus.
//! - [`run_flusher`]: the task that writes drained counts every `[stats] flush`.
//! - [`store`]: the SQLite database (`state_dir/stats.db`), its schema, flush and pruning.
//! - [`report`]: `kidsafe stats`, the terminal report for parents.
//!
//! (The Prometheus `/metrics` endpoint that reads these counters is the `http` module's.)

mod flush;
pub mod report;
pub mod store;

pub use flush::{FlushSettings, run_flusher};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::category::Categories;
use crate::policy::BlockReason;

/// The pseudo-category counted for names on a profile's deny list.
pub const DENY_CATEGORY: &str = "denylist";
/// Pseudo-categories counted for blocks that no list decided, after the real categories.
pub const PSEUDO_CATEGORIES: [&str; 3] = [DENY_CATEGORY, "schedule", "walled-garden"];

/// How one query ended, for the per-hour totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with a block response.
    Blocked,
    /// Answered with a fresh upstream answer.
    Forwarded,
    /// Answered from the cache.
    Cached,
    /// Answered SERVFAIL because no upstream answered.
    Failed,
    /// Refused or malformed (not counted as answered by policy, but answered on the wire).
    Refused,
}

/// The totals kept per hour, in database column order.
pub const TOTALS: [&str; 5] = ["blocked", "forwarded", "cached", "failed", "refused"];

impl Outcome {
    fn index(self) -> usize {
        match self {
            Outcome::Blocked => 0,
            Outcome::Forwarded => 1,
            Outcome::Cached => 2,
            Outcome::Failed => 3,
            Outcome::Refused => 4,
        }
    }
}

/// The counters of one runtime: a dense matrix indexed by client slot, profile and category.
#[derive(Debug)]
pub struct Counters {
    /// Index of the `bypass` category (where guard blocks are counted).
    bypass: usize,
    /// Index of the first pseudo-category.
    pseudo: usize,
    profiles: Vec<String>,
    categories: Vec<String>,
    /// Slot 0 is "no client name" (or `by_client` off); slot i+1 is `[[clients]]` rule i.
    clients: Vec<String>,
    blocked: Box<[AtomicU64]>,
    totals: [AtomicU64; 5],
}

/// One drained row: (profile, category, client name or "") and its count.
pub type BlockedKey = (String, String, String);

/// What a drain collected.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    /// Blocked counts by (profile, category, client).
    pub blocked: BTreeMap<BlockedKey, u64>,
    /// Totals, in [`TOTALS`] order.
    pub totals: [u64; 5],
}

impl Drained {
    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.blocked.is_empty() && self.totals.iter().all(|t| *t == 0)
    }

    /// Adds another drain's counts to these.
    pub fn add(&mut self, other: &Drained) {
        for (k, v) in &other.blocked {
            *self.blocked.entry(k.clone()).or_insert(0) += v;
        }
        for (t, o) in self.totals.iter_mut().zip(other.totals) {
            *t += o;
        }
    }
}

impl Counters {
    /// Counters for these profiles and categories; `clients` are the client rule names when
    /// per-client counting is on, else empty.
    pub fn new(profiles: Vec<String>, categories: &Categories, clients: Vec<String>) -> Self {
        let mut names: Vec<String> = categories.names().map(str::to_string).collect();
        let bypass = categories.index("bypass").map_or(0, usize::from);
        let pseudo = names.len();
        names.extend(PSEUDO_CATEGORIES.iter().map(|c| c.to_string()));
        let mut slots = vec![String::new()];
        slots.extend(clients);
        let cells = slots.len() * profiles.len().max(1) * names.len();
        Self {
            bypass,
            pseudo,
            profiles,
            categories: names,
            clients: slots,
            blocked: (0..cells).map(|_| AtomicU64::new(0)).collect(),
            totals: Default::default(),
        }
    }

    /// Counts one blocked query. `client` is the index of the `[[clients]]` rule that matched,
    /// used only when per-client counting is on.
    pub fn record_blocked(&self, profile: usize, reason: BlockReason, client: Option<usize>) {
        let category = match reason {
            BlockReason::Category(bit) => usize::from(bit),
            BlockReason::Guard(_) => self.bypass,
            BlockReason::Denied => self.pseudo,
            BlockReason::Schedule => self.pseudo + 1,
            BlockReason::WalledGarden => self.pseudo + 2,
        };
        let slot = match client {
            Some(rule) if rule + 1 < self.clients.len() => rule + 1,
            _ => 0,
        };
        let index = (slot * self.profiles.len() + profile) * self.categories.len() + category;
        if let Some(cell) = self.blocked.get(index) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        self.record(Outcome::Blocked);
    }

    /// Counts how a query ended.
    pub fn record(&self, outcome: Outcome) {
        self.totals[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes every count, leaving zeros.
    pub fn drain(&self) -> Drained {
        let mut out = Drained::default();
        let per_slot = self.profiles.len() * self.categories.len();
        for (i, cell) in self.blocked.iter().enumerate() {
            let n = cell.swap(0, Ordering::Relaxed);
            if n == 0 || per_slot == 0 {
                continue;
            }
            let slot = i / per_slot;
            let profile = (i % per_slot) / self.categories.len();
            let category = i % self.categories.len();
            let key = (
                self.profiles.get(profile).cloned().unwrap_or_default(),
                self.categories.get(category).cloned().unwrap_or_default(),
                self.clients.get(slot).cloned().unwrap_or_default(),
            );
            *out.blocked.entry(key).or_insert(0) += n;
        }
        for (t, cell) in out.totals.iter_mut().zip(&self.totals) {
            *t = cell.swap(0, Ordering::Relaxed);
        }
        out
    }
}

/// Gathers counts from every runtime that may still be recording, and keeps running totals
/// since start for Prometheus (whose counters must never go down).
#[derive(Debug, Default)]
pub struct Collector {
    live: Mutex<Vec<Arc<Counters>>>,
    since_start: Mutex<Drained>,
}

impl Collector {
    /// Starts collecting from a runtime's counters (at start and after every reload).
    pub fn register(&self, counters: Arc<Counters>) {
        if let Ok(mut live) = self.live.lock() {
            live.push(counters);
        }
    }

    /// Drains every registered runtime's counters. Runtimes nobody uses any more are dropped
    /// after this last drain, so counts recorded just before a reload are never lost.
    pub fn drain(&self) -> Drained {
        let mut total = Drained::default();
        if let Ok(mut live) = self.live.lock() {
            for counters in live.iter() {
                total.add(&counters.drain());
            }
            live.retain(|c| Arc::strong_count(c) > 1);
        }
        if let Ok(mut since) = self.since_start.lock() {
            since.add(&total);
        }
        total
    }

    /// Everything counted since start, including what has not been drained yet.
    pub fn since_start(&self) -> Drained {
        // Draining here would move counts out of the hour they belong to; peek instead.
        let mut out = self
            .since_start
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if let Ok(live) = self.live.lock() {
            for counters in live.iter() {
                out.add(&counters.peek());
            }
        }
        out
    }
}

impl Counters {
    fn peek(&self) -> Drained {
        let mut out = Drained::default();
        let per_slot = self.profiles.len() * self.categories.len();
        for (i, cell) in self.blocked.iter().enumerate() {
            let n = cell.load(Ordering::Relaxed);
            if n == 0 || per_slot == 0 {
                continue;
            }
            let key = (
                self.profiles
                    .get((i % per_slot) / self.categories.len())
                    .cloned()
                    .unwrap_or_default(),
                self.categories
                    .get(i % self.categories.len())
                    .cloned()
                    .unwrap_or_default(),
                self.clients.get(i / per_slot).cloned().unwrap_or_default(),
            );
            *out.blocked.entry(key).or_insert(0) += n;
        }
        for (t, cell) in out.totals.iter_mut().zip(&self.totals) {
            *t = cell.load(Ordering::Relaxed);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(clients: Vec<String>) -> Counters {
        let cats = Categories::with_custom(["custom"]).expect("fits");
        Counters::new(vec!["child".into(), "teen".into()], &cats, clients)
    }

    #[test]
    fn blocked_counts_land_in_their_profile_and_category() {
        let cats = Categories::with_custom(["custom"]).expect("fits");
        let c = counters(vec![]);
        let gambling = cats.index("gambling").expect("g");
        c.record_blocked(0, BlockReason::Category(gambling), None);
        c.record_blocked(0, BlockReason::Category(gambling), Some(3));
        c.record_blocked(1, BlockReason::Denied, None);
        c.record(Outcome::Forwarded);
        let d = c.drain();
        assert_eq!(
            d.blocked
                .get(&("child".into(), "gambling".into(), String::new())),
            Some(&2)
        );
        assert_eq!(
            d.blocked
                .get(&("teen".into(), DENY_CATEGORY.into(), String::new())),
            Some(&1)
        );
        assert_eq!(d.totals, [3, 1, 0, 0, 0]);
        assert!(c.drain().is_empty(), "a drain leaves zeros");
    }

    #[test]
    fn per_client_counts_use_the_rule_name() {
        let c = counters(vec!["kids' tablets".into(), "lab".into()]);
        c.record_blocked(0, BlockReason::Category(0), Some(1));
        c.record_blocked(0, BlockReason::Category(0), None);
        let d = c.drain();
        assert_eq!(
            d.blocked
                .get(&("child".into(), "adult".into(), "lab".into())),
            Some(&1)
        );
        assert_eq!(
            d.blocked
                .get(&("child".into(), "adult".into(), String::new())),
            Some(&1)
        );
    }

    #[test]
    fn the_collector_keeps_retired_runtimes_until_drained() {
        let collector = Collector::default();
        let old = Arc::new(counters(vec![]));
        collector.register(Arc::clone(&old));
        old.record(Outcome::Cached);
        drop(old); // the runtime was swapped out
        assert_eq!(
            collector.since_start().totals[2],
            1,
            "peek sees undrained counts"
        );
        assert_eq!(
            collector.drain().totals[2],
            1,
            "nothing recorded before a reload is lost"
        );
        assert_eq!(collector.drain().totals[2], 0);
        assert_eq!(
            collector.since_start().totals[2],
            1,
            "running totals never go down"
        );
    }
}
