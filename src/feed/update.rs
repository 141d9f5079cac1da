//! One feed update: fetch the manifest (conditionally), verify its signature before reading
//! it, refuse rollbacks and frozen feeds, fetch only the categories whose hash changed (by
//! delta when one applies to the version installed), verify every file, and install the whole
//! snapshot atomically. Any failure leaves the installed snapshot as it was.
//!
//! Memory stays bounded by the largest single file: each verified file is written to the
//! staging directory and dropped before the next is fetched.

use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tracing::{info, warn};

use super::FeedError;
use super::canonical;
use super::fetch::{FetchError, Fetched, Fetcher};
use super::manifest::sha256_hex;
use super::manifest::{self, Encoding, MAX_FILE_SIZE, Manifest};
use super::sign::PublicKey;
use super::snapshot::{
    self, ALLOW_FILE, FeedState, FileInfo, InstallLock, SnapshotInfo, Staging, Step,
};

/// The most a manifest may weigh.
pub const MAX_MANIFEST: u64 = 1 << 20;

/// The most a signature file may weigh.
pub const MAX_SIGNATURE: u64 = 4 << 10;

/// The longest the manifest and its signature may take.
const MANIFEST_DEADLINE: Duration = Duration::from_secs(30);

/// Before this instant the clock is not plausible (a router without an RTC boots in 1970):
/// expiry is not checked then, only the sequence.
pub const TIME_FLOOR: Timestamp = Timestamp::constant(1_767_225_600, 0); // 2026-01-01

/// How long an update waits for another one (the daemon's, or a one-shot) to finish.
const LOCK_PATIENCE: Duration = Duration::from_secs(30);

/// How far in the future a manifest's `published_at` may be (clock skew).
const FUTURE_SKEW: SignedDuration = SignedDuration::from_hours(24);

/// Why an update failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// A download failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// What was downloaded was refused.
    #[error(transparent)]
    Feed(#[from] FeedError),
}

impl UpdateError {
    /// A short stable tag for counters and status.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Fetch(e) => e.kind(),
            Self::Feed(e) => e.kind(),
        }
    }

    /// Whether trying again later may succeed (network, server, size cap, local I/O), rather
    /// than the feed being refused (signature, rollback, expiry, hash, format): an alarm.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Fetch(_) => true,
            Self::Feed(e) => matches!(
                e,
                FeedError::Http(_)
                    | FeedError::TooLarge { .. }
                    | FeedError::Timeout
                    | FeedError::Io { .. }
                    | FeedError::SizeExceeded { .. }
            ),
        }
    }

    /// The server's requested pause.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Fetch(e) => e.retry_after(),
            Self::Feed(_) => None,
        }
    }
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server said 304: the installed manifest is current.
    NotModified,
    /// The manifest is the installed one.
    Current {
        /// Its sequence.
        sequence: u64,
    },
    /// A new snapshot is installed.
    Installed {
        /// Its sequence.
        sequence: u64,
        /// Categories downloaded in full.
        full: Vec<String>,
        /// Categories rebuilt from a delta.
        delta: Vec<String>,
        /// Categories taken unchanged from the previous snapshot.
        kept: usize,
        /// Bytes downloaded for list files.
        bytes: u64,
        /// Alarms to raise (signed but suspicious: a category more than halved).
        alarms: Vec<String>,
    },
}

/// Told of download progress: (what is downloading, for people: the category, with
/// " (delta)" for a delta; bytes so far; bytes expected).
pub type Progress = Box<dyn Fn(&str, u64, u64) + Send + Sync>;

/// Everything an update needs.
pub struct Updater<'a> {
    /// `state_dir/feed`.
    pub root: &'a Path,
    /// The feed root URL, ending with `/`.
    pub url: &'a str,
    /// Pinned keys.
    pub keys: &'a [PublicKey],
    /// The configured feed id, if any.
    pub feed_id: Option<&'a str>,
    /// The HTTP client.
    pub fetcher: &'a Fetcher,
    /// The longest one download may take (the manifest: at most 30 s of it).
    pub timeout: Duration,
    /// Told of each install step (tests stop there to simulate a crash).
    pub observer: std::sync::Arc<dyn Fn(Step) + Send + Sync>,
    /// Reports download progress (bytes so far, bytes expected) for a terminal's progress bar.
    pub progress: Option<Progress>,
}

