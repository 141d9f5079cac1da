//! The daemon's updater: one thread that keeps the feed and the `[[lists.sources]]` current,
//! on a schedule with jitter, exponential back-off after failures (honouring `Retry-After`), and
//! a live reload after each install. It has its own small async runtime so hashing and fsyncing
//! tens of megabytes never stalls a DNS worker, and it runs each update as a child process
//! (`kidsafe feed update`, `kidsafe sources update`), whose memory all returns to the system
//! when it exits.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::fetch::{Fetcher, UpstreamSource};
use super::oneshot;
use super::sign::PublicKey;
use super::snapshot::{FeedState, feed_root};
use super::update::{Outcome, UpdateError, Updater, clock_plausible};
use crate::config::{Config, FeedSettings};
use crate::runtime::SharedRuntime;
use crate::signal::ReloadHandle;

/// The file recording attempts, for `kidsafe feed status`.
pub const ATTEMPTS_FILE: &str = "status.json";

/// The first retry after a failure; doubled after each further one.
const FIRST_RETRY: Duration = Duration::from_secs(30);

/// The longest wait between retries (FEED.md).
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// Alarms kept in the status file.
const ALARMS_KEPT: usize = 10;

/// `status.json` under the feed root: what the last attempts did. Never a queried name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attempts {
    /// When the last attempt ended.
    pub last_attempt_at: Option<Timestamp>,
    /// When the feed was last confirmed current (installed, unchanged, or 304).
    pub last_success_at: Option<Timestamp>,
    /// What the last attempt did, in words.
    pub last_outcome: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// The last failure's kind.
    pub last_error_kind: Option<String>,
    /// Failures by kind since the state directory was created.
    pub failures: BTreeMap<String, u64>,
    /// Signed but suspicious changes, most recent last.
    pub alarms: Vec<String>,
    /// Whether the clock looked unset at the last attempt (expiry not checked then).
    pub clock_unsynced: bool,
    /// When the next attempt is due.
    pub next_attempt_at: Option<Timestamp>,
    /// The pause the server asked for after the last failure, seconds.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

impl Attempts {
    /// Reads the file, or an empty record.
    pub fn read(root: &Path) -> Self {
        std::fs::read(root.join(ATTEMPTS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write(&self, root: &Path) {
        let written = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|b| crate::state_file::write_atomic(root, ATTEMPTS_FILE, &b));
        if let Err(e) = written {
            warn!("cannot record the feed attempt in {}: {e}", root.display());
        }
    }

    /// Records the result of one update at `now`, and writes it.
    pub fn record(&mut self, root: &Path, now: Timestamp, result: &Result<Outcome, UpdateError>) {
        self.last_attempt_at = Some(now);
        self.clock_unsynced = !clock_plausible(now);
        match result {
            Ok(outcome) => {
                self.retry_after_seconds = None;
                self.last_success_at = Some(now);
                self.consecutive_failures = 0;
                self.last_outcome = Some(describe(outcome));
                if let Outcome::Installed { alarms, .. } = outcome {
                    for alarm in alarms {
                        self.alarms.push(format!("{now}: {alarm}"));
                    }
                }
            }
            Err(e) => {
                self.retry_after_seconds = e.retry_after().map(|d| d.as_secs());
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.last_outcome = Some("failed".to_string());
                self.last_error = Some(e.to_string());
                self.last_error_kind = Some(e.kind().to_string());
                *self.failures.entry(e.kind().to_string()).or_default() += 1;
                if e.kind() == "same_sequence_different_bytes" {
                    self.alarms.push(format!("{now}: {e}"));
                }
            }
        }
        let excess = self.alarms.len().saturating_sub(ALARMS_KEPT);
        self.alarms.drain(..excess);
        self.write(root);
    }
}

/// One line saying what an update did.
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::NotModified => "not modified (304)".to_string(),
        Outcome::Current { sequence } => format!("sequence {sequence} is current"),
        Outcome::Installed {
            sequence,
            full,
            delta,
            kept,
            bytes,
            ..
        } => format!(
            "installed sequence {sequence}: {} full, {} by delta, {kept} unchanged, {bytes} bytes downloaded",
            full.len(),
            delta.len()
        ),
    }
}

/// The pinned keys of a `[feed]`, decoded.
pub fn public_keys(feed: &FeedSettings) -> Result<Vec<PublicKey>, String> {
    feed.public_keys
        .value
        .iter()
        .map(|k| PublicKey::from_base64(k.trim()).map_err(|e| e.to_string()))
        .collect()
}

/// An HTTP client for `config`, resolving through `upstreams`.
pub fn fetcher_for(config: &Config, upstreams: UpstreamSource) -> Result<Fetcher, String> {
    let ca = config
        .upstream
        .tls_ca_file
        .as_ref()
        .map(|c| c.value.as_path());
    Fetcher::new(ca, upstreams)
}

