//! Feed snapshots on disk: the layout under `state_dir/feed/`, installing a new snapshot so a
//! crash or power cut at any instant leaves the old one or the new one whole, and choosing the
//! snapshot to serve at start-up (re-hashed, falling back to the previous one).
//!
//! ```text
//! state_dir/feed/state.json            which snapshot is active, and its files' hashes
//! state_dir/feed/status.json           the last attempts and errors (for `kidsafe feed status`)
//! state_dir/feed/snapshots/snap-<seq>/<category>.txt   verified canonical files
//! state_dir/feed/snapshots/snap-<seq>.tmp/             an install in progress (or torn)
//! state_dir/feed/lock                  held by whoever installs
//! ```
//!
//! The commit point is the write of `state.json` (temp file, fsync, rename, fsync of the
//! directory). Before it, readers use the old snapshot; after it, the new one, whose files were
//! fsynced and whose directory was renamed into place before. A directory left behind by a torn
//! install is never read: only `state.json` names snapshots, and the next install removes it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::sha256_hex;

/// The name of the installed-state file.
pub const STATE_FILE: &str = "state.json";

/// The file holding the feed's allowlist inside a snapshot (not `.txt`: it is no category).
pub const ALLOW_FILE: &str = "allow.names";

/// `state_dir/feed`.
pub fn feed_root(state_dir: &Path) -> PathBuf {
    state_dir.join("feed")
}

/// One verified file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// The category's version in the feed.
    pub version: u64,
    /// SHA-256 of the canonical file, lowercase hex.
    pub sha256: String,
    /// Names in it.
    pub entries: u64,
}

/// One installed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its directory under `snapshots/`.
    pub dir: String,
    /// The manifest sequence it came from.
    pub sequence: u64,
    /// Category files by category id.
    pub categories: BTreeMap<String, FileInfo>,
    /// The feed's allowlist, if it has one.
    pub allow: Option<FileInfo>,
}

impl SnapshotInfo {
    /// The file name of a category inside the snapshot.
    pub fn file_name(category: &str) -> String {
        format!("{category}.txt")
    }

    /// Records a verified file under its file name (the allowlist, or category `id`).
    pub fn insert(&mut self, file_name: &str, id: String, info: FileInfo) {
        if file_name == ALLOW_FILE {
            self.allow = Some(info);
        } else {
            self.categories.insert(id, info);
        }
    }

    /// Every (file name, info) of the snapshot.
    pub fn files(&self) -> impl Iterator<Item = (String, &FileInfo)> {
        self.categories
            .iter()
            .map(|(c, f)| (Self::file_name(c), f))
            .chain(self.allow.iter().map(|f| (ALLOW_FILE.to_string(), f)))
    }
}

/// `state.json`: what is installed. Changes only when a snapshot is installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedState {
    /// The feed's id, pinned by the first verified manifest.
    pub feed_id: String,
    /// The installed manifest's sequence.
    pub sequence: u64,
    /// SHA-256 of the installed manifest's bytes.
    pub manifest_sha256: String,
    /// Its ETag, for conditional GETs.
    pub manifest_etag: Option<String>,
    /// When the publisher made it.
    pub published_at: Option<jiff::Timestamp>,
    /// When it stops being current.
    pub expires_at: Option<jiff::Timestamp>,
    /// The publisher's shortest poll interval, seconds.
    #[serde(default)]
    pub min_poll_seconds: u64,
    /// The snapshot served.
    pub active: Option<SnapshotInfo>,
    /// The one before, kept as a fallback.
    pub previous: Option<SnapshotInfo>,
}

impl FeedState {
    /// Reads `root/state.json`; `Ok(None)` when no feed was ever installed.
    pub fn read(root: &Path) -> Result<Option<Self>, String> {
        let path = root.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{} is damaged ({e})", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes `root/state.json` atomically: the commit point of an install.
    pub fn write(&self, root: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::state_file::write_atomic(root, STATE_FILE, &bytes)
    }
}

/// The snapshot chosen to serve.
#[derive(Debug, Clone)]
pub struct Selected {
    /// Its directory (holds `<category>.txt` files).
    pub dir: PathBuf,
    /// What it holds.
    pub info: SnapshotInfo,
    /// Whether it is the previous snapshot because the active one failed its check.
    pub fell_back: bool,
    /// Names of the feed's allowlist.
    pub allow: Vec<String>,
}

/// Picks the snapshot to serve from: the active one if every file is present and hashes to
/// what `state.json` recorded, else the previous one, else none (the caller uses the baseline).
/// The problems found are returned for logging.
pub fn select(root: &Path) -> (Option<Selected>, Vec<String>) {
    let mut problems = Vec::new();
    let state = match FeedState::read(root) {
        Ok(Some(state)) => state,
        Ok(None) => return (None, problems),
        Err(e) => {
            problems.push(e);
            return (None, problems);
        }
    };
    for (info, fell_back) in [(&state.active, false), (&state.previous, true)] {
        let Some(info) = info else { continue };
        let dir = root.join("snapshots").join(&info.dir);
        match verify(&dir, info) {
            Ok(allow) => {
                return (
                    Some(Selected {
                        dir,
                        info: info.clone(),
                        fell_back: fell_back || !problems.is_empty(),
                        allow,
                    }),
                    problems,
                );
            }
            Err(e) => problems.push(format!("feed snapshot {}: {e}", info.dir)),
        }
    }
    (None, problems)
}

/// Re-hashes every file of a snapshot; returns the allowlist's names.
fn verify(dir: &Path, info: &SnapshotInfo) -> Result<Vec<String>, String> {
    let mut allow = Vec::new();
    for (name, file) in info.files() {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {name}: {e}"))?;
        let got = sha256_hex(&bytes);
        if got != file.sha256 {
            return Err(format!(
                "{name} does not match its recorded hash (damaged on disk)"
            ));
        }
        if name == ALLOW_FILE {
            // Checked canonical when it was installed, and unchanged since (the hash above).
            allow = super::canonical::list_entries(&bytes)
                .map(str::to_string)
                .collect();
        }
    }
    Ok(allow)
}

/// The steps of an install, reported to an observer (tests stop the install at each one to
/// check that a crash there leaves a whole snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A file was written and fsynced into the temporary directory.
    FileWritten,
    /// Every file is in; the temporary directory is fsynced.
    FilesSynced,
    /// The temporary directory was renamed to `snap-<seq>`.
    Renamed,
    /// `state.json` names the new snapshot (the commit point).
    Committed,
}