impl Updater<'_> {
    /// Runs one update at time `now`.
    pub async fn run(&self, now: Timestamp) -> Result<Outcome, UpdateError> {
        let lock = InstallLock::acquire(self.root, LOCK_PATIENCE)
            .await
            .map_err(|e| FeedError::io(format!("{}", self.root.display()), e))?;
        let state = FeedState::read(self.root)
            .map_err(|e| FeedError::io("feed state", std::io::Error::other(e)))?;
        // A damaged state.json is treated as none, so the feed can repair itself.
        let etag = state
            .as_ref()
            .and_then(|s| s.manifest_etag.as_deref())
            .filter(|_| state.as_ref().is_some_and(|s| s.active.is_some()));
        let manifest_url = format!("{}manifest.json", self.url);
        let (manifest_bytes, new_etag) = match self
            .fetcher
            .get(&manifest_url, etag, MAX_MANIFEST, self.manifest_deadline())
            .await?
        {
            Fetched::NotModified => return Ok(Outcome::NotModified),
            Fetched::Body { bytes, etag } => (bytes, etag),
        };
        let signature = match self
            .fetcher
            .get(
                &format!("{manifest_url}.minisig"),
                None,
                MAX_SIGNATURE,
                self.manifest_deadline(),
            )
            .await?
        {
            Fetched::Body { bytes, .. } => bytes,
            Fetched::NotModified => {
                return Err(FeedError::Http("unexpected 304 for the signature".into()).into());
            }
        };
        let pinned_id = self.feed_id.or(state
            .as_ref()
            .map(|s| s.feed_id.as_str())
            .filter(|s| !s.is_empty()));
        let manifest = manifest::parse_verified(&manifest_bytes, &signature, self.keys, pinned_id)?;
        let manifest_sha = sha256_hex(&manifest_bytes);
        check_freshness(&manifest, state.as_ref(), &manifest_sha, now)?;
        if let Some(s) = &state
            && s.sequence == manifest.sequence
            && s.active.is_some()
        {
            return Ok(Outcome::Current {
                sequence: s.sequence,
            });
        }

        let active = state.as_ref().and_then(|s| s.active.clone());
        let active_dir = active
            .as_ref()
            .map(|a| self.root.join("snapshots").join(&a.dir));
        let staging = Staging::begin(
            self.root,
            manifest.sequence,
            std::sync::Arc::clone(&self.observer),
        )
        .map_err(|e| FeedError::io("cannot start a snapshot", e))?;
        // Every file is staged inside one block so that any failure removes the staging
        // directory at once (a crash leaves it to the next install, which removes it).
        let staged = async {
            let mut info = SnapshotInfo {
                dir: snapshot::snapshot_dir_name(manifest.sequence),
                sequence: manifest.sequence,
                categories: Default::default(),
                allow: None,
            };
            let (mut full, mut delta, mut kept, mut bytes) = (Vec::new(), Vec::new(), 0, 0u64);
            let mut alarms = Vec::new();
            let lists = manifest
                .categories
                .iter()
                .map(|c| (c, SnapshotInfo::file_name(&c.id)))
                .chain(manifest.allow.iter().map(|c| (c, ALLOW_FILE.to_string())));
            for (list, file_name) in lists {
                let have = match (&active, file_name == ALLOW_FILE) {
                    (Some(a), true) => a.allow.as_ref(),
                    (Some(a), false) => a.categories.get(&list.id),
                    (None, _) => None,
                };
                let want = FileInfo {
                    version: list.version,
                    sha256: list.full.sha256.clone(),
                    entries: list.entries,
                };
                if let (Some(have), Some(dir)) = (have, &active_dir)
                    && have.sha256 == want.sha256
                {
                    staging
                        .reuse(&dir.join(&file_name), &file_name)
                        .map_err(|e| FeedError::io(format!("cannot keep {file_name}"), e))?;
                    kept += 1;
                    info.insert(&file_name, list.id.clone(), want);
                    continue;
                }
                if let Some(have) = have
                    && list.entries < have.entries / 2
                {
                    alarms.push(format!(
                        "category {} shrank from {} to {} names",
                        list.id, have.entries, list.entries
                    ));
                }
                let mut body = None;
                if let (Some(have), Some(dir)) = (have, &active_dir)
                    && let Some(d) = list.deltas.iter().find(|d| d.from_version == have.version)
                {
                    match self
                        .by_delta(&dir.join(&file_name), d, list, have.version)
                        .await
                    {
                        Ok((b, n)) => {
                            bytes += n;
                            delta.push(list.id.clone());
                            body = Some(b);
                        }
                        // Safe Browsing's rule: a delta that fails is discarded for the full file.
                        Err(e) => warn!(
                            category = %list.id,
                            "feed delta not usable ({e}); fetching the full list"
                        ),
                    }
                }
                let body = match body {
                    Some(b) => b,
                    None => {
                        let (b, n) = self
                            .fetch_file(
                                &list.id,
                                &list.full.path,
                                list.full.encoding,
                                list.full.transfer_size,
                                list.full.size,
                            )
                            .await?;
                        bytes += n;
                        full.push(list.id.clone());
                        b
                    }
                };
                list.check_full(&body)?;
                staging
                    .write(&file_name, &body)
                    .map_err(|e| FeedError::io(format!("cannot write {file_name}"), e))?;
                info.insert(&file_name, list.id.clone(), want);
            }
            Ok::<_, UpdateError>((info, full, delta, kept, bytes, alarms))
        }
        .await;
        let (info, full, delta, kept, bytes, alarms) = match staged {
            Ok(staged) => staged,
            Err(e) => {
                staging.abandon();
                return Err(e);
            }
        };

        let new_state = FeedState {
            feed_id: manifest.feed_id.clone(),
            sequence: manifest.sequence,
            manifest_sha256: manifest_sha,
            manifest_etag: new_etag,
            published_at: Some(manifest.published_at),
            expires_at: Some(manifest.expires_at),
            min_poll_seconds: manifest.min_poll_seconds,
            active: Some(info),
            previous: active,
        };
        staging
            .commit(&new_state)
            .map_err(|e| FeedError::io("cannot install the snapshot", e))?;
        drop(lock);
        info!(
            sequence = manifest.sequence,
            full = full.len(),
            delta = delta.len(),
            kept,
            bytes,
            "feed snapshot installed"
        );
        Ok(Outcome::Installed {
            sequence: manifest.sequence,
            full,
            delta,
            kept,
            bytes,
            alarms,
        })
    }

    fn manifest_deadline(&self) -> Duration {
        self.timeout.min(MANIFEST_DEADLINE)
    }

    /// Downloads one file of the feed and decodes it, capped at its declared sizes; `label`
    /// names it in progress reports.
    async fn fetch_file(
        &self,
        label: &str,
        path: &str,
        encoding: Encoding,
        transfer_size: Option<u64>,
        size: u64,
    ) -> Result<(Vec<u8>, u64), UpdateError> {
        let url = format!("{}{path}", self.url);
        let wire_cap = match encoding {
            Encoding::Identity => size,
            Encoding::Gzip => transfer_size.unwrap_or(size),
        }
        .min(MAX_FILE_SIZE);
        let report = self
            .progress
            .as_ref()
            .map(|p| move |got: u64| p(label, got, wire_cap));
        let report = report.as_ref().map(|r| r as &(dyn Fn(u64) + Send + Sync));
        let fetched = self
            .fetcher
            .get_with_progress(&url, None, wire_cap, self.timeout, report)
            .await?;
        let raw = match fetched {
            Fetched::Body { bytes, .. } => bytes,
            Fetched::NotModified => {
                return Err(FeedError::Http(format!("{url}: unexpected 304")).into());
            }
        };
        let wire = raw.len() as u64;
        let decoded = match encoding {
            Encoding::Identity => raw,
            Encoding::Gzip => super::publish::gunzip(&raw, size.min(MAX_FILE_SIZE), path)?,
        };
        // A short file fails its hash check; a long one is refused here.
        if decoded.len() as u64 > size {
            return Err(FeedError::SizeExceeded {
                path: path.to_string(),
                limit: size,
            }
            .into());
        }
        Ok((decoded, wire))
    }

    /// Rebuilds a list from the installed version and a delta; the caller checks the result.
    async fn by_delta(
        &self,
        installed: &Path,
        d: &manifest::DeltaRef,
        list: &manifest::CategoryFile,
        from: u64,
    ) -> Result<(Vec<u8>, u64), UpdateError> {
        let (delta, n) = self
            .fetch_file(
                &format!("{} (delta)", list.id),
                &d.path,
                d.encoding,
                d.transfer_size,
                d.size,
            )
            .await?;
        check_hash(&d.path, &delta, &d.sha256)?;
        let old = std::fs::read(installed)
            .map_err(|e| FeedError::io(format!("{}", installed.display()), e))?;
        let rebuilt = canonical::apply_delta(&old, &delta, &list.id, from, list.version)?;
        check_hash(&list.full.path, &rebuilt, &list.full.sha256)?;
        Ok((rebuilt, n))
    }
}

