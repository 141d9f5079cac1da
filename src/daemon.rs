//! The life of the process: load the config and lists, bind, serve, react to signals, stop.
//!
//! Nothing answers until the lists are loaded, so a client never gets an unfiltered answer
//! during start-up. SIGHUP reloads; SIGTERM and SIGINT stop gracefully.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::reload::{ReloadHandle, ReloadOptions, Reloader};
use crate::runtime::{self, BuildError, Runtime, SharedRuntime};
use crate::server::{self, Listeners, ServeError};

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
    let runtime = Runtime::load(path)?;
    crate::logging::init(&runtime.config.log_level);
    runtime.log_summary("loaded");

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
    let tcp_idle = runtime.config.server.tcp_idle_timeout;
    let shared = runtime::share(runtime);
    let shutdown = CancellationToken::new();
    let state_dir = runtime_state_dir(&shared);
    tokio_rt.block_on(async {
        let options = ReloadOptions {
            watch_files: true,
            state_dir: Some(state_dir),
        };
        let reload = Reloader::spawn(shared.clone(), path, options, shutdown.clone());
        spawn_signal_handlers(reload, shutdown.clone())?;
        info!(
            startup_ms = started.elapsed().as_millis() as u64,
            threads, "kidsafe is answering"
        );
        server::serve(shared, listeners, tcp_idle, shutdown).await?;
        info!("stopped");
        Ok(())
    })
}

fn spawn_signal_handlers(
    reload: ReloadHandle,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |e: std::io::Error| DaemonError::Serve(ServeError::Serve(e.to_string()));
    let mut hup = signal(SignalKind::hangup()).map_err(io)?;
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
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

fn runtime_state_dir(shared: &SharedRuntime) -> PathBuf {
    shared.load().config.server.state_dir.clone()
}
