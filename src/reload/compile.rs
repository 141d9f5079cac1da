//! Building a [`Runtime`]: the config read and checked, the list directories chosen (the
//! config's own, the verified feed snapshot or its baseline, the list sources), the lists
//! loaded, the policy compiled, the live state computed once. Everything or nothing: an error
//! leaves the running runtime in place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use tracing::warn;

use crate::config::{Config, ConfigError};
use crate::lists::{CacheUse, ListError};
use crate::live;
use crate::policy::Policy;
use crate::policy::live::{LiveState, Overrides};
use crate::runtime::{FeedInUse, Runtime};
use crate::stats::Counters;

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

/// Reads the config at `path`, loads its lists, compiles the policy; writes the compiled lists
/// into the state directory for the next start (the daemon).
pub fn load(path: &Path) -> Result<Runtime, BuildError> {
    let started = Instant::now();
    let config = Config::load(path)?;
    build(config, started)
}

/// [`load`] for the offline commands (`check`, `explain`): the compiled lists are read from
/// the state directory when they match, but nothing is written there, so `sudo kidsafe check`
/// never creates the daemon's state directory, or files in it, owned by root.
pub fn load_offline(path: &Path) -> Result<Runtime, BuildError> {
    let started = Instant::now();
    let config = Config::load(path)?;
    build_with(config, started, false)
}

/// Compiles a runtime from an already validated config.
pub fn build(config: Config, started: Instant) -> Result<Runtime, BuildError> {
    build_with(config, started, true)
}

fn build_with(
    mut config: Config,
    started: Instant,
    write_state: bool,
) -> Result<Runtime, BuildError> {
    // The bypass category works before any feed arrives: public DoH resolvers are built in.
    let builtin: &[(&str, &[&str])] = &[("bypass", crate::policy::special::BYPASS_RESOLVERS)];
    let (dirs, feed) = feed_lists(&mut config)?;
    let state_dir = config.server.state_dir.as_path();
    let cache = if write_state {
        CacheUse::ReadWrite(state_dir)
    } else {
        CacheUse::ReadOnly(state_dir)
    };
    let lists = crate::lists::load_dirs_cached(&dirs, builtin, cache)?;
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
    let overrides = live::read_overrides(&config.server.state_dir).unwrap_or_else(|e| {
        warn!("overrides not applied: {e}");
        Overrides::default()
    });
    let neighbours = if policy.has_mac_rules() {
        live::read_neighbours(&config.server.neighbour_tables)
    } else {
        HashMap::new()
    };
    let live = LiveState::compute(&policy, &overrides, &neighbours, jiff::Timestamp::now());
    let upstream_tls = upstream_tls(&config)?;
    Ok(Runtime {
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
fn feed_lists(config: &mut Config) -> Result<(Vec<PathBuf>, FeedInUse), BuildError> {
    let mut dirs = config.list_dirs.clone();
    let mut in_use = FeedInUse::NotConfigured;
    if let Some(feed) = &config.feed {
        if let Err(message) = crate::feed::run::public_keys(feed) {
            let at = &feed.public_keys.at;
            return Err(BuildError::Feed {
                at: format!("{}:{}:{}", config.path.display(), at.line, at.column),
                key: feed.public_keys.key.clone(),
                message: format!("{message}; it is the \"RW…\" line of the publisher's feed.pub"),
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

/// The TLS client settings for `tls://` and `https://` upstreams of `config` (None when it
/// has none).
fn upstream_tls(config: &Config) -> Result<Option<Arc<rustls::ClientConfig>>, BuildError> {
    crate::dns::upstream::tls_for(config).map_err(|e| BuildError::Tls {
        at: e.at,
        key: e.key,
        message: e.message,
    })
}