/// Runs one feed update for `config` and records it; `Ok` when a new snapshot was installed.
pub async fn update_once(
    config: &Config,
    feed: &FeedSettings,
    fetcher: &Fetcher,
    progress: Option<super::update::Progress>,
) -> Result<Outcome, UpdateError> {
    let root = feed_root(&config.server.state_dir);
    let keys = public_keys(feed).map_err(|e| {
        UpdateError::Feed(super::FeedError::BadKey(format!("feed.public_key: {e}")))
    })?;
    let updater = Updater {
        root: &root,
        url: &feed.url,
        keys: &keys,
        feed_id: feed.feed_id.as_deref(),
        fetcher,
        timeout: feed.timeout,
        observer: Arc::new(|_| {}),
        progress,
    };
    let now = Timestamp::now();
    let result = updater.run(now).await;
    let mut attempts = Attempts::read(&root);
    attempts.record(&root, Timestamp::now(), &result);
    result
}

/// Starts the updater thread. It ends when `shutdown` is cancelled.
pub fn spawn(
    shared: SharedRuntime,
    reload: ReloadHandle,
    update_now: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("kidsafe-feed".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    error!("feed updater not started: {e}");
                    return;
                }
            };
            rt.block_on(run(shared, reload, update_now, shutdown));
        })
}

async fn run(
    shared: SharedRuntime,
    reload: ReloadHandle,
    update_now: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let mut sources = super::sources::Schedule::default();
    // When the next feed attempt is due, once this process has tried. Before that, the time
    // recorded by a previous run applies, unless no snapshot is installed (then: at once).
    let mut feed_due: Option<Timestamp> = None;
    loop {
        let runtime = shared.load_full();
        let config = &runtime.config;
        let now = Timestamp::now();
        let mut next = now + jiff::SignedDuration::from_secs(300);
        if let Some(feed) = &config.feed {
            let root = feed_root(&config.server.state_dir);
            let due = feed_due.or_else(|| {
                Attempts::read(&root)
                    .next_attempt_at
                    .filter(|_| has_snapshot(&root))
            });
            if due.is_none_or(|d| d <= now) {
                let args = ["feed", "update"];
                let code = run_child(&args, &config.path, &[], feed.timeout, &shutdown).await;
                let attempts = Attempts::read(&root);
                let wait = match code {
                    // The child said what it installed (relayed above).
                    Ok(oneshot::exit::INSTALLED) => {
                        reload.request("feed");
                        jitter(feed.refresh.max(min_poll(&root)))
                    }
                    Ok(oneshot::exit::CURRENT) => jitter(feed.refresh.max(min_poll(&root))),
                    other => {
                        let retry_after = attempts.retry_after_seconds.map(Duration::from_secs);
                        let wait = backoff(
                            attempts.consecutive_failures.max(1),
                            feed.refresh,
                            retry_after,
                        );
                        match other {
                            Err(why) => warn!(
                                kind = "process",
                                retry_in_s = wait.as_secs(),
                                "feed update failed; the installed lists stay in force: {why}"
                            ),
                            // The child said why (relayed above).
                            Ok(_) => info!(
                                kind = attempts.last_error_kind.as_deref().unwrap_or("process"),
                                retry_in_s = wait.as_secs(),
                                "feed: next attempt in {}",
                                humantime::format_duration(Duration::from_secs(wait.as_secs()))
                            ),
                        }
                        wait
                    }
                };
                let mut attempts = Attempts::read(&root);
                let at =
                    Timestamp::now() + jiff::SignedDuration::try_from(wait).unwrap_or_default();
                attempts.next_attempt_at = Some(at);
                attempts.write(&root);
                feed_due = Some(at);
                next = next.min(at);
            } else if let Some(d) = due {
                next = next.min(d);
            }
        }
        let (changed, due) = sources.run_due(config, &shutdown).await;
        if changed {
            reload.request("list source");
        }
        if let Some(due) = due {
            next = next.min(due);
        }
        let wait = (next - Timestamp::now())
            .try_into()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        // Not held while waiting: a reload frees the old runtime at once, and is noticed.
        let seen = Arc::downgrade(&runtime);
        drop(runtime);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            // A config edit may add a list source or a [feed]: fetch it now, not at the next
            // wake-up (up to 5 minutes away). Sources and the feed already scheduled keep
            // their times, so the reload an install causes starts nothing new.
            () = replaced(&shared, &seen) => {}
            () = update_now.notified() => {
                feed_due = Some(Timestamp::now());
                sources.make_all_due();
            }
        }
    }
}

/// Returns once the shared runtime is no longer `seen` (a reload swapped a new one in);
/// checked every second.
async fn replaced(shared: &SharedRuntime, seen: &std::sync::Weak<crate::runtime::Runtime>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !std::sync::Weak::ptr_eq(seen, &Arc::downgrade(&shared.load_full())) {
            return;
        }
    }
}

