//! One reload: a new [`Runtime`] is built off the query path (on a blocking thread), validated
//! whole, then swapped in with one atomic store. If the build fails, the running runtime stays
//! and the error — with file, line and column — is returned. Queries in flight finish on the
//! runtime they started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::compile::{self, BuildError};
use crate::runtime::SharedRuntime;

/// What a successful reload changed.
#[derive(Debug)]
pub struct Reloaded {
    /// Names in the new store.
    pub stored_names: usize,
    /// How long the build took.
    pub build_ms: u128,
    /// Settings that changed but only apply after a restart (e.g. `server.listen`).
    pub restart_required: Vec<&'static str>,
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config or lists are invalid; the old runtime keeps serving.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The build thread died.
    #[error("reload worker failed: {0}")]
    Worker(String),
}

/// Builds a runtime from `path` off the async workers and swaps it into `shared`.
pub async fn reload(shared: &SharedRuntime, path: &Path) -> Result<Reloaded, ReloadError> {
    let owned: PathBuf = path.to_path_buf();
    let started = Instant::now();
    let built = on_builder_thread(move || compile::load(&owned))
        .await
        .ok_or_else(|| ReloadError::Worker("the list builder thread is gone".into()))??;
    let old = shared.load();
    let mut restart_required = Vec::new();
    if old.config.server.listen != built.config.server.listen {
        restart_required.push("server.listen");
    }
    if old.config.server.max_in_flight != built.config.server.max_in_flight {
        restart_required.push("server.max_in_flight");
    }
    if old.config.cache.entries != built.config.cache.entries {
        restart_required.push("cache.entries");
    }
    if old.config.upstream.max_in_flight != built.config.upstream.max_in_flight {
        restart_required.push("upstream.max_in_flight");
    }
    drop(old);
    let stored_names = built.lists.store.len();
    shared.store(Arc::new(built));
    Ok(Reloaded {
        stored_names,
        build_ms: started.elapsed().as_millis(),
        restart_required,
    })
}

/// A job for the builder thread.
type Job = Box<dyn FnOnce() + Send>;

/// Runs `build` on the one thread that does every rebuild, and waits for it without blocking
/// the async workers.
///
/// One thread, not a blocking pool: the allocator keeps a build's small scratch (the automaton
/// builder's node registry and the like, about 8 MB at a million names, freed but fragmented by
/// the runtime that stays) in the arena of the thread that used it, so builds spread over several
/// threads each leave their own behind (seen as RSS growing from 31 to 66 MiB over ten reloads of
/// a 1M list). On one thread the next build reuses the last one's. The start-up build runs there
/// too ([`on_builder_thread_blocking`]), so the first reload does not add a second copy.
async fn on_builder_thread<T: Send + 'static>(
    build: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    submit(Box::new(move || {
        let _ = done.send(build());
    }))?;
    result.await.ok()
}

/// [`on_builder_thread`] for callers outside the async runtime (the start-up build): blocks the
/// calling thread until `build` has run. None if the builder thread cannot run it.
pub fn on_builder_thread_blocking<T: Send + 'static>(
    build: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    submit(Box::new(move || {
        let _ = done.send(build());
    }))?;
    result.recv().ok()
}

/// Hands a job to the builder thread, starting it the first time.
fn submit(job: Job) -> Option<()> {
    static BUILDER: std::sync::OnceLock<Option<std::sync::Mutex<std::sync::mpsc::Sender<Job>>>> =
        std::sync::OnceLock::new();
    let sender = BUILDER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kidsafe-build".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .ok()
            .map(|_| std::sync::Mutex::new(tx))
    });
    sender.as_ref()?.lock().ok()?.send(job).ok()
}
