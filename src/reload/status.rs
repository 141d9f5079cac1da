//! `state_dir/status.json`: what the daemon is running and how its last reload went, written
//! atomically (temp file, fsync, rename, fsync of the directory) so a reader never sees half a
//! file. `kidsafe status` prints it for a human. It holds paths and counts, never a query.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::blocklist::FileReport;
use crate::runtime::Runtime;

/// The file name inside the state directory.
pub const STATUS_FILE: &str = "status.json";

/// The whole status document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// kidsafe's version.
    pub version: String,
    /// The daemon's process ID.
    pub pid: u32,
    /// When the daemon started (RFC 3339).
    pub started_at: String,
    /// 1 for the rules loaded at start, +1 for every successful reload.
    pub generation: u64,
    /// The config file being served.
    pub config: String,
    /// What is being served now.
    pub active: Active,
    /// The most recent reload attempt, if any.
    pub last_reload: Option<ReloadOutcome>,
    /// Settings changed in the file that apply only after a restart.
    pub restart_required: Vec<String>,
}

/// The runtime being served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Active {
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
    /// Keys in the store (after duplicates and covered subdomains are folded).
    pub stored_names: usize,
    /// Names listed per category.
    pub categories: BTreeMap<String, usize>,
    /// One entry per list file.
    pub list_files: Vec<ListFile>,
}

/// One list file as loaded.
pub type ListFile = crate::blocklist::FileCounts;

/// How one reload went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReloadOutcome {
    /// When it finished (RFC 3339).
    pub at: String,
    /// What asked for it: "SIGHUP", "file change", …
    pub trigger: String,
    /// Whether the new rules are being served.
    pub ok: bool,
    /// The error, with file, line and column, when not.
    pub error: Option<String>,
    /// How long the build took.
    pub duration_ms: u64,
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Active {
    /// Describes a runtime.
    pub fn of(runtime: &Runtime) -> Self {
        let lists = &runtime.lists;
        Self {
            loaded_at: now(),
            stored_names: lists.store.len(),
            categories: lists
                .names_per_category()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            list_files: lists.files.iter().map(FileReport::counts).collect(),
        }
    }
}

/// Writes `status` to `dir/status.json` atomically, creating `dir` if needed.
pub fn write(dir: &Path, status: &Status) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    crate::state_file::write_atomic(dir, STATUS_FILE, &bytes)
}

/// Reads `dir/status.json`.
pub fn read(dir: &Path) -> Result<Status, String> {
    let path = dir.join(STATUS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "cannot read {}: {e} (is the daemon running with this config?)",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a kidsafe status file: {e}", path.display()))
}

/// A human summary of a status document.
pub fn render(status: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kidsafe {} (pid {}), running since {}",
        status.version, status.pid, status.started_at
    );
    let _ = writeln!(out, "config      {}", status.config);
    let _ = writeln!(
        out,
        "generation  {} (loaded {})",
        status.generation, status.active.loaded_at
    );
    match &status.last_reload {
        None => {
            let _ = writeln!(out, "last reload none since start");
        }
        Some(r) if r.ok => {
            let _ = writeln!(
                out,
                "last reload ok at {} ({}, {} ms)",
                r.at, r.trigger, r.duration_ms
            );
        }
        Some(r) => {
            let _ = writeln!(
                out,
                "last reload FAILED at {} ({}); still serving generation {}:",
                r.at, r.trigger, status.generation
            );
            for line in r.error.as_deref().unwrap_or("unknown error").lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if !status.restart_required.is_empty() {
        let _ = writeln!(
            out,
            "restart required for: {}",
            status.restart_required.join(", ")
        );
    }
    let _ = writeln!(out, "names stored {}", status.active.stored_names);
    for (category, names) in &status.active.categories {
        let _ = writeln!(out, "  {category:<14} {names:>10}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            version: "0.1.0".into(),
            pid: 42,
            started_at: now(),
            generation: 3,
            config: "/etc/kidsafe/kidsafe.toml".into(),
            active: Active {
                loaded_at: now(),
                stored_names: 10,
                categories: BTreeMap::from([("adult".to_string(), 7), ("gambling".to_string(), 3)]),
                list_files: vec![],
            },
            last_reload: Some(ReloadOutcome {
                at: now(),
                trigger: "file change".into(),
                ok: false,
                error: Some("kidsafe.toml:3:1: server.lisen: unknown field".into()),
                duration_ms: 4,
            }),
            restart_required: vec!["server.listen".into()],
        }
    }

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let status = sample();
        write(&state, &status).expect("write");
        assert_eq!(read(&state).expect("read"), status);
        let mut next = status.clone();
        next.generation = 4;
        write(&state, &next).expect("rewrite");
        assert_eq!(read(&state).expect("read").generation, 4);
        let names: Vec<_> = std::fs::read_dir(&state)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(STATUS_FILE)],
            "no temp file left"
        );
    }

    #[test]
    fn renders_a_failed_reload_for_humans() {
        let text = render(&sample());
        assert!(text.contains("last reload FAILED"), "{text}");
        assert!(text.contains("kidsafe.toml:3:1: server.lisen"), "{text}");
        assert!(
            text.contains("restart required for: server.listen"),
            "{text}"
        );
        assert!(text.contains("adult"), "{text}");
    }
}
