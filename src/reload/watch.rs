//! Watching the config file and the list directories for changes.
//!
//! Directories are watched, not files: editors save by writing a new file and renaming it over
//! the old one, which would silently end a watch on the file itself. Events are filtered to the
//! config file (by its exact name), to `*.txt` files in the configured list directories (a
//! `notes.txt` beside the config is not a list; each list source's directory under `state_dir`
//! counts as one) and to the feed's `state.json`, reads are
//! ignored (our own reload reads every file), and each relevant event only wakes the reloader,
//! which debounces a burst into one reload. The watched set and the list directories are
//! refreshed after every reload, because the config may name new directories.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tracing::warn;

use crate::config::Config;
use crate::feed::snapshot::STATE_FILE as FEED_STATE;

/// The live watch over a config file and its list directories.
pub struct Watches {
    watcher: RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
    /// The configured list directories, absolute: a `*.txt` event counts only in one of these.
    list_dirs: Arc<RwLock<BTreeSet<PathBuf>>>,
}

impl Watches {
    /// Starts watching; every relevant change calls `wake.notify_one()`.
    pub fn start(config_path: &Path, wake: Arc<Notify>) -> notify::Result<Self> {
        let config_name: Option<OsString> = config_path.file_name().map(OsString::from);
        // notify reports absolute paths (the working directory joined to the watched path).
        let config_dir = std::path::absolute(parent_of(config_path))?;
        let list_dirs: Arc<RwLock<BTreeSet<PathBuf>>> = Arc::default();
        let lists = Arc::clone(&list_dirs);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let Ok(list_dirs) = lists.read() else { return };
            let relevant = event.paths.iter().any(|p| {
                let dir = parent_of(p);
                let is_config =
                    p.file_name().map(OsString::from) == config_name && dir == config_dir;
                let is_list = p.extension().is_some_and(|e| e == "txt") && list_dirs.contains(&dir);
                // A feed install commits by renaming state.json into place.
                let is_feed = p.file_name().is_some_and(|n| n == FEED_STATE)
                    && dir.file_name().is_some_and(|d| d == "feed");
                is_config || is_list || is_feed
            });
            if relevant {
                wake.notify_one();
            }
        })?;
        Ok(Self {
            watcher,
            watched: BTreeSet::new(),
            list_dirs,
        })
    }

    /// Watches the config's directory and list directories, and stops watching directories the
    /// config no longer names. A directory that cannot be watched is logged, not fatal: SIGHUP
    /// still works.
    pub fn update(&mut self, config_path: &Path, config: Option<&Config>) {
        let mut wanted: BTreeSet<PathBuf> = BTreeSet::new();
        wanted.insert(parent_of(config_path));
        if let Some(config) = config {
            // A list source's copy is a list directory of its own under state_dir; watching it
            // makes a `kidsafe sources update` run by hand apply at once, as a feed update does.
            let source_dirs: Vec<PathBuf> = config
                .sources
                .iter()
                .map(|s| crate::feed::sources::source_dir(&config.server.state_dir, s))
                .filter(|d| std::fs::create_dir_all(d).is_ok())
                .collect();
            wanted.extend(config.list_dirs.iter().cloned());
            wanted.extend(source_dirs.iter().cloned());
            // Compared with the paths notify reports, which are absolute.
            let absolute = config
                .list_dirs
                .iter()
                .chain(&source_dirs)
                .filter_map(|d| std::path::absolute(d).ok())
                .collect();
            if let Ok(mut dirs) = self.list_dirs.write() {
                *dirs = absolute;
            }
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
