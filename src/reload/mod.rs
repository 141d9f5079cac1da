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
pub mod compile;
pub mod status;
pub mod summary;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use build::{ReloadError, Reloaded, reload};
pub use compile::{BuildError, build as build_runtime, load, load_offline};

use crate::runtime::SharedRuntime;
use crate::sdnotify::Notifier;
pub use crate::signal::ReloadHandle;
use crate::stats::Collector;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How long a burst of triggers must be quiet before the reload runs: an editor's
/// write-rename-chmod, or a feed writing several lists, becomes one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Reload facts the endpoint reports.
#[derive(Debug, Default)]
pub struct ReloadMetrics {
    /// The generation being served.
    pub generation: AtomicU64,
    /// Whether the last reload attempt succeeded (true before any reload).
    pub last_ok: AtomicBool,
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
        let handle = ReloadHandle::new("file change");
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
        match watch::Watches::start(&self.path, Arc::clone(self.handle.wake())) {
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
                _ = self.handle.wake().notified() => {}
            }
            // Debounce: wait until the triggers stop for a moment.
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                    _ = self.handle.wake().notified() => continue,
                }
            }
            let trigger = self.handle.take_reason("file change");
            self.reload_once(trigger).await;
            if let Some(w) = watches.as_mut() {
                w.update(&self.path, Some(&self.shared.load().config));
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
                summary::log_warnings(&self.shared.load());
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

/// Asks the daemon at `pid` to reload (SIGHUP): `kidsafe reload`, the unit's `ExecReload=`.
pub fn request_reload(pid: u32) -> Result<(), String> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| format!("{pid} is not a process id"))?;
    rustix::process::kill_process(target, rustix::process::Signal::HUP)
        .map_err(|e| format!("cannot signal process {pid}: {e}"))
}
