//! Watching the config file and the list directories for changes.
//!
//! Directories are watched, not files: editors save by writing a new file and renaming it over
//! the old one, which would silently end a watch on the file itself. Events are filtered to the
//! config file, to `*.txt` lists and to the feed's `state.json`, reads are ignored (our own reload reads every file), and
//! each relevant event only wakes the reloader, which debounces a burst into one reload. The
//! watched set is refreshed after every reload, because the config may name new directories.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tracing::warn;

use crate::config::Config;
use crate::feed::snapshot::STATE_FILE as FEED_STATE;

/// The live watch over a config file and its list directories.
pub struct Watches {
    watcher: RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
}

impl Watches {
    /// Starts watching; every relevant change calls `wake.notify_one()`.
    pub fn start(config_path: &Path, wake: Arc<Notify>) -> notify::Result<Self> {
        let config_name: Option<OsString> = config_path.file_name().map(OsString::from);
        // notify reports absolute paths (the working directory joined to the watched path).
        let config_dir = std::path::absolute(parent_of(config_path))?;
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let relevant = event.paths.iter().any(|p| {
                let is_config =
                    p.file_name().map(OsString::from) == config_name && parent_of(p) == config_dir;
                let is_list = p.extension().is_some_and(|e| e == "txt");
                // A feed install commits by renaming state.json into place.
                let is_feed = p.file_name().is_some_and(|n| n == FEED_STATE)
                    && p.parent()
                        .and_then(Path::file_name)
                        .is_some_and(|d| d == "feed");
                is_config || is_list || is_feed
            });
            if relevant {
                wake.notify_one();
            }
        })?;
        Ok(Self {
            watcher,
            watched: BTreeSet::new(),
        })
    }

    /// Watches the config's directory and list directories, and stops watching directories the
    /// config no longer names. A directory that cannot be watched is logged, not fatal: SIGHUP
    /// still works.
    pub fn update(&mut self, config_path: &Path, config: Option<&Config>) {
        let mut wanted: BTreeSet<PathBuf> = BTreeSet::new();
        wanted.insert(parent_of(config_path));
        if let Some(config) = config {
            wanted.extend(config.list_dirs.iter().cloned());
            // A `kidsafe feed update` run by hand installs a snapshot; the daemon follows.
            if config.feed.is_some() {
                let root = crate::feed::snapshot::feed_root(&config.server.state_dir);
                if std::fs::create_dir_all(&root).is_ok()
                    && let Ok(root) = std::path::absolute(&root)
                {
                    wanted.insert(root);
                }
            }
        }
        for gone in self
            .watched
            .difference(&wanted)
            .cloned()
            .collect::<Vec<_>>()
        {
            let _ = self.watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for dir in wanted {
            if self.watched.contains(&dir) {
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(e) => {
                    warn!(dir = %dir.display(), "cannot watch for changes ({e}); use SIGHUP to reload")
                }
            }
        }
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
