//! Live reload: the config and lists change under a running daemon without a lost query.
//!
//! Triggers (SIGHUP, a file change, a feed install) only wake the [`Reloader`]; it waits for
//! the burst to settle ([`DEBOUNCE`]), builds a whole new runtime off the query path, swaps it
//! in atomically, and records the outcome in `state_dir/status.json`. A failed build leaves the
//! running rules in place and logs one error that names file, line, column and key; the next
//! valid edit applies normally.
//!
//! - [`build`]: one build-and-swap.
//! - [`watch`]: the file watch.
//! - [`status`]: the status file.

pub mod build;
pub mod status;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use build::{ReloadError, Reloaded, reload};

use crate::runtime::SharedRuntime;
use crate::sdnotify::Notifier;
use crate::stats::Collector;
use crate::stats::metrics::ReloadMetrics;
use std::sync::atomic::Ordering;

/// How long a burst of triggers must be quiet before the reload runs: an editor's
/// write-rename-chmod, or a feed writing several lists, becomes one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Asks the reloader for a reload; cheap, callable from any thread, coalescing.
#[derive(Clone)]
pub struct ReloadHandle {
    wake: Arc<Notify>,
    reason: Arc<Mutex<&'static str>>,
}

impl ReloadHandle {
    /// Requests a reload, saying why (shown in the log and the status file).
    pub fn request(&self, reason: &'static str) {
        if let Ok(mut r) = self.reason.lock() {
            *r = reason;
        }
        self.wake.notify_one();
    }
}

/// Settings for [`Reloader::spawn`].
#[derive(Debug, Clone)]
pub struct ReloadOptions {
    /// Watch the config file and list directories.
    pub watch_files: bool,
    /// Where to write `status.json` (None: do not write it).
    pub state_dir: Option<PathBuf>,
    /// Where each new runtime's counters are registered.
    pub collector: Option<Arc<Collector>>,
    /// Reload facts for `/metrics`.
    pub metrics: Option<Arc<ReloadMetrics>>,
    /// systemd's notification socket: told `RELOADING=1`, then `READY=1` and a `STATUS=`.
    pub notifier: Option<Arc<Notifier>>,
}

/// The task that owns reloading.
pub struct Reloader {
    shared: SharedRuntime,
    path: PathBuf,
    options: ReloadOptions,
    handle: ReloadHandle,
    status: status::Status,
}

impl Reloader {
    /// Records the running runtime as generation 1, writes the first status file, and spawns
    /// the reload loop (and the file watch) until `shutdown`.
    pub fn spawn(
        shared: SharedRuntime,
        path: &Path,
        options: ReloadOptions,
        shutdown: CancellationToken,
    ) -> ReloadHandle {
        let handle = ReloadHandle {
            wake: Arc::new(Notify::new()),
            reason: Arc::new(Mutex::new("file change")),
        };
        let active = status::Active::of(&shared.load());
        let reloader = Self {
            shared,
            path: path.to_path_buf(),
            options,
            handle: handle.clone(),
            status: status::Status {
                version: env!("CARGO_PKG_VERSION").to_string(),
                pid: std::process::id(),
                started_at: status::now(),
                generation: 1,
                config: path.display().to_string(),
                active,
                last_reload: None,
                restart_required: Vec::new(),
            },
        };
        reloader.publish(true);
        reloader.write_status();
        let watches = reloader.start_watches();
        tokio::spawn(async move { reloader.run(watches, shutdown).await });
        handle
    }

    /// Starts the file watch, if asked for. Done before `spawn` returns, so that a change made
    /// right after start-up is never missed.
    fn start_watches(&self) -> Option<watch::Watches> {
        if !self.options.watch_files {
            return None;
        }
        match watch::Watches::start(&self.path, Arc::clone(&self.handle.wake)) {
            Ok(mut w) => {
                w.update(&self.path, Some(&self.shared.load().config));
                Some(w)
            }
            Err(e) => {
                warn!("file watching unavailable ({e}); reload with SIGHUP");
                None
            }
        }
    }

    async fn run(mut self, mut watches: Option<watch::Watches>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.handle.wake.notified() => {}
            }
            // Debounce: wait until the triggers stop for a moment.
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                    _ = self.handle.wake.notified() => continue,
                }
            }
            let trigger = self.handle.reason.lock().map_or("reload", |r| *r);
            self.reload_once(trigger).await;
            if let Some(w) = watches.as_mut() {
                w.update(&self.path, Some(&self.shared.load().config));
            }
            if let Ok(mut r) = self.handle.reason.lock() {
                *r = "file change";
            }
        }
    }

    async fn reload_once(&mut self, trigger: &'static str) {
        let started = Instant::now();
        if let Some(n) = &self.options.notifier {
            n.notify("RELOADING=1");
        }
        let result = reload(&self.shared, &self.path).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = match result {
            Ok(done) => {
                self.status.generation += 1;
                if let Some(collector) = &self.options.collector {
                    collector.register(Arc::clone(&self.shared.load().counters));
                }
                self.publish(true);
                self.status.active = status::Active::of(&self.shared.load());
                self.status.restart_required = done
                    .restart_required
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                let outcome = status::ReloadOutcome {
                    at: status::now(),
                    trigger: trigger.to_string(),
                    ok: true,
                    error: None,
                    duration_ms,
                };
                // status.json first, then the log: whoever sees the log line can rely on it.
                self.status.last_reload = Some(outcome.clone());
                self.write_status();
                info!(
                    trigger,
                    generation = self.status.generation,
                    stored = done.stored_names,
                    build_ms = duration_ms,
                    "reloaded config and lists"
                );
                self.shared.load().log_warnings();
                if !done.restart_required.is_empty() {
                    warn!(
                        restart_required = ?done.restart_required,
                        "these settings changed but apply only after a restart"
                    );
                }
                outcome
            }
            Err(e) => {
                self.publish(false);
                let outcome = status::ReloadOutcome {
                    at: status::now(),
                    trigger: trigger.to_string(),
                    ok: false,
                    error: Some(e.to_string()),
                    duration_ms,
                };
                self.status.last_reload = Some(outcome.clone());
                self.write_status();
                error!(
                    trigger,
                    generation = self.status.generation,
                    "reload failed, still serving the previous config: {e}"
                );
                outcome
            }
        };
        if let Some(n) = &self.options.notifier {
            // READY=1 ends the reload for systemd whether it worked or not: the daemon serves.
            let line = self.shared.load().status_line(self.status.generation);
            let note = if outcome.ok {
                ""
            } else {
                "; last reload FAILED (see the journal)"
            };
            n.notify(&format!("READY=1\nSTATUS={line}{note}"));
        }
    }

    fn publish(&self, ok: bool) {
        if let Some(m) = &self.options.metrics {
            m.generation
                .store(self.status.generation, Ordering::Relaxed);
            m.last_ok.store(ok, Ordering::Relaxed);
        }
    }

    fn write_status(&self) {
        if let Some(dir) = &self.options.state_dir
            && let Err(e) = status::write(dir, &self.status)
        {
            warn!(dir = %dir.display(), "cannot write status.json: {e}");
        }
    }
}
