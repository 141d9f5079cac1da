//! [`Runtime`]: everything the query path reads, compiled from one config and its lists, built
//! whole and validated whole before anyone sees it.
//!
//! The daemon holds the current runtime in an `ArcSwap`; a query loads it once and keeps that
//! `Arc` until it answers, so a reload never changes the rules under a query in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::blocklist::{self, ListError, LoadedLists};
use crate::config::{Config, ConfigError};
use crate::policy::Policy;
use crate::policy::live::{LiveState, Mac, Overrides, read_neighbours};
use crate::stats::Counters;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use tracing::{info, warn};

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
    /// Schedules, overrides and MAC matches at the last tick (see [`crate::policy::live`]).
    pub live: ArcSwap<LiveState>,
    overrides: Mutex<Overrides>,
    neighbours: Mutex<HashMap<Mac, Vec<IpAddr>>>,
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

/// Why a runtime could not be built; the one running keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A list directory or file could not be loaded.
    #[error(transparent)]
    Lists(#[from] ListError),
    /// The feed settings are unusable.
    #[error("{at}: {key}: {message}")]
    Feed {
        /// Where the setting is written (file:line:column).
        at: String,
        /// Its key.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The TLS settings for encrypted upstreams could not be built.
    #[error("{at}: {key}: {message}")]
    Tls {
        /// Where the setting is written (file:line:column).
        at: String,
        /// Its key.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl Runtime {
    /// Reads the config at `path`, loads its lists, compiles the policy.
    pub fn load(path: &std::path::Path) -> Result<Self, BuildError> {
        let started = Instant::now();
        let config = Config::load(path)?;
        Self::build(config, started)
    }

    /// Compiles a runtime from an already validated config.
    pub fn build(mut config: Config, started: Instant) -> Result<Self, BuildError> {
        // The bypass category works before any feed arrives: public DoH resolvers are built in.
        let builtin: &[(&str, &[&str])] = &[("bypass", crate::policy::special::BYPASS_RESOLVERS)];
        let (dirs, feed) = Self::feed_lists(&mut config)?;
        let lists = blocklist::load_dirs_cached(&dirs, builtin, Some(&config.server.state_dir))?;
        let policy = Policy::compile(&config, &lists)?;
        let clients = if config.stats.by_client {
            config.clients.iter().map(|c| c.name.clone()).collect()
        } else {
            Vec::new()
        };
        let profiles = config.profiles.iter().map(|p| p.name.clone()).collect();
        let counters = Arc::new(Counters::new(profiles, &lists.categories, clients));
        // Time-dependent state is right from the first query: overrides and neighbours are read
        // now, and the ticker keeps them current.
        let overrides = Overrides::read(&config.server.state_dir).unwrap_or_else(|e| {
            warn!("overrides not applied: {e}");
            Overrides::default()
        });
        let neighbours = if policy.has_mac_rules() {
            read_neighbours(&config.server.neighbour_tables)
        } else {
            HashMap::new()
        };
        let live = LiveState::compute(&policy, &overrides, &neighbours, jiff::Timestamp::now());
        let upstream_tls = Self::upstream_tls(&config)?;
        Ok(Self {
            live: ArcSwap::from_pointee(live),
            overrides: Mutex::new(overrides),
            neighbours: Mutex::new(neighbours),
            config,
            policy,
            lists,
            counters,
            build_time: started.elapsed(),
            upstream_tls,
            feed,
        })
    }

    /// The list directories to load: the config's own, the verified feed snapshot (or the
    /// baseline while there is none) and the list sources with a good copy on disk. The feed's
    /// allowlist joins `[lists] allow`.
    fn feed_lists(config: &mut Config) -> Result<(Vec<std::path::PathBuf>, FeedInUse), BuildError> {
        let mut dirs = config.list_dirs.clone();
        let mut in_use = FeedInUse::NotConfigured;
        if let Some(feed) = &config.feed {
            if let Err(message) = crate::feed::run::public_keys(feed) {
                let at = &feed.public_keys.at;
                return Err(BuildError::Feed {
                    at: format!("{}:{}:{}", config.path.display(), at.line, at.column),
                    key: feed.public_keys.key.clone(),
                    message: format!(
                        "{message}; it is the \"RW…\" line of the publisher's feed.pub"
                    ),
                });
            }
            let root = crate::feed::snapshot::feed_root(&config.server.state_dir);
            let (selected, problems) = crate::feed::snapshot::select(&root);
            for problem in problems {
                warn!("{problem}");
            }
            match selected {
                Some(snapshot) => {
                    in_use = FeedInUse::Snapshot {
                        sequence: snapshot.info.sequence,
                        fell_back: snapshot.fell_back,
                    };
                    dirs.push(snapshot.dir);
                    config
                        .global_allow
                        .extend(
                            snapshot
                                .allow
                                .into_iter()
                                .map(|name| crate::config::NameRule {
                                    name,
                                    form: crate::config::RuleForm::Tree,
                                }),
                        );
                }
                None => {
                    in_use = FeedInUse::Baseline;
                    dirs.extend(feed.baseline.iter().cloned());
                }
            }
        }
        dirs.extend(crate::feed::sources::installed_dirs(config));
        Ok((dirs, in_use))
    }

    /// The TLS client settings for `tls://` upstreams of `config` (None when it has none).
    pub fn upstream_tls(config: &Config) -> Result<Option<Arc<rustls::ClientConfig>>, BuildError> {
        let upstream = &config.upstream;
        let wanted = upstream.servers.iter().any(|s| {
            matches!(
                s,
                crate::config::UpstreamServer::Tls { .. }
                    | crate::config::UpstreamServer::Https { .. }
            )
        });
        if !wanted {
            return Ok(None);
        }
        let ca = upstream.tls_ca_file.as_ref();
        crate::dns::upstream::tls_client_config(ca.map(|c| c.value.as_path()))
            .map(Some)
            .map_err(|message| BuildError::Tls {
                at: ca.map_or_else(
                    || config.path.display().to_string(),
                    |c| format!("{}:{}:{}", config.path.display(), c.at.line, c.at.column),
                ),
                key: ca.map_or_else(|| "upstream.servers".to_string(), |c| c.key.clone()),
                message,
            })
    }

    /// Logs what was loaded: counts, build time, bad list lines, categories without a list.
    pub fn log_summary(&self, what: &str) {
        let runtime = self;
        let lists = &runtime.lists;
        let names: usize = lists.files.iter().map(|f| f.names).sum();
        info!(
            config = %runtime.config.path.display(),
            profiles = runtime.config.profiles.len(),
            list_files = lists.files.len(),
            names,
            stored = lists.store.len(),
            store_bytes = lists.store.size_bytes(),
            build_ms = runtime.build_time.as_millis() as u64,
            "{what} config and lists"
        );
        match &self.feed {
            FeedInUse::NotConfigured => {}
            FeedInUse::Snapshot {
                sequence,
                fell_back: false,
            } => info!(sequence, "serving the feed's verified snapshot"),
            FeedInUse::Snapshot {
                sequence,
                fell_back: true,
            } => warn!(
                sequence,
                "the active feed snapshot is damaged; serving the previous one"
            ),
            FeedInUse::Baseline => warn!(
                "no verified feed snapshot yet; serving the [feed] baseline lists until one is installed"
            ),
        }
        self.log_warnings();
    }

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

    /// Logs what a parent or admin should fix: unreadable list lines, categories without a list.
    pub fn log_warnings(&self) {
        let runtime = self;
        let lists = &runtime.lists;
        for file in lists.files.iter().filter(|f| f.bad > 0) {
            let lines: Vec<String> = file
                .first_bad
                .iter()
                .map(|(n, r)| format!("{n} ({})", r.describe()))
                .collect();
            warn!(
                file = %file.path.display(),
                bad_lines = file.bad,
                first = %lines.join(", "),
                "skipped unreadable lines in a list file"
            );
        }
        for category in runtime.categories_without_lists() {
            warn!(%category, "a profile blocks this category but no list feeds it yet");
        }
    }

    /// Replaces the overrides (the next [`Runtime::refresh_live`] applies them).
    pub fn set_overrides(&self, overrides: Overrides) {
        if let Ok(mut o) = self.overrides.lock() {
            *o = overrides;
        }
    }

    /// Replaces the neighbour table (the next [`Runtime::refresh_live`] applies it).
    pub fn set_neighbours(&self, neighbours: HashMap<Mac, Vec<IpAddr>>) {
        if let Ok(mut n) = self.neighbours.lock() {
            *n = neighbours;
        }
    }

    /// Recomputes the live state at `now` and swaps it in.
    pub fn refresh_live(&self, now: jiff::Timestamp) {
        let (Ok(overrides), Ok(neighbours)) = (self.overrides.lock(), self.neighbours.lock())
        else {
            return;
        };
        let state = LiveState::compute(&self.policy, &overrides, &neighbours, now);
        self.live.store(Arc::new(state));
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
