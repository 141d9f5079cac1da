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
    let empty = runtime.categories_without_lists();
    if !empty.is_empty() {
        warn!(
            categories = %empty.join(", "),
            "profiles block these categories but no list gives them a name yet; they block nothing (`kidsafe check` shows each category's lists)"
        );
    }
}

/// The report `kidsafe check` prints for a runtime built from `path`: the list files, a
/// coverage table (category, names, the files and sources feeding it), then every profile
/// with what it blocks or allows, its schedules, safe search and the client rules that choose
/// it.
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

    let names = lists.names_per_category();
    let origins = manifest_origins(lists.files.iter().map(|f| f.path.as_path()));
    let _ = writeln!(
        out,
        "coverage (category, names listed, where they come from):"
    );
    for category in lists.categories.names() {
        let from: Vec<String> = lists
            .files
            .iter()
            .filter(|f| f.category == category)
            .map(|f| match origins.get(&f.path) {
                Some(upstream) => format!("{} ({upstream})", source_of(runtime, &f.path)),
                None => source_of(runtime, &f.path),
            })
            .collect();
        let mut from = if from.is_empty() {
            "no list".to_string()
        } else {
            from.join(", ")
        };
        if let Some(source) = runtime.feed_sources.get(category) {
            let _ = write!(from, "  [{}]", source.as_str());
        }
        let _ = writeln!(
            out,
            "  {:<12} {:>9}  {from}",
            category,
            names.get(category).copied().unwrap_or(0)
        );
    }

    let config = &runtime.config;
    let category_names = |mask: u64| -> String {
        let named: Vec<&str> = (0..64u8)
            .filter(|bit| mask & (1 << bit) != 0)
            .map(|bit| lists.categories.name(bit))
            .collect();
        if named.is_empty() {
            "nothing".to_string()
        } else {
            named.join(", ")
        }
    };
    for (index, profile) in runtime.policy.profiles().iter().enumerate() {
        let _ = writeln!(out, "profile {}", profile.name);
        if profile.allowlist_mode {
            let _ = writeln!(
                out,
                "  walled garden: allows only {} and its allow list",
                category_names(profile.allow_mask)
            );
        } else {
            let _ = writeln!(out, "  blocks      {}", category_names(profile.block_mask));
        }
        if let Some(settings) = config.profiles.get(index) {
            let _ = writeln!(
                out,
                "  names       {} allowed, {} denied",
                settings.allow.len(),
                settings.deny.len()
            );
        }
        for window in &profile.schedule {
            let effect = match window.effect {
                crate::config::schedule::Effect::BlockAll => {
                    "everything but allowed names and helplines".to_string()
                }
                crate::config::schedule::Effect::Categories(mask) => category_names(mask),
            };
            let _ = writeln!(
                out,
                "  schedule    {} {:02}:{:02}-{:02}:{:02} blocks {effect}{}",
                days_text(&window.days),
                window.from.0,
                window.from.1,
                window.to.0,
                window.to.1,
                match (window.except.is_empty(), window.only.is_empty()) {
                    (true, true) => "",
                    (false, true) => " (with exceptions)",
                    (true, false) => " (on some dates only)",
                    (false, false) => " (on some dates only, with exceptions)",
                }
            );
        }
        let _ = writeln!(
            out,
            "  safe search {}, YouTube {}, bypass guards {}",
            if profile.safe_search { "on" } else { "off" },
            match profile.youtube {
                crate::config::YouTube::Off => "unrestricted",
                crate::config::YouTube::Moderate => "moderate",
                crate::config::YouTube::Strict => "strict",
            },
            if profile.guards { "on" } else { "off" }
        );
        for rule in config.clients.iter().filter(|c| c.profile == index) {
            let mut matches: Vec<String> = rule
                .networks
                .iter()
                .map(|n| {
                    if n.prefix_len() == n.max_prefix_len() {
                        n.addr().to_string()
                    } else {
                        n.to_string()
                    }
                })
                .collect();
            matches.extend(rule.macs.iter().map(|m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }));
            let _ = writeln!(
                out,
                "  clients     \"{}\": {}",
                rule.name,
                matches.join(", ")
            );
        }
        if config.default_profile == index {
            let _ = writeln!(
                out,
                "  clients     every device no rule matches (defaults.profile)"
            );
        }
    }
    for category in runtime.categories_without_lists() {
        let _ = writeln!(
            out,
            "warning: category \"{category}\" is blocked by a profile but no list gives it a name yet"
        );
    }
    out
}

/// Where a list file comes from, for the coverage table: a `[[lists.sources]]` URL, the
/// built-in list, or the file itself.
fn source_of(runtime: &Runtime, path: &Path) -> String {
    let config = &runtime.config;
    config
        .sources
        .iter()
        .find(|s| crate::feed::sources::list_path(&config.server.state_dir, s) == path)
        .map_or_else(
            || path.display().to_string(),
            |s| format!("{} (from {})", path.display(), s.url),
        )
}

/// The upstream origins of list files, from the `SOURCES.toml` manifest beside them (the
/// shipped `blocklists/` has one): file path → "origin: path (licence); …". Informational
/// only: a directory without a readable manifest simply shows its files.
fn manifest_origins<'a>(
    files: impl Iterator<Item = &'a Path>,
) -> std::collections::HashMap<std::path::PathBuf, String> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        source: Vec<Source>,
    }
    #[derive(serde::Deserialize)]
    struct Source {
        file: String,
        origin: String,
        path: String,
        licence: String,
    }
    let dirs: std::collections::BTreeSet<&Path> = files.filter_map(Path::parent).collect();
    let mut out: std::collections::HashMap<std::path::PathBuf, String> = Default::default();
    for dir in dirs {
        let Ok(text) = std::fs::read_to_string(dir.join("SOURCES.toml")) else {
            continue;
        };
        let Ok(manifest) = toml::from_str::<Manifest>(&text) else {
            continue;
        };
        for source in manifest.source {
            let origin = source.origin.split(',').next().unwrap_or(&source.origin);
            let entry = out.entry(dir.join(&source.file)).or_default();
            if !entry.is_empty() {
                entry.push_str("; ");
            }
            let _ = write!(entry, "{origin}: {} ({})", source.path, source.licence);
        }
    }
    out
}

/// "mon,tue,…" for a window's days, or "daily".
fn days_text(days: &[bool; 7]) -> String {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    if days.iter().all(|d| *d) {
        return "daily".to_string();
    }
    NAMES
        .iter()
        .zip(days)
        .filter(|(_, on)| **on)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",")
}
