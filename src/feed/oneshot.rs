//! `kidsafe feed update`, `kidsafe feed status` and `kidsafe sources update`: the same updaters
//! the daemon runs (as these very commands, in a child process), once, for an admin at a
//! terminal or a cron job, with exit codes a script can act on.

use std::io::IsTerminal;
use std::sync::Arc;

use super::fetch::{Fetcher, UpstreamSource};
use super::run::{describe, fetcher_for, update_once};
use super::snapshot::feed_root;
use super::update::Outcome;
use crate::config::Config;

/// Exit codes of `kidsafe feed update`.
pub mod exit {
    /// A new snapshot was installed (the daemon reloads by itself).
    pub const INSTALLED: u8 = 0;
    /// Download failed (network, HTTP status, timeout, size cap): try again later.
    pub const UNREACHABLE: u8 = 1;
    /// The config is invalid, or has no `[feed]`.
    pub const CONFIG: u8 = 2;
    /// The feed was refused (signature, rollback, expiry, hash, format): an alarm.
    pub const REFUSED: u8 = 3;
    /// The installed snapshot is current; nothing changed.
    pub const CURRENT: u8 = 4;
}

/// What both one-shot commands need: a client resolving through the config's upstreams and a
/// runtime to drive it; or the exit code to give up with.
fn client_for(config: &Config) -> Result<(Fetcher, tokio::runtime::Runtime), u8> {
    if let Some(message) = owned_by_someone_else(&config.server.state_dir) {
        eprintln!("{message}");
        return Err(exit::CONFIG);
    }
    let tls = crate::dns::upstream::tls_for(config).map_err(|e| {
        eprintln!("{}: {}: {}", e.at, e.key, e.message);
        exit::CONFIG
    })?;
    let upstream = config.upstream.clone();
    let source: UpstreamSource = Arc::new(move || (upstream.clone(), tls.clone()));
    let fetcher = fetcher_for(config, source).map_err(|e| {
        eprintln!("{e}");
        exit::UNREACHABLE
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            exit::UNREACHABLE
        })?;
    Ok((fetcher, rt))
}

/// One state of the terminal's progress bar: `\r`, the category, the bar, the percentage and
/// the KiB so far; a newline once the file is complete.
pub fn progress_line(label: &str, got: u64, of: u64) -> String {
    let percent = (got * 100).checked_div(of).unwrap_or(100).min(100);
    let filled = usize::try_from(percent / 5).unwrap_or(20);
    let end = if got >= of { "\n" } else { "" };
    format!(
        "\r{label:<16} [{:<20}] {percent:>3}% {:>8} KiB{end}",
        "#".repeat(filled),
        got / 1024
    )
}

/// Runs one update for the config at `config`; prints what happened; returns the exit code.
pub fn update(config: &Config) -> u8 {
    let Some(feed) = config.feed.clone() else {
        eprintln!(
            "{}: no [feed] section; add url and public_key (see docs/feed.md)",
            config.path.display()
        );
        return exit::CONFIG;
    };
    let (fetcher, rt) = match client_for(config) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let progress: Option<super::update::Progress> = std::io::stderr().is_terminal().then(|| {
        Box::new(|label: &str, got: u64, of: u64| {
            eprint!("{}", progress_line(label, got, of));
        }) as super::update::Progress
    });
    let result = rt.block_on(update_once(config, &feed, &fetcher, progress));
    match result {
        Ok(outcome) => {
            println!("{}", describe(&outcome));
            match outcome {
                Outcome::Installed { alarms, .. } => {
                    // On stderr, so the daemon relays it as a warning.
                    for alarm in alarms {
                        eprintln!("ALARM: {alarm}");
                    }
                    exit::INSTALLED
                }
                Outcome::Current { .. } | Outcome::NotModified => exit::CURRENT,
            }
        }
        Err(e) => {
            eprintln!(
                "feed update failed ({}): {e}; the installed lists stay in force",
                e.kind()
            );
            if e.is_transient() {
                exit::UNREACHABLE
            } else {
                exit::REFUSED
            }
        }
    }
}

/// Files a one-shot update wrote as another user (typically root, next to a daemon running as
/// systemd's DynamicUser) would be unwritable for the daemon, whose later updates would then
/// fail. So the one-shot refuses, and says how to make the daemon update instead.
fn owned_by_someone_else(state_dir: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::metadata(state_dir).ok()?;
    // Our own effective uid, without libc: the owner of /proc/self is this process's euid.
    let me = std::fs::metadata("/proc/self").ok()?.uid();
    (dir.uid() != me).then(|| {
        format!(
            "{} belongs to uid {}, not to this user (uid {me}): the daemon owns it. Ask the \
             running daemon to update now with `systemctl kill -s USR1 kidsafe` (or `kill -USR1` \
             its pid), then see `kidsafe feed status`.",
            state_dir.display(),
            dir.uid()
        )
    })
}

/// `kidsafe sources update`: fetches the `[[lists.sources]]` at `indices` (all when empty).
/// Exit code: 0 when a new copy was installed, 4 when nothing changed, 1 when a download
/// failed and nothing was installed, 2 for a bad config.
pub fn sources_update(config: &Config, indices: &[usize]) -> u8 {
    if config.sources.is_empty() {
        eprintln!(
            "{}: no [[lists.sources]]; add category and url (see README)",
            config.path.display()
        );
        return exit::CONFIG;
    }
    let (fetcher, rt) = match client_for(config) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let (installed, failed) = rt.block_on(super::sources::update_some(config, indices, &fetcher));
    match (installed, failed) {
        (0, 0) => exit::CURRENT,
        (0, _) => exit::UNREACHABLE,
        _ => exit::INSTALLED,
    }
}

/// The text of `kidsafe feed status`.
pub fn status(config: &Config) -> Result<String, String> {
    let feed = config.feed.as_ref().ok_or_else(|| {
        format!(
            "{}: no [feed] section; add url and public_key (see docs/feed.md)",
            config.path.display()
        )
    })?;
    let root = feed_root(&config.server.state_dir);
    Ok(super::status::render(
        &root,
        &feed.url,
        jiff::Timestamp::now(),
    ))
}

#[cfg(test)]
mod tests {
    use super::progress_line;

    /// Issue 20: the bar was labelled with the file's hash prefix (`d30b5b74a01f…`).
    #[test]
    fn the_progress_bar_is_labelled_with_the_category() {
        assert_eq!(
            progress_line("gambling", 5 * 1024, 20 * 1024),
            "\rgambling         [#####               ]  25%        5 KiB"
        );
        assert_eq!(
            progress_line("adult (delta)", 4096, 4096),
            "\radult (delta)    [####################] 100%        4 KiB\n"
        );
    }
}
