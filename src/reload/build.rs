//! One reload: a new [`Runtime`] is built off the query path (on a blocking thread), validated
//! whole, then swapped in with one atomic store. If the build fails, the running runtime stays
//! and the error — with file, line and column — is returned. Queries in flight finish on the
//! runtime they started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::runtime::{BuildError, Runtime, SharedRuntime};

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
    let built = tokio::task::spawn_blocking(move || Runtime::load(&owned))
        .await
        .map_err(|e| ReloadError::Worker(e.to_string()))??;
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