/// A snapshot being assembled in `snapshots/snap-<seq>.tmp/`. Dropping it without
/// [`Staging::commit`] leaves the directory for the next install to remove; nothing reads it.
pub struct Staging {
    root: PathBuf,
    sequence: u64,
    tmp: PathBuf,
    observer: std::sync::Arc<dyn Fn(Step) + Send + Sync>,
}

impl Staging {
    /// Starts the snapshot for `sequence`, removing leftovers of torn installs.
    pub fn begin(
        root: &Path,
        sequence: u64,
        observer: std::sync::Arc<dyn Fn(Step) + Send + Sync>,
    ) -> std::io::Result<Self> {
        let snapshots = root.join("snapshots");
        std::fs::create_dir_all(&snapshots)?;
        for entry in std::fs::read_dir(&snapshots)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                std::fs::remove_dir_all(&path)?;
            }
        }
        let tmp = snapshots.join(format!("snap-{sequence}.tmp"));
        std::fs::create_dir(&tmp)?;
        Ok(Self {
            root: root.to_path_buf(),
            sequence,
            tmp,
            observer,
        })
    }

    /// Writes one file and fsyncs it.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut file = std::fs::File::create(self.tmp.join(name))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        (self.observer)(Step::FileWritten);
        Ok(())
    }

    /// Takes an unchanged file from the active snapshot: a hard link (files are never
    /// modified in place), or a copy where the file system has no links.
    pub fn reuse(&self, from: &Path, name: &str) -> std::io::Result<()> {
        let to = self.tmp.join(name);
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to)?;
            std::fs::File::open(&to)?.sync_all()?;
        }
        (self.observer)(Step::FileWritten);
        Ok(())
    }

    /// Gives up: removes the staging directory (a failed download, a full disk). Failing to
    /// remove it only costs space until the next install, which removes it.
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }

    /// Makes the snapshot the active one: fsync the directory, rename it into place, fsync
    /// the parent, then write `state` (which must name `snap-<seq>` as active). Snapshots other
    /// than the new and the previous one are removed afterwards.
    pub fn commit(self, state: &FeedState) -> std::io::Result<()> {
        std::fs::File::open(&self.tmp)?.sync_all()?;
        (self.observer)(Step::FilesSynced);
        let snapshots = self.root.join("snapshots");
        let target = snapshots.join(snapshot_dir_name(self.sequence));
        if target.exists() {
            // A torn earlier install of this very sequence that never reached state.json.
            let named = FeedState::read(&self.root).ok().flatten().is_some_and(|s| {
                [s.active, s.previous]
                    .iter()
                    .flatten()
                    .any(|i| i.dir == snapshot_dir_name(self.sequence))
            });
            if named {
                return Err(std::io::Error::other(format!(
                    "{} is in use; refusing to replace it",
                    target.display()
                )));
            }
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(&self.tmp, &target)?;
        std::fs::File::open(&snapshots)?.sync_all()?;
        (self.observer)(Step::Renamed);
        state.write(&self.root)?;
        (self.observer)(Step::Committed);
        collect_garbage(&self.root, state);
        Ok(())
    }
}

/// `snap-<sequence>`.
pub fn snapshot_dir_name(sequence: u64) -> String {
    format!("snap-{sequence}")
}

/// Removes snapshot directories `state` does not name. Failures only cost disk space.
fn collect_garbage(root: &Path, state: &FeedState) {
    let keep: Vec<&str> = [&state.active, &state.previous]
        .into_iter()
        .flatten()
        .map(|i| i.dir.as_str())
        .collect();
    let Ok(entries) = std::fs::read_dir(root.join("snapshots")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !keep.contains(&name.as_ref()) && !name.ends_with(".tmp") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Holds `root/lock` so only one process installs at a time (the daemon and a one-shot
/// `kidsafe feed update`). Released when dropped.
pub struct InstallLock {
    _file: std::fs::File,
}

impl InstallLock {
    /// Takes the lock, waiting up to `patience` for another holder to finish. (A holder may
    /// also be a child process between fork and exec, which briefly shares our descriptors.)
    pub async fn acquire(root: &Path, patience: std::time::Duration) -> std::io::Result<Self> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match Self::try_acquire(root) {
                Ok(lock) => return Ok(lock),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    /// Takes the lock, or says who would have to finish first.
    pub fn try_acquire(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::other(
                "another feed update is running (the daemon or `kidsafe feed update`)",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
