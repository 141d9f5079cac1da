//! The life of the process: load the config and lists, bind, serve, react to signals, stop.
//!
//! Nothing answers until the lists are loaded, so a client never gets an unfiltered answer
//! during start-up. SIGHUP reloads; SIGTERM and SIGINT stop gracefully: no new queries, those
//! in flight answered (see [`server::DRAIN_GRACE`]), statistics flushed, exit 0. SIGUSR1 asks
//! the feed updater to check the feed and list sources now.
//!
//! Under systemd (`Type=notify`) the daemon says `READY=1` once its sockets are bound and its
//! lists loaded, keeps a `STATUS=` line with list counts current, feeds the watchdog from a task
//! on the DNS runtime, and says `STOPPING=1` when asked to stop.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::dns::Handler;
use crate::http::metrics;
use crate::live;
use crate::reload::{BuildError, ReloadHandle, ReloadMetrics, ReloadOptions, Reloader};
use crate::runtime;
use crate::sdnotify::{self, Notifier};
use crate::server::{self, Listeners, ServeError};
use crate::stats::{self, Collector};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config or lists are invalid (exit code 2).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Sockets or the async runtime failed (exit code 1).
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs the daemon on the config at `path` until SIGTERM or SIGINT.
pub fn run(path: &Path) -> Result<(), DaemonError> {
    let started = Instant::now();
    // On the thread every reload builds on, so that start-up and reloads share one allocator
    // arena (see `reload::build`); on this thread only if that one cannot be started.
    let owned = path.to_path_buf();
    let runtime =
        match crate::reload::build::on_builder_thread_blocking(move || crate::reload::load(&owned))
        {
            Some(built) => built?,
            None => crate::reload::load(path)?,
        };
    crate::logging::init(&runtime.config.log_level);
    crate::reload::summary::log_summary(&runtime, "loaded");

    let threads = match runtime.config.server.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    // One thread: a current-thread runtime is measurably faster than a one-worker pool.
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let tokio_rt = builder
        .enable_all()
        .thread_name("kidsafe")
        .build()
        .map_err(DaemonError::Runtime)?;

    let listeners = Listeners::bind(&runtime.config.server.listen, threads)?;
    let metrics_listener = match runtime.config.metrics_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .and_then(|l| {
                    l.set_nonblocking(true)?;
                    Ok(l)
                })
                .map_err(|source| ServeError::Bind {
                    addr,
                    proto: "tcp (metrics)",
                    source,
                })?,
        ),
        None => None,
    };
    let state_dir = runtime.config.server.state_dir.clone();
    let collector = Arc::new(Collector::default());
    collector.register(Arc::clone(&runtime.counters));
    let shared = runtime::share(runtime);
    let shutdown = CancellationToken::new();
    let notifier = Notifier::from_env();
    tokio_rt.block_on(async {
        let reload_metrics = Arc::new(ReloadMetrics::default());
        let options = ReloadOptions {
            watch_files: true,
            state_dir: Some(state_dir),
            collector: Some(Arc::clone(&collector)),
            metrics: Some(Arc::clone(&reload_metrics)),
            notifier: notifier.clone(),
        };
        let reload = Reloader::spawn(shared.clone(), path, options, shutdown.clone());
        // The feed and list sources update on their own thread; a new install reloads.
        // SIGUSR1 asks for a feed update now (`systemctl kill -s USR1 kidsafe`).
        let update_now = Arc::new(tokio::sync::Notify::new());
        if let Err(e) = crate::feed::run::spawn(
            shared.clone(),
            reload.clone(),
            Arc::clone(&update_now),
            shutdown.clone(),
        ) {
            tracing::error!("feed updater not started: {e}");
        }
        spawn_signal_handlers(reload, update_now, shutdown.clone(), notifier.clone())?;
        // The watchdog is fed until the process is done, drain and final flush included.
        let watchdog_stop = CancellationToken::new();
        if let (Some(n), Some(every)) = (&notifier, sdnotify::watchdog_interval()) {
            info!(
                every_ms = every.as_millis() as u64,
                "feeding the systemd watchdog"
            );
            tokio::spawn(sdnotify::run_watchdog(
                Arc::clone(n),
                every,
                watchdog_stop.clone(),
            ));
        }

        let handler = Handler::new(shared.clone());
        if let Some(listener) = metrics_listener {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| ServeError::Serve(e.to_string()))?;
            let sources = metrics::Sources {
                collector: Arc::clone(&collector),
                runtime: shared.clone(),
                cache: handler.cache(),
                upstream: handler.forwarder().metrics(),
                reload: reload_metrics,
            };
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "serving Prometheus metrics at /metrics");
            }
            tokio::spawn(metrics::serve(listener, sources, shutdown.clone()));
        }
        // Schedules, overrides and MAC matches follow the clock, off the query path.
        tokio::spawn(live::run_ticker(
            shared.clone(),
            live::Clock::System,
            Arc::new(tokio::sync::Notify::new()),
            shutdown.clone(),
        ));
        // Statistics outlive the server by one flush: the last queries are counted too.
        let flush_stop = CancellationToken::new();
        let current = shared.clone();
        let flush_settings = move || {
            let rt = current.load();
            stats::FlushSettings {
                enabled: rt.config.stats.enabled,
                every: rt.config.stats.flush,
                retention_days: rt.config.stats.retention_days,
                dir: rt.config.server.state_dir.clone(),
            }
        };
        let flusher = tokio::spawn(stats::run_flusher(
            Arc::clone(&collector),
            flush_settings,
            flush_stop.clone(),
        ));

        info!(
            startup_ms = started.elapsed().as_millis() as u64,
            threads, "kidsafe is answering"
        );
        if let Some(n) = &notifier {
            // Sockets are bound and lists loaded: queries queued in the kernel from now on
            // are answered by the filter, never unfiltered.
            let line = shared.load().status_line(1);
            n.notify(&format!("READY=1\nSTATUS={line}"));
        }
        let served = server::serve(handler, listeners, shutdown).await;
        flush_stop.cancel();
        let _ = flusher.await;
        watchdog_stop.cancel();
        served?;
        info!("stopped");
        Ok(())
    })
}

fn spawn_signal_handlers(
    reload: ReloadHandle,
    update_now: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
    notifier: Option<Arc<Notifier>>,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |e: std::io::Error| DaemonError::Serve(ServeError::Serve(e.to_string()));
    let mut hup = signal(SignalKind::hangup()).map_err(io)?;
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(io)?;
    let stop = shutdown.clone();
    let usr1_stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = usr1_stop.cancelled() => return,
                got = usr1.recv() => if got.is_none() { return },
            }
            info!("SIGUSR1 received: checking the feed and list sources now");
            update_now.notify_one();
        }
    });
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
        if let Some(n) = &notifier {
            n.notify("STOPPING=1\nSTATUS=stopping: answering the queries in flight");
        }
        stop.cancel();
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            info!("SIGHUP received: reloading");
            reload.request("SIGHUP");
        }
    });
    Ok(())
}
