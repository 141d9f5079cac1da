//! What a runtime holds, told to the admin: the log lines at start and reload, and the report
//! of `kidsafe check`.

use std::fmt::Write as _;
use std::path::Path;

use tracing::{info, warn};

use crate::runtime::{FeedInUse, Runtime};

/// Logs what was loaded: counts, build time, bad list lines, categories without a list.
pub fn log_summary(runtime: &Runtime, what: &str) {
    let lists = &runtime.lists;
    let names: usize = lists.files.iter().map(|f| f.names).sum();
    info!(
        config = %runtime.config.path.display(),
        profiles = runtime.config.profiles.len(),
        list_files = lists.files.len(),
        names,
        stored = lists.store.len(),
        store_bytes = lists.store.size_bytes(),
        build_ms = runtime.build_time.as_millis() as u64,
        "{what} config and lists"
    );
    match &runtime.feed {
        FeedInUse::NotConfigured => {}
        FeedInUse::Snapshot {
            sequence,
            fell_back: false,
        } => info!(sequence, "serving the feed's verified snapshot"),
        FeedInUse::Snapshot {
            sequence,
            fell_back: true,
        } => warn!(
            sequence,
            "the active feed snapshot is damaged; serving the previous one"
        ),
        FeedInUse::Baseline => warn!(
            "no verified feed snapshot yet; serving the [feed] baseline lists until one is installed"
        ),
    }
    log_warnings(runtime);
}

/// Logs what a parent or admin should fix: unreadable list lines, categories without a list.
pub fn log_warnings(runtime: &Runtime) {
    let lists = &runtime.lists;
    for file in lists.files.iter().filter(|f| f.bad > 0) {
        let lines: Vec<String> = file
            .first_bad
            .iter()
            .map(|(n, r)| format!("{n} ({})", r.describe()))
            .collect();
        warn!(
            file = %file.path.display(),
            bad_lines = file.bad,
            first = %lines.join(", "),
            "skipped unreadable lines in a list file"
        );
    }
    for category in runtime.categories_without_lists() {
        warn!(%category, "a profile blocks this category but no list feeds it yet");
    }
}

/// The report `kidsafe check` prints for a runtime built from `path`.
pub fn check_report(runtime: &Runtime, path: &Path) -> String {
    let lists = &runtime.lists;
    let mut out = String::new();
    let _ = writeln!(out, "{}: ok", path.display());
    if let Some(feed) = runtime.feed_summary() {
        let _ = writeln!(out, "{feed}");
    }
    let _ = writeln!(
        out,
        "lists: {} files, {} names stored ({} KiB), built in {} ms",
        lists.files.len(),
        lists.store.len(),
        lists.store.size_bytes() / 1024,
        runtime.build_time.as_millis()
    );
    for file in &lists.files {
        let _ = writeln!(
            out,
            "  {:<12} {:>9} names  {:>6} skipped  {:>5} bad  {}",
            file.category,
            file.names,
            file.skipped,
            file.bad,
            file.path.display()
        );
        for (line, reason) in &file.first_bad {
            let _ = writeln!(out, "      line {line}: {}", reason.describe());
        }
    }
    for profile in runtime.policy.profiles() {
        let blocked: Vec<&str> = (0..64u8)
            .filter(|bit| profile.block_mask & (1 << bit) != 0)
            .map(|bit| lists.categories.name(bit))
            .collect();
        let _ = writeln!(
            out,
            "profile {:<10} blocks: {}",
            profile.name,
            blocked.join(", ")
        );
    }
    for category in runtime.categories_without_lists() {
        let _ = writeln!(
            out,
            "warning: category \"{category}\" is blocked by a profile but no list feeds it yet"
        );
    }
    out
}