/// Runs `kidsafe ARGS --config PATH EXTRA` (`feed update`, `sources update`) as a child
/// process and returns its exit code.
///
/// A separate process, because an update holds a list, its delta and the result in memory at
/// once (tens of MB for a 1M-name category): freed in the daemon, glibc would keep most of it
/// resident for good; freed by a child's exit, all of it returns to the system. It also keeps a
/// parser bug in hostile input from ever taking the DNS service down.
pub async fn run_child(
    args: &[&str],
    config: &Path,
    extra: &[String],
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<u8, String> {
    use std::process::Stdio;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find kidsafe's binary: {e}"))?;
    let mut child = tokio::process::Command::new(exe)
        .args(args)
        .arg("--config")
        .arg(config)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the updater process: {e}"))?;
    let label = if args.first() == Some(&"feed") {
        "feed"
    } else {
        "list sources"
    };
    let relay = relay_output(label, child.stdout.take(), child.stderr.take());
    // Each download has its own deadline; this bounds the whole, whatever happens.
    let limit = timeout.saturating_mul(4) + Duration::from_secs(60);
    let finished = async { tokio::join!(child.wait(), relay).0 };
    tokio::select! {
        () = shutdown.cancelled() => Err("stopping".to_string()),
        waited = tokio::time::timeout(limit, finished) => match waited {
            Err(_) => Err(format!("the updater process ran longer than {}s and was stopped", limit.as_secs())),
            Ok(Err(e)) => Err(format!("cannot wait for the updater process: {e}")),
            Ok(Ok(status)) => status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .ok_or_else(|| format!("the updater process ended by {status}")),
        },
    }
}

/// Logs what the child process writes, each line once and through the daemon's log (so with
/// its timestamp): its report on stdout at INFO, its complaints on stderr at WARN, after
/// `label: `. The child's words are the record of what it did; the updater adds only when it
/// tries next.
async fn relay_output(
    label: &str,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let out = async {
        if let Some(stdout) = stdout {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if !line.trim().is_empty() {
                    info!("{label}: {line}");
                }
            }
        }
    };
    let err = async {
        if let Some(stderr) = stderr {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if !line.trim().is_empty() {
                    warn!("{label}: {line}");
                }
            }
        }
    };
    tokio::join!(out, err);
}

/// Whether a snapshot is installed (without one, the updater does not wait for its schedule).
fn has_snapshot(root: &Path) -> bool {
    FeedState::read(root)
        .ok()
        .flatten()
        .is_some_and(|s| s.active.is_some())
}

/// The publisher's shortest poll interval, from the installed manifest.
fn min_poll(root: &Path) -> Duration {
    let seconds = FeedState::read(root)
        .ok()
        .flatten()
        .map_or(0, |s| s.min_poll_seconds);
    // Validated when the manifest was installed; capped again here because the state file
    // is only a file.
    Duration::from_secs(seconds.min(super::manifest::MAX_MIN_POLL_SECONDS))
}

/// `base` ± 20 %.
pub fn jitter(base: Duration) -> Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    // mul_f64 panics when the product overflows a Duration: never on the updater's thread.
    Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
}

/// The wait after `failures` consecutive failures: 30 s doubling, capped at 6 h and at the
/// refresh interval, never shorter than the server's `Retry-After`; with jitter.
pub fn backoff(failures: u32, refresh: Duration, retry_after: Option<Duration>) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let wait = FIRST_RETRY
        .saturating_mul(1 << exponent)
        .min(MAX_BACKOFF)
        .min(refresh.max(FIRST_RETRY));
    let wait = jitter(wait);
    match retry_after {
        Some(r) => wait.max(r.min(MAX_BACKOFF)),
        None => wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_never_panics_on_a_huge_wait() {
        let huge = Duration::from_secs(u64::MAX);
        for _ in 0..100 {
            assert!(jitter(huge) <= huge);
        }
        let hour = jitter(Duration::from_secs(3600)).as_secs();
        assert!((2880..=4320).contains(&hour), "{hour}");
    }

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let day = Duration::from_secs(86_400);
        let first = backoff(1, day, None);
        assert!(first >= Duration::from_secs(24) && first <= Duration::from_secs(36));
        let fourth = backoff(4, day, None);
        assert!(fourth >= Duration::from_secs(192) && fourth <= Duration::from_secs(288));
        let many = backoff(40, day, None);
        assert!(many <= MAX_BACKOFF.mul_f64(1.2) && many >= MAX_BACKOFF.mul_f64(0.8));
        let capped = backoff(40, Duration::from_secs(600), None);
        assert!(capped <= Duration::from_secs(720));
        let told = backoff(1, day, Some(Duration::from_secs(900)));
        assert!(told >= Duration::from_secs(900));
    }
}
