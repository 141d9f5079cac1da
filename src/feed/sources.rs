//! `[[lists.sources]]`: well-known public lists fetched into a category, besides the feed.
//! They are not signed, so they are parsed leniently (hosts, plain, adblock `||name^`,
//! comments, CRLF, IDN) and judged as a whole: a download that lists nothing, or whose bad
//! lines exceed the budget (a captive portal's HTML, a server error page), is refused and the
//! last good copy keeps serving. Each source lives in its own directory,
//! `state_dir/sources/<category>-<hash of url>/<category>.txt`, written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::fetch::{FetchError, Fetched, Fetcher};
use crate::blocklist::parse::{Scanned, scan_line};
use crate::config::{Config, SourceSettings};

/// The most a source may weigh.
pub const MAX_SOURCE: u64 = 128 << 20;

/// Deadline for one source download.
const SOURCE_DEADLINE: Duration = Duration::from_secs(600);

/// A source is refused when more than this share of its non-blank lines is unusable.
const MAX_BAD_SHARE: f64 = 0.10;

/// `meta.json` beside a source's list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceMeta {
    /// The address it came from.
    pub url: String,
    /// The server's ETag of the installed copy.
    pub etag: Option<String>,
    /// When the installed copy was fetched.
    pub fetched_at: Option<Timestamp>,
    /// When the server last confirmed it (200 or 304).
    pub checked_at: Option<Timestamp>,
    /// Names in the installed copy.
    pub names: u64,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
}

/// The directory of a source under `state_dir`.
pub fn source_dir(state_dir: &Path, source: &SourceSettings) -> PathBuf {
    state_dir.join("sources").join(source.dir_name())
}

/// Where a source's installed copy lives: `<its dir>/<category>.txt`, so the directory loads
/// like any list directory.
pub fn list_path(state_dir: &Path, source: &SourceSettings) -> PathBuf {
    source_dir(state_dir, source).join(format!("{}.txt", source.category.value))
}

/// The list directories of the sources that have a good copy on disk.
pub fn installed_dirs(config: &Config) -> Vec<PathBuf> {
    config
        .sources
        .iter()
        .filter(|s| list_path(&config.server.state_dir, s).exists())
        .map(|s| source_dir(&config.server.state_dir, s))
        .collect()
}

/// Why a source download was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The download failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// It does not look like a list.
    #[error("{url}: not a usable list ({why}); the previous copy stays in force")]
    NotAList {
        /// The address.
        url: String,
        /// What was wrong.
        why: String,
    },
    /// It could not be saved.
    #[error("cannot save {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Checks a downloaded list as a whole; returns its name count.
pub fn judge(url: &str, bytes: &[u8]) -> Result<u64, SourceError> {
    let not_a_list = |why: String| SourceError::NotAList {
        url: url.to_string(),
        why,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| not_a_list("not UTF-8 text".into()))?;
    let (mut names, mut bad, mut lines) = (0u64, 0u64, 0u64);
    for line in text.lines() {
        match scan_line(line, &mut |_| names += 1) {
            Scanned::Blank => {}
            Scanned::Bad(_) => {
                bad += 1;
                lines += 1;
            }
            _ => lines += 1,
        }
    }
    if names == 0 {
        return Err(not_a_list("it lists no names".into()));
    }
    if bad as f64 > lines as f64 * MAX_BAD_SHARE {
        return Err(not_a_list(format!(
            "{bad} of {lines} lines are not names (an HTML page or an error message?)"
        )));
    }
    Ok(names)
}

/// Fetches one source if it changed, judges it, installs it. `Ok(true)` when a new copy is in.
pub async fn update_source(
    state_dir: &Path,
    source: &SourceSettings,
    fetcher: &Fetcher,
) -> Result<bool, SourceError> {
    let dir = source_dir(state_dir, source);
    let mut meta = read_meta(&dir);
    let list = list_path(state_dir, source);
    let list_name = list
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let have_copy = list.exists() && meta.url == source.url;
    let etag = meta.etag.as_deref().filter(|_| have_copy);
    let result = fetcher
        .get(&source.url, etag, MAX_SOURCE, SOURCE_DEADLINE)
        .await
        .map_err(SourceError::from)
        .and_then(|fetched| match fetched {
            Fetched::NotModified => Ok(None),
            Fetched::Body { bytes, etag } => {
                let names = judge(&source.url, &bytes)?;
                Ok(Some((bytes, etag, names)))
            }
        });
    let now = Timestamp::now();
    let save_meta = |meta: &SourceMeta| {
        let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        crate::state_file::write_atomic(&dir, "meta.json", &bytes)
    };
    match result {
        Ok(None) => {
            meta.checked_at = Some(now);
            meta.last_error = None;
            let _ = save_meta(&meta);
            Ok(false)
        }
        Ok(Some((bytes, etag, names))) => {
            crate::state_file::write_atomic(&dir, &list_name, &bytes).map_err(|source| {
                SourceError::Io {
                    path: list.clone(),
                    source,
                }
            })?;
            meta = SourceMeta {
                url: source.url.clone(),
                etag,
                fetched_at: Some(now),
                checked_at: Some(now),
                names,
                last_error: None,
            };
            let _ = save_meta(&meta);
            Ok(true)
        }
        Err(e) => {
            meta.last_error = Some(e.to_string());
            let _ = save_meta(&meta);
            Err(e)
        }
    }
}

