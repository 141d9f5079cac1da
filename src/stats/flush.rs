//! The flush task: drained counts go to SQLite every `[stats] flush`, and once more at stop.

use std::sync::Arc;

use super::{Collector, Drained, store};

/// What the flusher reads before each flush (the current config's `[stats]` and state
/// directory), so that a reload applies to the next one.
#[derive(Debug, Clone)]
pub struct FlushSettings {
    /// `[stats] enabled`.
    pub enabled: bool,
    /// `[stats] flush`.
    pub every: std::time::Duration,
    /// `[stats] retention_days`.
    pub retention_days: u32,
    /// Where `stats.db` lives.
    pub dir: std::path::PathBuf,
}

/// Writes drained counts to `state_dir/stats.db` every `[stats] flush`, prunes rows past
/// `retention_days` once an hour, and writes everything left when `stop` is cancelled (after
/// the server has finished its queries). A database that cannot be written is reported once per
/// failure and retried at the next flush; counts wait in memory meanwhile.
pub async fn run_flusher(
    collector: Arc<Collector>,
    settings: impl Fn() -> FlushSettings + Send + 'static,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut db: Option<store::StatsDb> = None;
    let mut pending = Drained::default();
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        let FlushSettings {
            enabled,
            every,
            retention_days,
            dir,
        } = settings();
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(every) => false,
        };
        pending.add(&collector.drain());
        if enabled && !pending.is_empty() {
            let prune =
                last_prune.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(3600));
            let batch = std::mem::take(&mut pending);
            let work = tokio::task::spawn_blocking(move || {
                flush_once(db, &dir, &batch, prune, retention_days)
                    .map_err(|e| Box::new((e, batch)))
            });
            match work.await {
                Ok(Ok(open)) => {
                    db = Some(open);
                    if prune {
                        last_prune = Some(std::time::Instant::now());
                    }
                }
                Ok(Err(failed)) => {
                    let (e, batch) = *failed;
                    tracing::warn!("statistics not written, will retry: {e}");
                    pending = batch;
                    db = None;
                }
                Err(e) => {
                    tracing::warn!("statistics writer failed: {e}");
                    db = None;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

fn flush_once(
    db: Option<store::StatsDb>,
    dir: &std::path::Path,
    batch: &Drained,
    prune: bool,
    retention_days: u32,
) -> Result<store::StatsDb, store::StatsError> {
    let mut db = match db {
        Some(db) => db,
        None => {
            let (db, note) = store::StatsDb::open(dir)?;
            if let Some(note) = note {
                tracing::warn!("statistics database was unusable: {note}");
            }
            db
        }
    };
    let now = std::time::SystemTime::now();
    db.add(store::hour_of(now), batch)?;
    // The counts are in; a failed prune must not send them round again.
    if prune && let Err(e) = db.prune(now, retention_days) {
        tracing::warn!("old statistics not pruned: {e}");
    }
    // Hourly, with the prune: damage found while running. The flusher then drops this
    // handle, and the next open moves the file aside (its quick_check fails there too).
    if prune && matches!(db.quick_check(), Ok(false)) {
        return Err(store::StatsError::Damaged {
            path: dir.join(store::DB_FILE),
        });
    }
    Ok(db)
}
