//! [`Runtime`]: everything the query path reads, compiled from one config and its lists, built
//! whole and validated whole before anyone sees it.
//!
//! The daemon holds the current runtime in an `ArcSwap`; a query loads it once and keeps that
//! `Arc` until it answers, so a reload never changes the rules under a query in flight.

//!
//! Data only: building one is the `reload` module's (the one place that builds and swaps), and the
//! live state inside it is recomputed by the `live` module's ticker.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::blocklist::LoadedLists;
use crate::config::{Config, Mac};
use crate::policy::Policy;
use crate::policy::live::{LiveState, Overrides};
use crate::stats::Counters;

/// The compiled state one query needs.
#[derive(Debug)]
pub struct Runtime {
    /// The validated config.
    pub config: Config,
    /// Compiled profiles and client rules.
    pub policy: Policy,
    /// The category lists.
    pub lists: LoadedLists,
    /// What this runtime's queries are counted in (see [`crate::stats`]).
    pub counters: Arc<Counters>,
    /// Schedules, overrides and MAC matches at the last tick (see `policy::live`).
    pub live: ArcSwap<LiveState>,
    /// The overrides the live state is computed from (the `live` module replaces them).
    pub overrides: Mutex<Overrides>,
    /// The neighbour table the live state is computed from (the `live` module replaces it).
    pub neighbours: Mutex<HashMap<Mac, Vec<IpAddr>>>,
    /// How long the build took (reported at start and reload).
    pub build_time: Duration,
    /// TLS client settings for `tls://` and `https://` upstreams (None when there are none).
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// Which feed lists this runtime serves.
    pub feed: FeedInUse,
}

/// Where the feed's lists of a runtime came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedInUse {
    /// No `[feed]` is configured.
    NotConfigured,
    /// A verified snapshot (`fell_back`: the previous one, the active one being damaged).
    Snapshot {
        /// Its manifest sequence.
        sequence: u64,
        /// Whether it is the previous snapshot.
        fell_back: bool,
    },
    /// No verified snapshot yet: the `[feed] baseline` directories.
    Baseline,
}

impl Runtime {
    /// The feed part of the status line and `kidsafe check`, if a feed is configured.
    pub fn feed_summary(&self) -> Option<String> {
        match &self.feed {
            FeedInUse::NotConfigured => None,
            FeedInUse::Snapshot {
                sequence,
                fell_back,
            } => Some(format!(
                "feed sequence {sequence}{}",
                if *fell_back {
                    " (previous snapshot)"
                } else {
                    ""
                }
            )),
            FeedInUse::Baseline => Some("feed: baseline lists (no snapshot yet)".to_string()),
        }
    }

    /// One line for `systemctl status` (sd_notify `STATUS=`): counts only.
    pub fn status_line(&self, generation: u64) -> String {
        let feed = self
            .feed_summary()
            .map(|f| format!(", {f}"))
            .unwrap_or_default();
        format!(
            "generation {generation}: {} names stored from {} list files, {} profiles{feed}",
            self.lists.store.len(),
            self.lists.files.len(),
            self.config.profiles.len()
        )
    }

    /// Categories some profile blocks but no list feeds: valid, but they block nothing yet.
    pub fn categories_without_lists(&self) -> Vec<String> {
        let mut missing: Vec<String> = self
            .config
            .profiles
            .iter()
            .flat_map(|p| p.block.iter().map(|c| c.value.clone()))
            .filter(|c| !self.lists.has_category(c))
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }
}

/// The shared, swappable handle to the current runtime.
pub type SharedRuntime = Arc<arc_swap::ArcSwap<Runtime>>;

/// Wraps a first runtime in a [`SharedRuntime`].
pub fn share(runtime: Runtime) -> SharedRuntime {
    Arc::new(arc_swap::ArcSwap::from_pointee(runtime))
}