/// Updates the sources of `config` at `indices` (all when empty), printing one line each.
/// Returns (new copies installed, failures).
pub async fn update_some(config: &Config, indices: &[usize], fetcher: &Fetcher) -> (usize, usize) {
    let (mut installed, mut failed) = (0, 0);
    for (i, source) in config.sources.iter().enumerate() {
        if !indices.is_empty() && !indices.contains(&i) {
            continue;
        }
        let what = format!("lists.sources[{i}] ({})", source.category.value);
        match update_source(&config.server.state_dir, source, fetcher).await {
            Ok(true) => {
                installed += 1;
                println!("{what}: new copy installed");
            }
            Ok(false) => println!("{what}: not modified"),
            Err(e) => {
                failed += 1;
                eprintln!("{what}: {e}");
            }
        }
    }
    (installed, failed)
}

/// When each source is next due, with back-off after failures.
#[derive(Debug, Default)]
pub struct Schedule {
    due: HashMap<String, (Timestamp, u32)>,
}

impl Schedule {
    /// Makes every source due now (SIGUSR1).
    pub fn make_all_due(&mut self) {
        let now = Timestamp::now();
        for (due, _) in self.due.values_mut() {
            *due = now;
        }
    }

    /// Updates the sources of `config` that are due, in one child process (`kidsafe sources
    /// update`). Returns whether any new copy was installed, and when the next one is due.
    pub async fn run_due(
        &mut self,
        config: &Config,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> (bool, Option<Timestamp>) {
        let now = Timestamp::now();
        let key = |s: &SourceSettings| s.url.clone() + "\n" + &s.category.value;
        let due: Vec<usize> = config
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| self.due.get(&key(s)).is_none_or(|(at, _)| *at <= now))
            .map(|(i, _)| i)
            .collect();
        let mut changed = false;
        if !due.is_empty() {
            let indices: Vec<String> = due
                .iter()
                .flat_map(|i| ["--index".to_string(), i.to_string()])
                .collect();
            let code = super::run::run_child(
                &["sources", "update"],
                &config.path,
                &indices,
                SOURCE_DEADLINE,
                shutdown,
            )
            .await;
            changed = code == Ok(super::oneshot::exit::INSTALLED);
            if let Err(e) = &code {
                warn!("list sources not updated: {e}");
            }
            for i in due {
                let Some(source) = config.sources.get(i) else {
                    continue;
                };
                let meta = read_meta(&source_dir(&config.server.state_dir, source));
                let failures = self.due.get(&key(source)).map_or(0, |(_, f)| *f);
                let (wait, failures) = match (&code, &meta.last_error) {
                    (Ok(_), None) => (super::run::jitter(source.refresh), 0),
                    _ => {
                        let failures = failures.saturating_add(1);
                        let wait = super::run::backoff(failures, source.refresh, None);
                        // The child said why (relayed as it ran).
                        info!(
                            category = %source.category.value,
                            retry_in_s = wait.as_secs(),
                            "list source not updated; the last good copy stays in force; next attempt in {}",
                            humantime::format_duration(Duration::from_secs(wait.as_secs()))
                        );
                        (wait, failures)
                    }
                };
                let at =
                    Timestamp::now() + jiff::SignedDuration::try_from(wait).unwrap_or_default();
                self.due.insert(key(source), (at, failures));
            }
        }
        let next = config
            .sources
            .iter()
            .filter_map(|s| self.due.get(&key(s)).map(|(at, _)| *at))
            .min();
        (changed, next)
    }
}

fn read_meta(dir: &Path) -> SourceMeta {
    std::fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_in_any_lenient_form_is_accepted_and_a_page_is_not() {
        let hosts = b"# hosts\r\n0.0.0.0 casino.example\r\n127.0.0.1 localhost\r\n||bet.example^\nxn--bcher-kva.example\n";
        assert_eq!(judge("u", hosts).ok(), Some(3));
        let html = b"<!DOCTYPE html>\n<html><head><title>Hotel Wi-Fi</title></head>\n<body>Please log in</body>\n</html>\n";
        assert!(judge("u", html).is_err());
        assert!(judge("u", b"").is_err());
        assert!(judge("u", b"# only comments\n").is_err());
        assert!(judge("u", &[0xff, 0xfe, 0x00]).is_err());
    }
}
