//! The fuzz targets' seed corpora (`fuzz/seeds/<target>/`) and every input a fuzzer found
//! (`tests/data/fuzz-regressions/<target>/`), replayed through the targets' own check
//! functions. The check modules are the files the fuzz crate compiles, included here, so this
//! runs on the stable toolchain with plain `cargo test`, without cargo-fuzz or libFuzzer.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/config.rs"]
mod config;
#[path = "../../fuzz/src/feed_files.rs"]
mod feed_files;
#[path = "../../fuzz/src/handler.rs"]
mod handler;
#[path = "../../fuzz/src/list_line.rs"]
mod list_line;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        root.join("fuzz/seeds").join(target),
        root.join("tests/data/fuzz-regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Replays every input; names the file when a check panics.
fn replay(target: &str, min_inputs: usize, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        files.len() >= min_inputs,
        "{target}: {} inputs found, at least {min_inputs} expected (seeds missing?)",
        files.len()
    );
    for path in files {
        let data = std::fs::read(&path).expect("read input");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("fuzz target {target} fails on {}", path.display());
        }
    }
}

#[test]
fn list_line_seeds_and_regressions() {
    replay("list_line", 5, list_line::check);
}

#[test]
fn feed_files_seeds_and_regressions() {
    replay("feed_files", 9, feed_files::check);
}

#[test]
fn config_seeds_and_regressions() {
    replay("config", 4, config::check);
}

#[test]
fn handler_seeds_and_regressions() {
    replay("handler", 20, handler::check);
}

/// The feed_files seeds must reach the deep paths: a manifest the pinned key really signed.
#[test]
fn the_signed_manifest_seed_verifies_with_the_targets_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed = std::fs::read(root.join("fuzz/seeds/feed_files/manifest-signed")).expect("seed");
    let body = &seed[1..];
    let nul = body.iter().position(|&b| b == 0).expect("separator");
    let key = kidsafe::feed::SecretKey::from_file_text(feed_files::SEED_KEY)
        .expect("key")
        .public_key();
    let manifest =
        kidsafe::feed::manifest::parse_verified(&body[..nul], &body[nul + 1..], &[key], None)
            .expect("the seed is signed by the target's key");
    assert_eq!(manifest.feed_id, "fuzz.seed");
}