fn check_hash(path: &str, bytes: &[u8], expected: &str) -> Result<(), FeedError> {
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(FeedError::HashMismatch {
            path: path.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// Rollback, replay and freeze checks against what is installed and the clock.
fn check_freshness(
    manifest: &Manifest,
    state: Option<&FeedState>,
    manifest_sha: &str,
    now: Timestamp,
) -> Result<(), FeedError> {
    if let Some(s) = state.filter(|s| s.active.is_some()) {
        if manifest.sequence < s.sequence {
            return Err(FeedError::Rollback {
                have: s.sequence,
                got: manifest.sequence,
            });
        }
        if manifest.sequence == s.sequence && manifest_sha != s.manifest_sha256 {
            return Err(FeedError::SameSequenceDifferentBytes {
                sequence: s.sequence,
            });
        }
        if let Some(published) = s.published_at
            && manifest.published_at < published
        {
            return Err(FeedError::Rollback {
                have: s.sequence,
                got: manifest.sequence,
            });
        }
    }
    if clock_plausible(now) {
        if manifest.expires_at <= now {
            return Err(FeedError::Expired {
                expires_at: manifest.expires_at,
            });
        }
        if manifest.published_at > now + FUTURE_SKEW {
            return Err(FeedError::FromFuture);
        }
    }
    Ok(())
}

/// Whether `now` can be trusted for expiry checks.
pub fn clock_plausible(now: Timestamp) -> bool {
    now >= TIME_FLOOR
}
