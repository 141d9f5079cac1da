//! The house has floors: top-level modules under `src/` import one way only.
//!
//! This test reads every `crate::…` path in the code under `src/` (comments and unit-test
//! modules left out) and fails on an import that runs up the layer order below, which also
//! rules out every import cycle, and on the "nevers" of docs/architecture.md. It reads text, as
//! `../shared/tools/modgraph.py` does, so it needs no build of the crate and no extra tool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up. A module may import only modules listed before it.
/// `main.rs` and `lib.rs` are the crate root and may import anything.
const LAYERS: &[(&str, &str)] = &[
    // Leaves: plumbing that knows nothing of DNS, lists or rules.
    ("state_file", "atomic writes of small state files; std only"),
    ("sdnotify", "the systemd notification protocol; std only"),
    (
        "logging",
        "tracing set-up, with the targets that would log names capped",
    ),
    (
        "signal",
        "ReloadHandle: asks for a rebuild without knowing who rebuilds",
    ),
    // The vocabulary and the data, pure.
    (
        "category",
        "the category vocabulary: everything else speaks it",
    ),
    (
        "blocklist",
        "list-line format and the compiled store: pure, no I/O",
    ),
    (
        "lists",
        "list files on disk: directory loading and the compiled-store cache",
    ),
    (
        "config",
        "TOML schema, validated settings and their value types, the checker",
    ),
    (
        "policy",
        "pure evaluation of the rules at an instant: no I/O, no clock of its own",
    ),
    (
        "stats",
        "counters keyed by profile and category, SQLite, reports: cannot receive a name",
    ),
    ("runtime", "data only: what one query reads, swapped whole"),
    (
        "live",
        "the I/O behind live state: overrides file, neighbour tables, the ticker",
    ),
    // The query path, then what feeds and rebuilds it.
    (
        "dns",
        "the query path: sockets' request/response, cache, upstreams",
    ),
    (
        "feed",
        "the national feed and list sources; fetches through dns's upstreams",
    ),
    (
        "reload",
        "the one place that builds a runtime and swaps it in",
    ),
    (
        "http",
        "the HTTP surface (/metrics): reads dns, stats, feed and reload through views",
    ),
    // Process life and the command line on top.
    ("server", "binds sockets and runs dns's serving loops"),
    ("daemon", "process life: load, bind, signals, tasks"),
    (
        "setup",
        "kidsafe setup: edits the config, checks it with the daemon's build, next steps",
    ),
    (
        "cli",
        "the command line: parses and dispatches to the modules that own each command",
    ),
];

/// Imports that break a promise of the design even where the layer order would allow them.
const NEVERS: &[(&str, &str, &str)] = &[
    (
        "dns",
        "feed",
        "the query path never waits on, or reaches into, the feed",
    ),
    (
        "stats",
        "dns",
        "stats cannot receive a name: it sees no query",
    ),
    ("stats", "feed", "stats counts, it does not fetch"),
    ("stats", "reload", "stats counts, it does not build"),
    (
        "stats",
        "http",
        "stats is read by the HTTP surface, never the reverse",
    ),
    (
        "stats",
        "runtime",
        "stats is handed its counters; it does not reach for the runtime",
    ),
];

/// Modules that evaluate and must stay free of I/O and of an async runtime.
const PURE: &[&str] = &["category", "blocklist", "policy"];

/// What a pure module must not name: sockets, files, processes, tokio.
const IMPURE: &[&str] = &[
    "std::fs",
    "std::process",
    "tokio",
    "UdpSocket",
    "TcpListener",
    "TcpStream",
    "UnixListener",
    "UnixStream",
    "UnixDatagram",
];

struct Source {
    module: String,
    path: PathBuf,
    code: String,
}

fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or_default();
    match first.strip_suffix(".rs").unwrap_or(first) {
        "main" | "lib" => "(root)".to_string(),
        m => m.to_string(),
    }
}

/// The code of a file without comments and without inline `#[cfg(test)] mod …` blocks
/// (which, in this crate, always close the file).
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        // A trailing comment; good enough for this crate, which has no "//" in string
        // literals next to a crate path.
        let line = match line.find(" // ") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root.clone()];
    let mut out = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).expect("under src").to_path_buf();
            // Unit tests kept in their own files (`#[cfg(test)] mod tests;`).
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if stem == "tests" || stem.ends_with("_tests") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            out.push(Source {
                module: module_of(&rel),
                path: rel,
                code: code_only(&text),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The top-level modules a piece of code names through `crate::`.
fn crate_targets(code: &str) -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue; // e.g. `$crate::` or a longer identifier
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        targets.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            targets.insert(ident(rest));
        }
    }
    targets.retain(|t| !t.is_empty() && t != "self" && t != "super");
    targets
}

/// Every edge between top-level modules, with the files that make it.
fn edges() -> BTreeMap<(String, String), Vec<PathBuf>> {
    let mut edges: BTreeMap<(String, String), Vec<PathBuf>> = BTreeMap::new();
    for source in sources() {
        for target in crate_targets(&source.code) {
            if target == source.module {
                continue;
            }
            edges
                .entry((source.module.clone(), target))
                .or_default()
                .push(source.path.clone());
        }
    }
    edges
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(m, _)| *m == module)
}

fn show(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|p| format!("src/{}", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn every_top_level_module_has_a_layer() {
    let mut missing = BTreeSet::new();
    for source in sources() {
        if source.module != "(root)" && rank(&source.module).is_none() {
            missing.insert(source.module);
        }
    }
    assert!(
        missing.is_empty(),
        "modules missing from LAYERS in tests/architecture.rs (give each a place and a reason): {missing:?}"
    );
}

#[test]
fn imports_point_down_only() {
    let mut wrong = Vec::new();
    for ((from, to), files) in edges() {
        if from == "(root)" {
            continue;
        }
        let (Some(a), Some(b)) = (rank(&from), rank(&to)) else {
            continue; // reported by every_top_level_module_has_a_layer
        };
        if b >= a {
            wrong.push(format!(
                "{from} -> {to} (up the layers) in {}",
                show(&files)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer order:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_nevers_hold() {
    let edges = edges();
    let mut broken = Vec::new();
    for (from, to, why) in NEVERS {
        if let Some(files) = edges.get(&(from.to_string(), to.to_string())) {
            broken.push(format!("{from} -> {to} ({why}) in {}", show(files)));
        }
    }
    for source in sources() {
        if !PURE.contains(&source.module.as_str()) {
            continue;
        }
        for word in IMPURE {
            let mut rest = source.code.as_str();
            while let Some(at) = rest.find(word) {
                let before = rest[..at].chars().last();
                let after = rest[at + word.len()..].chars().next();
                let boundary =
                    |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                if boundary(before) && boundary(after) {
                    broken.push(format!(
                        "{} is pure but names {word} in src/{}",
                        source.module,
                        source.path.display()
                    ));
                    break;
                }
                rest = &rest[at + word.len()..];
            }
        }
    }
    assert!(
        broken.is_empty(),
        "nevers broken:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn the_reader_finds_grouped_and_nested_imports() {
    let code = "use crate::{a, b::c, d::{e, f}};\nlet x = crate::g::h();\n$crate::i; xcrate::j;";
    let found: Vec<String> = crate_targets(code).into_iter().collect();
    assert_eq!(found, ["a", "b", "d", "g"]);
    let code =
        code_only("use crate::a; // crate::b\n// crate::c\n#[cfg(test)]\nmod tests { crate::d }");
    assert_eq!(crate_targets(&code).into_iter().collect::<Vec<_>>(), ["a"]);
}
